"""What sharding over postgres_fdw buys and costs, measured on real shards: a query routed to one
shard against a fan-out over all of them and against the single server (the set-aside tables hold
the same rows), what the FDW pushes down (EXPLAIN VERBOSE, Remote SQL), the cost of a write through
the coordinator, and the anomaly a commit across shards without two-phase commit leaves when a shard
dies between the remote commits.

The plan readers (``foreign_scans``, ``pushdown_row``) are pure: EXPLAIN JSON in, rows out.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.config import load_settings
from bbperf.errors import first_line
from bbperf.explain.measure import measure
from bbperf.explain.timingstats import Comparison, Timing, compare
from bbperf.shard.layout import partition_name, set_aside_name
from bbperf.shard.servers import ShardServer, shards_of, start_shards
from bbperf.sqlnames import qualified
from bbperf.target import is_embedded, schema_of
from bbperf.urls import mask_text


# -- the shards a notebook runs on ------------------------------------------------------------------
@dataclass
class ShardSet:
    """bbperf's embedded shards for one coordinator database: their servers, the URLs of that
    database on them, and which of them this run started (``close`` stops only those)."""

    servers: list[ShardServer]
    urls: list[str]
    started: list[str] = field(default_factory=list)

    def close(self) -> list[str]:
        """Stop the shards this run started; return their names."""
        return [s.name for s in self.servers if s.name in self.started and s.stop()]


NOT_EMBEDDED = (
    "this target is not bbperf's embedded server: its shards could not reach it "
    "(run without BBPERF_DATABASE_URL to shard the embedded one)"
)


def embedded_shards(engine: Engine, count: int) -> ShardSet | None:
    """``count`` embedded shards serving ``engine``'s database, started when needed; None when the
    coordinator is not bbperf's embedded server (its shards cannot reach sockets it owns)."""
    if not is_embedded(engine):
        return None
    home = load_settings().home
    running = {s.name for s in shards_of(home) if s.ready_postmaster()}
    urls = start_shards(home, count, engine.url.database or "bbperf")
    servers = [ShardServer(home, index) for index in range(count)]
    return ShardSet(servers, urls, [s.name for s in servers if s.name not in running])


