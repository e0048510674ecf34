"""The database bbperf works on: the embedded server by default, any PostgreSQL URL when given."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from bbperf.config import DEFAULT_SCHEMA, Settings, load_settings
from bbperf.errors import ConnectionFailed, QueryError, first_line
from bbperf.server import EmbeddedServer
from bbperf.urls import mask_text, mask_url, parse_url


def resolve_url(settings: Settings | None = None, *, start: bool = True) -> str:
    """The URL to use: ``settings.database_url`` or the embedded server's (started when needed)."""
    settings = settings or load_settings()
    if settings.database_url:
        parse_url(settings.database_url)  # fail early, in one line, on a malformed URL
        return settings.database_url
    server = EmbeddedServer(settings.home, database=settings.database)
    return server.start() if start else server.url()


def connect(
    database_url: str | None = None, environment: str = "development", **overrides: Any
) -> Engine:
    """An engine on bbperf's target, checked with a real round trip (fails fast, one clear line)."""
    from bbperf.pools import make_engine

    settings = load_settings(database_url=database_url)
    url = resolve_url(settings)
    engine = make_engine(url, environment, schema=settings.schema, **overrides)
    check_connection(engine)
    return engine


def schema_of(engine: Engine | Connection) -> str:
    """The schema bbperf owns on ``engine``'s target: the one it was connected with."""
    schema = engine.get_execution_options().get("bbperf_schema")
    return str(schema) if schema else DEFAULT_SCHEMA


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
