"""The ``bbperf`` command: a thin argparse layer; each subcommand maps flags onto one library call."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bbperf.errors import BbperfError
from bbperf.urls import mask_text


def command_modules() -> list[str]:
    """Every module in bbperf.cli defines ``register(subparsers)``; parsers set ``func(args) -> int``."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def _version() -> str:
    from bbperf import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bbperf",
        description="PostgreSQL performance workbench for the BookedBarber schema.",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL URL to work on instead of the embedded server (env: BBPERF_DATABASE_URL)",
    )
    parser.add_argument(
        "--schema",
        metavar="NAME",
        help="bbperf's schema on the target (env: BBPERF_SCHEMA; default bbperf)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"bbperf {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_modules():
        importlib.import_module(f"bbperf.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with interruptible_queries():
            return int(args.func(args) or 0)
    except BbperfError as exc:
        if args.debug:
            raise
        print(f"bbperf: error: {mask_text(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bbperf: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`bbperf … | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def interruptible_queries() -> contextlib.AbstractContextManager[None]:
    """Ctrl-C during a running statement cancels it on the server and ends the command (exit 130).

    libpq blocks in C while a statement runs, so Python cannot see the signal until the statement
    ends; with psycopg2's wait callback the wait happens in Python, the statement is cancelled and
    KeyboardInterrupt is raised once the server has stopped it.
    """
    from bbperf.target import wait_callback

    return wait_callback(_wait_interruptibly)


def _wait_interruptibly(conn: Any) -> None:
    import select

    import psycopg2
    import psycopg2.extensions as ext

    interrupted = False
    while True:
        try:
            state = conn.poll()
            if state == ext.POLL_OK:
                break
            if state == ext.POLL_READ:
                select.select([conn.fileno()], [], [])
            elif state == ext.POLL_WRITE:
                select.select([], [conn.fileno()], [])
            else:
                raise psycopg2.OperationalError(f"bad state from poll: {state}")
        except KeyboardInterrupt:
            conn.cancel()
            interrupted = True
        except psycopg2.Error:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
    if interrupted:
        raise KeyboardInterrupt


def settings_from(args: argparse.Namespace):
    """Settings from the global flags (and environment)."""
    from bbperf.config import load_settings

    return load_settings(database_url=args.database_url, schema=args.schema)


def engine_from(args: argparse.Namespace, environment: str = "development"):
    """A checked engine on the target named by the global flags, carrying ``--schema``."""
    from bbperf.target import engine_for

    # A CLI user waits for one line, not the pool's 10 s connect_timeout.
    return engine_for(settings_from(args), environment, echo_pool=False, connect_timeout_s=5)


def write_new_file(path: Path, text: str, *, force: bool = False) -> None:
    """Write ``text`` to ``path``; refuse to replace an existing file unless ``force``."""
    from bbperf.errors import ConfigError

    if path.exists() and not force:
        raise ConfigError(f"{path} exists: pass --force to overwrite it, or choose another name")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path} is not a regular file")
    try:
        path.write_text(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def print_table(rows: list[dict[str, Any]]) -> None:
    """Rows as an aligned text table (what pandas would print, without the index)."""
    if not rows:
        print("(no rows)")
        return
    import pandas as pd

    print(pd.DataFrame(rows).to_string(index=False))
