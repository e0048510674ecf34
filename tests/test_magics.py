"""Jupyter magics on a real PostgreSQL 18: %sql/%%sql as DataFrames, :name parameters from the
notebook's variables, usage errors in one line instead of SystemExit or tracebacks."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from sqlalchemy import Engine, text

from bbperf.explain import magics


@pytest.fixture(scope="module")
def shell(server) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """One IPython shell on one database holding a 30-row table, for the whole module."""
    from IPython.core.interactiveshell import InteractiveShell

    from bbperf.pool.describe import make_engine

    name = f"t_magics_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(server.url("postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = str(server.url(name))
    engine: Engine = make_engine(url, echo_pool=False)
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA bbperf"))  # bbperf's engines see only their schema
        conn.execute(text("CREATE TABLE bbperf.chairs (id int PRIMARY KEY, shop text)"))
        conn.execute(
            text(
                "INSERT INTO bbperf.chairs SELECT g, 'shop ' || g % 3 FROM generate_series(1, 30) g"
            )
        )
    engine.dispose()
    saved = os.environ.get("BBPERF_DATABASE_URL")
    os.environ["BBPERF_DATABASE_URL"] = url
    magics._engine = None
    ipython = InteractiveShell.instance()
    magics.load_ipython_extension(ipython)
    yield ipython
    magics.default_engine().dispose()
    magics._engine = None
    if saved is None:
        os.environ.pop("BBPERF_DATABASE_URL", None)
    else:
        os.environ["BBPERF_DATABASE_URL"] = saved
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_sql_returns_a_dataframe_with_params_from_variables(shell: Any) -> None:
    shell.user_ns["first"] = 28
    frame = shell.run_cell_magic(
        "sql", "", "SELECT id, shop FROM chairs WHERE id > :first ORDER BY id"
    )
    assert frame.to_dict(orient="records") == [
        {"id": 29, "shop": "shop 2"},
        {"id": 30, "shop": "shop 0"},
    ]
    assert shell.run_line_magic("sql", "SELECT count(*) AS n FROM chairs")["n"].tolist() == [30]
    given = shell.run_cell_magic(
        "sql", "--params '{\"first\": 29}'", "SELECT id FROM chairs WHERE id > :first"
    )
    assert given["id"].tolist() == [30]


def test_explain_and_bench_take_notebook_variables(shell: Any) -> None:
    shell.user_ns["chair"] = 7
    plan = shell.run_cell_magic("explain", "", "SELECT * FROM chairs WHERE id = :chair")
    assert plan.analyzed and plan.root.actual_rows == 1 and "<table>" in plan._repr_html_()
    assert "<b>" in plan.root._repr_html_()
    timing = shell.run_cell_magic(
        "bench", "--rounds 3 --warmup 0", "SELECT * FROM chairs WHERE id = :chair"
    )
    assert timing.rounds == 3


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (
            "%%sql\nSELECT :nowhere",
            "no value for :nowhere: set nowhere in the notebook or pass --params",
        ),
        ("%%bench --bogus\nSELECT 1", "unrecognized arguments: --bogus"),
        ("%%bench --rounds 0\nSELECT 1", "--rounds must be at least 1"),
        ("%%explain --params '[1]'\nSELECT 1", "--params must be a JSON object"),
        ("%sql SELECT * FROM nowhere", 'relation "nowhere" does not exist'),
    ],
)
def test_bad_input_is_one_usage_line(
    shell: Any, capsys: pytest.CaptureFixture[str], cell: str, message: str
) -> None:
    from IPython.core.error import UsageError

    result = shell.run_cell(cell)
    assert not result.success and isinstance(result.error_in_exec, UsageError)
    assert message in str(result.error_in_exec) and "\n" not in str(result.error_in_exec)
    assert "Traceback" not in capsys.readouterr().out


def test_help_comes_from_magic_arguments() -> None:
    doc = magics.BbperfMagics.bench.__doc__ or ""
    assert "--rounds ROUNDS" in doc and "--server-time" in doc
