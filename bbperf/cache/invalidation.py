"""Invalidation driven by the database: triggers that ``pg_notify`` the barber's id when their
appointments or payments change, and a listener thread that drops the barber's cache entry.

The triggers are statement-level with transition tables, so a bulk load sends one notification per
barber touched, not one per row; ``TRUNCATE`` sends ``*`` (flush everything). PostgreSQL delivers a
notification only when the writing transaction commits (and never for a rolled-back one), so a write
from *any* client — psql, the application, another bbperf — invalidates after it is visible.
For a payment, the barber is the user_id of the payment's appointment: that is what the metrics
filter on. The objects are bbperf's own, in bbperf's schema: one function and six triggers.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from typing import Any

from sqlalchemy import Engine, text

from bbperf.cache.store import MetricsCache
from bbperf.config import validate_identifier
from bbperf.errors import CacheError
from bbperf.sqlnames import qualified, quote
from bbperf.target import schema_of

FUNCTION = "bbperf_cache_notify"
TRIGGER_PREFIX = "bbperf_cache_"
TABLES = ("appointments", "payments")
LISTENER_APPLICATION = "bbperf_cache_listener"

_FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql SET search_path = {schema}, pg_catalog AS $fn$
DECLARE
    barber integer;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('{channel}', '*');
        RETURN NULL;
    END IF;
    -- Each branch names only the transition tables its trigger declares.
    IF TG_TABLE_NAME = 'appointments' THEN
        IF TG_OP = 'INSERT' THEN
            FOR barber IN SELECT DISTINCT user_id FROM new_rows LOOP
                PERFORM pg_notify('{channel}', barber::text);
            END LOOP;
        ELSIF TG_OP = 'DELETE' THEN
            FOR barber IN SELECT DISTINCT user_id FROM old_rows LOOP
                PERFORM pg_notify('{channel}', barber::text);
            END LOOP;
        ELSE
            FOR barber IN SELECT user_id FROM new_rows UNION SELECT user_id FROM old_rows LOOP
                PERFORM pg_notify('{channel}', barber::text);
            END LOOP;
        END IF;
    ELSE
        IF TG_OP = 'INSERT' THEN
            FOR barber IN SELECT DISTINCT a.user_id FROM new_rows r
                          JOIN appointments a ON a.id = r.appointment_id LOOP
                PERFORM pg_notify('{channel}', barber::text);
            END LOOP;
        ELSIF TG_OP = 'DELETE' THEN
            FOR barber IN SELECT DISTINCT a.user_id FROM old_rows r
                          JOIN appointments a ON a.id = r.appointment_id LOOP
                PERFORM pg_notify('{channel}', barber::text);
            END LOOP;
        ELSE
            FOR barber IN SELECT a.user_id FROM new_rows r JOIN appointments a ON a.id = r.appointment_id
                          UNION
                          SELECT a.user_id FROM old_rows r JOIN appointments a ON a.id = r.appointment_id LOOP
                PERFORM pg_notify('{channel}', barber::text);
            END LOOP;
        END IF;
    END IF;
    RETURN NULL;
END
$fn$"""

_TRIGGERS = {
    "ins": "AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows",
    "upd": "AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "del": "AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows",
    "trunc": "AFTER TRUNCATE ON {table}",
}


def channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel of one bbperf schema."""
    return f"bbperf_cache_{validate_identifier(schema, 'schema')}"[:63]


def _schema(engine: Engine) -> str:
    return validate_identifier(schema_of(engine), "schema")


def install_triggers(engine: Engine) -> None:
    """Create (or replace) the notify function and its triggers on appointments and payments."""
    schema = _schema(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                _FUNCTION_SQL.format(
                    schema=quote(schema),
                    function=qualified(schema, FUNCTION),
                    channel=channel(schema),
                )
            )
        )
        for table in TABLES:
            relation = qualified(schema, table)
            for suffix, timing in _TRIGGERS.items():
                name = f"{TRIGGER_PREFIX}{table}_{suffix}"
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {relation}"))
                conn.execute(
                    text(
                        f"CREATE TRIGGER {name} {timing.format(table=relation)} "
                        f"FOR EACH STATEMENT EXECUTE FUNCTION {qualified(schema, FUNCTION)}()"
                    )
                )


def remove_triggers(engine: Engine) -> None:
    """Drop the triggers and the function (nothing else: they are the only objects installed)."""
    schema = _schema(engine)
    with engine.begin() as conn:
        conn.execute(text(f"DROP FUNCTION IF EXISTS {qualified(schema, FUNCTION)}() CASCADE"))


def triggers_installed(engine: Engine) -> int:
    """How many of the eight triggers exist on bbperf's appointments and payments."""
    sql = """
SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND t.tgname LIKE :prefix AND NOT t.tgisinternal"""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(sql), {"schema": _schema(engine), "prefix": TRIGGER_PREFIX + "%"}
            ).scalar_one()
        )


def listener_connected(engine: Engine) -> bool:
    """True when a bbperf listener for this schema is connected to this database."""
    sql = """
SELECT EXISTS (SELECT 1 FROM pg_stat_activity
               WHERE datname = current_database() AND application_name = :app)"""
    with engine.connect() as conn:
        app = f"{LISTENER_APPLICATION}:{_schema(engine)}"
        return bool(conn.execute(text(sql), {"app": app}).scalar_one())


class Listener(threading.Thread):
    """LISTENs on the schema's channel over its own connection; drops a barber's entry per
    notification. Flushes the namespace once it listens (invalidations sent while nobody listened
    are lost, so older entries cannot be trusted). ``ready`` is set then; ``stop()`` ends it."""

    def __init__(self, engine: Engine, cache: MetricsCache, poll_s: float = 0.2) -> None:
        super().__init__(name="bbperf-cache-listener", daemon=True)
        self.engine = engine
        self.cache = cache
        self.poll_s = poll_s
        self.ready = threading.Event()
        self._stopping = threading.Event()
        self.invalidations = 0
        self.flushes = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._listen()
        except BaseException as exc:  # reported through .error; the thread must not die silently
            self.error = exc
            self.ready.set()

    def _listen(self) -> None:
        schema = _schema(self.engine)
        raw = self.engine.raw_connection()
        conn: Any = raw.driver_connection
        raw.detach()  # a dedicated connection: never handed back to the pool while LISTENing
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT set_config('application_name', %s, false)",
                    (f"{LISTENER_APPLICATION}:{schema}",),
                )
                cur.execute(f'LISTEN "{channel(schema)}"')
            self.cache.flush()
            self.ready.set()
            while not self._stopping.is_set():
                if select.select([conn], [], [], self.poll_s)[0]:
                    conn.poll()
                    self._handle(conn.notifies)
                    conn.notifies.clear()
        finally:
            with contextlib.suppress(Exception):
                raw.close()

    def _handle(self, notifies: list[Any]) -> None:
        for note in notifies:
            if note.payload == "*":
                self.cache.flush()
                self.flushes += 1
            else:
                self.cache.invalidate(int(note.payload))
                self.invalidations += 1

    def start_and_wait(self, timeout_s: float = 10.0) -> Listener:
        self.start()
        if not self.ready.wait(timeout_s):
            raise CacheError(f"the cache listener did not start listening within {timeout_s:g} s")
        if self.error is not None:
            raise CacheError(f"the cache listener failed: {self.error}") from None
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        self.join(timeout_s)


def wait_for(condition: Any, timeout_s: float, poll_s: float = 0.01) -> bool:
    """Poll ``condition()`` until true or ``timeout_s`` passes (for tests and the experiment)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return bool(condition())
