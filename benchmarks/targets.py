"""Every target of issue 23 measured in one run on a fresh home: a table and a JSON file.

Usage: python benchmarks/targets.py [--home DIR] [--json PATH] [--skip-report] [--skip-sf10]
       [--quick] [--profile default] [--scale 1] [--big-scale 10] [--seed 42] [--as-of 2026-11-01]
       [--report-notebooks NAME ...] [--starts 7] [--calls 200]

``BBPERF_HOME`` is a fresh temporary directory (its server stopped and the directory removed at the
end) unless ``--home`` is given. The order matters and is fixed: ``bbperf generate`` at ``--scale``
(time, peak RSS), the server's own ``COPY FROM`` file of the same rows (benchmarks/load.py, rolled
back), the report on the loaded data (its row printed first), the metrics (server time per call from
pg_stat_statements, median barber; the index sets and rollup they need are removed afterwards),
``bbperf db start`` on the running server, the health server (benchmarks/health.py), and last
``bbperf generate`` at ``--big-scale``, which replaces the dataset. Every row carries the load
average when it was measured: on a shared machine compare within one run. ``--quick`` is a smoke run
(profile tiny, scales 1 and 2, one notebook in the report, fewer rounds): its figures say nothing
about the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from health import measure as health_load
from load import server_load_seconds
from sqlalchemy import Engine, text

from bbperf.asof import as_of_date
from bbperf.indexes import load_set
from bbperf.metrics.ladder_timing import vacuum
from bbperf.metrics.queries import resolve_as_of
from bbperf.metrics.rollup import apply_rollup, drop_rollup
from bbperf.metrics.servertime import server_time
from bbperf.metrics.variant_timing import pick_barbers, set_indexes
from bbperf.target import connect

# The console script next to this interpreter (what a user types), else the module.
_SCRIPT = Path(sys.executable).with_name("bbperf")
BBPERF = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "bbperf"]
HEALTH_ROUTES = {"/api/v1/health": 10.0, "/api/v1/health/detailed": 50.0}


@dataclass
class Row:
    """One target: what it measures, its goal, what was measured, and the machine's load then."""

    target: str
    goal: float
    unit: str
    measured: float | None
    higher_is_better: bool = False
    note: str = ""
    load_average: float | None = None

    @property
    def ratio(self) -> float | None:
        """measured ÷ goal: ≤ 1 meets a ceiling, ≥ 1 meets a floor."""
        return None if self.measured is None else self.measured / self.goal

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        if self.higher_is_better:
            return self.measured >= self.goal
        return self.measured <= self.goal

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def load_average() -> float:
    return os.getloadavg()[0]


def bbperf(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one bbperf command (this interpreter, this environment), its output captured."""
    done = subprocess.run([*BBPERF, *args], capture_output=True, text=True)
    if check and done.returncode:
        sys.exit(f"bbperf {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done


# Linux keeps a process's peak RSS across execve, and a child started by vfork or fork execs from
# its parent's memory: a command started straight from this script (large by the time of SF 10)
# would report this script's peak as its own. A fresh small interpreter starts it instead and
# reports the command's wall time, peak RSS (its own or a process it waited for) and exit status.
_LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - started
print(json.dumps([seconds, usage.ru_maxrss, os.waitstatus_to_exitcode(status)]))
"""


def timed_child(argv: Sequence[str]) -> tuple[float, float, int, str]:
    """Wall seconds, peak RSS in MB (the largest single process: the command or one it waited
    for), exit status and last stderr line of one command, from the kernel's own accounting of the
    finished command. stderr goes to a file, so a talkative command never blocks on a full pipe."""
    with tempfile.TemporaryFile("w+") as err:
        done = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, *argv], stdout=subprocess.PIPE, stderr=err, text=True
        )
        err.seek(0)
        lines = err.read().strip().splitlines()
    if done.returncode:  # the launcher itself failed (the command could not be started)
        return 0.0, 0.0, done.returncode, lines[-1] if lines else ""
    seconds, maxrss_kb, code = json.loads(done.stdout)
    return seconds, maxrss_kb / 1024, code, lines[-1] if lines else ""


def generate(args: argparse.Namespace, scale: float) -> tuple[float, float]:
    """``bbperf generate`` at ``scale`` end to end in its own process: seconds and peak RSS (MB)."""
    argv = [*BBPERF, "generate", "--profile", args.profile, "--scale", str(scale)]
    argv += ["--seed", str(args.seed), "--as-of", args.as_of, "--no-progress"]
    seconds, rss_mb, code, last = timed_child(argv)
    if code:
        sys.exit(f"bbperf generate --scale {scale:g} failed (exit {code}): {last}")
    return seconds, rss_mb


