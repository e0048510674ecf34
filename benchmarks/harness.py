"""Does ``bbperf.explain.measure`` time the query, not the stack? Compare it with ``pgbench -f``.

The same indexed point query runs through ``measure`` and through pgbench (from the embedded server's
bin directory, one client, the same transaction count, per-transaction latency log), alternating
``--repeats`` times so drift hits both alike. Prints both medians and their ratio (target 0.9–1.15).

    python benchmarks/harness.py [--transactions 3000] [--repeats 3] [--rows 100000]

Works on bbperf's target (embedded server or BBPERF_DATABASE_URL); creates and drops one scratch
table ``harness_points`` in bbperf's schema.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import make_url, text

from bbperf.config import load_settings
from bbperf.explain.measure import measure
from bbperf.server import EmbeddedServer
from bbperf.target import connect, resolve_url

TABLE = "harness_points"


def pgbench_latencies_ms(url: str, sql: str, transactions: int, workdir: Path) -> list[float]:
    """Per-transaction latencies (ms) of ``sql`` run by pgbench with one client."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    conninfo = parsed.set(drivername="postgresql", password=None).render_as_string(
        hide_password=False
    )
    script = workdir / "query.sql"
    script.write_text(sql + ";\n")
    pgbench = EmbeddedServer(load_settings().home).bin_dir() / "pgbench"
    prefix = workdir / f"log{len(list(workdir.iterdir()))}"
    subprocess.run(
        [
            str(pgbench),
            "-n",
            "-c",
            "1",
            "-t",
            str(transactions),
            "-f",
            str(script),
            "-l",
            f"--log-prefix={prefix}",
            conninfo,
        ],
        check=True,
        capture_output=True,
        env=env,
        cwd=workdir,
    )
    latencies: list[float] = []
    for log in workdir.glob(f"{prefix.name}.*"):
        for line in log.read_text().splitlines():
            latencies.append(int(line.split()[2]) / 1000.0)  # field 3: latency in µs
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    settings = load_settings()
    engine = connect(echo_pool=False)
    url = resolve_url(settings)
    qualified = f'"{settings.schema}".{TABLE}'
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{settings.schema}"'))
        conn.execute(text(f"DROP TABLE IF EXISTS {qualified}"))
        conn.execute(text(f"CREATE TABLE {qualified} (id int PRIMARY KEY, v int NOT NULL)"))
        conn.execute(
            text(f"INSERT INTO {qualified} SELECT g, g * 7 FROM generate_series(1, :n) g"),
            {"n": args.rows},
        )
        conn.execute(text(f"ANALYZE {qualified}"))
    sql = f"SELECT v FROM {qualified} WHERE id = {args.rows // 2}"
    ours: list[float] = []
    theirs: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            pgbench_latencies_ms(url, sql, 200, workdir)  # warm-up, discarded
            for _ in range(args.repeats):
                ours += measure(engine, sql, rounds=args.transactions, warmup=200).samples_ms
                theirs += pgbench_latencies_ms(url, sql, args.transactions, workdir)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {qualified}"))
        engine.dispose()
    m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
    ratio = m_ours / m_theirs
    verdict = "within" if 0.9 <= ratio <= 1.15 else "OUTSIDE"
    print(f"query: {sql}")
    print(f"measure  median {m_ours:.4f} ms over {len(ours)} runs")
    print(f"pgbench  median {m_theirs:.4f} ms over {len(theirs)} transactions (1 client)")
    print(f"ratio measure/pgbench {ratio:.3f} ({verdict} target 0.9–1.15)")


if __name__ == "__main__":
    main()
