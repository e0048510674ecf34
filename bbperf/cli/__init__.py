"""The ``bbperf`` command: a thin argparse layer; each subcommand maps flags onto one library call."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from bbperf import __version__
from bbperf.config import load_settings
from bbperf.errors import BbperfError, ConfigError
from bbperf.files import dumps_json
from bbperf.interrupt import interruptible_queries
from bbperf.urls import mask_text

# Each command and the module of bbperf.cli that registers it. ``main`` imports only the chosen
# command's module, so that `bbperf db start` on a running server loads neither SQLAlchemy nor
# pandas; `bbperf --help` and a word that is no command import them all.
COMMANDS: dict[str, str] = {
    "cache": "cache",
    "generate": "data",
    "data": "data",
    "db": "db",
    "explain": "explain",
    "advise": "explain",
    "health": "health",
    "serve": "health",
    "indexes": "indexes",
    "metrics": "metrics",
    "partition": "partition",
    "pgbouncer": "pgbouncer",
    "pool": "pool",
    "replica": "replica",
    "report": "report",
    "compare": "report",
    "role": "role",
    "rollup": "rollup",
    "schema": "schema",
    "shard": "shard",
    "watch": "watch",
    "workload": "workload",
}
_VALUED_OPTIONS = ("--database-url", "--schema")  # the global options that take a value


def command_modules() -> list[str]:
    """Every module ``COMMANDS`` names defines ``register(subparsers)``; parsers set
    ``func(args) -> int``."""
    return sorted(set(COMMANDS.values()))


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command word of ``argv``: its first word that is neither a global option nor the value
    of one (argparse's abbreviations such as ``--data`` included), or None."""
    words = iter(argv)
    for word in words:
        if word == "--":
            return next(words, None)
        if word.startswith("-"):
            if (
                "=" not in word
                and len(word) > 2
                and any(o.startswith(word) for o in _VALUED_OPTIONS)
            ):
                next(words, None)
            continue
        return word
    return None


def _version() -> str:
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


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``bbperf`` parser with ``command``'s subparser alone when it is one of ``COMMANDS``,
    else with every command's."""
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
    modules = [COMMANDS[command]] if command in COMMANDS else command_modules()
    for name in modules:
        importlib.import_module(f"bbperf.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(chosen_command(argv))
    try:
        args = parser.parse_args(argv)
    except ConfigError as exc:  # a usage error (Parser.error): one line, exit 2, like any bad input
        print(f"bbperf: error: {mask_text(str(exc))}", file=sys.stderr)
        return exc.exit_code
    # A command that runs no statement a user waits on (``set_defaults(queries=False)``) skips the
    # wait callback, and with it bbperf.target's SQLAlchemy.
    guard = interruptible_queries() if getattr(args, "queries", True) else contextlib.nullcontext()
    try:
        with guard:
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


def settings_from(args: argparse.Namespace):
    """Settings from the global flags (and environment)."""
    return load_settings(database_url=args.database_url, schema=args.schema)


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
