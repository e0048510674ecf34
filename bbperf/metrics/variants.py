"""Two variants from the seed's future-work list: a materialized view and a prepared statement.

* **view**: every user's figures precomputed for one as_of in ``<schema>.six_figure_metrics_mv``
  (before's meaning). Reading is an index lookup; the price is the refresh, which recomputes all users.
* **prepared**: the ``after_equivalent`` statement ``PREPARE``d once per pooled connection, then
  ``EXECUTE``d — the planner may switch to a cached generic plan after five executions.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from bbperf.config import validate_identifier
from bbperf.errors import DataError
from bbperf.metrics.model import RawMetrics
from bbperf.metrics.queries import CTE_SQL, check_variant, raw_from_cte_row, window_params
from bbperf.sqlnames import qualified
from bbperf.target import schema_of

VIEW_NAME = "six_figure_metrics_mv"
PREPARED_PREFIX = "bbperf_six_figure_"
# Order of the PREPARE parameters ($1..$4) and their types.
PREPARED_PARAMS = (
    ("user_id", "integer"),
    ("as_of", "timestamptz"),
    ("since_30d", "timestamptz"),
    ("since_365d", "timestamptz"),
)

_VIEW_SQL = """
CREATE MATERIALIZED VIEW {view} AS
WITH payment_metrics AS (
    SELECT a.user_id,
           COUNT(p.id) FILTER (WHERE p.created_at >= {since_30d}) AS payment_count,
           SUM(p.amount) FILTER (WHERE p.created_at >= {since_30d}) AS total_revenue,
           AVG(p.amount) AS avg_ticket,
           COUNT(DISTINCT a.client_id) FILTER (WHERE p.created_at >= {since_30d}) AS unique_clients
    FROM payments p JOIN appointments a ON p.appointment_id = a.id
    WHERE p.status = 'completed' AND p.created_at < {as_of}
    GROUP BY a.user_id
), appointment_metrics AS (
    SELECT user_id,
           SUM(duration_minutes) FILTER (WHERE start_time >= {since_30d}) AS total_minutes,
           COUNT(*) FILTER (WHERE start_time >= {since_30d}) AS completed_appointments,
           COUNT(DISTINCT client_id) AS year_clients, COUNT(client_id) AS year_visits
    FROM appointments
    WHERE status = 'completed' AND start_time >= {since_365d} AND start_time < {as_of}
    GROUP BY user_id
)
SELECT u.id AS user_id, {as_of} AS as_of,
       COALESCE(pm.total_revenue, 0) AS total_revenue, COALESCE(pm.avg_ticket, 0) AS avg_ticket,
       COALESCE(pm.payment_count, 0) AS payment_count,
       COALESCE(pm.unique_clients, 0) AS unique_clients,
       COALESCE(am.total_minutes, 0) AS total_minutes,
       COALESCE(am.completed_appointments, 0) AS completed_appointments,
       COALESCE(am.year_clients, 0) AS year_clients, COALESCE(am.year_visits, 0) AS year_visits
