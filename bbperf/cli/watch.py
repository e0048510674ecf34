"""``bbperf watch``: alert on statements slower than a threshold, window by window, with their plans."""

from __future__ import annotations

import argparse
import json
import sys

from bbperf.cli import settings_from
from bbperf.cli._engine import engine_from
from bbperf.embedded import EmbeddedServer
from bbperf.watch import MAX_SECONDS, check_positive, watch


def register(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser(
        "watch",
        help="poll pg_stat_statements and alert on slow statements (exit 1 if a bounded run alerted)",
        description="Every --interval seconds, compare pg_stat_statements with the previous poll and "
        "print an alert for each statement whose mean, or p95 estimate, over that window is above "
        "--threshold-ms, with the auto_explain plan the embedded server logged for it.",
    )
    w.add_argument(
        "--threshold-ms", type=float, default=50.0, help="alert threshold in ms (default 50)"
    )
    w.add_argument(
        "--interval", type=float, default=5.0, help="window length in s (default 5, at most 7 days)"
    )
    w.add_argument(
        "--duration",
        type=float,
        help="stop after this many seconds, at most 7 days (default: until Ctrl-C)",
    )
    w.add_argument(
        "--format", choices=("text", "json"), default="text", help="json: one object per line"
    )
    w.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_positive("threshold-ms", args.threshold_ms, "milliseconds")
    check_positive("interval", args.interval, "seconds", at_most=MAX_SECONDS)
    check_positive("duration", args.duration, "seconds", at_most=MAX_SECONDS)
    settings = settings_from(args)
    engine = engine_from(args)
    # Only the embedded server's log is on this machine; an external server's plans stay there.
    log_path = None if settings.database_url else EmbeddedServer(settings.home).log_path
    if log_path is None:
        print("bbperf: plans unavailable: the server log of an external target is not readable here",
              file=sys.stderr)  # fmt: skip
    fired = 0
    for alert in watch(
        engine,
        threshold_ms=args.threshold_ms,
        interval_s=args.interval,
        duration_s=args.duration,
        log_path=log_path,
    ):
        fired += 1
        print(json.dumps(alert.to_dict(), default=str) if args.format == "json" else alert.line(),
              flush=True)  # fmt: skip
    return 1 if fired and args.duration is not None else 0
