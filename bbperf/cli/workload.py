"""``bbperf workload capture | sample | replay | advise | show``: a target's own workload, from
pg_stat_statements to index advice, read-only outside bbperf's schema."""

from __future__ import annotations

import argparse

from bbperf.cli import MAX_BIGINT, MAX_WORKERS, bounded, print_json, seconds, settings_from
from bbperf.cli._analysis import SEARCH_PATH_RULE, analysis_engine
from bbperf.cli._engine import engine_from
from bbperf.errors import ConfigError
from bbperf.files import check_output
from bbperf.target import is_embedded, user_engine
from bbperf.urls import is_unix_socket, parse_url
from bbperf.workload.capture import capture
from bbperf.workload.file import MAX_STATEMENTS, MAX_VALUE_SETS, is_builtin, load_workload
from bbperf.workload.replay import replay, replayable
from bbperf.workload.sample import sample
from bbperf.workload.tomlwrite import save_workload
from bbperf.workload.verify import verify_workload
from bbperf.workload.workload_advice import advise_workload

SEED = bounded(int, 0, MAX_BIGINT)


def _statements(text: str) -> int:
    """--top: 1 to the most statements a workload holds (bbperf.workload.file.MAX_STATEMENTS)."""
    return bounded(int, 1, MAX_STATEMENTS)(text)


def _value_sets(text: str) -> int:
    """--sets: 1 to the most value sets per statement (bbperf.workload.file.MAX_VALUE_SETS)."""
    return bounded(int, 1, MAX_VALUE_SETS)(text)


def register(sub: argparse._SubParsersAction) -> None:
    wl = sub.add_parser(
        "workload",
        help="capture a workload from pg_stat_statements, sample values, replay it, advise indexes",
        description=SEARCH_PATH_RULE,
    )
    wsub = wl.add_subparsers(dest="workload_command", metavar="ACTION", required=True)

    cap = wsub.add_parser(
        "capture", help="write the top statements of pg_stat_statements as a workload file"
    )
    cap.add_argument(
        "--top",
        type=_statements,
        default=20,
        help="how many statements (default 20; at most 10,000)",
    )
    cap.add_argument(
        "--min-calls",
        type=bounded(int, 0, MAX_BIGINT),
        default=1,
        help="leave out statements called fewer times (default 1)",
    )
    cap.add_argument(
        "--order",
        choices=("total", "mean"),
        default="total",
        help="rank by total or by mean execution time (default total)",
    )
    cap.add_argument("-o", "--output", required=True, metavar="FILE", help="workload file to write")
    cap.add_argument("--force", action="store_true", help="overwrite FILE when it exists")
    cap.set_defaults(func=run_capture)

    sm = wsub.add_parser(
        "sample", help="fill placeholders with values drawn from the compared columns (read-only)"
    )
    sm.add_argument("workload", help="workload file, or 'catalogue' for the built-in one")
    sm.add_argument(
        "-o", "--output", metavar="FILE", help="write here (default: the workload file itself)"
    )
    sm.add_argument(
        "--sets",
        type=_value_sets,
        default=20,
        help="value sets per statement (default 20; at most 10,000)",
    )
    sm.add_argument("--seed", type=SEED, default=42, help="sampling seed (default 42)")
    sm.add_argument("--force", action="store_true", help="overwrite --output when it exists")
    sm.set_defaults(func=run_sample)

    rp = wsub.add_parser(
        "replay", help="run the workload weighted by calls share; p50/p95/p99 per statement"
    )
    rp.add_argument("workload", help="sampled workload file (see `bbperf workload sample`)")
    rp.add_argument(
        "--duration", type=seconds(), default=10.0, help="seconds (default 10; at most a day)"
    )
    rp.add_argument(
        "--concurrency",
        type=bounded(int, 1, MAX_WORKERS),
        default=2,
        help="connections (default 2)",
    )
    rp.add_argument("--seed", type=SEED, default=42, help="statement-choice seed (default 42)")
    rp.add_argument(
        "--allow-writes",
        action="store_true",
        help="also replay INSERT/UPDATE/DELETE (rolled back); only on the embedded server",
    )
    rp.add_argument("--format", choices=("text", "json"), default="text", help="output")
    rp.set_defaults(func=run_replay)

    ad = wsub.add_parser(
        "advise",
        help="indexes for the whole workload: hypothetical (HypoPG), scored as cost saved × calls",
    )
    ad.add_argument("workload", help="sampled workload file (see `bbperf workload sample`)")
    ad.add_argument(
        "--min-savings",
        type=float,
        default=10.0,
        metavar="PCT",
        help="a candidate must save this %% of a statement's planner cost (default 10)",
    )
    ad.add_argument(
        "--min-savings-multicolumn",
        type=float,
        default=20.0,
        metavar="PCT",
        help="the bar for multi-column candidates (default 20)",
    )
    ad.add_argument(
        "--max-indexes", type=bounded(int, 1, 1_000), default=5, help="keep at most N (default 5)"
    )
    ad.add_argument(
        "--allow-build",
        action="store_true",
        help="without HypoPG on a target bbperf does not own: build candidates CONCURRENTLY "
        "under a lock_timeout, then drop them",
    )
    ad.add_argument(
        "--verify",
        action="store_true",
        help="embedded server only: build the set, replay before/after, predicted vs measured",
    )
    ad.add_argument(
        "--duration", type=seconds(), default=5.0, help="--verify: seconds per replay (default 5)"
    )
    ad.add_argument("--format", choices=("text", "json"), default="text", help="output")
    ad.set_defaults(func=run_advise)

    show = wsub.add_parser("show", help="print a workload file's statements and placeholders")
    show.add_argument("workload", help="workload file, or 'catalogue' for the built-in one")
    show.add_argument("--format", choices=("text", "json"), default="text", help="output")
    show.set_defaults(func=run_show)


