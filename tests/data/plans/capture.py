"""Re-capture the saved plans: ``python tests/data/plans/capture.py`` (PostgreSQL 18 embedded and 15).

Each plan comes from a small generated database built for the shape it shows; the JSON files are the
raw output of ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)``, the .txt files of ``EXPLAIN (ANALYZE,
BUFFERS)`` in TEXT format (what psql prints). ``--text`` captures pairs into ``text/``: each statement
in TEXT and then in JSON back to back on the same statistics (same plan and estimates; timings differ),
for the TEXT parser's tests; ``--json`` re-captures only the JSON files here.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import psycopg2

HERE = Path(__file__).parent

SETUP = """
CREATE TABLE customers AS
  SELECT g AS id, 'region_' || (g % 20) AS region, now() - (g % 1000) * interval '1 day' AS created
  FROM generate_series(1, 20000) g;
ALTER TABLE customers ADD PRIMARY KEY (id);
CREATE TABLE orders AS
  SELECT g AS id, (1 + (g::bigint * 7919) % 20000)::int AS customer_id, (g % 500)::numeric / 3 AS amount,
         (ARRAY['pending','completed','cancelled'])[1 + g % 3] AS status,
         now() - (g % 400) * interval '1 hour' AS created_at
  FROM generate_series(1, 300000) g;
ALTER TABLE orders ADD PRIMARY KEY (id);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX orders_created ON orders (created_at);
ANALYZE customers; ANALYZE orders;
"""

SERIAL = "SET max_parallel_workers_per_gather = 0;"
PARALLEL = (
    "SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; "
    "SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;"
)

# name -> (session settings, statement)
PLANS: dict[str, tuple[str, str]] = {
    "nested_loop": (
        SERIAL + "SET enable_hashjoin = off; SET enable_mergejoin = off;",
        "SELECT c.region, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id "
        "WHERE c.id < 300",
    ),
    "hash_join": (
        SERIAL,
        "SELECT c.region, sum(o.amount) FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE o.status = 'completed' GROUP BY c.region",
    ),
    "merge_join": (
        SERIAL + "SET enable_hashjoin = off; SET enable_nestloop = off;",
        "SELECT count(*) FROM customers c JOIN orders o ON o.customer_id = c.id",
    ),
    "parallel_agg": (
        PARALLEL,
        "SELECT status, count(*), avg(amount) FROM orders GROUP BY status",
    ),
    "parallel_hash_join": (
        PARALLEL,
        "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE c.region = 'region_3'",
    ),
    "gather_merge_sort": (
        PARALLEL,
        "SELECT id, amount FROM orders WHERE amount > 100 ORDER BY amount DESC, id LIMIT 50000",
    ),
    "external_sort": (
        SERIAL + "SET work_mem = '1MB';",
        "SELECT * FROM orders ORDER BY amount, created_at",
    ),
    "topn_sort": (SERIAL, "SELECT * FROM orders ORDER BY amount DESC LIMIT 10"),
    "cte_two_scans": (
        SERIAL,
        "WITH big AS MATERIALIZED (SELECT customer_id, sum(amount) AS total FROM orders "
        "GROUP BY customer_id) SELECT (SELECT count(*) FROM big WHERE total > 5000), "
        "(SELECT max(total) FROM big)",
    ),
    "cte_three_cross": (
        SERIAL,
        "WITH p AS (SELECT sum(amount) AS revenue FROM orders WHERE status = 'completed' "
        "AND created_at > now() - interval '5 days'), a AS (SELECT count(*) AS n FROM orders "
        "WHERE customer_id = 42), f AS (SELECT customer_id, count(*) AS visits FROM orders "
        "WHERE created_at > now() - interval '10 days' GROUP BY customer_id) "
        "SELECT p.revenue, a.n, (SELECT avg(visits) FROM f) FROM p CROSS JOIN a",
    ),
    "initplan_subplan": (
        SERIAL,
        "SELECT c.id, (SELECT max(o.amount) FROM orders o WHERE o.customer_id = c.id) "
        "FROM customers c WHERE c.id < 2000 AND c.created < (SELECT max(created) FROM customers)",
    ),
    "bitmap_scan": (
        SERIAL,
        "SELECT count(*) FROM orders WHERE customer_id IN (1, 2, 3, 500, 900) "
        "OR created_at > now() - interval '2 hours'",
    ),
    "update_rolled_back": (
        SERIAL,
        "UPDATE orders SET amount = amount + 1 WHERE customer_id BETWEEN 10 AND 40",
    ),
    "memoize_or_loop": (
        SERIAL + "SET enable_hashjoin = off; SET enable_mergejoin = off;",
        "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE o.id <= 20000",
    ),
}


def capture(admin_url: str, tag: str, formats: tuple[str, ...] = ("json", "text")) -> None:
    name = f"capture_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    url = admin_url.replace("/postgres?", f"/{name}?")
    try:
        conn = psycopg2.connect(url)
        conn.autocommit = True
        conn.cursor().execute(SETUP)
        conn.autocommit = False
        for plan_name, (settings, sql) in PLANS.items():
            if "text" in formats:
                with conn.cursor() as cur:
                    cur.execute(settings)
                    cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
                    lines = [row[0] for row in cur.fetchall()]
                conn.rollback()  # an UPDATE's twin must not see the first run's row versions
                with conn.cursor() as cur:
                    cur.execute(settings)
                    cur.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")
                    twin = cur.fetchone()[0]
                conn.rollback()
                (HERE / "text").mkdir(exist_ok=True)
                (HERE / "text" / f"{tag}_{plan_name}.txt").write_text("\n".join(lines) + "\n")
                (HERE / "text" / f"{tag}_{plan_name}.json").write_text(
                    json.dumps(twin, indent=1) + "\n"
                )
            if "json" in formats:
                with conn.cursor() as cur:
                    cur.execute(settings)
                    cur.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")
                    data = cur.fetchone()[0]
                conn.rollback()
                (HERE / f"{tag}_{plan_name}.json").write_text(json.dumps(data, indent=1) + "\n")
        conn.close()
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def main() -> None:
    from bbperf.config import load_settings
    from bbperf.embedded import EmbeddedServer

    sys.path.insert(0, str(HERE.parents[2]))
    from tests import pg15

    formats = tuple(f for f in ("json", "text") if f"--{f}" in sys.argv[1:]) or ("json", "text")
    server = EmbeddedServer(load_settings().home)
    server.start()
    capture(server.url("postgres"), "pg18", formats)
    if pg15.available():
        cluster = pg15.start()
        try:
            capture(cluster.admin_url(), "pg15", formats)
        finally:
            pg15.stop(cluster)


if __name__ == "__main__":
    main()
