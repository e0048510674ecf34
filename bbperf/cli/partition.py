"""``bbperf partition apply | drop | status``: monthly (weekly, daily) range partitions, and back."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bbperf.cli import print_json, print_table
from bbperf.cli._engine import engine_from
from bbperf.partition import GRANULARITIES
from bbperf.partition import apply as apply_partition
from bbperf.partition import drop as drop_partition
from bbperf.partition import status as status_partition

if TYPE_CHECKING:
    from bbperf.partition.layout import Conversion


def register(sub: argparse._SubParsersAction) -> None:
    part = sub.add_parser(
        "partition",
        help="range-partition appointments and payments by time, or convert them back",
        description="appointments is partitioned on start_time, payments on created_at; "
        "each conversion runs in one transaction (see docs/partitioning.md).",
    )
    psub = part.add_subparsers(dest="partition_command", metavar="ACTION", required=True)
    ap = psub.add_parser(
        "apply", help="convert both tables to range partitions (plus a DEFAULT partition)"
    )
    ap.add_argument(
        "--by", choices=GRANULARITIES, default="month", help="partition width (default month)"
    )
    ap.set_defaults(func=apply)
    psub.add_parser(
        "drop", help="convert both tables back to plain tables, restoring the foreign key"
    ).set_defaults(func=drop)
    st = psub.add_parser("status", help="partitioned or not, by what, rows and bytes per partition")
    st.set_defaults(func=status)
    for p in (ap, psub.choices["drop"], st):
        p.add_argument("--format", choices=("text", "json"), default="text")


def _report(conversion: Conversion, args: argparse.Namespace) -> int:
    if args.format == "json":
        print_json(conversion.to_dict())
        return 0
    print_table([t.__dict__ for t in conversion.tables])
    for name in conversion.foreign_keys_dropped:
        print(f"foreign key {name} dropped: it cannot reference a partitioned table's id alone")
    for name in conversion.foreign_keys_restored:
        print(f"foreign key {name} restored and validated")
    print(f"{conversion.action} took {conversion.seconds:.1f} s")
    return 0


def apply(args: argparse.Namespace) -> int:
    return _report(apply_partition(engine_from(args), args.by), args)


def drop(args: argparse.Namespace) -> int:
    return _report(drop_partition(engine_from(args)), args)


def status(args: argparse.Namespace) -> int:
    st = status_partition(engine_from(args))
    if args.format == "json":
        print_json(st.to_dict())
        return 0
    if not st.partitioned:
        print(f"appointments and payments in {st.schema} are not partitioned")
        return 0
    print(
        f"partitioned by {st.by}; foreign keys waiting: {', '.join(st.foreign_keys_waiting) or 'none'}"
    )
    print_table(st.partitions.to_dict("records"))
    return 0
