"""No password in any report output: run reports against PostgreSQL 15 with password auth, then search
every file written (ipynb, HTML, JSON, log) and everything printed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(scope="module")
def secret_url(pg15_cluster: pg15.Cluster) -> Iterator[str]:
    """A fresh database on the PG 15 cluster, reached over TCP with a password."""
    name = f"t_secret_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(pg15_cluster.admin_url())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" OWNER {pg15.USER}')
    admin = psycopg2.connect(pg15_cluster.admin_url(name))
    admin.autocommit = True
    with admin.cursor() as cur:
        for ext in ("pg_stat_statements", "pgstattuple"):
            cur.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
    admin.close()
    yield pg15_cluster.url.rsplit("/", 1)[0] + f"/{name}"
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def files_containing(directory: Path, secret: str) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_report_outputs_hold_no_password(secret_url: str, tmp_path: Path) -> None:
    assert pg15.PASSWORD in secret_url
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
    assert files_containing(out, pg15.PASSWORD) == []
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
    assert pg15.PASSWORD not in printed.out + printed.err
    assert files_containing(out, pg15.PASSWORD) == []


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
    assert files_containing(tmp_path / "out", pg15.PASSWORD) == []