FROM users u
LEFT JOIN payment_metrics pm ON pm.user_id = u.id
LEFT JOIN appointment_metrics am ON am.user_id = u.id"""

VIEW_READ_SQL = f"SELECT * FROM {VIEW_NAME} WHERE user_id = :user_id"


def _view(engine: Engine) -> str:
    return qualified(validate_identifier(schema_of(engine), "schema"), VIEW_NAME)


def _literal(when: datetime) -> str:
    return f"'{when.isoformat()}'::timestamptz"


def create_metrics_view(engine: Engine, as_of: datetime) -> float:
    """(Re)create the view for ``as_of`` in bbperf's schema with a unique index on user_id.

    Returns the build time in ms (client clock: the statement is one big aggregate).
    """
    view = _view(engine)
    windows = {k: _literal(v) for k, v in window_params(0, as_of).items() if k != "user_id"}
    start = time.perf_counter_ns()
    with engine.begin() as conn:
        conn.execute(text(f"DROP MATERIALIZED VIEW IF EXISTS {view}"))
        conn.execute(text(_VIEW_SQL.format(view=view, **windows)))
        conn.execute(text(f"CREATE UNIQUE INDEX {VIEW_NAME}_user ON {view} (user_id)"))
        conn.execute(text(f"ANALYZE {view}"))
    return (time.perf_counter_ns() - start) / 1e6


def refresh_metrics_view(engine: Engine, concurrently: bool = False) -> float:
    """``REFRESH MATERIALIZED VIEW`` (optionally CONCURRENTLY); returns the time it took in ms."""
    how = "CONCURRENTLY " if concurrently else ""
    start = time.perf_counter_ns()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"REFRESH MATERIALIZED VIEW {how}{_view(engine)}"))
    return (time.perf_counter_ns() - start) / 1e6


def drop_metrics_view(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"DROP MATERIALIZED VIEW IF EXISTS {_view(engine)}"))


def fetch_from_view(engine: Engine, user_id: int, as_of: datetime) -> RawMetrics:
    """One indexed read of the view; DataError when it is missing, stale for ``as_of``, or lacks
    the user."""
    params = window_params(user_id, as_of)
    with Session(engine) as session:
        exists = session.execute(text("SELECT to_regclass(:v)"), {"v": VIEW_NAME}).scalar()
        if exists is None:
            raise DataError(f"{VIEW_NAME} does not exist: call create_metrics_view(engine, as_of)")
        row = session.execute(text(VIEW_READ_SQL), params).one_or_none()
    if row is None:
        raise DataError(f"user {user_id} is not in {VIEW_NAME}: refresh the view")
    if row.as_of != as_of:
        raise DataError(
            f"{VIEW_NAME} holds as_of {row.as_of.isoformat()}, not "
            f"{as_of.isoformat()}: call create_metrics_view(engine, as_of)"
        )
    return raw_from_cte_row(row, params)


def positional_sql(sql: str) -> str:
    """The CTE SQL with ``:name`` binds rewritten to ``$1..$4`` in PREPARED_PARAMS order."""
    numbers = {name: f"${i}" for i, (name, _) in enumerate(PREPARED_PARAMS, start=1)}
    return re.sub(r"(?<!:):([a-z_0-9]+)\b", lambda m: numbers[m.group(1)], sql)


def prepare_sql(variant: str = "after_equivalent") -> tuple[str, str]:
    """(statement name, PREPARE statement) for a CTE variant."""
    check_variant(variant)
    name = PREPARED_PREFIX + variant
    types = ", ".join(t for _, t in PREPARED_PARAMS)
    return name, f"PREPARE {name} ({types}) AS {positional_sql(CTE_SQL[variant])}"


def execute_sql(name: str) -> str:
    """``EXECUTE name(...)`` with SQLAlchemy ``:name`` binds in PREPARED_PARAMS order."""
    return f"EXECUTE {name}({', '.join(':' + n for n, _ in PREPARED_PARAMS)})"


def ensure_prepared(conn: Connection, variant: str = "after_equivalent") -> str:
    """PREPARE the variant once per pooled DBAPI connection (remembered in its ``info``)."""
    name, prepare = prepare_sql(variant)
    info = conn.connection.info
    if name not in info:
        conn.exec_driver_sql(prepare)
        info[name] = True
    return name


def fetch_prepared(
    engine: Engine, user_id: int, as_of: datetime, variant: str = "after_equivalent"
) -> RawMetrics:
    """One call through a pooled session: PREPARE if this connection has not yet, then EXECUTE."""
    params = window_params(user_id, as_of)
    with Session(engine) as session:
        name = ensure_prepared(session.connection(), variant)
        row = session.execute(text(execute_sql(name)), params).one()
    return raw_from_cte_row(row, params)


def plan_cache(conn: Connection) -> list[dict[str, Any]]:
    """This connection's prepared statements with how many generic and custom plans each used."""
    rows = conn.execute(
        text(
            "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE name LIKE :p ORDER BY name"
        ),
        {"p": PREPARED_PREFIX + "%"},
    ).mappings()
    return [dict(r) for r in rows]