def run_capture(args: argparse.Namespace) -> int:
    out = check_output(args.output, force=args.force)  # refused before the target is read
    workload = capture(
        analysis_engine(args), top=args.top, min_calls=args.min_calls, order=args.order
    )
    save_workload(workload, out, force=args.force)
    unresolved = sum(len(s.unresolved) for s in workload.statements)
    print(
        f"wrote {out}: {len(workload.statements)} statements, {workload.total_calls} calls, "
        f"{unresolved} unresolved placeholder(s)"
    )
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.output is None and is_builtin(args.workload):
        raise ConfigError("the built-in catalogue is read-only: pass -o FILE to write its sample")
    out = Path(args.output or args.workload)
    in_place = args.output is None or out.resolve() == Path(args.workload).resolve()
    # Sampling rewrites the workload file itself by default: that file is the one asked for.
    check_output(out, force=in_place or args.force)
    workload = load_workload(args.workload)

    result = sample(user_engine(analysis_engine(args)), workload, sets=args.sets, seed=args.seed)
    save_workload(result.workload, out, force=True)
    print(f"wrote {out}: values for {len(result.filled)} statement(s) with placeholders")
    unresolved = result.unresolved_frame()
    if len(unresolved):
        print(f"not filled ({unresolved['statement'].nunique()} statement(s); replay skips them):")
        print(unresolved.to_string(index=False))
    return 0


def run_replay(args: argparse.Namespace) -> int:
    workload = load_workload(args.workload)
    # Refuse before connecting: --allow-writes on a target bbperf does not own is a usage error.
    replayable(workload, allow_writes=args.allow_writes, owned=_owned(args))

    result = replay(
        user_engine(analysis_engine(args), writes=args.allow_writes),
        workload,
        duration_s=args.duration,
        concurrency=args.concurrency,
        seed=args.seed,
        allow_writes=args.allow_writes,
        owned=_owned(args),
        progress=args.format == "text",
    )
    if args.format == "json":
        print_json(result.to_dict())
    else:
        print(result.text())
    return 0


def run_advise(args: argparse.Namespace) -> int:
    if args.max_indexes < 1:
        raise ConfigError(f"--max-indexes must be at least 1, got {args.max_indexes}")
    for flag, value in (
        ("--min-savings", args.min_savings),
        ("--min-savings-multicolumn", args.min_savings_multicolumn),
    ):
        if not 0 < value < 100:
            raise ConfigError(f"{flag} is a percentage between 0 and 100, got {value}")
    owned = _owned(args)
    if args.verify and not owned:
        raise ConfigError(
            "--verify builds indexes, so it runs only on the embedded server bbperf owns: "
            "drop --database-url, or drop --verify"
        )
    workload = load_workload(args.workload)
    engine = analysis_engine(args)
    advice = advise_workload(
        engine,
        workload,
        owned=owned,
        allow_build=args.allow_build,
        min_savings=args.min_savings / 100,
        min_savings_multicolumn=args.min_savings_multicolumn / 100,
        max_indexes=args.max_indexes,
    )
    verification = None
    if args.verify:
        verification = verify_workload(
            engine,
            workload,
            advice,
            owned=owned,
            duration_s=args.duration,
            progress=args.format == "text",
        )
    if args.format == "json":
        print_json(
            {
                "advice": advice.to_dict(),
                "verification": verification.to_dict() if verification else None,
            }
        )
    else:
        print(advice.text())
        if verification:
            print()
            print(verification.text())
    return 0


def run_show(args: argparse.Namespace) -> int:
    workload = load_workload(args.workload)
    frame = workload.to_frame()
    if args.format == "json":
        print_json(frame.to_dict(orient="records"))
    else:
        print(frame.to_string(index=False))
    return 0


def _owned(args: argparse.Namespace) -> bool:
    """bbperf owns the target when it is its embedded server: no --database-url, or a server that
    proves it is one bbperf initialised (``bbperf.ownership.owns``; never the URL's word)."""
    url = settings_from(args).database_url
    if url is None:
        return True
    if not is_unix_socket(parse_url(url)):
        return False  # the embedded server listens on no TCP address: refused before connecting
    return is_embedded(engine_from(args))
