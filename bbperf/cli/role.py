"""``bbperf role sql``: the statements a DBA runs for a least-privilege role bbperf can use."""

from __future__ import annotations

import argparse

from bbperf.cli import settings_from
from bbperf.config import validate_identifier
from bbperf.roles import role_sql


def register(sub: argparse._SubParsersAction) -> None:
    role = sub.add_parser("role", help="the least-privilege role bbperf runs your SQL as")
    rsub = role.add_subparsers(dest="role_command", required=True)
    show = rsub.add_parser(
        "sql", help="print the statements a DBA runs on their server for a role bbperf can use"
    )
    show.add_argument("--name", default="bbperf_analyst", help="the role (default bbperf_analyst)")
    show.set_defaults(func=run_sql)


def run_sql(args: argparse.Namespace) -> int:
    validate_identifier(args.name, "role")
    print(role_sql(settings_from(args).schema, args.name))
    return 0
