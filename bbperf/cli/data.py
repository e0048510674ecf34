"""``bbperf generate`` and ``bbperf data status``: load a seeded dataset, show what is loaded."""

from __future__ import annotations

import argparse

from bbperf.cli import engine_from, print_json, print_table
from bbperf.generate.profile import available_profiles
from bbperf.schema import TABLE_ORDER


def register(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser(
        "generate",
        help="replace the dataset with a seeded, generated one",
        description="Generate and load a dataset in one transaction (profiles: "
        + ", ".join(available_profiles())
        + "; or a path to a .toml profile).",
    )
    gen.add_argument(
        "--profile", default="default", help="profile name or .toml path (default: default)"
    )
    gen.add_argument("--scale", default="1", help="scale factor; 1 is about a million appointments")
    gen.add_argument(
        "--seed", default="42", help="random seed, a non-negative integer (default 42)"
    )
    gen.add_argument(
        "--as-of", metavar="YYYY-MM-DD", help="anchor day of the data (default: today, UTC)"
    )
    gen.add_argument("--no-progress", action="store_true", help="no progress bars")
    gen.set_defaults(func=run_generate)

    data = sub.add_parser("data", help="inspect the loaded dataset")
    datasub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    st = datasub.add_parser(
        "status", help="profile, scale, seed, as-of, row counts and fingerprints"
    )
    st.add_argument("--format", choices=("text", "json"), default="text")
    st.set_defaults(func=status)


def run_generate(args: argparse.Namespace) -> int:
    from bbperf.generate.load import check_scale, check_seed, generate, normalize_as_of
    from bbperf.generate.profile import load_profile

    # Validate every input before connecting, so bad input never touches the database.
    load_profile(args.profile)
    check_scale(args.scale)
    check_seed(args.seed)
    normalize_as_of(args.as_of)
    info = generate(
        engine_from(args),
        args.profile,
        args.scale,
        args.seed,
        args.as_of,
        progress=not args.no_progress,
    )
    total = sum(info.rows.values())
    print(
        f"loaded profile {info.profile} scale {info.scale:g} seed {info.seed} as of {info.as_of}: "
        f"{total:,} rows in {info.load_seconds:.1f} s"
    )
    return 0


def status(args: argparse.Namespace) -> int:
    from bbperf.generate import dataset_info

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
    return 0
