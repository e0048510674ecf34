"""Does ``bbperf.explain.measure`` time the query, not the stack? Compare it with ``pgbench -f``.

The same statement runs through ``measure`` and through pgbench (from the embedded server's bin
directory, one client, the same transaction count, per-transaction latency log), alternating
``--repeats`` times so drift hits both alike. The parameters reach pgbench as variables: integers
by ``\\set`` in the script, other values (timestamps) by ``-D`` since ``\\set`` holds only numbers;
pgbench's simple protocol then sends the same statement text that psycopg2 sends (checked).

Queries (``--query``):

* ``barber_schedule`` (default) or any other ``bbperf.workload`` query: parameters drawn from a
  generated dataset (``--scale``, default 0.2; busiest barber), with the seed indexes that serve the
  query applied (for the schedule: idx_appointments_barber_status_start).
* ``point``: a primary-key lookup on a scratch table ``harness_points`` (created and dropped).

``measure`` also runs on the rendered statement text (no parameters: psycopg2 sends the same
bytes without its parameter path), and with ``wire_only=True`` (parameters rendered once, only
``execute`` timed, rows converted outside the timed span: the query, not the Python stack). Prints the medians, the ratios to pgbench (target 0.9–1.15) and
where the gap goes: psycopg2's parameter path, turning the received rows into Python objects
(which pgbench never does), the fixed round trip (``SELECT 1`` timed both ways). Every side runs on
a new backend each repeat, in turn, so drift and CPU placement hit all alike.

    python benchmarks/harness.py [--query barber_schedule|<workload query>|point] [--scale 0.2]
        [--transactions 1000] [--repeats 10] [--rows 100000]

Works on bbperf's target (embedded server or BBPERF_DATABASE_URL).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, make_url, text

from bbperf.config import Settings, load_settings
from bbperf.embedded import EmbeddedServer, resolve_url
from bbperf.explain import explain, measure
from bbperf.generate import ensure_dataset
from bbperf.indexes import SEED, IndexSet, apply
from bbperf.sql import placeholders
from bbperf.target import connect
from bbperf.workload import QUERY_NAMES, catalogue

TABLE = "harness_points"
SIDES = (
    "measure",
    "measure on rendered text",
    "measure wire_only",
    "pgbench",
    "SELECT 1 measure",
    "SELECT 1 pgbench",
)
_VARIABLE = re.compile(r"(?<!:):(\w+)")


class Pgbench:
    """pgbench on bbperf's target with the measuring session's search_path and statement_timeout."""

    def __init__(self, settings: Settings, url: str, engine: Engine, workdir: Path) -> None:
        parsed = make_url(url)
        self.program = EmbeddedServer(settings.home).bin_dir() / "pgbench"
        self.workdir = workdir
        self.env = dict(os.environ)
        if parsed.password:
            self.env["PGPASSWORD"] = str(parsed.password)
        with engine.connect() as conn:
            search_path = conn.execute(text("SHOW search_path")).scalar()
            timeout = conn.execute(text("SHOW statement_timeout")).scalar()
        self.env["PGOPTIONS"] = (
            f"-c search_path={search_path.replace(' ', '')} -c statement_timeout={timeout}"
        )
        query = dict(parsed.query)
        host = query.pop("host", None) or parsed.host  # the embedded server: its socket directory
        self.connection: list[str] = []
        for flag, value in (("-h", host), ("-p", parsed.port), ("-U", parsed.username)):
            if value:
                self.connection += [flag, str(value)]
        # Whatever else the URL says (sslmode, ...) goes along as a conninfo in the dbname slot.
        conninfo = [f"dbname={parsed.database}"] + [f"{k}={v}" for k, v in query.items()]
        self.connection.append(" ".join(conninfo))
        self.runs = 0

    def latencies_ms(self, script: str, defines: dict[str, str], transactions: int) -> list[float]:
        """Per-transaction latencies (ms) of ``script`` run with one client."""
        self.runs += 1
        path = self.workdir / f"script{self.runs}.sql"
        path.write_text(script)
        prefix = self.workdir / f"log{self.runs}"
        command = [str(self.program), "-n", "-c", "1", "-t", str(transactions), "-f", str(path)]
        for name, value in defines.items():
            command += ["-D", f"{name}={value}"]
        command += ["-l", f"--log-prefix={prefix}", *self.connection]
        done = subprocess.run(
            command, capture_output=True, text=True, env=self.env, cwd=self.workdir
        )
        if done.returncode != 0:
            raise SystemExit(f"pgbench failed: {done.stderr.strip()}")
        latencies = []
        for log in self.workdir.glob(f"{prefix.name}.*"):
            for line in log.read_text().splitlines():
                latencies.append(int(line.split()[2]) / 1000.0)  # field 3: latency in µs
        return latencies


def pgbench_script(
    engine: Engine, sql: str, params: dict[str, Any]
) -> tuple[str, dict[str, str], str]:
    """The ``-f`` script (``\\set`` for integers), ``-D`` definitions for the other parameters, and
    the statement text both send. Fails when pgbench would send other text than psycopg2."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        literals = {k: cursor.mogrify("%s", (v,)).decode() for k, v in params.items()}
        # The text with psycopg2's literal for each placeholder PostgreSQL's scanner finds.
        pieces, last = [], 0
        for start, end, name in placeholders(sql):
            pieces += [sql[last:start], literals[name]]
            last = end
        sent_by_psycopg2 = "".join([*pieces, sql[last:]])
    finally:
        raw.close()
    sent_by_pgbench = _VARIABLE.sub(lambda m: literals[m.group(1)], sql)
    if sent_by_pgbench != sent_by_psycopg2:
        raise SystemExit(f"statement texts differ:\n{sent_by_pgbench}\n{sent_by_psycopg2}")
    integers = {k: v for k, v in params.items() if isinstance(v, int) and not isinstance(v, bool)}
    script = "".join(f"\\set {k} {v}\n" for k, v in integers.items()) + sql + ";\n"
    return script, {k: literals[k] for k in params if k not in integers}, sent_by_psycopg2


