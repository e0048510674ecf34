"""No password in any report output: run reports against PostgreSQL 15 with password auth, then search
every file written (ipynb, HTML, JSON, log) and everything printed."""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import nbformat
import psycopg2
import pytest

from bbperf.cli import main
from bbperf.report import run_report
from tests import pg15

pytestmark = [pytest.mark.pg15, pytest.mark.notebook]

ROOT = Path(__file__).resolve().parent.parent
TEST_NOTEBOOKS = Path(__file__).parent / "data" / "notebooks"
# One pool environment: production's sslmode=require cannot reach a server without TLS.
TINY = {
    "as_of": "2026-11-01",
    "rounds": 3,
    "warmup": 1,
    "environments": ["development"],
    "concurrency": [1, 4],
    "duration_s": 0.25,
}


# Every character that changes under URL, HTML or JSON encoding, and a space.
NASTY = "pg15 <&\"'%+ Secr3t"
NASTY_USER = "bbperf_nasty"


def forms(secret: str) -> set[str]:
    """The ways a password could show up in a file: raw, URL-encoded, HTML- and JSON-escaped."""
    out = {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}
    out |= {html.escape(v, quote=True) for v in list(out)} | {
        html.escape(v, False) for v in list(out)
    }
    out |= {json.dumps(v)[1:-1] for v in list(out)}
    return out


@pytest.fixture(scope="module")
def nasty_db(pg15_cluster: pg15.Cluster) -> Iterator[tuple[str, str]]:
    """A fresh database on the PG 15 cluster owned by a role whose password needs every encoding,
    with that password planted in pg_stat_statements (an ALTER ROLE … PASSWORD text).
    Yields the URL with the password as userinfo and as ``?password=``."""
    name = f"t_secret_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(pg15_cluster.admin_url())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP ROLE IF EXISTS {NASTY_USER}")
        cur.execute(f"CREATE ROLE {NASTY_USER} LOGIN PASSWORD %s", (NASTY,))
        cur.execute(f"GRANT pg_read_all_stats, pg_stat_scan_tables TO {NASTY_USER}")
        cur.execute(f'CREATE DATABASE "{name}" OWNER {NASTY_USER}')
    admin = psycopg2.connect(pg15_cluster.admin_url(name))
    admin.autocommit = True
    with admin.cursor() as cur:
        for ext in ("pg_stat_statements", "pgstattuple"):
            cur.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
        literal = NASTY.replace("'", "''")
        cur.execute(f"ALTER ROLE {NASTY_USER} PASSWORD '{literal}'")  # now in pg_stat_statements
        cur.execute("SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%%Secr3t%%'")
        assert cur.fetchone()[0] >= 1, "the password was not planted in pg_stat_statements"
    admin.close()
    host = f"127.0.0.1:{pg15_cluster.port}"
    userinfo = f"postgresql://{NASTY_USER}:{quote(NASTY, safe='')}@{host}/{name}"
    query = f"postgresql://{NASTY_USER}@{host}/{name}?password={quote(NASTY, safe='')}"
    yield userinfo, query
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f"DROP ROLE IF EXISTS {NASTY_USER}")
    conn.close()


@pytest.fixture(scope="module")
def secret_url(nasty_db: tuple[str, str]) -> str:
    return nasty_db[0]


def files_containing(directory: Path, secret: str = NASTY) -> list[Path]:
    needles = [form.encode() for form in forms(secret)]
    return [
        p for p in directory.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)
    ]


def test_report_outputs_hold_no_password(secret_url: str, tmp_path: Path) -> None:
    assert quote(NASTY, safe="") in secret_url
    out = tmp_path / "all"
    report = run_report(
        notebooks_dir=ROOT / "notebooks",
        out=out,
        profile="tiny",
        seed=42,
        parameters=TINY,
        database_url=secret_url,
        progress=False,
    )
    assert report.ok, [(r.name, r.error) for r in report.failures]
    assert report.leaks == []
    written = sorted(p.suffix for p in out.rglob("*") if p.is_file())
    assert {".ipynb", ".html", ".json", ".log"} <= set(written)
    assert files_containing(out) == []
    # The notebooks really worked on the PG 15 server, reached through the environment.
    assert report.provenance["postgresql"]["server_version_num"] // 10000 == 15
    assert report.provenance["target"].endswith(secret_url.rsplit("@", 1)[1])
    for run in report.runs:
        parameters = nbformat.read(str(run.ipynb), as_version=4).metadata.papermill.parameters
        assert not any("url" in name.lower() for name in parameters)


def test_cli_report_with_a_failing_notebook_prints_no_password(
    secret_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    code = main(
        [
            "--database-url",
            secret_url,
            "report",
            "--notebooks-dir",
            str(TEST_NOTEBOOKS),
            "--out",
            str(out),
            "-p",
            "rounds=3",
        ]
    )
    printed = capsys.readouterr()
    assert code == 1  # the deliberate failure
    assert "FAILED fails" in printed.err
    assert not any(form in printed.out + printed.err for form in forms(NASTY))
    assert files_containing(out) == []


def test_a_leaked_password_is_caught_and_redacted(secret_url: str, tmp_path: Path) -> None:
    """Defence in depth: a notebook that prints the URL makes the report fail and is redacted."""
    leaky = tmp_path / "nb"
    leaky.mkdir()
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import os\nprint(os.environ['BBPERF_DATABASE_URL'])")]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(leaky / "leaky.ipynb"))
    report = run_report(
        notebooks_dir=leaky, out=tmp_path / "out", database_url=secret_url, progress=False
    )
    assert not report.ok
    assert {p.name for p in report.leaks} == {"leaky.ipynb", "leaky.html"}
    assert files_containing(tmp_path / "out") == []


def test_password_as_query_parameter_reaches_no_output(
    nasty_db: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same password given as ``?password=``; notebook 04 shows pg_stat_statements, where the
    password was planted."""
    out = tmp_path / "query"
    code = main(
        [
            "--database-url",
            nasty_db[1],
            "report",
            "--notebooks-dir",
            str(ROOT / "notebooks"),
            "--notebooks",
            "04",
            "--out",
            str(out),
            "--profile",
            "tiny",
            "--no-progress",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert not any(form in printed.out + printed.err for form in forms(NASTY))
    assert "a password was found" not in printed.err  # nothing needed redacting afterwards
    assert files_containing(out) == []
