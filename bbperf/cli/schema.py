"""``bbperf schema create | drop | status | tidy``: bbperf's own schema on the target."""

from __future__ import annotations

import argparse

from bbperf.cli import print_json, print_table, settings_from
from bbperf.cli._engine import engine_from
from bbperf.leftovers import in_use, leftovers
from bbperf.leftovers import tidy as tidy_schema
from bbperf.schema import create_schema, drop_schema, schema_status


def register(sub: argparse._SubParsersAction) -> None:
    sc = sub.add_parser("schema", help="create, drop or inspect bbperf's schema")
    scsub = sc.add_subparsers(dest="schema_command", metavar="ACTION", required=True)
    scsub.add_parser("create", help="create the schema and its tables").set_defaults(func=create)
    dr = scsub.add_parser("drop", help="drop bbperf's schema (only if bbperf made it)")
    dr.add_argument(
        "--cascade",
        action="store_true",
        help="also drop objects outside the schema that depend on it (listed by a plain drop)",
    )
    dr.set_defaults(func=drop)
    st = scsub.add_parser("status", help="tables, estimated rows and sizes")
    st.add_argument("--format", choices=("text", "json"), default="text")
    st.set_defaults(func=status)
    td = scsub.add_parser(
        "tidy",
        help="remove what an interrupted experiment left (view, rollup, triggers, partitions)",
    )
    td.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    td.set_defaults(func=tidy)


def create(args: argparse.Namespace) -> int:
    st = create_schema(engine_from(args))
    print(f"schema {st.schema}: {len(st.tables)} tables")
    return 0


def drop(args: argparse.Namespace) -> int:
    schema = settings_from(args).schema
    print(
        f"dropped schema {schema}"
        if drop_schema(engine_from(args), cascade=args.cascade)
        else f"schema {schema} does not exist"
    )
    return 0


def status(args: argparse.Namespace) -> int:
    st = schema_status(engine_from(args))
    if args.format == "json":
        print_json(st.to_dict())
        return 0
    state = "missing" if not st.exists else ("bbperf" if st.owned else "NOT bbperf's")
    print(f"schema {st.schema}: {state}")
    if st.tables:
        print_table(st.tables)
    return 0 if st.exists else 1


def tidy(args: argparse.Namespace) -> int:
    engine = engine_from(args)
    found = leftovers(engine) if args.dry_run else tidy_schema(engine)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb}: {', '.join(found)}" if found else "nothing left by an experiment")
    for item in in_use(engine):
        print(f"left in place: {item}")
    return 0