def fetch_ms(engine: Engine, sql: str, rounds: int) -> float:
    """Median (ms) of psycopg2's ``fetchall`` alone: turning the received rows into Python objects,
    work ``measure`` times and pgbench never does."""
    raw = engine.raw_connection()
    raw.autocommit = True
    fetches = []
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        cursor = raw.cursor()
        for i in range(rounds + 200):
            cursor.execute(sql)
            start = time.perf_counter_ns()
            cursor.fetchall()
            if i >= 200:
                fetches.append((time.perf_counter_ns() - start) / 1e6)
    finally:
        if was_enabled:
            gc.enable()
        raw.autocommit = False
        raw.close()
    return statistics.median(fetches)


def workload_query(
    engine: Engine, settings: Settings, args: argparse.Namespace
) -> tuple[str, dict[str, Any], Callable[[], None]]:
    """Workload query ``args.query`` on the dataset for ``args``, with the seed indexes that
    serve it applied (for barber_schedule: idx_appointments_barber_status_start)."""
    info = ensure_dataset(engine, args.profile, args.scale, args.seed, args.as_of)
    serving = tuple(i for i in SEED.indexes if args.query in i.serves)
    built = apply(engine, IndexSet("harness", serving, f"the seed indexes serving {args.query}"),
                  schema=settings.schema)  # fmt: skip
    query = catalogue(engine, names=[args.query], barber=args.barber, as_of=args.as_of)[0]
    indexes = ", ".join(f"{r.index} ({r.result})" for r in built.itertuples()) or "none"
    print(f"dataset: profile {args.profile}, scale {args.scale:g}, seed {args.seed}; "
          f"{info.rows['appointments']:,} appointments; seed indexes serving {args.query}: "
          f"{indexes}")  # fmt: skip
    return query.sql, query.params, lambda: None


