"""Jupyter: ``%load_ext bbperf`` registers ``%%explain`` and ``%%bench`` on the default engine.

``%%explain [--no-analyze] [--params JSON]`` renders the cell's SQL plan analysis (the Plan's HTML);
``%%bench [--rounds N] [--warmup N] [--server-time] [--cold] [--params JSON]`` runs ``measure`` and
returns the Timing. The engine is ``bbperf.target.connect()`` (``BBPERF_DATABASE_URL`` or the
embedded server), created on first use.
"""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

from sqlalchemy import Engine

from bbperf.errors import BbperfError

_engine: Engine | None = None


def default_engine() -> Engine:
    global _engine
    if _engine is None:
        from bbperf.target import connect

        _engine = connect(echo_pool=False)
    return _engine


def _parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"%%{name}", add_help=False, exit_on_error=False)
    parser.add_argument("--params", type=json.loads, default=None)
    return parser


def explain_magic(line: str, cell: str) -> Any:
    from bbperf.explain.run import explain

    parser = _parser("explain")
    parser.add_argument("--no-analyze", action="store_true")
    args = parser.parse_args(shlex.split(line))
    try:
        return explain(default_engine(), cell, args.params, analyze=not args.no_analyze)
    except BbperfError as exc:
        print(f"bbperf: error: {exc}")
        return None


def bench_magic(line: str, cell: str) -> Any:
    from bbperf.explain.measure import measure

    parser = _parser("bench")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--server-time", action="store_true")
    parser.add_argument("--cold", action="store_true")
    args = parser.parse_args(shlex.split(line))
    try:
        return measure(
            default_engine(),
            cell,
            args.params,
            rounds=args.rounds,
            warmup=args.warmup,
            server_time=args.server_time,
            cold=args.cold,
        )
    except BbperfError as exc:
        print(f"bbperf: error: {exc}")
        return None


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext bbperf`` (re-exported from ``bbperf``)."""
    ipython.register_magic_function(explain_magic, magic_kind="cell", magic_name="explain")
    ipython.register_magic_function(bench_magic, magic_kind="cell", magic_name="bench")
