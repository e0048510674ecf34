"""The database bbperf works on, resolved once: the embedded server by default, any PostgreSQL URL
when given, always with the one schema bbperf owns there.

``connect()`` is the only place settings become an engine. The engine carries its schema (the
``bbperf_schema`` execution option, read with ``schema_of``) and puts it first on every connection's
``search_path`` — followed only by ``pg_catalog`` — so unqualified SQL can never fall through to
``public``. Library code takes the engine and never reads environment variables or settings again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError

from bbperf.config import DEFAULT_SCHEMA, Settings, load_settings
from bbperf.embedded import EmbeddedServer
from bbperf.errors import ConnectionFailed, QueryError, first_line
from bbperf.ownership import owns, share_ownership
from bbperf.roles import DML_ROLE, QUERY_ROLE, ensure_roles, privilege_line
from bbperf.urls import mask_text, mask_url, parse_url


def resolve_url(settings: Settings, *, start: bool = True) -> str:
    """The URL to use: ``settings.database_url`` or the embedded server's (started when needed)."""
    if settings.database_url:
        parse_url(settings.database_url)  # fail early, in one line, on a malformed URL
        return settings.database_url
    server = EmbeddedServer(settings.home, database=settings.database)
    return server.start() if start else server.url()


def connect(
    database_url: str | None = None,
    *,
    schema: str | None = None,
    environment: str = "development",
    home: str | None = None,
    check: bool = True,
    **overrides: Any,
) -> Engine:
    """An engine on bbperf's target, carrying its schema; checked with a real round trip.

    ``database_url`` / ``schema`` / ``home`` override ``BBPERF_DATABASE_URL`` / ``BBPERF_SCHEMA`` /
    ``BBPERF_HOME``; ``environment`` picks the pool settings; ``overrides`` replace PoolConfig fields.
    """
    settings = load_settings(database_url=database_url, schema=schema, home=home)
    return engine_for(settings, environment, check=check, **overrides)


def engine_for(
    settings: Settings, environment: str = "development", *, check: bool = True, **overrides: Any
) -> Engine:
    """The engine for already-resolved ``settings`` (what ``connect`` and the CLI use)."""
    from bbperf.pool.config import make_engine

    engine = make_engine(resolve_url(settings), environment, schema=settings.schema, **overrides)
    if check:
        check_connection(engine)
    return engine


def schema_of(engine: Engine | Connection) -> str:
    """The schema bbperf owns on ``engine``'s target: the one it was connected with."""
    schema = engine.get_execution_options().get("bbperf_schema")
    return str(schema) if schema else DEFAULT_SCHEMA


def is_embedded(engine: Engine | Connection) -> bool:
    """True when ``engine`` reaches a server bbperf owns, as the server itself proves it
    (``bbperf.ownership.owns``: its data directory and system identifier, never the URL)."""
    return owns(engine)


def check_connection(engine: Engine) -> str:
    """Run ``SELECT version()``; translate driver failures into ``ConnectionFailed``."""
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SELECT version()")).scalar_one())
    except OperationalError as exc:
        raise ConnectionFailed(describe_db_error(exc, engine)) from None


def describe_db_error(exc: DBAPIError, engine: Engine | None = None) -> str:
    """One line from a driver error: the server's first message line, passwords masked."""
    first = first_line(exc)
    where = f" ({mask_url(engine.url)})" if engine is not None else ""
    if "password authentication failed" in first or "no password supplied" in first:
        return f"authentication failed{where}: {mask_text(first)}"
    if "timeout expired" in first or "could not connect" in first or "Connection refused" in first:
        return f"cannot reach the database server{where}: {mask_text(first)}"
    return f"{mask_text(first)}{where}"


def query_error(exc: DBAPIError, sql: str | None = None) -> QueryError:
    """A QueryError from a failed statement, naming the statement's first line."""
    first = first_line(exc)
    snippet = ""
    if sql:
        line = " ".join(sql.split())
        snippet = f" in: {line[:80]}{'…' if len(line) > 80 else ''}"
    return QueryError(f"{mask_text(first)}{snippet}")


@contextmanager
def wait_callback(callback: Callable[[Any], None] | None) -> Iterator[None]:
    """psycopg2's process-wide wait callback set to ``callback`` (None: libpq waits in C) for the
    block, then put back. The CLI installs one so Ctrl-C cancels a running statement; psycopg2
    refuses COPY under any, so loads lift it for their COPY stream."""
    import psycopg2.extensions

    previous = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(callback)
    try:
        yield
    finally:
        psycopg2.extensions.set_wait_callback(previous)


def user_engine(engine: Engine, *, writes: bool = False) -> Engine:
    """The engine a user's own SQL runs on: on bbperf's own server, one that logs in as a
    least-privilege role (``bbperf.roles``: ``bbperf_query``, or ``bbperf_dml`` when ``writes`` for a
    rolled-back EXPLAIN ANALYZE of DML), so PostgreSQL refuses what bbperf's checks miss; on any other
    server the engine itself (the user's own role: see ``privilege_note``). Made once per engine."""
    if not is_embedded(engine):
        return engine
    from bbperf.pool.config import make_engine

    options = engine.get_execution_options()
    cache: dict[str, Engine] | None = options.get("bbperf_user_engines")
    if cache is None:
        raw = engine.raw_connection()
        try:
            raw.dbapi_connection.autocommit = True  # type: ignore[union-attr]
            ensure_roles(raw.dbapi_connection)
        finally:
            raw.close()
        cache = {}
        engine.update_execution_options(bbperf_user_engines=cache)
        made_for = cache

        @event.listens_for(engine, "engine_disposed")
        def _dispose_role_engines(_: Engine) -> None:
            for role_engine in made_for.values():
                role_engine.dispose()

    role = DML_ROLE if writes else QUERY_ROLE
    if role not in cache:
        url = engine.url.set(username=role, password=None)
        made = make_engine(url, schema=schema_of(engine), echo_pool=False)
        made.update_execution_options(bbperf_role=role)
        share_ownership(made, engine)  # the role may not read data_directory itself
        cache[role] = made
    return cache[role]


def privilege_note(engine: Engine) -> str | None:
    """One line when ``engine`` is not bbperf's own server and its role can do more than bbperf
    needs there (a superuser, or writes outside bbperf's schema); None otherwise."""
    if is_embedded(engine):
        return None
    raw = engine.raw_connection()
    try:
        return privilege_line(raw.dbapi_connection, schema_of(engine))
    finally:
        raw.rollback()
        raw.close()
