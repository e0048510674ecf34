"""The ``rollup`` variant: per-barber summaries kept current by triggers.

Two tables in bbperf's schema hold what ``before`` needs, attributed as ``before`` attributes it (to
the appointment's ``user_id``):

* ``metrics_running (user_id, day)`` — the day in UTC — holds running totals: completed payments'
  count and sum by payment day, completed appointments' count, minutes and visits with a client by
  start day, each summed over every day up to this one. A row exists only on days with activity.
* ``metrics_windows (user_id, day)``: the distinct clients who paid in the 30 days, and visited in
  the 365 days, ending on this day; a row exists only on days where one of them changes (a window
  opens or closes). Kept apart so that today's write does not move the year of window-closing rows
  ahead of it.

The values in force on any day are the latest row's on or before it. A read is four index probes
(the last day and the days before each window in ``metrics_running``, the last day in
``metrics_windows``): window sums are differences of running totals.
* ``metrics_clients (user_id, client_id)`` with the sorted days of the client's completed visits and
  of its completed payments (with multiplicity): the triggers find there whether a client's change
  opens or closes a window day for it (binary searches with ``width_bucket``).

Triggers on appointments and payments apply each change as a delta (``-1`` for old rows, ``+1`` for
new ones); an appointment whose ``user_id`` or ``client_id`` changes moves its payments'
contribution too. A write for an old day moves every later running total of its barber (the
back-dated write is the expensive one: ``prices.trigger_cost`` prices it). Writers of the same barber
take turns (a transaction-level advisory lock per barber): a new row copies the one before it and must
see every change committed ahead of it, so the triggers assume READ COMMITTED, the default. ``mode`` picks row-level triggers or statement-level ones with transition tables
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

TABLE = "metrics_running"
WINDOWS = "metrics_windows"
CLIENTS = "metrics_clients"
# The per-day table of the first design: dropped with the rollup so an upgrade leaves nothing behind.
FORMER_TABLE = "metrics_daily"
PREFIX = "bbperf_rollup"
MODES = ("statement", "row")
Mode = Literal["statement", "row"]
META_KEY = "rollup"
# Distinct-client windows the running table keeps (days): payers over 30, visitors over 365.
PAY_WINDOW_DAYS = 30
VISIT_WINDOW_DAYS = 365

_PAY_COLS = ("appointment_id", "status", "created_at", "amount")
_APPT_COLS = ("id", "user_id", "client_id", "status", "start_time", "duration_minutes")

_DDL = """
CREATE TABLE {s}.{t} (
    user_id integer NOT NULL,
    day date NOT NULL,
    pay_count bigint NOT NULL DEFAULT 0,
    pay_sum numeric(16, 2) NOT NULL DEFAULT 0,
    appt_count bigint NOT NULL DEFAULT 0,
    appt_minutes bigint NOT NULL DEFAULT 0,
    visits bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);
COMMENT ON TABLE {s}.{t} IS 'bbperf rollup: six-figure metrics per barber as running totals, one row per active day';
CREATE TABLE {s}.{w} (
    user_id integer NOT NULL,
    day date NOT NULL,
    payers_30d integer NOT NULL DEFAULT 0,
    visitors_365d integer NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day)
);
COMMENT ON TABLE {s}.{w} IS 'bbperf rollup: distinct payers (30 days) and visitors (365 days) per barber, one row per change day';
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

-- A row at day d, holding the values in force there (the latest earlier row's, or zeros), so that
-- a change from d on leaves the days before d as they were.
CREATE FUNCTION {s}.{p}_breakpoint(u integer, d date) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {s}.{t} (user_id, day, pay_count, pay_sum, appt_count, appt_minutes, visits)
    SELECT u, d, COALESCE(r.pay_count, 0), COALESCE(r.pay_sum, 0), COALESCE(r.appt_count, 0),
           COALESCE(r.appt_minutes, 0), COALESCE(r.visits, 0)
    FROM (SELECT 1) one LEFT JOIN LATERAL (
        SELECT * FROM {s}.{t} WHERE user_id = u AND day < d ORDER BY day DESC LIMIT 1
    ) r ON true
    ON CONFLICT DO NOTHING;
END $$;

CREATE FUNCTION {s}.{p}_window_breakpoint(u integer, d date) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {s}.{w} (user_id, day, payers_30d, visitors_365d)
    SELECT u, d, COALESCE(r.payers_30d, 0), COALESCE(r.visitors_365d, 0)
    FROM (SELECT 1) one LEFT JOIN LATERAL (
        SELECT * FROM {s}.{w} WHERE user_id = u AND day < d ORDER BY day DESC LIMIT 1
    ) r ON true
    ON CONFLICT DO NOTHING;
END $$;

-- Additive figures of day d changed: every running total from d on moves (a back-dated write
-- touches every later row of the barber).
-- Writers of one barber take turns until commit: a new row copies the row before it, and must see
-- every change committed ahead of it (READ COMMITTED: each statement below takes a new snapshot).
CREATE FUNCTION {s}.{p}_lock(u integer) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtext('{p}'), u)
$$;

