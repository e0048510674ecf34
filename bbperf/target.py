"""The database bbperf works on, resolved once: the embedded server by default, any PostgreSQL URL
when given, always with the one schema bbperf owns there.

``connect()`` is the only place settings become an engine. The engine carries its schema (the
``bbperf_schema`` execution option, read with ``schema_of``) and puts it first on every connection's
``search_path`` — followed only by ``pg_catalog`` — so unqualified SQL can never fall through to
``public``. Library code takes the engine and never reads environment variables or settings again.

Engines are made here from a ``bbperf.poolconfig.PoolConfig``: PostgreSQL always gets a QueuePool
with pre-ping; SQLite gets a StaticPool (in-memory, one shared connection, ``check_same_thread`` off)
or SQLAlchemy's default QueuePool for a file database. sslmode and TCP keepalives only mean something
on TCP: libpq ignores both on a Unix-domain socket, so bbperf leaves them out for socket URLs such as
the embedded server's (``bbperf pool show`` says so).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import Pool, QueuePool, StaticPool

from bbperf.config import DEFAULT_SCHEMA, Settings, load_settings, validate_identifier
from bbperf.embedded import resolve_url
from bbperf.errors import ConnectionFailed, QueryError, first_line
from bbperf.ownership import owns, share_ownership
from bbperf.poolconfig import PoolConfig, pool_config
from bbperf.roles import DML_ROLE, QUERY_ROLE, ensure_roles, privilege_line
from bbperf.urls import is_sqlite, is_unix_socket, mask_text, mask_url, parse_url


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
    engine = make_engine(resolve_url(settings), environment, schema=settings.schema, **overrides)
    if check:
        check_connection(engine)
    return engine


def connect_args(config: PoolConfig, url: URL, search_path: str | None = None) -> dict[str, Any]:
    """libpq parameters for ``config`` on ``url``: TCP-only settings are dropped for Unix sockets."""
    options = f"-c statement_timeout={config.statement_timeout_ms}"
    if search_path:
        # Only bbperf's schema, then the catalog: unqualified names never reach public.
        options += f" -c search_path={search_path},pg_catalog"
    args: dict[str, Any] = {
        "connect_timeout": config.connect_timeout_s,
        "application_name": config.application_name,
        "options": options,
    }
    if not is_unix_socket(url):
        if config.sslmode and "sslmode" not in url.query:
            args["sslmode"] = config.sslmode
        args.update(config.keepalives)
    return args


def engine_kwargs(config: PoolConfig, url: URL, search_path: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``sqlalchemy.create_engine`` that realise ``config`` on ``url``."""
    if is_sqlite(url):
        if url.database in (None, "", ":memory:"):
            return {
                "poolclass": StaticPool,
                "connect_args": {"check_same_thread": False},
            }
        # A file database: SQLAlchemy 2 defaults to QueuePool for files; allow use across threads.
        return {"connect_args": {"check_same_thread": False}, "pool_pre_ping": True}
    return {
        "poolclass": QueuePool,
        "pool_size": config.pool_size,
        "max_overflow": config.max_overflow,
        "pool_timeout": config.pool_timeout_s,
        "pool_recycle": config.pool_recycle_s,
        "pool_pre_ping": config.pool_pre_ping,
        "echo_pool": config.echo_pool,
        "connect_args": connect_args(config, url, search_path),
    }


def make_engine(
    url: str | URL,
    environment: str = "development",
    *,
    schema: str | None = None,
    poolclass: type[Pool] | None = None,
    **overrides: Any,
) -> Engine:
    """An engine for ``url`` with ``environment``'s pool settings (``connect`` resolves bbperf's own
    target and calls this).

    ``overrides`` replace PoolConfig fields (``pool_size=5``, ``pool_pre_ping=False``, ...).
    ``schema`` (default ``bbperf``) is the schema the engine carries and the only one on its
    search_path besides ``pg_catalog``.
    ``poolclass`` (e.g. NullPool) replaces the environment's pool; only its connection settings stay.
    """
    config = pool_config(environment, **overrides)
    parsed = parse_url(url) if isinstance(url, str) else url
    if schema is None and not is_sqlite(parsed):
        schema = DEFAULT_SCHEMA
    kwargs = engine_kwargs(config, parsed, search_path=schema)
    if poolclass is not None:
        kwargs = {"poolclass": poolclass, "connect_args": kwargs["connect_args"]}
    engine = create_engine(parsed, **kwargs)
    if schema is not None:
        validate_identifier(schema, "schema")
        # The engine carries its schema: library code reads it with bbperf.target.schema_of.
        engine.update_execution_options(bbperf_schema=schema)
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


def user_engine(engine: Engine, *, writes: bool = False) -> Engine:
    """The engine a user's own SQL runs on: on bbperf's own server, one that logs in as a
    least-privilege role (``bbperf.roles``: ``bbperf_query``, or ``bbperf_dml`` when ``writes`` for a
    rolled-back EXPLAIN ANALYZE of DML), so PostgreSQL refuses what bbperf's checks miss; on any other
    server the engine itself (the user's own role: see ``privilege_note``). Made once per engine."""
    if not is_embedded(engine):
        return engine
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