def point_query(
    engine: Engine, settings: Settings, args: argparse.Namespace
) -> tuple[str, dict[str, Any], Callable[[], None]]:
    """A primary-key lookup on a scratch table of ``args.rows`` rows (dropped by the callback)."""
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

    def cleanup() -> None:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {qualified}"))

    return f"SELECT v FROM {qualified} WHERE id = :id", {"id": args.rows // 2}, cleanup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--query",
        choices=(*QUERY_NAMES, "point"),
        default="barber_schedule",
        help="a bbperf.workload query on generated data, or point (scratch table)",
    )
    parser.add_argument("--transactions", type=int, default=1000, help="per repeat")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--scale", type=float, default=0.2, help="workload: dataset scale")
    parser.add_argument("--profile", default="default", help="workload: dataset profile")
    parser.add_argument("--seed", type=int, default=42, help="workload: dataset seed")
    parser.add_argument("--as-of", default="2026-11-01", help="workload: dataset as_of")
    parser.add_argument(
        "--barber",
        choices=("busy", "quiet"),
        default="busy",
        help="workload: busiest or quietest barber",
    )
    parser.add_argument("--rows", type=int, default=100_000, help="point: scratch table rows")
    args = parser.parse_args()

    settings = load_settings()
    engine = connect(echo_pool=False)
    build = point_query if args.query == "point" else workload_query
    sql, params, cleanup = build(engine, settings, args)
    runs: dict[str, list[list[float]]] = {side: [] for side in SIDES}
    try:
        script, defines, rendered = pgbench_script(engine, sql, params)
        plan = explain(engine, sql, params, buffers=False)
        rows = int(plan.root.actual_rows or 0)
        scans = "; ".join(n.label for n in plan.nodes() if n.relation)
        print(f"query ({rows} rows, server {plan.execution_ms:.3f} ms, {scans}):\n  {sql}\n"
              f"  params {params}")  # fmt: skip
        print("pgbench script:\n  " + script.strip().replace("\n", "\n  ")
              + "".join(f"\n  -D {k}={v}" for k, v in defines.items()))  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            pgbench = Pgbench(settings, resolve_url(settings), engine, Path(tmp))
            n = args.transactions

            def ours(statement: str, values: dict[str, Any], wire: bool = False) -> list[float]:
                timing = measure(engine, statement, values, rounds=n, warmup=200, wire_only=wire)
                return list(timing.samples_ms)

            timed: dict[str, Callable[[], list[float]]] = {
                "measure": lambda: ours(sql, params),
                "measure on rendered text": lambda: ours(rendered, {}),
                "measure wire_only": lambda: ours(sql, params, wire=True),
                "pgbench": lambda: pgbench.latencies_ms(script, defines, n),
                "SELECT 1 measure": lambda: ours("SELECT 1", {}),
                "SELECT 1 pgbench": lambda: pgbench.latencies_ms("SELECT 1;\n", {}, n),
            }
            pgbench.latencies_ms(script, defines, 200)  # warm-up, discarded
            for _ in range(args.repeats):
                # A new backend per repeat on every side: which core a backend lands on moves a
                # round trip between ~16 and ~50 µs on this 2-core machine.
                for side, run in timed.items():
                    engine.dispose()
                    runs[side].append(run())
            conversion_ms = fetch_ms(engine, rendered, args.transactions)
    finally:
        cleanup()
        engine.dispose()
    report(runs, conversion_ms, rows)


def report(runs: dict[str, list[list[float]]], conversion_ms: float, rows: int) -> None:
    """Medians per side, measure/pgbench ratios against the target, and where the gap goes."""
    median = {side: statistics.median(v for run in runs[side] for v in run) for side in SIDES}
    for side in SIDES:
        per_repeat = " ".join(f"{statistics.median(run):.3f}" for run in runs[side])
        print(f"{side:>24} median {median[side]:.4f} ms  (per repeat: {per_repeat})")
    pgbench = median["pgbench"]
    for side in ("measure", "measure on rendered text", "measure wire_only"):
        ratio = median[side] / pgbench
        verdict = "within" if 0.9 <= ratio <= 1.15 else "OUTSIDE"
        print(f"ratio {side}/pgbench {ratio:.3f} ({verdict} target 0.9–1.15)")
    gap = median["measure"] - pgbench
    params_path = median["measure"] - median["measure on rendered text"]
    print(f"gap {gap * 1000:.1f} µs per call: psycopg2's parameter path (measure with params − on "
          f"the rendered text) {params_path * 1000:.1f} µs; turning {rows} rows into Python "
          f"objects {conversion_ms * 1000:.1f} µs; rest {(gap - params_path - conversion_ms) * 1000:.1f} µs")  # fmt: skip
    fixed = median["SELECT 1 measure"] - median["SELECT 1 pgbench"]
    print(f"fixed round trip (SELECT 1): measure − pgbench {fixed * 1000:.1f} µs")
    zeros = sum(1 for run in runs["SELECT 1 pgbench"] for v in run if v == 0)
    zeros_query = sum(1 for run in runs["pgbench"] for v in run if v == 0)
    if zeros or zeros_query:
        print(
            f"note: pgbench logged 0 µs for {zeros_query} query and {zeros} SELECT 1 transactions "
            "(seen here for statements answered within microseconds), which pulls its median down"
        )


if __name__ == "__main__":
    main()
