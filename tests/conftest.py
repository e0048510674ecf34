"""Shared fixtures: one real embedded PostgreSQL 18 per test session, a PostgreSQL 15 cluster with
password auth over TCP, and fresh databases where a test needs isolation."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from sqlalchemy import Engine

from bbperf.target import make_engine
from tests import pg15


@contextlib.contextmanager
def _engines() -> Iterator[Callable[..., Engine]]:
    """``make(url, environment="development", **kw)``: ``bbperf.target.make_engine`` with pool
    logging off unless asked; every engine made is disposed when the block ends."""
    made: list[Engine] = []

    def make(url: str, environment: str = "development", **kw: Any) -> Engine:
        kw.setdefault("echo_pool", False)
        made.append(make_engine(url, environment, **kw))
        return made[-1]

    try:
        yield make
    finally:
        for engine in made:
            engine.dispose()


@pytest.fixture
def make_test_engine() -> Iterator[Callable[..., Engine]]:
    """Engines a test makes, ``make_test_engine(url, environment="development", **kw)`` (the
    arguments of ``bbperf.target.make_engine``), disposed at the test's teardown. Ask for it after
    the fixtures that make the database, so the engines close before the database is dropped."""
    with _engines() as make:
        yield make


@pytest.fixture(scope="session")
def bbperf_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private BBPERF_HOME with a running embedded server; the user's own server is never used."""
    from bbperf.embedded import EmbeddedServer

    home = Path(os.environ.get("BBPERF_TEST_HOME") or tmp_path_factory.mktemp("bbperf-home"))
    saved = {k: os.environ.get(k) for k in ("BBPERF_HOME", "BBPERF_DATABASE_URL", "BBPERF_SCHEMA")}
    os.environ["BBPERF_HOME"] = str(home)
    os.environ.pop("BBPERF_DATABASE_URL", None)
    os.environ.pop("BBPERF_SCHEMA", None)
    server = EmbeddedServer(home)
    server.start()
    yield home
    if not os.environ.get("BBPERF_TEST_HOME"):
        from bbperf.shard.servers import stop_shards
        from bbperf.topology.companions import stop_companions
        from bbperf.topology.running import processes_of

        left_running = stop_shards(home) + stop_companions(home)
        server.stop()
        # No postgres, pgbouncer or load worker of this home may outlive the suite (or its own
        # tests): processes_of finds workers by their BBPERF_LOAD_HOME.
        survivors = processes_of(home)
        for proc in survivors:
            proc.kill()
        assert not survivors, f"processes of {home} survived: {[p.cmdline() for p in survivors]}"
        assert not left_running, f"tests left {left_running} running in {home}"
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def server(bbperf_home: Path):  # type: ignore[no-untyped-def]
    from bbperf.embedded import EmbeddedServer

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
def fresh_engine(fresh_url: str, make_test_engine: Callable[..., Engine]) -> Engine:
    return make_test_engine(fresh_url)


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
    yield request.getfixturevalue("pg15_url")


@pytest.fixture
def pg15_url(pg15_cluster: pg15.Cluster) -> Iterator[str]:
    """A fresh database on the PostgreSQL 15 cluster, reached over TCP with a password."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(pg15_cluster.admin_url())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" OWNER {pg15.USER}')
    yield pg15_cluster.url.rsplit("/", 1)[0] + f"/{name}"
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


# --- tiny dataset (issue #3): loaded once into a template database, cloned for tests that write ---

TINY_TEMPLATE = "bbperf_tiny_tpl"
TINY_AS_OF = "2026-11-01"


@pytest.fixture(scope="session")
def tiny_url(server) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A database on the embedded server holding profile tiny, scale 1, seed 42, as_of 2026-11-01.

    Read-only by convention (it is the template ``tiny_copy_url`` clones); dropped at session end.
    """
    from bbperf.generate import generate
    from bbperf.schema import create_schema

    conn = _admin(server)
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{TINY_TEMPLATE}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{TINY_TEMPLATE}"')
    url = str(server.url(TINY_TEMPLATE))
    with _engines() as make:
        engine = make(url)
        create_schema(engine)
        generate(engine, "tiny", 1.0, 42, TINY_AS_OF, progress=False)
    yield url
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{TINY_TEMPLATE}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="session")
def tiny_engine(tiny_url: str) -> Iterator[Engine]:
    """A session engine on the tiny dataset (do not write through it: use ``tiny_copy_url``)."""
    with _engines() as make:
        yield make(tiny_url)


@pytest.fixture
def tiny_copy_url(server, tiny_url: str, tiny_engine: Engine) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A private copy of the tiny dataset (CREATE DATABASE … TEMPLATE), dropped afterwards."""
    # A template must have no other sessions while it is copied.
    tiny_engine.dispose()
    name = f"t_tiny_{uuid.uuid4().hex[:10]}"
    conn = _admin(server)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (TINY_TEMPLATE,),
        )
        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TINY_TEMPLATE}"')
    yield str(server.url(name))
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture
def tiny_copy(tiny_copy_url: str, make_test_engine: Callable[..., Engine]) -> Engine:
    """An engine on a private copy of the tiny dataset."""
    return make_test_engine(tiny_copy_url)
