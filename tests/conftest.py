"""Shared fixtures: one real embedded PostgreSQL 18 per test session, a PostgreSQL 15 cluster with
password auth over TCP, and fresh databases where a test needs isolation."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import Engine

from tests import pg15


@pytest.fixture(scope="session")
def bbperf_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private BBPERF_HOME with a running embedded server; the user's own server is never used."""
    from bbperf.server import EmbeddedServer

    home = Path(os.environ.get("BBPERF_TEST_HOME") or tmp_path_factory.mktemp("bbperf-home"))
    saved = {k: os.environ.get(k) for k in ("BBPERF_HOME", "BBPERF_DATABASE_URL", "BBPERF_SCHEMA")}
    os.environ["BBPERF_HOME"] = str(home)
    os.environ.pop("BBPERF_DATABASE_URL", None)
    os.environ.pop("BBPERF_SCHEMA", None)
    server = EmbeddedServer(home)
    server.start()
    yield home
    if not os.environ.get("BBPERF_TEST_HOME"):
        server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def server(bbperf_home: Path):  # type: ignore[no-untyped-def]
    from bbperf.server import EmbeddedServer

    return EmbeddedServer(bbperf_home)


@pytest.fixture(scope="session")
def pg_url(server) -> str:  # type: ignore[no-untyped-def]
    """URL of the embedded bench database."""
    return str(server.url())


def _admin(server) -> psycopg2.extensions.connection:  # type: ignore[no-untyped-def]
    conn = psycopg2.connect(server.url("postgres"))
    conn.autocommit = True
    return conn


@pytest.fixture
def fresh_url(server) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """URL of a brand-new, empty database on the embedded server, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = _admin(server)
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield str(server.url(name))
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture
def fresh_engine(fresh_url: str) -> Iterator[Engine]:
    from bbperf.pools import make_engine

    engine = make_engine(fresh_url, echo_pool=False)
    yield engine
    engine.dispose()


@pytest.fixture
def schema_engine(fresh_engine: Engine) -> Engine:
    """An engine on a fresh database holding bbperf's (empty) schema."""
    from bbperf.schema import create_schema

    create_schema(fresh_engine)
    return fresh_engine


@pytest.fixture(scope="session")
def pg15_cluster() -> Iterator[pg15.Cluster]:
    if not pg15.available():
        pytest.skip(f"PostgreSQL 15 binaries not found in {pg15.PG15_BIN}")
    cluster = pg15.start()
    yield cluster
    pg15.stop(cluster)


@pytest.fixture(params=["pg18", "pg15"])
def any_server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh bench database on PostgreSQL 18 (embedded) and on PostgreSQL 15 (password, TCP)."""
    if request.param == "pg18":
        yield request.getfixturevalue("fresh_url")
        return
    cluster: pg15.Cluster = request.getfixturevalue("pg15_cluster")
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(cluster.admin_url())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" OWNER {pg15.USER}')
    yield cluster.url.rsplit("/", 1)[0] + f"/{name}"
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()
