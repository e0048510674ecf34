"""What ``bbperf`` imports before it runs a command: only the chosen command's module, and for
``bbperf db start`` on a running server neither SQLAlchemy nor pandas (issue #23 item 5)."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import bbperf.cli
from bbperf.cli import COMMANDS, Parser, chosen_command, command_modules
from bbperf.urls import mask_url

_HEAVY = ("sqlalchemy", "pandas")


def _imported_by(home: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``python -X importtime -m bbperf ARGS`` and return it with the modules it imported."""
    env = {**os.environ, "BBPERF_HOME": str(home)}
    env.pop("BBPERF_DATABASE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bbperf", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    modules = [
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    ]
    return proc, modules


@pytest.mark.parametrize("action", ["start", "status"])
def test_db_start_on_a_running_server_imports_no_sqlalchemy(bbperf_home: Path, action: str) -> None:
    proc, modules = _imported_by(bbperf_home, "db", action)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "bbperf.embedded" in modules  # the listing is real: the command's own modules show
    heavy = sorted({m for m in modules if m.split(".")[0] in _HEAVY})
    assert heavy == [], f"`bbperf db {action}` imported {heavy[:5]}"


def test_db_start_prints_the_url_as_mask_url_would(bbperf_home: Path) -> None:
    proc, _ = _imported_by(bbperf_home, "db", "start")
    url = proc.stdout.strip()
    assert url.startswith("postgresql://postgres@/bbperf?host=%2F")
    assert mask_url(url) == url  # nothing to mask, and the form the masked URL always had


def test_a_command_that_needs_sqlalchemy_still_gets_it(bbperf_home: Path) -> None:
    proc, modules = _imported_by(bbperf_home, "db", "url")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sqlalchemy" in modules


def test_the_dispatch_table_names_every_cli_module_and_what_it_registers() -> None:
    on_disk = sorted(
        m.name for m in pkgutil.iter_modules(bbperf.cli.__path__) if not m.name.startswith("_")
    )
    assert command_modules() == on_disk
    for module in on_disk:
        sub = Parser(prog="bbperf").add_subparsers(dest="command")
        importlib.import_module(f"bbperf.cli.{module}").register(sub)
        assert sorted(sub.choices) == sorted(c for c, m in COMMANDS.items() if m == module)


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["db", "start"], "db"),
        (["--schema", "s", "--debug", "replica", "status"], "replica"),
        (["--database-url=postgresql://x/y", "cache", "stop"], "cache"),
        (["--data", "postgresql://x/y", "pgbouncer"], "pgbouncer"),  # argparse's abbreviation
        (["--help"], None),
        ([], None),
    ],
)
def test_chosen_command(argv: list[str], command: str | None) -> None:
    assert chosen_command(argv) == command


def test_only_the_chosen_commands_parser_is_built() -> None:
    parser = bbperf.cli.build_parser("db")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == ["db"]
    everything = bbperf.cli.build_parser(None)
    sub = next(a for a in everything._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(sub.choices) == sorted(COMMANDS)