# -- plans: which shards a statement reaches, and what runs there ---------------------------------
def explain_json(
    engine: Engine,
    sql: str,
    params: dict[str, Any] | None = None,
    settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The top plan node of ``EXPLAIN (VERBOSE, FORMAT JSON) sql`` (planned, not run), with the
    planner ``settings`` set for this transaction only."""
    with engine.begin() as conn:
        for name, value in (settings or {}).items():
            conn.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})
        plan = conn.execute(
            text(f"EXPLAIN (VERBOSE, FORMAT JSON) {sql}"), params or {}
        ).scalar_one()
    return dict(plan[0]["Plan"])


def foreign_scans(node: dict[str, Any]) -> list[dict[str, str]]:
    """Every Foreign Scan under ``node``: the foreign table(s) it reads and its Remote SQL."""
    found = []
    if node.get("Node Type") == "Foreign Scan":
        found.append(
            {
                "relation": str(node.get("Relation Name") or node.get("Relations") or ""),
                "remote_sql": str(node.get("Remote SQL", "")),
            }
        )
    for child in node.get("Plans", []):
        found.extend(foreign_scans(child))
    return found


def local_nodes(node: dict[str, Any]) -> list[str]:
    """The node types the coordinator runs itself (everything but the foreign scans), top down."""
    if node.get("Node Type") == "Foreign Scan":
        return []
    own = [str(node["Node Type"])]
    return own + [name for child in node.get("Plans", []) for name in local_nodes(child)]


def pushdown_row(name: str, plan: dict[str, Any]) -> dict[str, Any]:
    """One row of the pushdown table: how many shards the statement reaches, what the coordinator
    still does, and the first shard's Remote SQL."""
    scans = foreign_scans(plan)
    local = [n for n in local_nodes(plan) if n not in ("Append", "Async Append", "Result")]
    return {
        "query": name,
        "shards_reached": len(scans),
        "coordinator_does": ", ".join(dict.fromkeys(local)) or "nothing: all pushed down",
        "remote_sql": scans[0]["remote_sql"] if scans else "",
    }


def pushdown(
    engine: Engine,
    queries: dict[str, str],
    params: dict[str, Any] | None = None,
    settings: dict[str, str] | None = None,
) -> pd.DataFrame:
    """``pushdown_row`` for each named query (planned with ``settings``, e.g.
    ``{"enable_partitionwise_aggregate": "on"}``)."""
    return pd.DataFrame(
        [
            pushdown_row(name, explain_json(engine, sql, params, settings))
            for name, sql in queries.items()
        ]
    )


# -- timings ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Routing:
    """Client timings of one tenant's query and of an all-tenants aggregate, sharded and on the
    single server (the set-aside tables), and what the comparisons say (speedup > 1: sharded wins)."""

    routed: Timing
    routed_local: Timing
    fanout: Timing
    fanout_local: Timing

    @property
    def sizes(self) -> tuple[int, int, int]:
        """Samples on the smaller side of routed_vs_local, fanout_vs_local and routed_vs_fanout."""
        n = {k: len(getattr(self, k).samples_ms) for k in ("routed", "routed_local", "fanout")}
        n["fanout_local"] = len(self.fanout_local.samples_ms)
        return (
            min(n["routed"], n["routed_local"]),
            min(n["fanout"], n["fanout_local"]),
            min(n["fanout"], n["routed"]),
        )

    @property
    def routed_vs_local(self) -> Comparison:
        return compare(self.routed_local, self.routed)

    @property
    def fanout_vs_local(self) -> Comparison:
        return compare(self.fanout_local, self.fanout)

    @property
    def routed_vs_fanout(self) -> Comparison:
        """What routing buys on the sharded layout: the fan-out's time ÷ the routed query's."""
        return compare(self.fanout, self.routed)

    def table(self) -> pd.DataFrame:
        rows = []
        for name, timing in (
            ("one barber, sharded (routed)", self.routed),
            ("one barber, single server", self.routed_local),
            ("every barber, sharded (fan-out)", self.fanout),
            ("every barber, single server", self.fanout_local),
        ):
            s = timing.summary
            rows.append(
                {
                    "query": name,
                    "rounds": s.n,
                    "median_ms": s.median,
                    "p95_ms": s.p95,
                    "iqr_ms": s.iqr,
                }
            )
        return pd.DataFrame(rows)


ROUTED_SQL = (
    "SELECT count(*) AS appointments, sum(price) AS revenue, "
    "count(*) FILTER (WHERE status = 'completed') AS completed FROM {table} WHERE barber_id = :barber"
)
FANOUT_SQL = (
    "SELECT barber_id, count(*) AS appointments, sum(price) AS revenue FROM {table} "
    "GROUP BY barber_id"
)


@dataclass(frozen=True)
class Tenant:
    """The barber (and their organization) the routed queries ask about: the busiest one."""

    barber: int
    organization: int

    def params(self, by: str) -> dict[str, int]:
        """The values one tenant's query binds: the organization too when it is the shard key (the
        application names its tenant, which is what routes the query)."""
        return {
            "barber": self.barber,
            **({"organization": self.organization} if by == "organization" else {}),
        }


def busiest_tenant(engine: Engine) -> Tenant:
    """The barber with the most appointments (lowest id on ties), read from the single server."""
    table = qualified(schema_of(engine), set_aside_name("appointments"))
    with engine.connect() as conn:
        row = conn.execute(
            text(
                f"SELECT barber_id, organization_id FROM {table} WHERE barber_id IS NOT NULL "
                "AND organization_id IS NOT NULL GROUP BY 1, 2 ORDER BY count(*) DESC, 1 LIMIT 1"
            )
        ).one()
    return Tenant(int(row[0]), int(row[1]))


def routed_sql(table: str, by: str) -> str:
    """One barber's metrics from ``table``, naming the organization too when it is the shard key."""
    return ROUTED_SQL.format(table=table) + (
        " AND organization_id = :organization" if by == "organization" else ""
    )


def sharded_queries(engine: Engine, by: str) -> dict[str, str]:
    """The statements notebook 10 reads plans of: one barber's metrics, a join with a table only the
    coordinator knows, a filter on ``now()``, a top-N, and the all-barbers aggregate."""
    schema = schema_of(engine)
    table, services = qualified(schema, "appointments"), qualified(schema, "services")
    tenant = " AND organization_id = :organization" if by == "organization" else ""
    return {
        "one barber's metrics": routed_sql(table, by),
        "one barber, by service (join)": f"SELECT s.category, count(*) FROM {table} a JOIN {services} s "
        f"ON s.id = a.service_id WHERE a.barber_id = :barber{tenant.replace(' organization', ' a.organization')} "
        "GROUP BY 1",
        "one barber, last 30 days (now())": f"SELECT count(*) FROM {table} WHERE barber_id = :barber"
        f"{tenant} AND start_time > now() - interval '30 days'",
        "one barber, latest 5 (ORDER BY LIMIT)": f"SELECT id, start_time FROM {table} "
        f"WHERE barber_id = :barber{tenant} ORDER BY start_time DESC LIMIT 5",
        "every barber (fan-out)": FANOUT_SQL.format(table=table),
    }


# Timed rounds of the all-barbers aggregate at most (after one warm-up): at SF 1 one sharded fan-out
# ships every appointment to the coordinator (~0.8 s), and its ratio to the single server (~×0.2)
# or to the routed query (~×100) is decided many times over by ten rounds; 35 took ~35 s.
FANOUT_ROUNDS = 10


def routing(
    engine: Engine, tenant: Tenant, by: str, *, rounds: int = 30, warmup: int = 5
) -> Routing:
    """Time one barber's metrics (routed to one shard) and every barber's (fan-out), sharded and
    on the single server, with ``bbperf.explain.measure`` (warm, autocommit, one connection). The
    fan-out is timed ``FANOUT_ROUNDS`` times at most; ``Routing.sizes`` says how many."""
    schema = schema_of(engine)
    sharded = qualified(schema, "appointments")
    local = qualified(schema, set_aside_name("appointments"))

    def timed(sql: str, label: str, params: dict[str, Any] | None = None, cap: int = 0) -> Timing:
        n, w = (min(rounds, cap), min(warmup, 1)) if cap else (rounds, warmup)
        return measure(engine, sql, params, rounds=n, warmup=w, label=label)

    one = tenant.params(by)
    return Routing(
        routed=timed(routed_sql(sharded, by), "one barber, sharded", one),
        routed_local=timed(routed_sql(local, by), "one barber, single server", one),
        fanout=timed(FANOUT_SQL.format(table=sharded), "every barber, sharded", cap=FANOUT_ROUNDS),
        fanout_local=timed(
            FANOUT_SQL.format(table=local), "every barber, single server", cap=FANOUT_ROUNDS
        ),
    )


_INSERT = (
    "INSERT INTO {table} (user_id, barber_id, client_id, service_id, organization_id, status, "
    "start_time, duration_minutes, price, notes) SELECT user_id, barber_id, client_id, service_id, "
    "organization_id, 'pending', start_time, duration_minutes, price, 'bbperf write probe' "
    "FROM {source} WHERE id = :id"
)


def write_cost(engine: Engine, *, rounds: int = 30, warmup: int = 5) -> tuple[Timing, Timing]:
    """Client time of inserting one appointment (and committing) through the coordinator into its
    shard, and into the single server's table; each round's row is deleted again afterwards.
    Returns (sharded, single server)."""
    schema = schema_of(engine)
    source = qualified(schema, set_aside_name("appointments"))
    with engine.connect() as conn:
        sample_id = conn.execute(text(f"SELECT min(id) FROM {source}")).scalar_one()
    timings = []
    for table, label in (
        (qualified(schema, "appointments"), "insert, sharded"),
        (source, "insert, single server"),
    ):
        samples: list[float] = []
        sql = text(_INSERT.format(table=table, source=source) + " RETURNING id")
        for round_ in range(warmup + rounds):
            with engine.connect() as conn:
                started = time.perf_counter_ns()
                new_id = conn.execute(sql, {"id": sample_id}).scalar_one()
                conn.commit()
                elapsed_ms = (time.perf_counter_ns() - started) / 1e6
                conn.execute(text(f"DELETE FROM {table} WHERE id = :id"), {"id": new_id})
                conn.commit()
            if round_ >= warmup:
                samples.append(elapsed_ms)
        timings.append(
            Timing(
                samples_ms=tuple(samples), label=label, sql=str(sql), warmup=warmup, cache="warm"
            )
        )
    return timings[0], timings[1]


# -- a commit across shards without two-phase commit ---------------------------------------------
@dataclass(frozen=True)
class CrashedCommit:
    """One attempt: two rows written in one coordinator transaction, one to each of two shards;
    ``killed`` shard died just before COMMIT. ``committed`` says which shard kept its row."""

    killed: str
    error: str | None
    committed: dict[str, bool]

    @property
    def anomaly(self) -> bool:
        """One shard committed its half, the other not: the transaction is torn."""
        return len(set(self.committed.values())) > 1


def commit_without_2pc(engine: Engine, shards: ShardSet) -> list[CrashedCommit]:
    """Write one appointment to shard 0 and one to shard 1 in one transaction, kill one of the two
    shards before COMMIT, restart it and look where the rows are. postgres_fdw commits the remote
    transactions one after another (in an order of its own), so the kill tears the transaction only
    when the dead shard is not the first committed: the other shard is tried as victim when the
    first attempt tore nothing. The rows that survived are deleted."""
    schema = schema_of(engine)
    victims = [shards.servers[1], shards.servers[0]]
    attempts = []
    for victim in victims:
        attempt = _crash_between_commits(engine, schema, shards.servers[:2], victim)
        attempts.append(attempt)
        if attempt.anomaly:
            break
    return attempts


def _crash_between_commits(
    engine: Engine, schema: str, pair: Sequence[ShardServer], victim: ShardServer
) -> CrashedCommit:
    marker = f"bbperf 2pc probe {uuid.uuid4().hex[:8]}"
    table = qualified(schema, "appointments")
    error = None
    with engine.connect() as conn:
        for index in range(len(pair)):
            partition = qualified(schema, partition_name("appointments", index))
            conn.execute(
                text(
                    f"INSERT INTO {table} (user_id, barber_id, client_id, service_id, organization_id, "
                    "status, start_time, duration_minutes, price, notes) SELECT user_id, barber_id, "
                    "client_id, service_id, organization_id, 'pending', start_time, duration_minutes, "
                    f"price, :m FROM {partition} LIMIT 1"
                ),
                {"m": marker},
            )
        victim.kill()
        try:
            conn.commit()
        except DBAPIError as exc:
            error = mask_text(first_line(exc))
            conn.invalidate()
    victim.start()
    engine.dispose()  # pooled sessions still hold connections to the shard that died
    committed = {}
    with engine.begin() as conn:
        for index, server in enumerate(pair):
            partition = qualified(schema, partition_name("appointments", index))
            found = conn.execute(
                text(f"SELECT count(*) FROM {partition} WHERE notes = :m"), {"m": marker}
            )
            committed[server.name] = bool(found.scalar_one())
        conn.execute(text(f"DELETE FROM {table} WHERE notes = :m"), {"m": marker})
    return CrashedCommit(victim.name, error, committed)


def crash_table(attempts: Sequence[CrashedCommit]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "killed_before_commit": a.killed,
                **{f"{name}_kept_its_row": kept for name, kept in a.committed.items()},
                "torn": a.anomaly,
                "coordinator_said": a.error or "COMMIT succeeded",
            }
            for a in attempts
        ]
    )
