"""The ``rollup`` variant: per-barber summaries kept current by triggers.

Two tables in bbperf's schema hold what ``before`` needs, attributed as ``before`` attributes it (to
the appointment's ``user_id``):

* ``metrics_daily (user_id, day)`` — the day in UTC — with additive figures: completed payments'
  count and sum by payment day; completed appointments' count, minutes and visits with a client by
  start day. A read sums one row per day of the barber's history (a few hundred).
* ``metrics_clients (user_id, client_id)`` with the sorted days of the client's completed visits and
  of its completed payments (with multiplicity). Distinct clients in a window are the rows with a day
  inside it, found by two binary searches (``width_bucket``) per row — a few hundred rows, no sort.

Triggers on appointments and payments apply each change as a delta (``-1`` for old rows, ``+1`` for
new ones); an appointment whose ``user_id`` or ``client_id`` changes moves its payments'
contribution too. ``mode`` picks row-level triggers or statement-level ones with transition tables
(one trigger per event, as PostgreSQL requires). Reads need ``as_of`` at 00:00 UTC: the tables know
days, not hours.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, text

from bbperf.errors import ConfigError, DataError
from bbperf.metrics.model import RawMetrics
from bbperf.metrics.queries import raw_from_cte_row, window_params
from bbperf.sqlnames import qualified, quote
from bbperf.target import schema_of

TABLE = "metrics_daily"
CLIENTS = "metrics_clients"
PREFIX = "bbperf_rollup"
MODES = ("statement", "row")
Mode = Literal["statement", "row"]
META_KEY = "rollup"

_PAY_COLS = ("appointment_id", "status", "created_at", "amount")
_APPT_COLS = ("id", "user_id", "client_id", "status", "start_time", "duration_minutes")

_DDL = """
CREATE TABLE {s}.{t} (
    user_id integer NOT NULL,
    day date NOT NULL,
    pay_count integer NOT NULL DEFAULT 0,
    pay_sum numeric(14, 2) NOT NULL DEFAULT 0,
    appt_count integer NOT NULL DEFAULT 0,
    appt_minutes bigint NOT NULL DEFAULT 0,
    visits integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);
COMMENT ON TABLE {s}.{t} IS 'bbperf rollup: six-figure metrics per barber and UTC day';
CREATE TABLE {s}.{c} (
    user_id integer NOT NULL,
    client_id integer NOT NULL,
    visit_days date[] NOT NULL DEFAULT '{{}}',
    pay_days date[] NOT NULL DEFAULT '{{}}',
    PRIMARY KEY (user_id, client_id)
);
COMMENT ON TABLE {s}.{c} IS 'bbperf rollup: sorted visit and payment days per barber and client';

