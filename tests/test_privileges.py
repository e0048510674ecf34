"""Safe by PostgreSQL's own guarantees (issue 21): values bound by the server, user SQL under a
least-privilege role on bbperf's own server, writes only where asked, session state ending with the
statement. Every test counts what a hostile input could have changed, before and after."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import Engine

from bbperf.cli import main
from bbperf.errors import QueryError
from bbperf.target import make_engine
from tests.dbutil import scalar

PAYLOADS = [
    "'; COMMIT; DELETE FROM payments; --",
    "$$; COMMIT; DELETE FROM payments; --",
    "\\'; COMMIT; DELETE FROM payments; --",
]
# ``:x`` where it is not a placeholder (a literal of each kind, a comment, an identifier) and ``:v``
# where it is one: a textual binder fills both, and the quotes around ``:x`` pair up with the value's.
CONTEXTS = {
    "literal": "SELECT ':x' AS a, :v AS b",
    "line comment": "SELECT :v AS b -- :x\n",
    "block comment": "SELECT :v /* :x */ AS b",
    "dollar quote": "SELECT $$ :x $$ AS a, :v AS b",
    "E string": "SELECT E'\\' :x' AS a, :v AS b",
    "identifier": 'SELECT 1 AS ":x", :v AS b',
}


def payments(url: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM bbperf.payments"))  # type: ignore[arg-type]


@pytest.fixture
def target(tiny_copy_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private tiny dataset that the CLI and the magics use as their target."""
    monkeypatch.setenv("BBPERF_DATABASE_URL", tiny_copy_url)
    import bbperf.explain.magics as magics

    monkeypatch.setattr(magics, "_engine", None)
    yield tiny_copy_url
    if magics._engine is not None:
        magics._engine.dispose()


def _library_explain(url: str, sql: str, params: dict) -> object:
    from bbperf.explain.run import explain

    engine = make_engine(url, echo_pool=False)
    try:
        return explain(engine, sql, params)
    finally:
        engine.dispose()


def _library_measure(url: str, sql: str, params: dict) -> object:
    from bbperf.explain.measure import measure

    engine = make_engine(url, echo_pool=False)
    try:
        return measure(engine, sql, params, rounds=2, warmup=1, server_time=True)
    finally:
        engine.dispose()


def _cli_explain(url: str, sql: str, params: dict) -> object:
    code = main(["explain", sql, "--params", json.dumps(params), "--overhead", "1"])
    assert code == 0
    return code


def _magics(params: dict) -> object:
    """The magics with ``params`` as the notebook's variables (how an analyst passes a value)."""
    from bbperf.explain.magics import BbperfMagics

    magics = BbperfMagics(shell=None)
    magics._namespace = lambda: params  # type: ignore[method-assign]
    return magics


def _magic_sql(url: str, sql: str, params: dict) -> object:
    frame = _magics(params).sql("", sql)  # type: ignore[attr-defined]
    assert list(frame["b"]) == [params["v"]]  # the value came back verbatim, as data
    return frame


def _magic_explain(url: str, sql: str, params: dict) -> object:
    return _magics(params).explain("", sql)  # type: ignore[attr-defined]


def _magic_bench(url: str, sql: str, params: dict) -> object:
    return _magics(params).bench("--rounds 2 --warmup 0", sql)  # type: ignore[attr-defined]


