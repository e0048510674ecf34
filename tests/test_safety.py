"""Safe on a real server (issue 11): one statement at a time, one target carrying its schema, no
secret in any output, no user file touched, bad input answered in one line with exit 2.

``BAD_INPUTS`` is also the source of docs/errors.md: ``python -m tests.test_safety`` rewrites it, and
``test_errors_doc_matches_the_table`` keeps the two in step.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import Engine, text

from bbperf.cli import main

ROOT = Path(__file__).resolve().parent.parent
ERRORS_DOC = ROOT / "docs" / "errors.md"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def count(url: str, table: str) -> int:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM bbperf.{table}")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


# -- one statement, parsed -------------------------------------------------------------------------
MULTI = "SELECT 1; COMMIT; DELETE FROM payments"


@pytest.mark.parametrize(
    "args",
    [
        ["explain", MULTI],
        ["explain", "--no-analyze", MULTI],
        ["explain", "SELECT 1; COMMIT; DROP TABLE bbperf.payments"],
        ["advise", MULTI],
        ["advise", "--verify", MULTI],
    ],
)
def test_multi_statement_sql_is_refused_and_nothing_changes(
    args: list[str], tiny_copy_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = count(tiny_copy_url, "payments")
    code, out, err = cli(capsys, "--database-url", tiny_copy_url, *args)
    assert code == 2, (out, err)
    assert "exactly one statement" in err and len(err.strip().splitlines()) == 1
    assert count(tiny_copy_url, "payments") == before


def test_library_and_magics_refuse_multi_statement_sql(
    tiny_copy_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    from bbperf.errors import ConfigError
    from bbperf.explain import magics, measure
    from bbperf.explain.run import explain

    engine = make_test_engine(tiny_copy_url)
    before = count(tiny_copy_url, "payments")
    try:
        for run in (
            lambda: explain(engine, MULTI),
            lambda: measure(engine, MULTI, rounds=1, warmup=0),
        ):
            with pytest.raises(ConfigError, match="exactly one statement"):
                run()
        magics._engine = engine
        assert magics.explain_magic("", MULTI) is None
        assert magics.bench_magic("--rounds 1", MULTI) is None
    finally:
        magics._engine = None
        engine.dispose()
    assert count(tiny_copy_url, "payments") == before


def test_explain_analyze_of_dml_rolls_back_and_measure_refuses_it(
    tiny_copy_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    from bbperf.errors import ConfigError
    from bbperf.explain import measure
    from bbperf.explain.run import explain

    engine = make_test_engine(tiny_copy_url)
    before = count(tiny_copy_url, "payments")
    plan = explain(engine, "DELETE FROM payments")
    assert plan.root.node_type == "ModifyTable"
    assert count(tiny_copy_url, "payments") == before
    with pytest.raises(ConfigError, match="modifies data"):
        measure(engine, "DELETE FROM payments", rounds=1, warmup=0)
    with pytest.raises(ConfigError, match="modifies data"):
        measure(engine, "WITH d AS (DELETE FROM payments RETURNING 1) SELECT count(*) FROM d")
    assert count(tiny_copy_url, "payments") == before


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELECT * INTO stolen FROM payments", "SELECT … INTO"),
        ("COPY payments TO PROGRAM 'cat'", "COPY is refused"),
        ("SET ROLE postgres", "SET is refused"),
        ("BEGIN", "transaction control"),
        ("TRUNCATE payments", "TRUNCATE is refused"),
        ("SELECT pg_terminate_backend(1)", "pg_terminate_backend()"),
        ("EXPLAIN SELECT 1", "without EXPLAIN"),
    ],
)
def test_statement_kinds_refused(sql: str, fragment: str) -> None:
    from bbperf.errors import ConfigError
    from bbperf.sql import parse_one

    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_one(sql)


def test_read_runs_in_a_read_only_transaction(
    tiny_copy_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    from bbperf.errors import QueryError
    from bbperf.explain.run import explain

    engine = make_test_engine(tiny_copy_url)
    with pytest.raises(QueryError, match="read-only transaction"):
        explain(engine, "SELECT nextval(pg_get_serial_sequence('bbperf.payments', 'id'))")


# -- one target that carries its schema --------------------------------------------------------------
def test_unqualified_sql_never_falls_through_to_public(
    fresh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = psycopg2.connect(fresh_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE public.appointments (id int)")
    conn.close()
    code, _, err = cli(
        capsys,
        "--database-url",
        fresh_url,
        "--schema",
        "alt",
        "explain",
        "--no-analyze",
        "select count(*) from appointments",
    )
    assert code == 2 and 'relation "appointments" does not exist' in err


def test_schema_flag_reaches_every_command(
    fresh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--database-url", fresh_url]
    for schema, seed in (("bbperf", "1"), ("alt", "2")):
        assert cli(capsys, *base, "--schema", schema, "schema", "create")[0] == 0
        code, _, err = cli(
            capsys, *base, "--schema", schema, "generate", "--profile", "tiny", "--seed", seed,
            "--scale", "0.5", "--as-of", "2026-11-01", "--no-progress",
        )  # fmt: skip
        assert code == 0, err
    for schema, seed in (("bbperf", 1), ("alt", 2)):
        code, out, _ = cli(capsys, *base, "--schema", schema, "data", "status", "--format", "json")
        assert code == 0 and json.loads(out)["seed"] == seed
        rows = json.loads(out)["fingerprints"]["appointments"]["rows"]
        code, out, err = cli(
            capsys, *base, "--schema", schema, "explain", "--format", "json",
            "select count(*) from appointments",
        )  # fmt: skip
        assert code == 0, err
        scans = [n for n in json.loads(out)["nodes"] if "Scan" in n["node_type"]]
        assert sum(n["actual_rows"] * n["loops"] for n in scans) == rows
    code, _, err = cli(capsys, *base, "--schema", "alt", "schema", "drop")
    assert code == 0, err
    code, out, _ = cli(capsys, *base, "data", "status", "--format", "json")
    assert json.loads(out)["seed"] == 1  # dropping alt left bbperf's dataset alone


@pytest.mark.notebook
def test_notebooks_read_the_schema_they_are_given(
    fresh_url: str, tmp_path: Path, make_test_engine: Callable[..., Engine]
) -> None:
    """Notebooks 01 and 02 under --schema alt, with another dataset in bbperf: each reads its own."""
    from bbperf.generate import dataset_info, generate
    from bbperf.report import run_report
    from bbperf.schema import create_schema

    mine = make_test_engine(fresh_url)
    create_schema(mine)
    generate(mine, "tiny", 0.5, 7, "2026-11-01", progress=False)
    before = dataset_info(mine)
    report = run_report(
        notebooks_dir=ROOT / "notebooks",
        notebooks=["01", "02"],
        out=tmp_path / "alt",
        profile="tiny",
        scale=0.5,
        seed=42,
        parameters={"rounds": 3, "warmup": 1, "barbers_sampled": 1, "scale_fractions": [1.0]},
        database_url=fresh_url,
        schema="alt",
        progress=False,
    )
    assert report.ok, [(r.name, r.error) for r in report.failures]
    assert dataset_info(mine) == before  # bbperf's own dataset untouched
    alt = make_test_engine(fresh_url, schema="alt")
    assert dataset_info(alt)["seed"] == 42
    assert (
        report.provenance["dataset"]["seed"] == 42
    )  # provenance names the schema the notebooks used


# -- secrets -----------------------------------------------------------------------------------------
NASTY = "<&\"'%+ pw"


def test_mask_url_hides_every_form_of_a_nasty_password() -> None:
    from urllib.parse import quote, quote_plus

    from bbperf.secrets import forms
    from bbperf.urls import mask_url

    enc = quote(NASTY, safe="")
    for url in (
        f"postgresql://u:{enc}@db:5432/x",
        f"postgresql://u@db:5432/x?password={enc}&sslmode=require",
        f"postgresql://u@db:5432/x?password={quote_plus(NASTY)}",
    ):
        masked = mask_url(url)
        assert "***" in masked
        assert not any(form in masked for form in forms(NASTY)), masked


def test_cli_never_prints_a_query_password(capsys: pytest.CaptureFixture[str]) -> None:
    from urllib.parse import quote

    from bbperf.secrets import forms

    url = f"postgresql://u@127.0.0.1:1/x?password={quote(NASTY, safe='')}"
    for args in (["db", "url"], ["db", "status"], ["pool", "show"], ["schema", "status"]):
        code, out, err = cli(capsys, "--database-url", url, *args)
        assert not any(form in out + err for form in forms(NASTY)), (args, out, err)


def test_server_data_is_redacted() -> None:
    from bbperf.sql import statement_text

    shown = statement_text("ALTER ROLE app PASSWORD 'hunter2-hunter2'", None, 30)
    assert "hunter2" not in shown and "***" in shown


# -- never touch what is not ours --------------------------------------------------------------------
@pytest.mark.parametrize("where", ["existing", "root", "file", "proc"])
def test_report_out_refuses_folders_it_did_not_make(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own notes")
    target = {
        "existing": str(mine),
        "root": "/",
        "file": str(mine / "notes.txt"),
        "proc": "/proc/x",
    }[where]
    code, _, err = cli(
        capsys, "report", "--notebooks-dir", str(ROOT / "tests/data/notebooks"), "--out", target
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert (mine / "notes.txt").read_text() == "my own notes"
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_alembic_output_is_not_overwritten_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "existing.py"
    existing.write_text("# mine\n")
    code, _, err = cli(capsys, "indexes", "alembic", "-o", str(existing))
    assert code == 2 and "--force" in err
    assert existing.read_text() == "# mine\n"
    assert cli(capsys, "indexes", "alembic", "-o", str(existing), "--force")[0] == 0
    assert "def upgrade" in existing.read_text()


def test_schema_drop_refuses_outside_dependents(
    fresh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--database-url", fresh_url]
    assert cli(capsys, *base, "schema", "create")[0] == 0
    conn = psycopg2.connect(fresh_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE VIEW public.my_view AS SELECT id FROM bbperf.users")
        cur.execute("CREATE TABLE public.my_table (user_id bigint REFERENCES bbperf.users (id))")
    code, _, err = cli(capsys, *base, "schema", "drop")
    assert code == 2 and "public.my_view" in err and "my_table" in err and "--cascade" in err
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.my_view') IS NOT NULL")
        assert cur.fetchone()[0]
    assert cli(capsys, *base, "schema", "drop", "--cascade")[0] == 0
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.my_table') IS NOT NULL")
        assert cur.fetchone()[0]  # the table stays; only its foreign key went
    conn.close()


# -- bounded input: one line, exit 2 -----------------------------------------------------------------
BAD_INPUTS: list[tuple[list[str], str]] = [
    (["explain", "SELECT 1; DELETE FROM payments"], "exactly one statement"),
    (["explain", "SELECT * FROM users WHERE id = :b"], "no value for :b"),
    (["explain", "DROP TABLE users"], "DROP is refused"),
    (["serve", "--port", "99999"], "not a TCP port"),
    (["serve", "--host", "999.1.1.1"], "neither an IP address"),
    (["generate", "--scale", "1e9"], "above the largest"),
    (["generate", "--scale", "nan"], "positive finite number"),
    (["generate", "--as-of", "2026-11-01'; drop table users"], "not an ISO date"),
    (["generate", "--as-of", "9999-12-31"], "outside the years"),
    (["generate", "--as-of", "0001-01-01"], "outside the years"),
    (["generate", "--profile", "nosuch"], "unknown profile"),
    (["metrics", "--user-id", "1", "--target", "1e30"], "above 1,000,000,000,000"),
    (["metrics", "--user-id", "1", "--as-of", "0001-01-01"], "outside the years"),
    (["--schema", "bbperf\n", "schema", "status"], "not a plain identifier"),
    (["report", "--param", "nosuch=1"], "declares parameter(s) nosuch"),
    (["report", "--cell-timeout", "0"], "cell timeout 0"),
    (["report", "--profile", "nosuch"], "unknown profile"),
    (["report", "--out", "/"], "refusing to write a report"),
    (["pool", "load", "--workload", "bogus"], "unknown workload 'bogus'"),
    (["pool", "load", "--workload", "DELETE FROM payments"], "modifies data"),
    (["compare", "/dev/zero", "/dev/zero"], "larger than"),
    (["compare", "/bin/sh", "/bin/sh"], "not UTF-8 text"),
    (["indexes", "alembic", "-o", "/proc/x/y.py"], "in a system folder"),
    (["--schema", "nosuch", "schema", "tidy"], "schema 'nosuch' does not exist"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD_INPUTS, ids=lambda v: str(v)[:40])
def test_bad_input_is_one_line_exit_2(
    args: list[str], fragment: str, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if args[0] == "report":
        args = [*args, "--notebooks-dir", str(ROOT / "notebooks"), "--no-progress"]
    code, _, err = cli(capsys, "--database-url", pg_url, *args)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("bbperf: error: "), err
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"figures": "x"}, "not a list of figures"),
        ({"figures": [{"name": "a", "value": "abc"}]}, "not a number"),
        ('{"figures": [{"name": "a", "value": NaN}]}', "NaN"),
        ("[" * 100_000, "nested more than"),
    ],
)
def test_compare_refuses_what_is_not_a_results_file(
    document: object, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    code, _, err = cli(capsys, "compare", str(path), str(path))
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("future_days = 999999999", "calendar.future_days: must be at most 3,660"),
        ("barbers_per_scale = 1e300", "shops.barbers_per_scale: must be at most"),
        ("nested = " + "[" * 5000 + "]" * 5000, "malformed TOML"),
        (b"\xff\xfe\x00binary", "not UTF-8"),
    ],
)
def test_profiles_are_bounded(toml: str | bytes, fragment: str, tmp_path: Path) -> None:
    from bbperf.errors import ProfileError
    from bbperf.generate import load_profile

    source = (ROOT / "data_generators" / "default.toml").read_text()
    path = tmp_path / "hostile.toml"
    if isinstance(toml, bytes):
        path.write_bytes(toml)
    elif toml.startswith("future_days"):
        path.write_text(source.replace("future_days = 30", toml))
    elif toml.startswith("barbers_per_scale"):
        path.write_text(source.replace("barbers_per_scale = 320", toml))
    else:
        path.write_text(toml)
    with pytest.raises(ProfileError, match=fragment):
        load_profile(path)


def test_indexes_apply_refuses_an_unknown_table(
    tiny_copy_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index_set = tmp_path / "mine.toml"
    index_set.write_text(
        'name = "mine"\n[[index]]\nname = "idx_nowhere"\ntable = "nowhere"\ncolumns = ["id"]\n'
    )
    code, _, err = cli(
        capsys, "--database-url", tiny_copy_url, "indexes", "apply", "--set", str(index_set)
    )
    assert code == 2 and "nowhere" in err


def test_port_in_use_is_one_line(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        code, _, err = cli(capsys, "--database-url", pg_url, "serve", "--port", port)
    assert code == 2 and "in use" in err


def test_errors_doc_matches_the_table() -> None:
    assert ERRORS_DOC.read_text() == render_errors_doc(), "run: python -m tests.test_safety"


def render_errors_doc() -> str:
    lines = [
        "# Bad input and what bbperf answers",
        "",
        "Every row is a case from `tests/test_safety.py` (`BAD_INPUTS`) or `tests/test_inputs.py`",
        "(`INPUT_CASES`), run by the test suite: the",
        "command, the fragment of the one-line error it prints on stderr, and the exit code (always",
        "2; nothing is changed). Regenerate with `python -m tests.test_safety`.",
        "",
        "| command | message contains | exit |",
        "|---|---|---|",
    ]
    from tests.test_inputs import INPUT_CASES

    for args, fragment in [*BAD_INPUTS, *INPUT_CASES]:
        command = " ".join(json.dumps(a) if (" " in a or not a or "\n" in a) else a for a in args)
        cell, message = command.replace("|", "\\|"), fragment.replace("|", "\\|")
        lines.append(f"| `bbperf {cell}` | {message} | 2 |")
    return "\n".join(lines) + "\n"


# -- the embedded server -----------------------------------------------------------------------------
def test_concurrent_first_starts_and_a_stale_pid_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "BBPERF_HOME": str(home)}
    env.pop("BBPERF_DATABASE_URL", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bbperf", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for args in (["db", "start"], ["db", "start"], ["schema", "status"])
    ]
    outcomes = [(p.wait(timeout=180), p.stderr.read() if p.stderr else "") for p in procs]
    assert [code for code, _ in outcomes][:2] == [0, 0], outcomes
    assert all("Traceback" not in err for _, err in outcomes), outcomes
    assert subprocess.run([sys.executable, "-m", "bbperf", "db", "stop"], env=env).returncode == 0
    # A postmaster.pid left by a crash, naming a live process that is not our server.
    pid_file = home / "pgdata" / "postmaster.pid"
    pid_file.write_text(
        f"{os.getpid()}\n{home / 'pgdata'}\n1796000000\n5432\n{home / 'pgdata'}\n\n  1  2\nready\n"
    )
    status = subprocess.run(
        [sys.executable, "-m", "bbperf", "db", "status"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert json.loads(status.stdout)["running"] is False
    started = subprocess.run(
        [sys.executable, "-m", "bbperf", "db", "start"], env=env, capture_output=True, text=True
    )
    assert started.returncode == 0, started.stderr
    with_pgport = subprocess.run(
        [sys.executable, "-m", "bbperf", "schema", "status"],
        env={**env, "PGPORT": "5433"}, capture_output=True, text=True,
    )  # fmt: skip
    assert "cannot reach" not in with_pgport.stderr and "Traceback" not in with_pgport.stderr
    subprocess.run([sys.executable, "-m", "bbperf", "db", "stop"], env=env, check=True)


# -- Ctrl-C during a concurrent index build ----------------------------------------------------------
def _as_from_a_terminal() -> None:
    """The child starts with SIGINT as a shell gives it: default action, not blocked. A test
    worker's own signal state (an ignored or blocked SIGINT) would otherwise be inherited across
    exec, and the command could never see the Ctrl-C this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_interrupted_concurrent_build_ends_quietly(tiny_copy_url: str, tmp_path: Path) -> None:
    index_set = tmp_path / "one.toml"
    index_set.write_text(
        'name = "one"\n[[index]]\nname = "idx_sigint"\ntable = "appointments"\n'
        'columns = ["price", "notes"]\n'
    )
    blocker = psycopg2.connect(
        tiny_copy_url
    )  # an open snapshot makes CREATE INDEX CONCURRENTLY wait
    with blocker.cursor() as cur:
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        cur.execute("SELECT count(*) FROM bbperf.appointments")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bbperf", "--database-url", tiny_copy_url, "indexes", "apply",
             "--set", str(index_set), "--concurrently"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=_as_from_a_terminal,
        )  # fmt: skip
        deadline = time.monotonic() + 180  # a loaded CI machine starts the CLI slowly
        waiting = False
        watcher = psycopg2.connect(
            tiny_copy_url
        )  # its own: activity is snapshotted per transaction
        watcher.autocommit = True
        while time.monotonic() < deadline and not waiting and proc.poll() is None:
            time.sleep(0.2)
            with watcher.cursor() as cur:
                # Only a build running now in this database: pg_stat_activity also keeps the last
                # query of idle sessions, and an earlier test's may have been a concurrent build.
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state = 'active' AND query ILIKE '%CREATE INDEX CONCURRENTLY%' "
                    "AND pid <> pg_backend_pid()"
                )
                waiting = cur.fetchone()[0] > 0
        watcher.close()
        assert waiting, (
            f"the build never started: {proc.poll()} {proc.stderr.read() if proc.poll() is not None and proc.stderr else ''}"
        )
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=180)
    finally:
        blocker.rollback()
        blocker.close()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines() == ["bbperf: interrupted"]