-- (a + add) - del as sorted multisets: each element of del removes one occurrence.
CREATE FUNCTION {s}.{p}_merge(a date[], plus date[], minus date[]) RETURNS date[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(array_agg(x ORDER BY x), '{{}}') FROM (
        SELECT x, row_number() OVER (PARTITION BY x) AS n FROM unnest(a || plus) AS x
    ) l WHERE n > (SELECT count(*) FROM unnest(minus) AS y WHERE y = l.x)
$$;

CREATE FUNCTION {s}.{p}_day(u integer, d date, pc bigint, ps numeric, ac bigint, am numeric,
                            vc bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {s}.{t} (user_id, day) VALUES (u, d) ON CONFLICT DO NOTHING;
    UPDATE {s}.{t} SET pay_count = pay_count + pc, pay_sum = pay_sum + ps,
        appt_count = appt_count + ac, appt_minutes = appt_minutes + am, visits = visits + vc
    WHERE user_id = u AND day = d;
END $$;

CREATE FUNCTION {s}.{p}_client(u integer, cl integer, visit_add date[], visit_del date[],
                               pay_add date[], pay_del date[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {s}.{c} (user_id, client_id) VALUES (u, cl) ON CONFLICT DO NOTHING;
    UPDATE {s}.{c} SET visit_days = {s}.{p}_merge(visit_days, visit_add, visit_del),
        pay_days = {s}.{p}_merge(pay_days, pay_add, pay_del)
    WHERE user_id = u AND client_id = cl;
END $$;
"""

# Deltas from a source of signed rows: ``pay`` (payment columns + sign), ``appt`` (appointment
# columns + sign) and ``moved`` (appointments whose owner or client changed, + sign).
_DELTA = """
WITH pay AS ({pay}), appt AS ({appt}), moved AS ({moved}),
parts AS (
    SELECT a.user_id, (p.created_at AT TIME ZONE 'UTC')::date AS day, p.sign,
           p.amount, a.client_id, 'pay' AS kind
    FROM pay p JOIN {s}.appointments a ON a.id = p.appointment_id
    WHERE p.status = 'completed'
    UNION ALL
    SELECT m.user_id, (p.created_at AT TIME ZONE 'UTC')::date, m.sign, p.amount, m.client_id, 'pay'
    FROM moved m JOIN {s}.payments p ON p.appointment_id = m.id
    WHERE p.status = 'completed'
    UNION ALL
    SELECT user_id, (start_time AT TIME ZONE 'UTC')::date, sign, duration_minutes, client_id,
           'appt'
    FROM appt WHERE status = 'completed'
), days AS (
    SELECT user_id, day,
        COALESCE(SUM(sign) FILTER (WHERE kind = 'pay'), 0) AS pc,
        COALESCE(SUM(sign * amount) FILTER (WHERE kind = 'pay'), 0) AS ps,
        COALESCE(SUM(sign) FILTER (WHERE kind = 'appt'), 0) AS ac,
        COALESCE(SUM(sign * amount) FILTER (WHERE kind = 'appt'), 0) AS am,
        COALESCE(SUM(sign) FILTER (WHERE kind = 'appt' AND client_id IS NOT NULL), 0) AS vc
    FROM parts GROUP BY user_id, day
), clients AS (
    SELECT user_id, client_id,
        COALESCE(array_agg(day) FILTER (WHERE kind = 'appt' AND sign > 0), '{{}}') AS visit_add,
        COALESCE(array_agg(day) FILTER (WHERE kind = 'appt' AND sign < 0), '{{}}') AS visit_del,
        COALESCE(array_agg(day) FILTER (WHERE kind = 'pay' AND sign > 0), '{{}}') AS pay_add,
        COALESCE(array_agg(day) FILTER (WHERE kind = 'pay' AND sign < 0), '{{}}') AS pay_del
    FROM parts WHERE client_id IS NOT NULL GROUP BY user_id, client_id
), day_writes AS (
    SELECT {s}.{p}_day(user_id, day, pc, ps, ac, am, vc) FROM days
    WHERE pc <> 0 OR ps <> 0 OR ac <> 0 OR am <> 0 OR vc <> 0
), client_writes AS (
    SELECT {s}.{p}_client(user_id, client_id, visit_add, visit_del, pay_add, pay_del)
    FROM clients
    WHERE {s}.{p}_merge(visit_add, '{{}}', '{{}}') <> {s}.{p}_merge(visit_del, '{{}}', '{{}}')
       OR {s}.{p}_merge(pay_add, '{{}}', '{{}}') <> {s}.{p}_merge(pay_del, '{{}}', '{{}}')
)
SELECT (SELECT count(*) FROM day_writes) + (SELECT count(*) FROM client_writes)"""

_NOTHING = "SELECT {cols}, 0 AS sign WHERE false"


def _rows(source: str, cols: tuple[str, ...], sign: int) -> str:
    return f"SELECT {', '.join(cols)}, {sign} AS sign FROM {source}"


def _record(record: str, cols: tuple[str, ...], sign: int, ops: str) -> str:
    values = ", ".join(f"{record}.{c} AS {c}" for c in cols)
    return f"SELECT {values}, {sign} AS sign WHERE TG_OP IN ({ops})"


def _moved(old: str, new: str) -> str:
    """Old (−1) and new (+1) versions of appointments whose user_id or client_id changed."""
    changed = "(o.user_id, o.client_id) IS DISTINCT FROM (n.user_id, n.client_id)"
    return (
        f"SELECT o.id, o.user_id, o.client_id, -1 AS sign FROM {old} o JOIN {new} n "
        f"ON n.id = o.id WHERE {changed} UNION ALL "
        f"SELECT n.id, n.user_id, n.client_id, 1 FROM {old} o JOIN {new} n "
        f"ON n.id = o.id WHERE {changed}"
    )


def _function(schema: str, name: str, pay: str, appt: str, moved: str) -> str:
    body = _DELTA.format(s=quote(schema), p=PREFIX, pay=pay, appt=appt, moved=moved)
    return (
        f"CREATE FUNCTION {qualified(schema, name)}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n    PERFORM ({body});\n    RETURN NULL;\nEND $$;"
    )


def trigger_ddl(schema: str, mode: Mode) -> list[str]:
    """CREATE FUNCTION / CREATE TRIGGER statements for ``mode`` (statement or row)."""
    none_pay = _NOTHING.format(cols=", ".join(f"NULL::{_pay_type(c)} AS {c}" for c in _PAY_COLS))
    none_appt = _NOTHING.format(cols=", ".join(f"NULL::{_appt_type(c)} AS {c}" for c in _APPT_COLS))
    none_moved = "SELECT NULL::integer AS id, NULL::integer AS user_id, " + (
        "NULL::integer AS client_id, 0 AS sign WHERE false"
    )
    out: list[str] = []
    if mode == "row":
        written, replaced = "'INSERT', 'UPDATE'", "'UPDATE', 'DELETE'"
        pay = (
            f"{_record('NEW', _PAY_COLS, 1, written)} UNION ALL "
            f"{_record('OLD', _PAY_COLS, -1, replaced)}"
        )
        appt = (
            f"{_record('NEW', _APPT_COLS, 1, written)} UNION ALL "
            f"{_record('OLD', _APPT_COLS, -1, replaced)}"
        )
        moved = (
            "SELECT OLD.id AS id, OLD.user_id AS user_id, OLD.client_id AS client_id, -1 AS sign "
            "WHERE TG_OP = 'UPDATE' AND (OLD.user_id, OLD.client_id) IS DISTINCT FROM "
            "(NEW.user_id, NEW.client_id) UNION ALL SELECT NEW.id, NEW.user_id, NEW.client_id, 1 "
            "WHERE TG_OP = 'UPDATE' AND (OLD.user_id, OLD.client_id) IS DISTINCT FROM "
            "(NEW.user_id, NEW.client_id)"
        )
        for table, pay_src, appt_src, moved_src in (
            ("payments", pay, none_appt, none_moved),
            ("appointments", none_pay, appt, moved),
        ):
            fn = f"{PREFIX}_{table}_row"
            out.append(_function(schema, fn, pay_src, appt_src, moved_src))
            out.append(
                f"CREATE TRIGGER {fn} AFTER INSERT OR UPDATE OR DELETE ON {qualified(schema, table)} "
                f"FOR EACH ROW EXECUTE FUNCTION {qualified(schema, fn)}()"
            )
        return out
    events = {
        "insert": ("REFERENCING NEW TABLE AS new_rows", [("new_rows", 1)]),
        "update": (
            "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
            [("new_rows", 1), ("old_rows", -1)],
        ),
        "delete": ("REFERENCING OLD TABLE AS old_rows", [("old_rows", -1)]),
    }
    for table, cols in (("payments", _PAY_COLS), ("appointments", _APPT_COLS)):
        for event, (referencing, sources) in events.items():
            rows = " UNION ALL ".join(_rows(src, cols, sign) for src, sign in sources)
            if table == "payments":
                pay, appt, moved = rows, none_appt, none_moved
            else:
                pay, appt = none_pay, rows
                moved = _moved("old_rows", "new_rows") if event == "update" else none_moved
            fn = f"{PREFIX}_{table}_{event}"
            out.append(_function(schema, fn, pay, appt, moved))
            out.append(
                f"CREATE TRIGGER {fn} AFTER {event.upper()} ON {qualified(schema, table)} {referencing} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {qualified(schema, fn)}()"
            )
    return out


def _pay_type(col: str) -> str:
    return {"appointment_id": "integer", "status": "text", "created_at": "timestamptz"}.get(
        col, "numeric"
    )


def _appt_type(col: str) -> str:
    return {"status": "text", "start_time": "timestamptz"}.get(col, "integer")


_POPULATE = """
INSERT INTO {s}.{t} (user_id, day, pay_count, pay_sum, appt_count, appt_minutes, visits)
SELECT COALESCE(p.user_id, a.user_id), COALESCE(p.day, a.day), COALESCE(p.n, 0),
       COALESCE(p.total, 0), COALESCE(a.n, 0), COALESCE(a.minutes, 0), COALESCE(a.visits, 0)
FROM (
    SELECT a.user_id, (p.created_at AT TIME ZONE 'UTC')::date AS day, COUNT(*) AS n,
           SUM(p.amount) AS total
    FROM {s}.payments p JOIN {s}.appointments a ON a.id = p.appointment_id
    WHERE p.status = 'completed' GROUP BY 1, 2
) p FULL JOIN (
    SELECT user_id, (start_time AT TIME ZONE 'UTC')::date AS day, COUNT(*) AS n,
           SUM(duration_minutes) AS minutes, COUNT(client_id) AS visits
    FROM {s}.appointments WHERE status = 'completed' GROUP BY 1, 2
) a ON a.user_id = p.user_id AND a.day = p.day
ORDER BY 1, 2;

INSERT INTO {s}.{c} (user_id, client_id, visit_days, pay_days)
SELECT COALESCE(v.user_id, p.user_id), COALESCE(v.client_id, p.client_id),
       COALESCE(v.days, '{{}}'), COALESCE(p.days, '{{}}')
FROM (
    SELECT user_id, client_id, array_agg((start_time AT TIME ZONE 'UTC')::date ORDER BY start_time) AS days
    FROM {s}.appointments WHERE status = 'completed' AND client_id IS NOT NULL GROUP BY 1, 2
) v FULL JOIN (
    SELECT a.user_id, a.client_id,
           array_agg((p.created_at AT TIME ZONE 'UTC')::date ORDER BY p.created_at) AS days
    FROM {s}.payments p JOIN {s}.appointments a ON a.id = p.appointment_id
    WHERE p.status = 'completed' AND a.client_id IS NOT NULL GROUP BY 1, 2
) p ON p.user_id = v.user_id AND p.client_id = v.client_id
ORDER BY 1, 2"""

# width_bucket(x, sorted days) is a binary search: the number of days <= x. A client counts in a
# window when more of its days fall on or before the window's last day than before its first.
READ_SQL = f"""
WITH days AS (
    SELECT COALESCE(SUM(pay_sum) FILTER (WHERE day >= :day_30d), 0) AS total_revenue,
           COALESCE(SUM(pay_count) FILTER (WHERE day >= :day_30d), 0) AS payment_count,
           COALESCE(SUM(pay_sum) / NULLIF(SUM(pay_count), 0), 0) AS avg_ticket,
           COALESCE(SUM(appt_minutes) FILTER (WHERE day >= :day_30d), 0) AS total_minutes,
           COALESCE(SUM(appt_count) FILTER (WHERE day >= :day_30d), 0) AS completed_appointments,
           COALESCE(SUM(visits) FILTER (WHERE day >= :day_365d), 0) AS year_visits
    FROM {TABLE} WHERE user_id = :user_id AND day < :as_of_day
), clients AS (
    SELECT COUNT(*) FILTER (WHERE width_bucket(:last_day, pay_days)
                                  > width_bucket(:before_30d, pay_days)) AS unique_clients,
           COUNT(*) FILTER (WHERE width_bucket(:last_day, visit_days)
                                  > width_bucket(:before_365d, visit_days)) AS year_clients
    FROM {CLIENTS} WHERE user_id = :user_id
)
SELECT * FROM days CROSS JOIN clients"""


def read_params(user_id: int, as_of: datetime) -> dict[str, Any]:
    """Binds for READ_SQL; ConfigError unless ``as_of`` is 00:00 UTC (the table holds whole days)."""
    when = as_of.astimezone(UTC)
    if when != datetime(when.year, when.month, when.day, tzinfo=UTC):
        raise ConfigError(
            f"the rollup holds whole UTC days: as_of {as_of.isoformat()} must be 00:00 UTC "
            "(pass a date such as 2026-11-01)"
        )
    day = when.date()
    return {
        "user_id": user_id,
        "as_of_day": day,
        "last_day": day - timedelta(days=1),
        "day_30d": day - timedelta(days=30),
        "before_30d": day - timedelta(days=31),
        "day_365d": day - timedelta(days=365),
        "before_365d": day - timedelta(days=366),
    }


def installed_mode(conn: Connection, schema: str) -> str | None:
    """``statement`` or ``row`` when the rollup table and its triggers are in place, else None."""
    daily = qualified(schema, TABLE)
    if conn.execute(text("SELECT to_regclass(:r)"), {"r": daily}).scalar() is None:
        return None
    names = set(
        conn.execute(
            text(
                "SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :s AND tgname LIKE :p AND NOT tgisinternal"
            ),
            {"s": schema, "p": PREFIX + "%"},
        ).scalars()
    )
    if {f"{PREFIX}_{t}_row" for t in ("payments", "appointments")} <= names:
        return "row"
    events = ("insert", "update", "delete")
    if {f"{PREFIX}_{t}_{e}" for t in ("payments", "appointments") for e in events} <= names:
        return "statement"
    return None


def require_rollup(conn: Connection, schema: str) -> str:
    """The installed mode; DataError naming the fix when the rollup is missing or incomplete."""
    mode = installed_mode(conn, schema)
    if mode is None:
        raise DataError(
            f"the rollup is not installed in schema {schema!r}: run `bbperf rollup apply`"
        )
    return mode


def _drop_sql(schema: str) -> list[str]:
    out = [
        f"DROP TRIGGER IF EXISTS {PREFIX}_{t}_{e} ON {qualified(schema, t)}"
        for t in ("payments", "appointments")
        for e in ("row", "insert", "update", "delete")
    ]
    out += [
        f"DROP FUNCTION IF EXISTS {qualified(schema, f'{PREFIX}_{t}_{e}')}()"
        for t in ("payments", "appointments")
        for e in ("row", "insert", "update", "delete")
    ]
    out.append(f"DROP TABLE IF EXISTS {qualified(schema, TABLE)}, {qualified(schema, CLIENTS)}")
    out += [
        f"DROP FUNCTION IF EXISTS {qualified(schema, f'{PREFIX}_{f}')}"
        for f in ("day", "client", "merge")
    ]
    return out


def apply_rollup(engine: Engine, mode: Mode = "statement") -> dict[str, Any]:
    """(Re)build the rollup in one transaction: table, functions, ``mode`` triggers, rows.

    Writers to appointments and payments wait while it builds (SHARE ROW EXCLUSIVE), so no change
    slips between the initial fill and the triggers. Returns mode, rows and build time (ms).
    """
    if mode not in MODES:
        raise ConfigError(f"unknown rollup mode {mode!r}: choose one of {', '.join(MODES)}")
    schema = schema_of(engine)
    started = time.perf_counter_ns()
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 0"))
        conn.execute(
            text(
                f"LOCK TABLE {qualified(schema, 'appointments')}, {qualified(schema, 'payments')} "
                "IN SHARE ROW EXCLUSIVE MODE"
            )
        )
        for sql in _drop_sql(schema):
            conn.execute(text(sql))
        conn.execute(text(_DDL.format(s=quote(schema), t=TABLE, c=CLIENTS, p=PREFIX)))
        rows = 0
        for fill in _POPULATE.format(s=quote(schema), t=TABLE, c=CLIENTS).split(";\n\n"):
            rows += conn.execute(text(fill)).rowcount
        for sql in trigger_ddl(schema, mode):
            conn.execute(text(sql))
    # Filled in key order, each barber's rows share a few pages; VACUUM sets the visibility map.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM ANALYZE {qualified(schema, TABLE)}"))
        conn.execute(text(f"VACUUM ANALYZE {qualified(schema, CLIENTS)}"))
    build_ms = (time.perf_counter_ns() - started) / 1e6
    return {"mode": mode, "rows": rows, "build_ms": round(build_ms, 1)}


def drop_rollup(engine: Engine) -> bool:
    """Drop the rollup's triggers, functions and table; True when there was one."""
    schema = schema_of(engine)
    with engine.begin() as conn:
        existed = installed_mode(conn, schema) is not None
        for sql in _drop_sql(schema):
            conn.execute(text(sql))
    return existed


def rollup_status(engine: Engine) -> dict[str, Any]:
    """installed, mode, rows, barbers, first and last day, table size in bytes."""
    schema = schema_of(engine)
    with engine.connect() as conn:
        mode = installed_mode(conn, schema)
        if mode is None:
            return {"installed": False, "mode": None}
        row = conn.execute(
            text(
                f"SELECT COUNT(*) AS rows, COUNT(DISTINCT user_id) AS barbers, MIN(day) AS first, "
                f"MAX(day) AS last, pg_total_relation_size('{qualified(schema, TABLE)}') "
                f"+ pg_total_relation_size('{qualified(schema, CLIENTS)}') AS size_bytes "
                f"FROM {qualified(schema, TABLE)}"
            )
        ).one()
    return {
        "installed": True,
        "mode": mode,
        "rows": row.rows,
        "barbers": row.barbers,
        "first_day": row.first.isoformat() if row.first else None,
        "last_day": row.last.isoformat() if row.last else None,
        "size_bytes": row.size_bytes,
    }


def fetch_from_rollup(engine: Engine, user_id: int, as_of: datetime) -> RawMetrics:
    """One read of the barber's rows (the installed rollup is required)."""
    binds = read_params(user_id, as_of)
    with engine.connect() as conn:
        row = conn.execute(text(READ_SQL), binds).one()
    return raw_from_cte_row(row, window_params(user_id, as_of))