def _sets_present(engine: Engine) -> list[str]:
    """Which of bbperf's seed and metrics index sets are fully on the tables now."""
    with engine.connect() as conn:
        names = set(conn.execute(text("SELECT indexname FROM pg_indexes")).scalars())
    return [s for s in ("seed", "metrics") if {i.name for i in load_set(s).indexes} <= names]


def metrics_rows(args: argparse.Namespace) -> list[Row]:
    """denormalized and rollup for the median barber: the seed and metrics sets, VACUUM ANALYZE
    (index-only scans need the visibility map) and the rollup first; the database is left with the
    index sets it had and no rollup, so that the next load is not refused."""
    engine = connect(echo_pool=False)
    had = "+".join(_sets_present(engine)) or "none"
    try:
        when = resolve_as_of(engine)
        set_indexes(engine, "seed+metrics")
        vacuum(engine)
        apply_rollup(engine)
        median = next(p for p in pick_barbers(engine, when, 2) if p.label == "median")
        rows = []
        for variant, goal in (("denormalized", 0.5), ("rollup", 0.2)):
            ms = server_time(engine, variant, median.user_id, when, calls=args.calls).mean_ms
            rows.append(
                Row(
                    f"metrics {variant}, server ms per call (SF {args.scale:g})",
                    goal,
                    "ms",
                    ms,
                    note=f"median barber user {median.user_id}, "
                    f"{args.calls} calls, mean from pg_stat_statements",
                    load_average=load_average(),
                )  # fmt: skip
            )
        return rows
    finally:
        drop_rollup(engine)
        set_indexes(engine, had)
        engine.dispose()


def copy_rows(args: argparse.Namespace, generate_s: float) -> list[Row]:
    """The server's COPY FROM file of the same rows, bare and with the post-load steps, ÷ generate."""
    engine = connect(echo_pool=False)
    try:
        jobs = os.cpu_count() or 1  # what the generate it is compared with ran with
        steps = server_load_seconds(
            engine, args.profile, args.scale, args.seed, as_of_date(args.as_of), jobs
        )
    finally:
        engine.dispose()
    bare = steps["copy"]
    post = sum(steps.values()) - bare
    return [
        Row(
            f"server COPY FROM file ÷ generate, SF {args.scale:g}", 0.7, "x", bare / generate_s,
            higher_is_better=True, note=f"COPY {bare:.1f} s, generate {generate_s:.1f} s",
            load_average=load_average(),
        ),
        Row(
            f"COPY + foreign keys + ANALYZE ÷ generate, SF {args.scale:g}", 0.7, "x",
            (bare + post) / generate_s, higher_is_better=True,
            note=f"COPY {bare:.1f} s + keys, foreign keys and ANALYZE {post:.1f} s", load_average=load_average(),
        ),
    ]  # fmt: skip


def report_row(args: argparse.Namespace, home: Path) -> Row:
    """``bbperf report`` on the loaded data, whole process; failed notebooks named in the note."""
    out = home / f"report-{int(time.time())}"
    argv = [*BBPERF, "report", "--profile", args.profile, "--scale", str(args.scale)]
    argv += ["--seed", str(args.seed), "--as-of", args.as_of, "--out", str(out), "--no-progress"]
    argv += ["--notebooks-dir", str(NOTEBOOKS)]  # the repository's, from any working directory
    if args.report_notebooks:
        argv += ["--notebooks", *args.report_notebooks]
    seconds, _, code, last = timed_child(argv)
    log = (out / "report.log").read_text() if (out / "report.log").exists() else ""
    failed = [line.split("\t")[0] for line in log.splitlines() if "\tFAILED" in line]
    which = " ".join(args.report_notebooks) if args.report_notebooks else "all notebooks"
    note = f"{which}; exit {code}" + (f"; FAILED: {', '.join(failed)}" if failed else "")
    if code and not failed:
        note += f": {last}"
    return Row(
        f"bbperf report --profile {args.profile} --scale {args.scale:g}, data loaded",
        180.0, "s", seconds if code == 0 else None, note=note, load_average=load_average(),
    )  # fmt: skip


def db_start_row(starts: int) -> Row:
    """Median wall time of ``bbperf db start`` while the server runs (one warm-up run first)."""
    times = [timed_child([*BBPERF, "db", "start"])[0] for _ in range(starts + 1)][1:]
    spread = f"min {min(times):.2f} s, max {max(times):.2f} s"
    return Row(
        "bbperf db start, server running", 0.5, "s", statistics.median(times),
        note=f"median of {starts}, {spread}", load_average=load_average(),
    )  # fmt: skip


