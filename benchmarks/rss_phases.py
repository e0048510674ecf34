"""Where `generate`'s coordinator reaches its peak memory: VmRSS and VmHWM around each phase.

Usage: python benchmarks/rss_phases.py [--scale 1] [--profile default] [--seed 42]
       [--as-of 2026-11-01] [--jobs 2] [--every 6]

Runs one load in this process (it replaces the dataset in bbperf's schema on the target: the
embedded server under $BBPERF_HOME unless BBPERF_DATABASE_URL) and prints the process's memory at
the start, around each merge of a worker's client tally, every ``--every`` parts of the clients
table and at the end. It only wraps those two steps to print; the rows are the same.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from typing import Any

import bbperf.generate.stream as stream
from bbperf.errors import BbperfError
from bbperf.generate.load import generate
from bbperf.generate.tally import ClientTally
from bbperf.target import connect

_FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


def memory() -> str:
    """This process's resident memory now, its peak, and the anonymous and file-backed parts (MB)."""
    with open("/proc/self/status") as status:
        kb = {
            k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in status) if k in _FIELDS
        }
    return "  ".join(f"{name} {kb[name] / 1024:6.1f}" for name in _FIELDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", default="2026-11-01")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--every", type=int, default=6, help="print every this many clients parts")
    args = parser.parse_args()
    started = time.perf_counter()

    def show(what: str) -> None:
        print(f"{time.perf_counter() - started:7.1f} s  {what:20s} {memory()}", flush=True)

    merge = ClientTally.merge

    def merge_shown(self: ClientTally, other: ClientTally, *rest: Any, **named: Any) -> None:
        show("before a merge")
        merge(self, other, *rest, **named)
        show("after the merge")

    clients = stream.clients

    def clients_shown(*rest: Any, **named: Any) -> Iterator[Any]:
        for k, part in enumerate(clients(*rest, **named)):
            if k % args.every == 0:
                show(f"clients part {k}")
            yield part
        show("clients done")

    ClientTally.merge = merge_shown  # type: ignore[method-assign]
    stream.clients = clients_shown  # type: ignore[assignment]
    show("start")
    try:
        engine = connect(echo_pool=False)
        generate(
            engine, args.profile, args.scale, args.seed, args.as_of, jobs=args.jobs, progress=False
        )
    except BbperfError as exc:  # bad input: one line, as from the command line
        print(f"rss_phases: {exc}", file=sys.stderr)
        sys.exit(2)
    show("end")


if __name__ == "__main__":
    main()
