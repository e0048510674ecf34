"""Pool configs per environment equal the BookedBarber table; dialect detection; make_engine."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.pool import QueuePool, StaticPool

from bbperf.errors import ConfigError
from bbperf.pool.describe import describe
from bbperf.poolconfig import pool_config
from bbperf.target import make_engine

SEED = {
    "production": (50, 100, 30, 1800, 60000, "require", "bookedbarber_prod", False),
    "staging": (20, 40, 30, 3600, 30000, "prefer", "bookedbarber_staging", False),
    "development": (10, 20, 30, 3600, 30000, None, "bookedbarber_dev", True),
}
TCP_URL = "postgresql://app:pw@db.example.com:5432/bb"


@pytest.mark.parametrize("env", sorted(SEED))
def test_engine_pool_equals_seed_table(env: str) -> None:
    size, overflow, timeout, recycle, stmt_ms, sslmode, app, echo = SEED[env]
    engine = make_engine(TCP_URL, env)
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.size() == size
    assert pool._max_overflow == overflow
    assert pool._timeout == timeout
    assert pool._recycle == recycle
    assert pool._pre_ping is True
    assert bool(pool.echo) is echo
    config = pool_config(env)
    assert config.statement_timeout_ms == stmt_ms
    assert config.application_name == app
    assert config.sslmode == sslmode
    assert config.connect_timeout_s == 10


def test_production_keepalives_and_ssl_on_tcp() -> None:
    info = describe(pool_config("production"), TCP_URL)
    args = info["connect_args"]
    assert args["sslmode"] == "require"
    assert (
        args["keepalives"],
        args["keepalives_idle"],
        args["keepalives_interval"],
        args["keepalives_count"],
    ) == (1, 30, 10, 5)
    assert args["options"] == "-c statement_timeout=60000"
    assert args["connect_timeout"] == 10
    assert "pw" not in str(info)
    assert info["transport"] == "tcp"


def test_unix_socket_omits_tcp_only_settings() -> None:
    info = describe(pool_config("production"), "postgresql://postgres@/bbperf?host=/tmp/sock")
    assert "sslmode" not in info["connect_args"]
    assert "keepalives" not in info["connect_args"]
    assert info["transport"] == "unix-socket"
    assert "Unix-domain socket" in info["note"]


def test_sqlite_memory_gets_static_pool() -> None:
    engine = make_engine("sqlite://", "production")
    assert isinstance(engine.pool, StaticPool)
    with engine.connect() as conn:
        assert conn.execute(text("select 1")).scalar() == 1


def test_sqlite_file_gets_queue_pool(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert isinstance(engine.pool, QueuePool)
    with engine.connect() as conn:
        assert conn.execute(text("select 2")).scalar() == 2


def test_bare_postgresql_url_uses_psycopg2() -> None:
    engine = make_engine("postgresql://u@h/db")
    assert engine.dialect.driver == "psycopg2"


@pytest.mark.parametrize("bad", ["qa", "", "Production"])
def test_unknown_environment(bad: str) -> None:
    with pytest.raises(ConfigError, match="unknown environment"):
        pool_config(bad)


def test_overrides_apply_and_unknown_override_rejected() -> None:
    assert pool_config("staging", pool_size=3).pool_size == 3
    with pytest.raises(ConfigError, match="unknown pool setting"):
        pool_config("staging", pool_sizes=3)


def test_embedded_connection_carries_application_name_and_timeout(pg_url: str) -> None:
    engine = make_engine(pg_url, "staging")
    with engine.connect() as conn:
        assert conn.execute(text("show application_name")).scalar() == "bookedbarber_staging"
        assert conn.execute(text("show statement_timeout")).scalar() == "30s"
        assert conn.execute(text("show search_path")).scalar().startswith("bbperf")
    engine.dispose()
