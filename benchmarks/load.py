"""Load benchmark: bbperf's generator against the server's own COPY FROM a file and a naive Faker loop.

Usage: python benchmarks/load.py [--scale 1] [--profile default] [--seed 42] [--naive-rows 5000]
Replaces the dataset in bbperf's schema on the target (embedded server unless --database-url).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, text

from bbperf.generate import generate
from bbperf.generate.load import _foreign_keys, _payloads, normalize_as_of
from bbperf.generate.profile import load_profile
from bbperf.schema import TABLE_ORDER, create_schema
from bbperf.target import connect


def server_copy_seconds(
    engine: Engine, profile: str, scale: float, seed: int, as_of: date
) -> dict[str, float]:
    """Write the same rows as binary COPY files, then time ``COPY … FROM '<file>'`` per table (rolled back)."""
    folder = Path(tempfile.mkdtemp(prefix="bbperf-copy-"))
    os.chmod(folder, 0o755)  # the embedded server runs as OS user embedded_postgres
    files: list[tuple[str, str, Path]] = []
    try:
        for i, (table, columns, payload, n, _) in enumerate(
            _payloads(load_profile(profile), scale, seed, as_of)
        ):
            if n:
                path = folder / f"{i:05d}_{table}.bin"
                path.write_bytes(payload)
                os.chmod(path, 0o644)
                files.append((table, columns, path))
        seconds: dict[str, float] = {}
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            conn.execute(text("TRUNCATE " + ", ".join(f"bbperf.{t}" for t in TABLE_ORDER)))
            for tbl, name, _ in _foreign_keys(conn, "bbperf"):
                conn.execute(text(f'ALTER TABLE {tbl} DROP CONSTRAINT "{name}"'))
            for table, columns, path in files:
                started = time.perf_counter()
                conn.execute(
                    text(f"COPY bbperf.{table} ({columns}) FROM '{path}' (FORMAT binary, FREEZE)")
                )
                seconds[table] = seconds.get(table, 0.0) + time.perf_counter() - started
            conn.rollback()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", default="2026-11-01")
    parser.add_argument("--naive-rows", type=int, default=5000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    engine = connect(args.database_url, echo_pool=False)
    create_schema(engine)
    as_of = normalize_as_of(args.as_of)

    info = generate(engine, args.profile, args.scale, args.seed, as_of, progress=False)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = info.rows
    total = sum(rows.values())
    copy_s = sum(info.copy_seconds.values())
    print(f"profile {args.profile} scale {args.scale:g} seed {args.seed}: {total:,} rows")
    print(f"{'table':>20} {'rows':>11} {'bbperf rows/s':>14} {'server rows/s':>14}")
    server = server_copy_seconds(engine, args.profile, args.scale, args.seed, as_of)
    for table in TABLE_ORDER:
        ours = rows[table] / info.copy_seconds[table] if info.copy_seconds.get(table) else 0
        theirs = rows[table] / server[table] if server.get(table) else 0
        print(f"{table:>20} {rows[table]:>11,} {ours:>14,.0f} {theirs:>14,.0f}")
    ours_rate, server_rate = total / copy_s, total / sum(server.values())
    print(
        f"{'generate + COPY':>20} {total:>11,} {ours_rate:>14,.0f} {server_rate:>14,.0f}"
        f"   ratio {ours_rate / server_rate:.2f} of server COPY FROM file ({copy_s:.1f} s vs {sum(server.values()):.1f} s)"
    )
    print(
        f"end to end (+ foreign keys, sequences, fingerprints, provenance): {info.load_seconds:.1f} s, "
        f"{total / info.load_seconds:,.0f} rows/s"
    )
    naive = naive_rows_per_second(engine, args.naive_rows)
    print(
        f"naive Faker per row + executemany: {naive:,.0f} rows/s on {args.naive_rows:,} rows, "
        f"extrapolated {total / naive:,.0f} s for {total:,} rows; bbperf is {ours_rate / naive:.0f}x "
        f"(end to end {total / info.load_seconds / naive:.0f}x)"
    )
    print(f"peak RSS of the generating process: {peak_rss_mb:,.0f} MB")


if __name__ == "__main__":
    main()
