"""The ``bbperf`` command: a thin argparse layer; each subcommand maps flags onto one library call."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from bbperf.errors import BbperfError, ConfigError
from bbperf.files import dumps_json
from bbperf.urls import mask_text


def command_modules() -> list[str]:
    """Every module in bbperf.cli defines ``register(subparsers)``; parsers set ``func(args) -> int``."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def _version() -> str:
    from bbperf import __version__

    return __version__


class Parser(argparse.ArgumentParser):
    """argparse with bbperf's contract for bad input: a ConfigError, which ``main`` prints as one
    line and answers with exit 2 (no usage block), as it does for every other bad input."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


Number = TypeVar("Number", int, float)
MAX_SECONDS = 86_400.0
"""The longest run any timed flag accepts: a day."""
MAX_WORKERS = 10_000
"""The most connections or workers any flag accepts."""
MAX_BIGINT = 2**63 - 1


def bounded(
    kind: Callable[[str], Number], low: float, high: float, *, above: bool = False
) -> Callable[[str], Number]:
    """An argparse ``type``: a finite ``kind`` (int or float) in ``[low, high]`` (``(low, high]``
    with ``above``). NaN, ±inf and values outside are refused in one line naming the bounds."""

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            noun = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not math.isfinite(value) or value < low or (above and value == low) or value > high:
            floor = f"above {_shown(low)}" if above else f"at least {_shown(low)}"
            raise argparse.ArgumentTypeError(f"{text!r} must be {floor} and at most {_shown(high)}")
        return value

    parse.__name__ = getattr(kind, "__name__", "number")
    return parse


def _shown(bound: float) -> str:
    return f"{int(bound):,}" if float(bound).is_integer() else f"{bound:g}"


def seconds(high: float = MAX_SECONDS) -> Callable[[str], float]:
    """A positive, finite number of seconds, at most ``high`` (default a day)."""
    return bounded(float, 0, high, above=True)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    try:
        args = parser.parse_args(argv)
    except ConfigError as exc:  # a usage error (Parser.error): one line, exit 2, like any bad input
        print(f"bbperf: error: {mask_text(str(exc))}", file=sys.stderr)
        return exc.exit_code
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


def print_json(data: Any) -> None:
    """Strict JSON on stdout: NaN and ±Infinity (a figure that does not exist) print as null."""
    print(dumps_json(data))


def print_table(rows: list[dict[str, Any]]) -> None:
    """Rows as an aligned text table (what pandas would print, without the index)."""
    if not rows:
        print("(no rows)")
        return
    import pandas as pd

    print(pd.DataFrame(rows).to_string(index=False))