# -- loads under the CLI's Ctrl-C wait callback ----------------------------------------------------
def test_load_runs_under_the_interruptible_wait_callback(schema_engine: Engine) -> None:
    """`bbperf report` loads its dataset inside the CLI's wait callback; psycopg2 refuses COPY there,
    so the load must lift it for its stream (a fresh home's report failed on this)."""
    import psycopg2.extensions

    from bbperf.generate import generate
    from bbperf.interrupt import interruptible_queries

    with interruptible_queries():
        info = generate(schema_engine, "tiny", 0.05, 7, "2026-11-01", progress=False)
        installed = psycopg2.extensions.get_wait_callback()
    assert info.fingerprints["appointments"]["rows"] > 0
    assert installed is not None  # the load put the callback back
    with schema_engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM appointments")).scalar_one()
            == (info.fingerprints["appointments"]["rows"])
        )


# -- the health server under load --------------------------------------------------------------------
def test_health_server_answers_truthfully_under_32_clients(
    fresh_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    from bbperf.pool.http import make_server, serve_in_thread

    engine: Engine = make_test_engine(fresh_url)
    server = make_server(engine, port=0)
    serve_in_thread(server)
    codes: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(3):
            try:
                with urllib.request.urlopen(
                    server.url + "/api/v1/health/detailed", timeout=30
                ) as r:
                    status = r.status
            except urllib.error.HTTPError as err:
                status = err.code
            with lock:
                codes.append(status)

    try:
        threads = [threading.Thread(target=client) for _ in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert codes.count(200) == len(codes) == 96, codes
        post = urllib.request.Request(server.url + "/api/v1/health", data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(post, timeout=10)
        assert info.value.code == 405 and info.value.headers["Allow"] == "GET, HEAD"
        head = urllib.request.Request(server.url + "/api/v1/health", method="HEAD")
        with urllib.request.urlopen(head, timeout=10) as response:
            assert response.status == 200 and response.read() == b""
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        server.shutdown()
        server.server_close()
        engine.dispose()


if __name__ == "__main__":
    ERRORS_DOC.write_text(render_errors_doc())
    print(f"wrote {ERRORS_DOC}")


@pytest.mark.pg15
def test_advise_without_hypopg_builds_nothing_on_a_server_bbperf_does_not_own(
    pg15_cluster, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    from tests import pg15

    name = f"t_advise_{os.getpid()}"
    admin = psycopg2.connect(pg15_cluster.admin_url())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" OWNER {pg15.USER}')
    url = pg15_cluster.url.rsplit("/", 1)[0] + f"/{name}"
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        # the user's own table, where the analysis engine looks (the server's search_path)
        cur.execute(
            "CREATE TABLE public.t AS SELECT g AS a, g % 7 AS b FROM generate_series(1, 20000) g"
        )
        cur.execute("ANALYZE public.t")
    try:
        sql = "SELECT * FROM t WHERE a = 42"
        code, _, err = cli(capsys, "--database-url", url, "advise", sql)
        assert code == 2 and "HypoPG" in err and "--allow-build" in err
        code, out, err = cli(capsys, "--database-url", url, "advise", "--allow-build", sql)
        assert code == 0, err
        assert "(a)" in out
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 't'")
            assert cur.fetchone()[0] == 0  # costed in a rolled-back transaction, nothing left
    finally:
        conn.close()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
