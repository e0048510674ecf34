"""Per-environment connection pool configurations (the BookedBarber values) and ``make_engine``.

PostgreSQL always gets a QueuePool with pre-ping; SQLite gets a StaticPool (in-memory, one shared
connection, ``check_same_thread`` off) or SQLAlchemy's default QueuePool for a file database.
sslmode and TCP keepalives only mean something on TCP: libpq ignores both on a Unix-domain socket, so
bbperf leaves them out for socket URLs such as the embedded server's (``bbperf pool show`` says so).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.pool import Pool, QueuePool, StaticPool

from bbperf.config import DEFAULT_SCHEMA, validate_identifier
from bbperf.errors import ConfigError
from bbperf.urls import is_sqlite, is_unix_socket, mask_url, parse_url

ENVIRONMENTS = ("development", "staging", "production")


@dataclass(frozen=True)
class PoolConfig:
    """One environment's pool and connection settings; times in seconds unless the name says ms."""

    environment: str
    pool_size: int
    max_overflow: int
    pool_timeout_s: int
    pool_recycle_s: int
    statement_timeout_ms: int
    application_name: str
    sslmode: str | None = None
    keepalives: dict[str, int] = field(default_factory=dict)
    echo_pool: bool = False
    pool_pre_ping: bool = True
    connect_timeout_s: int = 10

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_CONFIGS = {
    "production": PoolConfig(
        environment="production",
        pool_size=50,
        max_overflow=100,
        pool_timeout_s=30,
        pool_recycle_s=1800,
        statement_timeout_ms=60000,
        application_name="bookedbarber_prod",
        sslmode="require",
        keepalives={
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 5,
        },
    ),
    "staging": PoolConfig(
        environment="staging",
        pool_size=20,
        max_overflow=40,
        pool_timeout_s=30,
        pool_recycle_s=3600,
        statement_timeout_ms=30000,
        application_name="bookedbarber_staging",
        sslmode="prefer",
    ),
    "development": PoolConfig(
        environment="development",
        pool_size=10,
        max_overflow=20,
        pool_timeout_s=30,
        pool_recycle_s=3600,
        statement_timeout_ms=30000,
        application_name="bookedbarber_dev",
        echo_pool=True,
    ),
}


def pool_config(environment: str = "development", **overrides: Any) -> PoolConfig:
    """The named environment's config with ``overrides`` (field names of PoolConfig) applied."""
    try:
        config = _CONFIGS[environment]
    except KeyError:
        raise ConfigError(
            f"unknown environment {environment!r}: choose one of {', '.join(ENVIRONMENTS)}"
        ) from None
    unknown = set(overrides) - set(PoolConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown pool setting(s): {', '.join(sorted(unknown))}")
    return replace(config, **overrides)


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
    """An engine for ``url`` with ``environment``'s pool settings (``bbperf.target.connect`` resolves
    bbperf's own target and calls this).

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


def describe(config: PoolConfig, url: URL | str | None = None) -> dict[str, Any]:
    """The effective config as a secret-free dict: what ``bbperf pool show`` prints."""
    info: dict[str, Any] = config.to_dict()
    if url is not None:
        parsed = parse_url(url) if isinstance(url, str) else url
        kwargs = engine_kwargs(config, parsed)
        info["url"] = mask_url(parsed)
        info["dialect"] = parsed.get_backend_name()
        info["pool_class"] = getattr(kwargs.get("poolclass"), "__name__", "QueuePool")
        info["transport"] = (
            "file" if is_sqlite(parsed) else ("unix-socket" if is_unix_socket(parsed) else "tcp")
        )
        info["connect_args"] = kwargs.get("connect_args", {})
        if info["transport"] == "unix-socket" and (config.sslmode or config.keepalives):
            info["note"] = "sslmode and keepalives do not apply to a Unix-domain socket; omitted"
    return info