def health_rows(args: argparse.Namespace) -> list[Row]:
    """p95 of each health route under 32 loopback pollers (open loop), 0 answers not 200 required."""
    loads = health_load(32, rate=10.0, duration=args.health_seconds, requests=args.health_requests)
    rows = []
    for route, goal in HEALTH_ROUTES.items():
        poll = next(r for r in loads if r["route"] == route and r["mode"] == "poll")
        not_200 = int(poll["not_200"])  # type: ignore[call-overload]
        p95 = float(poll["p95_ms"])  # type: ignore[arg-type]
        rows.append(
            Row(
                f"{route} p95 at 32 loopback clients",
                goal,
                "ms",
                p95 if not_200 == 0 else None,
                note=f"{poll['requests']} GETs, {not_200} not 200, p50 {poll['p50_ms']:.1f} ms",
                load_average=load_average(),
            )  # fmt: skip
        )
    return rows


def sf10_rows(args: argparse.Namespace, sf1_rss: float) -> list[Row]:
    seconds, rss = generate(args, args.big_scale)
    return [
        Row(f"bbperf generate --scale {args.big_scale:g}", 60.0, "s", seconds,
            note=f"profile {args.profile}", load_average=load_average()),
        Row(f"peak client RSS SF {args.big_scale:g} ÷ SF {args.scale:g}", 1.1, "x", rss / sf1_rss,
            note=f"{rss:.0f} MB ÷ {sf1_rss:.0f} MB", load_average=load_average()),
    ]  # fmt: skip


def measure_all(args: argparse.Namespace, home: Path) -> list[Row]:
    """Every row, in the fixed order the module docstring gives."""
    bbperf("db", "start")
    bbperf("schema", "create")
    sf1_s, sf1_rss = generate(args, args.scale)
    # The COPY right after generate: both then write into the same tables (keys only, no index set
    # a notebook may leave, no autovacuum catching up on the report's writes).
    rows = copy_rows(args, sf1_s)
    if not args.skip_report:
        rows.insert(0, report_row(args, home))
    rows += metrics_rows(args)
    rows.append(db_start_row(args.starts))
    rows += health_rows(args)
    if not args.skip_sf10:
        rows += sf10_rows(args, sf1_rss)
    return rows


def print_table(rows: Sequence[Row]) -> None:
    print(f"{'target':<58} {'goal':>9} {'measured':>9} {'ratio':>6}  {'verdict':<7} load  note")
    for r in rows:
        goal = f"{'≥' if r.higher_is_better else '≤'} {r.goal:g} {r.unit}"
        got = "—" if r.measured is None else f"{r.measured:.3g} {r.unit}"
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}"
        verdict = {True: "met", False: "MISSED", None: "—"}[r.met]
        load = "—" if r.load_average is None else f"{r.load_average:.1f}"
        print(f"{r.target:<58} {goal:>9} {got:>9} {ratio:>6}  {verdict:<7} {load:>4}  {r.note}")


def in_home(home: str | None, work: Callable[[Path], list[Row]]) -> list[Row]:
    """Run ``work`` with ``BBPERF_HOME`` set to ``home``, or to a fresh directory whose server is
    stopped and which is removed afterwards."""
    fresh = home is None
    path = Path(home or tempfile.mkdtemp(prefix="bbperf-targets-"))
    os.environ["BBPERF_HOME"] = str(path)
    os.environ.pop("BBPERF_DATABASE_URL", None)
    try:
        return work(path)
    finally:
        if fresh:
            bbperf("db", "stop", check=False)
            shutil.rmtree(path, ignore_errors=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="BBPERF_HOME to use (default: a fresh temporary one)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--skip-report", action="store_true", help="leave out the report row")
    parser.add_argument("--skip-sf10", action="store_true", help="leave out the --big-scale rows")
    parser.add_argument("--quick", action="store_true", help="smoke run at a small scale")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--big-scale", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", default="2026-11-01")
    parser.add_argument("--report-notebooks", nargs="+", help="only these notebooks in the report")
    parser.add_argument("--starts", type=int, default=7, help="timed `bbperf db start` runs")
    parser.add_argument("--calls", type=int, default=200, help="metrics calls per variant")
    parser.add_argument("--health-seconds", type=float, default=5.0)
    parser.add_argument("--health-requests", type=int, default=50)
    args = parser.parse_args(argv)
    if args.quick:
        args.profile, args.scale, args.big_scale = "tiny", 1.0, 2.0
        args.report_notebooks = args.report_notebooks or ["04"]
        args.starts, args.calls, args.health_seconds, args.health_requests = 3, 20, 1.0, 5
    return args


def main() -> None:
    args = parse_args()
    started = load_average()
    rows = in_home(args.home, lambda home: measure_all(args, home))
    print(f"load average {started:.1f} at the start, {load_average():.1f} at the end")
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")


if __name__ == "__main__":
    main()