CREATE FUNCTION {s}.{p}_day(u integer, d date, pc bigint, ps numeric, ac bigint, am numeric,
                            vc bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {s}.{p}_lock(u);
    PERFORM {s}.{p}_breakpoint(u, d);
    UPDATE {s}.{t} SET pay_count = pay_count + pc, pay_sum = pay_sum + ps,
        appt_count = appt_count + ac, appt_minutes = appt_minutes + am, visits = visits + vc
    WHERE user_id = u AND day >= d;
END $$;

-- One client's days went from old_days to new_days, ``changed`` being the days added or removed:
-- the distinct count of a window of w days ending on day x moves by covered(new, x) -
-- covered(old, x), where covered means a day in (x - w, x] (width_bucket counts the sorted days
-- <= x). Only days from the first changed day to w after the last can move: rows are put where
-- the change starts and stops, then every row in between that moves takes its own day's change.
CREATE FUNCTION {s}.{p}_covered(x date, days date[], w integer) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT (width_bucket(x, days) > width_bucket(x - w, days))::integer
$$;

CREATE FUNCTION {s}.{p}_window(u integer, old_days date[], new_days date[], changed date[],
                               w integer, payers boolean) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    first_day date;
    last_day date;
BEGIN
    IF old_days = new_days THEN
        RETURN;
    END IF;
    SELECT min(x), max(x) + w INTO first_day, last_day FROM unnest(changed) AS x;
    -- Coverage changes only on a client's day or w days after one: those are the candidates.
    PERFORM {s}.{p}_window_breakpoint(u, m.day) FROM (
        SELECT day, delta, lag(delta, 1, 0) OVER (ORDER BY day) AS before
        FROM (
            SELECT day, {s}.{p}_covered(day, new_days, w) - {s}.{p}_covered(day, old_days, w)
                       AS delta
            FROM (
                SELECT unnest(old_days || new_days) AS day
                UNION
                SELECT unnest(old_days || new_days) + w
            ) candidates
            WHERE day BETWEEN first_day AND last_day
        ) d
    ) m WHERE m.delta <> m.before;
    IF payers THEN
        UPDATE {s}.{w} SET payers_30d = payers_30d + {s}.{p}_covered(day, new_days, w)
                                                   - {s}.{p}_covered(day, old_days, w)
        WHERE user_id = u AND day BETWEEN first_day AND last_day
          AND {s}.{p}_covered(day, new_days, w) <> {s}.{p}_covered(day, old_days, w);
    ELSE
        UPDATE {s}.{w} SET visitors_365d = visitors_365d + {s}.{p}_covered(day, new_days, w)
                                                         - {s}.{p}_covered(day, old_days, w)
        WHERE user_id = u AND day BETWEEN first_day AND last_day
          AND {s}.{p}_covered(day, new_days, w) <> {s}.{p}_covered(day, old_days, w);
    END IF;
END $$;

CREATE FUNCTION {s}.{p}_client(u integer, cl integer, visit_add date[], visit_del date[],
                               pay_add date[], pay_del date[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old_visits date[];
    old_pays date[];
    new_visits date[];
    new_pays date[];
BEGIN
    PERFORM {s}.{p}_lock(u);
    INSERT INTO {s}.{c} (user_id, client_id) VALUES (u, cl) ON CONFLICT DO NOTHING;
    SELECT visit_days, pay_days INTO old_visits, old_pays FROM {s}.{c}
    WHERE user_id = u AND client_id = cl FOR UPDATE;
    new_visits := {s}.{p}_merge(old_visits, visit_add, visit_del);
    new_pays := {s}.{p}_merge(old_pays, pay_add, pay_del);
    UPDATE {s}.{c} SET visit_days = new_visits, pay_days = new_pays
    WHERE user_id = u AND client_id = cl;
    PERFORM {s}.{p}_window(u, old_pays, new_pays, pay_add || pay_del, {pay_window}, true);
    PERFORM {s}.{p}_window(u, old_visits, new_visits, visit_add || visit_del, {visit_window},
                           false);
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


# Fill: the clients' sorted days first, then the running table from them and from the day sums.
# A client covers the days [v, v + w) after each of its days v; its coverage opens (+1) at a day
# with no earlier day within w, and closes (-1) w after a day with no later day within w.
_POPULATE = """
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
ORDER BY 1, 2;

INSERT INTO {s}.{t} (user_id, day, pay_count, pay_sum, appt_count, appt_minutes, visits)
WITH sums AS (
    SELECT a.user_id, (p.created_at AT TIME ZONE 'UTC')::date AS day, COUNT(*) AS pc,
           SUM(p.amount) AS ps, 0 AS ac, 0 AS am, 0 AS vc
    FROM {s}.payments p JOIN {s}.appointments a ON a.id = p.appointment_id
    WHERE p.status = 'completed' GROUP BY 1, 2
    UNION ALL
    SELECT user_id, (start_time AT TIME ZONE 'UTC')::date, 0, 0, COUNT(*), SUM(duration_minutes),
           COUNT(client_id)
    FROM {s}.appointments WHERE status = 'completed' GROUP BY 1, 2
), per_day AS (
    SELECT user_id, day, SUM(pc) AS pc, SUM(ps) AS ps, SUM(ac) AS ac, SUM(am) AS am,
           SUM(vc) AS vc
    FROM sums GROUP BY 1, 2
)
SELECT user_id, day, SUM(pc) OVER upto, SUM(ps) OVER upto, SUM(ac) OVER upto,
       SUM(am) OVER upto, SUM(vc) OVER upto
FROM per_day WINDOW upto AS (PARTITION BY user_id ORDER BY day)
ORDER BY 1, 2;

INSERT INTO {s}.{w} (user_id, day, payers_30d, visitors_365d)
WITH client_days AS (
    SELECT DISTINCT user_id, client_id, unnest(pay_days) AS day, {pay_window} AS w, true AS payers
    FROM {s}.{c}
    UNION ALL
    SELECT DISTINCT user_id, client_id, unnest(visit_days), {visit_window}, false FROM {s}.{c}
), neighbours AS (
    SELECT user_id, day, w, payers,
           lag(day) OVER same AS prev, lead(day) OVER same AS next
    FROM client_days WINDOW same AS (PARTITION BY user_id, client_id, payers ORDER BY day)
), marks AS (
    SELECT user_id, day, payers, 1 AS delta FROM neighbours WHERE prev IS NULL OR day - prev >= w
    UNION ALL
    SELECT user_id, day + w, payers, -1 FROM neighbours WHERE next IS NULL OR next - day >= w
), per_day AS (
    SELECT user_id, day, SUM(delta) FILTER (WHERE payers) AS dp,
           SUM(delta) FILTER (WHERE NOT payers) AS dv
    FROM marks GROUP BY 1, 2
)
SELECT user_id, day, COALESCE(SUM(dp) OVER upto, 0), COALESCE(SUM(dv) OVER upto, 0)
FROM per_day WINDOW upto AS (PARTITION BY user_id ORDER BY day)
ORDER BY 1, 2"""

# The values in force on a day are the latest row's on or before it: three index probes, one per
# window edge. Sums over a window are differences of running totals; the distinct clients of the
# window ending on the last day are stored on that day's row.
READ_SQL = f"""
SELECT COALESCE(n.pay_sum, 0) - COALESCE(m.pay_sum, 0) AS total_revenue,
       COALESCE(n.pay_count, 0) - COALESCE(m.pay_count, 0) AS payment_count,
       COALESCE(n.pay_sum / NULLIF(n.pay_count, 0), 0) AS avg_ticket,
       COALESCE(c.payers_30d, 0) AS unique_clients,
       COALESCE(n.appt_minutes, 0) - COALESCE(m.appt_minutes, 0) AS total_minutes,
       COALESCE(n.appt_count, 0) - COALESCE(m.appt_count, 0) AS completed_appointments,
       COALESCE(c.visitors_365d, 0) AS year_clients,
       COALESCE(n.visits, 0) - COALESCE(y.visits, 0) AS year_visits
FROM (SELECT 1) one
LEFT JOIN LATERAL (
    SELECT * FROM {TABLE} WHERE user_id = :user_id AND day <= :last_day ORDER BY day DESC LIMIT 1
) n ON true
LEFT JOIN LATERAL (
    SELECT * FROM {TABLE} WHERE user_id = :user_id AND day <= :before_30d ORDER BY day DESC LIMIT 1
) m ON true
LEFT JOIN LATERAL (
    SELECT * FROM {TABLE} WHERE user_id = :user_id AND day <= :before_365d ORDER BY day DESC LIMIT 1
) y ON true
LEFT JOIN LATERAL (
    SELECT * FROM {WINDOWS} WHERE user_id = :user_id AND day <= :last_day ORDER BY day DESC LIMIT 1
) c ON true"""


def _formatted(sql: str, schema: str) -> str:
    """``sql`` with bbperf's schema, the rollup's names and its windows filled in."""
    return sql.format(
        s=quote(schema),
        t=TABLE,
        w=WINDOWS,
        c=CLIENTS,
        p=PREFIX,
        pay_window=PAY_WINDOW_DAYS,
        visit_window=VISIT_WINDOW_DAYS,
    )


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
        "last_day": day - timedelta(days=1),
        "before_30d": day - timedelta(days=PAY_WINDOW_DAYS + 1),
        "before_365d": day - timedelta(days=VISIT_WINDOW_DAYS + 1),
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


def _drop_trigger_sql(schema: str) -> list[str]:
    """DROP statements for the triggers of either mode and their functions."""
    events = ("row", "insert", "update", "delete")
    out = [
        f"DROP TRIGGER IF EXISTS {PREFIX}_{t}_{e} ON {qualified(schema, t)}"
        for t in ("payments", "appointments")
        for e in events
    ]
    return out + [
        f"DROP FUNCTION IF EXISTS {qualified(schema, f'{PREFIX}_{t}_{e}')}()"
        for t in ("payments", "appointments")
        for e in events
    ]


def _drop_sql(schema: str) -> list[str]:
    out = _drop_trigger_sql(schema)
    out.append(
        f"DROP TABLE IF EXISTS {qualified(schema, TABLE)}, {qualified(schema, WINDOWS)}, "
        f"{qualified(schema, CLIENTS)}, {qualified(schema, FORMER_TABLE)}"
    )
    out += [
        f"DROP FUNCTION IF EXISTS {qualified(schema, f'{PREFIX}_{f}')}"
        for f in (
            "day",
            "client",
            "window",
            "covered",
            "window_breakpoint",
            "breakpoint",
            "lock",
            "merge",
        )
    ]
    return out


def lock_sources(conn: Connection, schema: str) -> None:
    """Make writers to appointments and payments wait until this transaction ends."""
    conn.execute(
        text(
            f"LOCK TABLE {qualified(schema, 'appointments')}, {qualified(schema, 'payments')} "
            "IN SHARE ROW EXCLUSIVE MODE"
        )
    )


def swap_triggers(conn: Connection, schema: str, mode: Mode | None) -> None:
    """Replace the installed triggers by ``mode``'s (None: no triggers), tables untouched.

    For pricing inside a transaction that is rolled back: the caller holds ``lock_sources``, so
    no other write can miss the table while its triggers are swapped.
    """
    for sql in _drop_trigger_sql(schema):
        conn.execute(text(sql))
    for sql in trigger_ddl(schema, mode) if mode is not None else []:
        conn.execute(text(sql))


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
        lock_sources(conn, schema)
        for sql in _drop_sql(schema):
            conn.execute(text(sql))
        conn.execute(text(_formatted(_DDL, schema)))
        rows = 0
        for fill in _formatted(_POPULATE, schema).split(";\n\n"):
            rows += conn.execute(text(fill)).rowcount
        for sql in trigger_ddl(schema, mode):
            conn.execute(text(sql))
    # Filled in key order, each barber's rows share a few pages; VACUUM sets the visibility map.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in (TABLE, WINDOWS, CLIENTS):
            conn.execute(text(f"VACUUM ANALYZE {qualified(schema, table)}"))
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
                f"+ pg_total_relation_size('{qualified(schema, WINDOWS)}') "
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
