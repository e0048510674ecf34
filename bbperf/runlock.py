"""One run at a time on a database's bbperf schema: a report or a load holds a PostgreSQL advisory
lock for as long as it runs, so a second one started beside it (another terminal, another user, another
machine pointed at the same server) is refused in one line instead of truncating the tables, dropping
the index sets or converting the tables under the first one's notebooks.

The lock is the server's (``pg_try_advisory_lock``, a session lock scoped to the database), so it holds
across machines and dies with the holder's connection: a killed run leaves nothing to clean up.
Processes a run starts itself (its notebook kernels) inherit ``RUN_LOCK_ENV`` and are not refused.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.errors import ConfigError
from bbperf.target import schema_of

RUN_LOCK_ENV = "BBPERF_RUN_LOCK"
# The advisory lock's first key, 'bbpf'; the second is hashtext(schema) (pg_locks shows it as
# an unsigned oid).
_CLASS = 0x62627066

_HOLDER = """
SELECT a.application_name, a.pid, to_char(a.backend_start AT TIME ZONE 'UTC', 'HH24:MI:SS')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
    SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = :c AND l.objid::bigint = (CAST(hashtext(:s) AS bigint) & 4294967295)
  AND l.objsubid = 2
LIMIT 1
"""


@contextlib.contextmanager
def exclusive_run(engine: Engine | None, what: str) -> Iterator[None]:
    """Hold the run lock of ``engine``'s bbperf schema while the block runs; ConfigError (one line,
    naming the holder) when another run holds it. Nothing is held when ``engine`` is None (an
    unreachable server: the run fails on its own) or inside a run that holds it already."""
    if engine is None:
        yield
        return
    schema = schema_of(engine)
    token = f"{engine.url.render_as_string(hide_password=True)}#{schema}"
    if os.environ.get(RUN_LOCK_ENV) == token:
        yield
        return
    try:
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    except DBAPIError:
        yield  # the server cannot be reached: the run says so in its own words
        return
    try:
        conn.execute(
            text("SELECT set_config('application_name', :a, false)"), {"a": f"bbperf {what}"}
        )
        got = conn.execute(
            text("SELECT pg_try_advisory_lock(:c, hashtext(:s))"), {"c": _CLASS, "s": schema}
        ).scalar_one()
        if not got:
            holder = conn.execute(text(_HOLDER), {"c": _CLASS, "s": schema}).first()
            who = (
                f"{holder[0] or 'a bbperf run'} (server pid {holder[1]}, connected at {holder[2]} UTC)"
                if holder is not None
                else "another bbperf run"
            )
            raise ConfigError(
                f"{who} is running on schema {schema!r} of this database: wait for it to end "
                f"(or stop it) before this {what}, which would change the tables under it"
            )
        previous = os.environ.get(RUN_LOCK_ENV)
        os.environ[RUN_LOCK_ENV] = token
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(RUN_LOCK_ENV, None)
            else:
                os.environ[RUN_LOCK_ENV] = previous
            with contextlib.suppress(DBAPIError):
                conn.execute(
                    text("SELECT pg_advisory_unlock(:c, hashtext(:s))"), {"c": _CLASS, "s": schema}
                )
    finally:
        conn.close()
