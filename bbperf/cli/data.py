"""``bbperf generate``, ``bbperf data status`` and ``bbperf data verify``: load a seeded dataset,
show what is loaded, check its fingerprints on the server."""

from __future__ import annotations

import argparse
import os
from typing import Any

from sqlalchemy.exc import DBAPIError

from bbperf.cli import print_json, print_table, settings_from
from bbperf.cli._engine import engine_from
from bbperf.dataset_defaults import DEFAULT_DATASET
from bbperf.generate import dataset_info
from bbperf.generate import verify as verify_fingerprints
from bbperf.generate.dataset import (
    check_jobs,
    dataset_spec,
)
from bbperf.generate.load import generate_spec
from bbperf.generate.profile import available_profiles
from bbperf.runlock import exclusive_run
from bbperf.schema import TABLE_ORDER
from bbperf.shard.fdw import shard_error

PHASE_ORDER = (
    "prepare",
    "waiting",
    "copy",
    "indexes",
    "constraints",
    "sequences",
    "provenance",
    "commit",
    "stream",
    "keys",
    "swap",
    "validate+analyze",
)


def register(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser(
        "generate",
        help="replace the dataset with a seeded, generated one",
        description="Generate and load a dataset in one transaction (profiles: "
        + ", ".join(available_profiles())
        + "; or a path to a .toml profile).",
    )
    gen.add_argument(
        "--profile",
        default=DEFAULT_DATASET["profile"],
        help=f"profile name or .toml path (default: {DEFAULT_DATASET['profile']})",
    )
    # A load made by hand is SF 1 anchored today unless told; the report's default dataset
    # (DEFAULT_DATASET) is a smaller one on a fixed day, so that reports compare.
    gen.add_argument("--scale", default="1", help="scale factor; 1 is about a million appointments")
    gen.add_argument(
        "--seed",
        default=str(DEFAULT_DATASET["seed"]),
        help=f"random seed, a non-negative integer (default {DEFAULT_DATASET['seed']})",
    )
    gen.add_argument(
        "--as-of", metavar="YYYY-MM-DD", help="anchor day of the data (default: today, UTC)"
    )
    gen.add_argument(
        "--jobs",
        default=str(os.cpu_count() or 1),
        help="worker processes that generate, encode and fingerprint ahead of the COPY "
        f"(default: the machine's cores, {os.cpu_count() or 1}); same data for any value",
    )
    gen.add_argument(
        "--resumable",
        action="store_true",
        help="load into staging tables a committed chunk at a time, each worker on its own "
        "connection, then swap them in; after a dropped connection the same command resumes "
        "per chunk (refused when the tables carry views, triggers, grants, ... bbperf did not create)",
    )
    gen.add_argument("--timings", action="store_true", help="print the time of every load phase")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=run_generate)

    data = sub.add_parser("data", help="inspect the loaded dataset")
    datasub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    st = datasub.add_parser(
        "status", help="profile, scale, seed, as-of, row counts, fingerprints and load timings"
    )
    st.add_argument("--format", choices=("text", "json"), default="text")
    st.set_defaults(func=status)
    ver = datasub.add_parser(
        "verify",
        help="recompute the fingerprints on the server and compare them with the stored ones",
    )
    ver.add_argument("--format", choices=("text", "json"), default="text")
    ver.set_defaults(func=verify)


def run_generate(args: argparse.Namespace) -> int:
    # Importing bbperf.leftovers registers its load guard: a load refuses to run under experiments.
    # Validate every input before connecting, so bad input never touches the database.
    spec = dataset_spec(args.profile, args.scale, args.seed, args.as_of)
    jobs = check_jobs(args.jobs)
    home = settings_from(args).home
    engine = engine_from(args)
    with exclusive_run(engine, "load"):  # never under a report, or another load, on this schema
        info = generate_spec(
            engine,
            spec,
            jobs=jobs,
            progress=not args.no_progress,
            scratch_dir=home if home.is_dir() else None,
            resumable=args.resumable,
        )
    total = sum(info.rows.values())
    print(
        f"loaded profile {info.profile} scale {info.scale:g} seed {info.seed} as of {info.as_of}: "
        f"{total:,} rows in {info.load_seconds:.1f} s ({total / info.load_seconds:,.0f} rows/s, "
        f"{info.jobs} job{'s' if info.jobs > 1 else ''})"
    )
    if info.resumable and info.chunks.get("skipped"):
        print(
            f"resumed: {info.chunks['skipped']:,} of {info.chunks['total']:,} chunks were "
            "committed by an earlier run and not sent again"
        )
    if args.timings:
        print_table(timing_rows(info.to_dict()))
    return 0


def timing_rows(info: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for the timings table: wall-clock phases, then the generator's own time."""
    total = info.get("load_seconds") or 0.0
    rows = [
        {
            "phase": name,
            "seconds": round(s, 2),
            "share": f"{100 * s / total:.0f} %" if total else "",
        }
        for name, s in info.get("phases", {}).items()
    ]
    rows.append({"phase": "total", "seconds": round(total, 2), "share": "100 %"})
    for name, s in info.get("client_seconds", {}).items():
        rows.append({"phase": f"(client {name})", "seconds": round(s, 2), "share": "overlapped"})
    return rows


def status(args: argparse.Namespace) -> int:
    info = dataset_info(engine_from(args))
    if args.format == "json":
        print_json(info)
        return 0 if info else 1
    if info is None:
        print("no dataset loaded: run `bbperf generate --profile tiny` (or default)")
        return 1
    print(
        f"profile {info['profile']}, scale {info['scale']:g}, seed {info['seed']}, as of {info['as_of']}; "
        f"loaded {info['loaded_at']} in {info['load_seconds']:.1f} s by bbperf {info['bbperf_version']} "
        f"on PostgreSQL {info['server_version']}"
    )
    fps = info["fingerprints"]
    print_table([{"table": t, **fps[t]} for t in TABLE_ORDER if t in fps])
    if info.get("phases"):
        print_table(timing_rows(info))
    return 0


def verify(args: argparse.Namespace) -> int:
    try:
        rows = verify_fingerprints(engine_from(args))
    except DBAPIError as exc:  # a sharded table whose shard is down: one line naming it
        reported = shard_error(exc)
        if reported is None:
            raise
        raise reported from None
    if args.format == "json":
        print_json(rows)
    else:
        print_table(
            [
                {
                    "table": r["table"],
                    "rows": r["server_rows"],
                    "checksum": r["server_checksum"],
                    "matches stored": "yes" if r["ok"] else f"NO (stored {r['stored_checksum']})",
                }
                for r in rows
            ]
        )
    return 0 if all(r["ok"] for r in rows) else 1
