"""``bbperf indexes validate | apply | drop | status | sql | alembic --set NAME|FILE.toml``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from bbperf.cli import print_json, print_table, settings_from
from bbperf.cli._engine import engine_from
from bbperf.errors import ConfigError
from bbperf.files import check_output, write_output
from bbperf.indexes import alembic as alembic_indexes
from bbperf.indexes import apply as apply_indexes
from bbperf.indexes import drop as drop_indexes
from bbperf.indexes import load_set
from bbperf.indexes import status as status_indexes
from bbperf.indexes import validate as validate_indexes
from bbperf.indexes.export import drop_sql
from bbperf.indexes.export import sql as sql_export

if TYPE_CHECKING:
    import pandas as pd

    from bbperf.indexes import IndexSet

Command = Callable[[argparse.Namespace], int]


def register(sub: argparse._SubParsersAction) -> None:
    ix = sub.add_parser("indexes", help="validate, apply, drop and export index sets")
    ixsub = ix.add_subparsers(dest="indexes_command", metavar="ACTION", required=True)

    def action(
        name: str, help_text: str, func: Command, *, table: bool = True
    ) -> argparse.ArgumentParser:
        p = ixsub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--set",
            dest="index_set",
            default="seed",
            metavar="NAME|FILE",
            help="built-in set (seed, none) or a TOML file (default: seed)",
        )
        if table:
            p.add_argument("--format", choices=("text", "json"), default="text")
        p.set_defaults(func=func)
        return p

    action("validate", "check the set against the live schema (exit 1 if any index is skipped)",
           validate)  # fmt: skip
    ap = action("apply", "build the set's valid indexes; repair INVALID ones", apply)
    ap.add_argument("--concurrently", action="store_true", help="CREATE INDEX CONCURRENTLY")
    dr = action("drop", "drop the set's indexes (only inside bbperf's schema)", drop)
    dr.add_argument("--concurrently", action="store_true", help="DROP INDEX CONCURRENTLY")
    st = action("status", "exists, valid, size, scans and build time of the set's indexes", status)
    st.add_argument("--all", action="store_true", help="every index in the schema, keys included")
    for name, func, help_text in (
        ("sql", sql, "print the set's DDL"),
        ("alembic", alembic, "write an Alembic migration (upgrade and downgrade) for the set"),
    ):
        p = action(name, help_text, func, table=False)
        p.add_argument("--concurrently", action="store_true", help="build CONCURRENTLY")
        p.add_argument(
            "--validate",
            action="store_true",
            help="check against the live schema and leave out indexes that would be skipped",
        )
    ixsub.choices["sql"].add_argument(
        "--drop", action="store_true", help="print DROP INDEX statements instead"
    )
    al = ixsub.choices["alembic"]
    al.add_argument(
        "--target-schema", metavar="NAME", help="schema in the application (default: none)"
    )
    al.add_argument("--revision", metavar="ID", help="revision id (default: hash of the set)")
    al.add_argument("--down-revision", metavar="ID", help="the revision this one follows")
    al.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    al.add_argument("--force", action="store_true", help="overwrite FILE when it exists")


def _set(args: argparse.Namespace) -> IndexSet:
    return load_set(args.index_set)


def _show(frame: pd.DataFrame, args: argparse.Namespace) -> None:
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    if args.format == "json":
        print_json(records)
    else:
        print_table(records)


def _skips(args: argparse.Namespace, index_set: IndexSet) -> dict[str, str]:
    if not args.validate:
        return {}

    report = validate_indexes(engine_from(args), index_set)
    skipped = report[report["action"] == "skip"]
    return {r.index: f"{r.status}: {r.reason}" for r in skipped.itertuples()}


def validate(args: argparse.Namespace) -> int:
    report = validate_indexes(engine_from(args), _set(args))
    _show(report, args)
    return 1 if (report["action"] == "skip").any() else 0


def apply(args: argparse.Namespace) -> int:
    engine, index_set = engine_from(args), _set(args)
    report = validate_indexes(engine, index_set)
    unknown = sorted(set(report.loc[report["status"] == "unknown table", "table"]))
    if unknown:
        raise ConfigError(
            f"index set {index_set.name!r} names table(s) {', '.join(unknown)} that do not exist "
            "in bbperf's schema: nothing was built (`bbperf indexes validate` shows every check)"
        )
    result = apply_indexes(
        engine,
        index_set,
        concurrently=args.concurrently,
    )
    _show(result, args)
    return 1 if (result["result"] == "failed").any() else 0


def drop(args: argparse.Namespace) -> int:
    result = drop_indexes(
        engine_from(args),
        _set(args),
        concurrently=args.concurrently,
    )
    _show(result, args)
    return 1 if result["result"].isin(["failed", "refused"]).any() else 0


def status(args: argparse.Namespace) -> int:
    index_set = None if args.all else _set(args)
    _show(status_indexes(engine_from(args), index_set), args)
    return 0


def sql(args: argparse.Namespace) -> int:
    index_set, schema = _set(args), settings_from(args).schema
    if args.drop:
        print(drop_sql(index_set, schema, concurrently=args.concurrently), end="")
    else:
        text = sql_export(
            index_set, schema, concurrently=args.concurrently, skip=_skips(args, index_set)
        )
        print(text, end="")
    return 0


def alembic(args: argparse.Namespace) -> int:
    index_set = _set(args)
    if args.output:
        check_output(args.output, force=args.force)  # refused before the live schema is read
    text = alembic_indexes(
        index_set,
        schema=args.target_schema,
        revision=args.revision,
        down_revision=args.down_revision,
        concurrently=args.concurrently,
        skip=_skips(args, index_set),
    )
    if args.output:
        write_output(args.output, text, force=args.force)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0