ENTRY_POINTS = {
    "library explain": _library_explain,
    "library measure": _library_measure,
    "cli explain --overhead": _cli_explain,
    "%sql": _magic_sql,
    "%%explain": _magic_explain,
    "%%bench": _magic_bench,
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("context", list(CONTEXTS))
def test_a_value_is_never_spliced_into_the_sql(
    target: str, entry: str, context: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = payments(target)
    for payload in PAYLOADS:
        params = {"v": payload, "x": payload}
        result = ENTRY_POINTS[entry](target, CONTEXTS[context], params)
        assert result is not None
    assert payments(target) == before


def test_parameters_are_found_by_postgresqls_scanner() -> None:
    from bbperf.sql import parse_one

    for context, sql in CONTEXTS.items():
        statement = parse_one(sql)
        assert statement.binds == ("v",), context
        assert ":x" in statement.numbered or context == "literal" and "':x'" in statement.numbered
    assert parse_one("SELECT a::int, arr[1:n] FROM t WHERE b = :b").binds == ("b",)
    assert parse_one("SELECT :a, :b, :a").numbered == "SELECT $1, $2, $1"


def test_a_parameter_without_a_type_is_typed_from_its_value(tiny_engine: Engine) -> None:
    from bbperf.explain.run import explain

    plan = explain(tiny_engine, "SELECT :x IS NULL, :y", {"x": None, "y": "a'b"})
    assert plan.execution_ms >= 0


# -- --overhead and the magics never commit a write -------------------------------------------------
@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM payments WHERE id <= 100",
        "WITH d AS (UPDATE users SET email = email || '.x' RETURNING 1) SELECT count(*) FROM d",
    ],
)
def test_overhead_rolls_back_every_run(
    target: str, sql: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (
        payments(target),
        scalar(target, "SELECT count(*) FROM bbperf.users WHERE email LIKE '%.x'"),
    )
    assert main(["explain", sql, "--overhead", "2"]) == 0
    assert "overhead" in capsys.readouterr().out
    after = (
        payments(target),
        scalar(target, "SELECT count(*) FROM bbperf.users WHERE email LIKE '%.x'"),
    )
    assert after == before


def test_percent_sql_reads_unless_writes_are_allowed(target: str) -> None:
    from IPython.core.error import UsageError

    from bbperf.explain.magics import BbperfMagics

    magics = BbperfMagics(shell=None)
    before = payments(target)
    for sql in (
        "WITH d AS (DELETE FROM payments RETURNING 1) SELECT count(*) FROM d",
        "DELETE FROM payments",
    ):
        with pytest.raises(UsageError, match="--allow-writes"):
            magics.sql("", sql)
    with pytest.raises(UsageError, match="permission denied|read-only"):
        magics.sql("", "SELECT nextval('payments_id_seq')")
    assert payments(target) == before
    said = magics.sql(
        "--allow-writes", "DELETE FROM payments WHERE id = (SELECT min(id) FROM payments)"
    )
    assert "committed" in said
    assert payments(target) == before - 1


# -- the least-privilege role: PostgreSQL refuses what a denylist misses ----------------------------
def _escaping_statements(url: str) -> list[str]:
    statements_schema = scalar(
        url,
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_stat_statements'",
    )
    return [
        f"SELECT ts_stat('SELECT {statements_schema}.pg_stat_statements_reset()')",
        f"SELECT {statements_schema}.pg_stat_statements_reset()",
        "SELECT ts_stat('SELECT setval(''payments_id_seq'', 1)')",
        "SELECT setval('payments_id_seq', 1)",
        "SELECT ts_stat('SELECT pg_read_file(''/etc/passwd'')')",
        "SELECT ts_stat('SELECT pg_stat_reset()')",
        "SELECT ts_stat('SELECT pg_stat_reset_shared(''io'')')",
        "SELECT ts_stat('SELECT pg_stat_reset_single_table_counters(''payments''::regclass)')",
        "SELECT ts_stat('SELECT pg_drop_replication_slot(''user_slot'')')",
        "SELECT ts_stat('SELECT pg_advisory_lock(4242)')",
        "SELECT ts_stat('SELECT 1 FROM pg_create_physical_replication_slot(''bbperf_t'')')",
        "SELECT ts_stat('SELECT pg_reload_conf()')",
        "SELECT rolpassword FROM pg_authid",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend'",
    ]


def test_the_role_alone_refuses_side_effects(
    tiny_copy_url: str, monkeypatch: pytest.MonkeyPatch, make_test_engine: Callable[..., Engine]
) -> None:
    import bbperf.sql
    from bbperf.explain.run import explain
    from bbperf.target import user_engine

    monkeypatch.setattr(bbperf.sql, "_REFUSED_FUNCTIONS", frozenset())  # the denylist is off
    owner = make_test_engine(tiny_copy_url)
    engine = user_engine(owner)
    witness = psycopg2.connect(tiny_copy_url)  # another session a statement might try to kill
    try:
        explain(owner, "SELECT count(*) FROM payments")  # something for pg_stat_statements
        schema = scalar(
            tiny_copy_url,
            "SELECT extnamespace::regnamespace::text FROM pg_extension "
            "WHERE extname = 'pg_stat_statements'",
        )
        count_statements = f"SELECT count(*) FROM {schema}.pg_stat_statements"
        statements_before = scalar(tiny_copy_url, count_statements)
        sequence_before = scalar(tiny_copy_url, "SELECT last_value FROM bbperf.payments_id_seq")
        for sql in _escaping_statements(tiny_copy_url):
            with pytest.raises(QueryError, match="permission denied"):
                explain(engine, sql)
        assert scalar(tiny_copy_url, count_statements) >= statements_before > 0
        assert (
            scalar(tiny_copy_url, "SELECT last_value FROM bbperf.payments_id_seq")
            == sequence_before
        )
        assert scalar(tiny_copy_url, "SELECT count(*) FROM pg_replication_slots") == 0
        assert (
            scalar(tiny_copy_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
        )
        with witness.cursor() as cur:
            cur.execute("SELECT 1")  # still alive
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT current_user").scalar() == "bbperf_query"
            assert not conn.exec_driver_sql(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            ).scalar()
    finally:
        witness.close()
        owner.dispose()


def test_cli_runs_user_sql_as_the_role(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = scalar(target, "SELECT last_value FROM bbperf.payments_id_seq")
    code = main(["explain", "SELECT ts_stat('SELECT setval(''payments_id_seq'', 1)')"])
    assert code == 2
    assert "permission denied" in capsys.readouterr().err
    assert scalar(target, "SELECT last_value FROM bbperf.payments_id_seq") == before


def test_pool_load_of_a_sequence_write_is_refused_by_the_server(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = scalar(target, "SELECT last_value FROM bbperf.payments_id_seq")
    main(
        [
            "pool",
            "load",
            "--concurrency",
            "1",
            "--duration",
            "0.5",
            "--format",
            "json",
            "--workload",
            "SELECT ts_stat('SELECT setval(''payments_id_seq'', 1)')",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    step = out["load"][0]
    assert step["status"] != "healthy" or step.get("errors", 0) > 0 or step.get("requests", 0) == 0
    assert scalar(target, "SELECT last_value FROM bbperf.payments_id_seq") == before


# -- a server bbperf does not own: the user's own role, explicit flags for anything that writes -------
@pytest.fixture
def stranger(pg15_url: str) -> Iterator[str]:
    """A PostgreSQL 15 database holding a user's own table public.mydata (and bbperf's schema)."""
    conn = psycopg2.connect(pg15_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE public.mydata (id serial PRIMARY KEY, v text)")
        cur.execute(
            "INSERT INTO public.mydata (v) SELECT 'row ' || g FROM generate_series(1, 50) g"
        )
    conn.close()
    yield pg15_url


def mydata(url: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM public.mydata"))  # type: ignore[arg-type]


@pytest.mark.pg15
@pytest.mark.parametrize("as_role", ["plain role", "superuser"])
@pytest.mark.parametrize("context", list(CONTEXTS))
def test_no_value_reaches_a_strangers_table(
    stranger: str,
    pg15_cluster: object,
    context: str,
    as_role: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = stranger
    if as_role == "superuser":
        url = pg15_cluster.admin_url(stranger.rsplit("/", 1)[1])  # type: ignore[attr-defined]
    for payload in (p.replace("payments", "public.mydata") for p in PAYLOADS):
        params = json.dumps({"v": payload, "x": payload})
        code = main(["--database-url", url, "explain", CONTEXTS[context], "--params", params])
        assert code == 0, capsys.readouterr().err
    assert mydata(stranger) == 50


@pytest.mark.pg15
def test_dml_on_a_strangers_server_needs_a_flag_and_is_rolled_back(
    stranger: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "DELETE FROM public.mydata"
    assert main(["--database-url", stranger, "explain", sql]) == 2
    err = capsys.readouterr().err
    assert "may write 1 table(s) outside" in err  # the one-line privilege note
    assert "--allow-writes" in err and len(err.strip().splitlines()) == 2
    args = ["--database-url", stranger, "explain", sql, "--overhead", "1", "--allow-writes"]
    assert main(args) == 0
    assert "overhead" in capsys.readouterr().out
    assert mydata(stranger) == 50


@pytest.mark.pg15
def test_session_state_ends_with_the_cell(
    stranger: str, make_test_engine: Callable[..., Engine]
) -> None:
    from IPython.core.error import UsageError

    from bbperf.explain.magics import run_sql

    engine = make_test_engine(stranger)
    frame = run_sql(
        engine, "SELECT count(*) AS n FROM (SELECT pg_try_advisory_xact_lock(4242)) t", {}
    )
    assert int(frame["n"][0]) == 1
    with pytest.raises(UsageError, match="refuses"):
        run_sql(engine, "SELECT pg_advisory_lock(4242)", {})
    # Through a function the denylist cannot see, the lock is taken, and released with the cell.
    run_sql(engine, "SELECT * FROM ts_stat('SELECT pg_advisory_lock(4242)::text::tsvector')", {})
    assert scalar(stranger, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0


@pytest.mark.pg15
def test_verify_builds_on_a_strangers_table_only_when_asked(
    stranger: str, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = psycopg2.connect(stranger)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO public.mydata (v) SELECT 'more ' || g FROM generate_series(1, 5000) g"
        )
        cur.execute("ANALYZE public.mydata")
    conn.close()
    indexes = "SELECT count(*) FROM pg_indexes WHERE tablename = 'mydata'"
    before = scalar(stranger, indexes)
    code = main(
        [
            "--database-url",
            stranger,
            "--schema",
            "public",
            "advise",
            "SELECT * FROM mydata WHERE v = 'row 7'",
            "--verify",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and ("--allow-build" in err or "hypopg" in err.lower())
    assert scalar(stranger, indexes) == before


def test_role_sql_prints_what_a_dba_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["role", "sql", "--name", "analyst"]) == 0
    out = capsys.readouterr().out
    assert "CREATE ROLE analyst LOGIN" in out and "NOSUPERUSER" in out
    assert "pg_read_all_stats" in out
    assert main(["role", "sql", "--name", "x; DROP"]) == 2


# -- replay and pool load: the same path ------------------------------------------------------------
def test_replay_binds_sampled_values_on_the_server(
    tiny_copy_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    from bbperf.target import user_engine
    from bbperf.workload.file import Placeholder, Statement, Workload
    from bbperf.workload.replay import replay

    before = payments(tiny_copy_url)
    statement = Statement(
        name="hostile",
        sql="SELECT ':x' AS a, $1::text AS b -- :x",
        placeholders=(Placeholder(1, "=", "payments", "status"),),
        values=[[p] for p in PAYLOADS],
    )
    owner = make_test_engine(tiny_copy_url)
    result = replay(
        user_engine(owner),
        Workload("hostile", [statement]),
        duration_s=0.3,
        concurrency=2,
        progress=False,
    )
    assert not result.errors, result.first_error
    assert len(result.samples_ms["hostile"]) > 0
    assert payments(tiny_copy_url) == before


def test_pool_load_takes_no_parameters(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["pool", "load", "--duration", "0.2", "--workload", "SELECT * FROM payments WHERE id = :x"]
    )
    assert code == 2
    assert "takes no parameters" in capsys.readouterr().err


def test_sampling_never_reads_a_system_catalog(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "secrets.toml"
    source.write_text(
        'version = 1\nname = "secrets"\nsource = "file"\n\n[[statement]]\nname = "roles"\n'
        'kind = "select"\ncalls = 1\n'
        'sql = "SELECT rolname FROM pg_catalog.pg_authid WHERE rolpassword = $1"\n\n'
        '[[statement.placeholder]]\nnumber = 1\nname = "secret"\noperator = "="\n'
        'table = "pg_catalog.pg_authid"\ncolumn = "rolpassword"\n'
    )
    out = tmp_path / "sampled.toml"
    admin = psycopg2.connect(target)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("CREATE ROLE bbperf_t_secret LOGIN PASSWORD 'hunter2'")  # a SCRAM secret
    try:
        assert main(["workload", "sample", str(source), "-o", str(out)]) == 0
    finally:
        with admin.cursor() as cur:
            cur.execute("DROP ROLE bbperf_t_secret")
        admin.close()
    assert "SCRAM" not in out.read_text()
    assert "not filled" in capsys.readouterr().out


def test_replay_of_a_statistics_reset_is_refused_by_the_server(
    tiny_copy_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    from bbperf.target import user_engine
    from bbperf.workload.file import Statement, Workload
    from bbperf.workload.replay import replay

    schema = scalar(
        tiny_copy_url,
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_stat_statements'",
    )
    count_statements = f"SELECT count(*) FROM {schema}.pg_stat_statements"
    owner = make_test_engine(tiny_copy_url)
    reset = Statement(
        name="reset",
        sql=f"SELECT * FROM ts_stat('SELECT {schema}.pg_stat_statements_reset()::text::tsvector')",
    )
    with owner.connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM payments").all()
    before = scalar(tiny_copy_url, count_statements)
    result = replay(user_engine(owner), Workload("reset", [reset]), duration_s=0.3, progress=False)
    assert result.errors.get("reset", 0) > 0
    assert "permission denied" in result.first_error["reset"]
    assert scalar(tiny_copy_url, count_statements) >= before > 0


def test_statistics_show_the_statement_not_bbperfs_prepare() -> None:
    from bbperf.sql import unwrap_prepared

    assert unwrap_prepared("PREPARE bbperf_0123456789ab AS SELECT 1") == "SELECT 1"
    typed = "PREPARE bbperf_0123456789ab(bigint, text) AS SELECT $1, $2"
    assert unwrap_prepared(typed) == "SELECT $1, $2"
    assert unwrap_prepared("PREPARE mine AS SELECT 1") == "PREPARE mine AS SELECT 1"  # not ours
