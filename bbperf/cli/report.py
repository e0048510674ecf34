"""``bbperf report`` (notebooks → HTML + results.json) and ``bbperf compare`` (the regression gate)."""

from __future__ import annotations

import argparse
import sys

from bbperf.cli import print_json, print_table
from bbperf.dataset_defaults import DEFAULT_DATASET
from bbperf.errors import ConfigError
from bbperf.report import run_report
from bbperf.report.compare import compare_results, parse_threshold


def register(sub: argparse._SubParsersAction) -> None:
    rp = sub.add_parser(
        "report",
        help="run the notebooks with papermill into an HTML report with results.json",
        description="Run every notebook (or those named) on one dataset, render each to HTML, and "
        "write index.html (verdicts, claims, headline figures) and results.json. The dataset is "
        "--profile/--scale/--seed/--as-of, each defaulting to the loaded dataset's, then to profile "
        f"{DEFAULT_DATASET['profile']}, scale {DEFAULT_DATASET['scale']:g}, seed "
        f"{DEFAULT_DATASET['seed']}, as of {DEFAULT_DATASET['as_of']}; it is loaded once before "
        "the notebooks. "
        "Exits 1 when a notebook fails.",
    )
    rp.add_argument("--profile", help="dataset profile passed to notebooks that declare `profile`")
    rp.add_argument(
        "--scale", type=float, help="scale factor passed to notebooks that declare `scale`"
    )
    rp.add_argument("--seed", type=int, help="seed passed to notebooks that declare `seed`")
    rp.add_argument(
        "--as-of",
        metavar="YYYY-MM-DD",
        help="anchor day of the dataset, passed to notebooks that declare `as_of`",
    )
    rp.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other notebook parameter (repeatable; never a database URL)",
    )
    rp.add_argument(
        "--notebooks",
        nargs="+",
        metavar="NAME",
        help="notebooks to run, by name or prefix (default: all)",
    )
    rp.add_argument(
        "--notebooks-dir", default="notebooks", help="where the notebooks are (default: notebooks)"
    )
    rp.add_argument("--out", metavar="DIR", help="report directory (default: reports/<run-id>)")
    code = rp.add_mutually_exclusive_group()
    code.add_argument(
        "--hide-code",
        action="store_const",
        dest="code",
        const="hide",
        help="leave code cells out of the HTML pages",
    )
    code.add_argument(
        "--collapse-code",
        action="store_const",
        dest="code",
        const="collapse",
        help="fold code cells in the HTML pages",
    )
    rp.add_argument(
        "--cell-timeout",
        type=float,
        default=600,
        metavar="SECONDS",
        help="limit on one cell's run time (default 600)",
    )
    rp.add_argument("--no-progress", action="store_true", help="no progress bar")
    rp.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="summary on stdout: one line, or JSON (notebooks, status, seconds, verdicts)",
    )
    rp.set_defaults(func=report, code="show")

    cp = sub.add_parser(
        "compare",
        help="compare two reports' figures; exit 1 on a significant regression",
        description="Print each figure's change between two results.json files. A regression is a move "
        "in the worse direction beyond the threshold that is also significant (when both "
        "figures have samples). Exits 1 when there is one.",
    )
    cp.add_argument("old", help="the baseline report's results.json (or its directory)")
    cp.add_argument("new", help="the new report's results.json (or its directory)")
    cp.add_argument("--threshold", default="10%", help="relative change that counts (default 10%%)")
    cp.add_argument("--all", action="store_true", help="list unchanged figures too")
    cp.add_argument("--format", choices=("text", "json"), default="text")
    cp.set_defaults(func=compare)


def parse_param(text: str) -> tuple[str, object]:
    """``NAME=VALUE``; the value is read as JSON when it parses (numbers, lists, true/false, null),
    otherwise kept as text: ``-p concurrency=[1,4]``, ``-p rounds=5``, ``-p barber=busy``."""
    import json

    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"parameter {text!r} is not NAME=VALUE")
    try:
        return name.strip(), json.loads(raw)
    except RecursionError:
        raise ConfigError(f"parameter {name.strip()!r} is nested too deeply") from None
    except ValueError:
        return name.strip(), raw


def report(args: argparse.Namespace) -> int:
    result = run_report(
        notebooks_dir=args.notebooks_dir,
        notebooks=args.notebooks,
        out=args.out,
        profile=args.profile,
        scale=args.scale,
        seed=args.seed,
        as_of=args.as_of,
        parameters=dict(parse_param(p) for p in args.param),
        database_url=args.database_url,
        schema=args.schema,
        code=args.code,
        progress=not args.no_progress,
        cell_timeout_s=args.cell_timeout,
    )
    for run in result.failures:
        print(f"FAILED {run.name}: {run.error}", file=sys.stderr)
    for path in result.leaks:
        print(f"a password was found (and redacted) in {path}", file=sys.stderr)
    ok = len(result.runs) - len(result.failures)
    if args.format == "json":
        print_json(result.summary())
    else:
        print(f"{ok}/{len(result.runs)} notebooks ok; report: {result.index_html}")
    return 0 if result.ok else 1


def compare(args: argparse.Namespace) -> int:
    comparison = compare_results(args.old, args.new, parse_threshold(args.threshold))
    if args.format == "json":
        print_json(
            {
                "threshold": comparison.threshold,
                "warnings": comparison.warnings,
                "changes": comparison.rows(),
                "regressions": len(comparison.regressions),
            }
        )
    else:
        rows = [
            {
                "notebook": c.notebook,
                "figure": c.figure,
                "old": c.old,
                "new": c.new,
                "unit": c.unit,
                "change": "" if c.change_pct is None else f"{c.change_pct:+.1f}%",
                "verdict": c.verdict,
                "how": c.method,
            }
            for c in comparison.changes
            if args.all or c.verdict != "unchanged"
        ]
        print_table(rows)
        for warning in comparison.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        count = len(comparison.regressions)
        print(f"{count} regression{'s' if count != 1 else ''} beyond {comparison.threshold:.0%}")
    return 1 if comparison.regressions else 0
