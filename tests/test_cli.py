"""The CLI: one-line errors with exit 2 (never a traceback), secret-free output, documented commands."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bbperf.cli import build_parser, main
from tests import pg15


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "bbperf", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("bbperf: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("not-a-url", "malformed database URL"),
        ("mysql://u:pw@h/db", "unsupported database URL scheme"),
        ("postgresql://u:topsecret@127.0.0.1:1/db", "cannot reach the database server"),
    ],
)
def test_bad_url_is_one_line(url: str, fragment: str) -> None:
    proc = run_cli("--database-url", url, "schema", "status")
    assert_one_line_error(proc, fragment)
    assert "topsecret" not in proc.stderr + proc.stdout


def test_env_url_is_honoured(bbperf_home) -> None:  # type: ignore[no-untyped-def]
    proc = run_cli(
        "schema", "status", env={"BBPERF_DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/db"}
    )
    assert_one_line_error(proc, "127.0.0.1:1")


def test_wrong_password_is_authentication_error(pg15_cluster: pg15.Cluster) -> None:
    proc = run_cli(
        "--database-url", pg15_cluster.url_with_password("wrong-Pa55"), "schema", "status"
    )
    assert_one_line_error(proc, "authentication failed")
    assert "wrong-Pa55" not in proc.stderr


def test_right_password_works_and_is_masked(pg15_cluster: pg15.Cluster) -> None:
    proc = run_cli("--database-url", pg15_cluster.url, "db", "url")
    assert proc.returncode == 0, proc.stderr
    assert pg15.PASSWORD not in proc.stdout
    assert "***" in proc.stdout
    proc = run_cli("--database-url", pg15_cluster.url, "pool", "show", "-e", "production")
    assert proc.returncode == 0, proc.stderr
    assert pg15.PASSWORD not in proc.stdout
    assert '"sslmode": "require"' in proc.stdout  # TCP: the production sslmode applies


def test_unknown_environment_in_process(capsys: pytest.CaptureFixture[str], bbperf_home) -> None:  # type: ignore[no-untyped-def]
    assert main(["pool", "show", "--environment", "qa"]) == 2
    err = capsys.readouterr().err
    assert (
        err.strip()
        == "bbperf: error: unknown environment 'qa': choose one of development, staging, production"
    )


def test_debug_shows_traceback() -> None:
    proc = run_cli("--debug", "--database-url", "mysql://x@h/db", "db", "url")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


def test_schema_commands_on_fresh_database(
    fresh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database-url", fresh_url, "schema", "status"]) == 1
    assert "missing" in capsys.readouterr().out
    assert main(["--database-url", fresh_url, "schema", "create"]) == 0
    assert main(["--database-url", fresh_url, "schema", "status", "--format", "json"]) == 0
    assert '"owned": true' in capsys.readouterr().out
    assert main(["--database-url", fresh_url, "schema", "drop"]) == 0
    assert "dropped schema bbperf" in capsys.readouterr().out


def _commands() -> list[str]:
    """Every command path, e.g. 'db start', 'schema status', 'generate'."""
    parser = build_parser()
    paths: list[str] = []

    def walk(p, prefix: list[str]) -> None:  # type: ignore[no-untyped-def]
        subs = [a for a in p._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not subs:
            paths.append(" ".join(prefix))
            return
        for name, child in subs[0].choices.items():
            walk(child, [*prefix, name])

    walk(parser, [])
    return paths


def test_every_command_has_help_and_is_in_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    parser = build_parser()
    commands = _commands()
    assert len(commands) >= 8
    for path in commands:
        sub = parser
        for word in path.split():
            action = next(a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction")
            helps = {c.dest: c.help for c in action._choices_actions}
            assert helps.get(word), f"`bbperf {path}`: {word!r} has no help text"
            sub = action.choices[word]
        assert f"bbperf {path}" in readme, f"`bbperf {path}` is not documented in README.md"


def test_libpq_pgpassword_works_through_the_driver(pg15_cluster: pg15.Cluster) -> None:
    url = f"postgresql://{pg15.USER}@127.0.0.1:{pg15_cluster.port}/bbperf"
    proc = run_cli("--database-url", url, "schema", "status", env={"PGPASSWORD": pg15.PASSWORD})
    assert proc.returncode in (0, 1), proc.stderr  # 1: schema not created yet; connected either way
    assert "bbperf: error" not in proc.stderr
    denied = run_cli("--database-url", url, "schema", "status", env={"PGPASSWORD": "nope"})
    assert_one_line_error(denied, "authentication failed")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from bbperf import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"bbperf {__version__}"
