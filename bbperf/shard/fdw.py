"""The coordinator's database-level objects for sharding, all postgres_fdw's: the extension (created
into bbperf's schema when the database lacks it), one foreign server per shard named
``bbperf_<schema>_shard_<k>`` and its user mappings (the current user's, and on bbperf's own server
its least-privilege login roles'); and the one line a statement that cannot reach a shard fails with.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, text

from bbperf.catalog import extension_schema
from bbperf.errors import QueryError
from bbperf.roles import ROLES, ensure_roles
from bbperf.sqlnames import quote
from bbperf.urls import mask_text, mask_url, parse_url

FDW = "postgres_fdw"


# Rows per remote INSERT while copying, and per fetch while reading (postgres_fdw's defaults are
# 1 and 100: a round trip per row would dominate the copy).
SERVER_OPTIONS = {"batch_size": "1000", "fetch_size": "10000", "async_capable": "true"}


_SERVER_NAME = re.compile(r'"(bbperf_.*_shard_(\d+))"')


def server_name(schema: str, index: int) -> str:
    """The foreign server of shard ``index`` for bbperf's ``schema`` (bbperf-owned by its name)."""
    return f"bbperf_{schema}_shard_{index}"


def shard_error(exc: BaseException) -> QueryError | None:
    """One line naming the shard a failed statement could not reach (None when the failure names
    no shard of bbperf's): what every command that touches a dead shard says."""
    first = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
    match = _SERVER_NAME.search(first[0]) if first else None
    if match is None:
        return None
    return QueryError(
        f"shard {match.group(2)} (foreign server {match.group(1)}) is unreachable: "
        f"{mask_text(first[0])}; `bbperf shard status` names the shards that run, "
        "`bbperf shard start` restarts bbperf's own"
    )


# -- connection details of a shard, as postgres_fdw options -------------------------------------
def fdw_options(url: str) -> tuple[dict[str, str], dict[str, str]]:
    """(server options, user mapping options) reaching ``url``: host (a socket directory or a host
    name), port and database for the server; user and password for the mapping."""
    parsed = parse_url(url)
    server: dict[str, str] = {"dbname": parsed.database or "postgres"}
    query = {k: (v[0] if isinstance(v, tuple) else v) for k, v in parsed.query.items()}
    host = parsed.host or query.get("host")
    if host:
        server["host"] = str(host)
    port = parsed.port or query.get("port")
    if port:
        server["port"] = str(port)
    for key in ("hostaddr", "sslmode"):
        if query.get(key):
            server[key] = str(query[key])
    mapping = {"user": parsed.username or "postgres"}
    password = parsed.password or query.get("password")
    if password:
        mapping["password"] = str(password)
    return server, mapping


def options_sql(conn: Connection, options: dict[str, str]) -> str:
    """``OPTIONS (key 'value', …)`` with every value quoted by the server (``format('%L')``)."""
    parts = [
        conn.execute(
            text("SELECT format('%I %L', CAST(:k AS text), CAST(:v AS text))"), {"k": k, "v": v}
        ).scalar_one()
        for k, v in options.items()
    ]
    return f"OPTIONS ({', '.join(parts)})"


def create_servers(conn: Connection, schema: str, urls: Sequence[str]) -> list[dict[str, Any]]:
    """One foreign server and user mapping per shard; the records ``drop`` reads back."""
    shards = []
    for index, url in enumerate(urls):
        name = server_name(schema, index)
        options, mapping = fdw_options(url)
        conn.execute(
            text(
                f"CREATE SERVER {quote(name)} FOREIGN DATA WRAPPER {FDW} "
                + options_sql(conn, {**options, **SERVER_OPTIONS})
            )
        )
        password = mapping.pop("password", None)
        conn.execute(
            text(
                f"CREATE USER MAPPING FOR CURRENT_USER SERVER {quote(name)} "
                + options_sql(conn, mapping)
            )
        )
        roles: list[str] = []
        if password is not None:
            _add_password(conn, name, password)
        else:
            roles = _map_query_roles(conn, name, mapping)
        shards.append({"index": index, "server": name, "url": mask_url(url), "roles": roles})
    return shards


def ensure_own_roles(engine: Engine) -> None:
    """bbperf's login roles on its own server, made now (as ``user_engine`` would on first use) so
    that ``apply`` can map them to the shards."""
    raw = engine.raw_connection()
    try:
        raw.dbapi_connection.autocommit = True  # type: ignore[union-attr]
        ensure_roles(raw.dbapi_connection)
    finally:
        raw.dbapi_connection.autocommit = False  # type: ignore[union-attr]  # back to the pool as it came
        raw.close()


def _map_query_roles(conn: Connection, server: str, mapping: dict[str, str]) -> list[str]:
    """On a server where bbperf's least-privilege roles exist (its own: ``bbperf.roles``) and it
    runs as a superuser, map those roles too, so ``explain``, ``advise`` and replays, which log in
    as them, read the sharded tables. Only a passwordless shard (bbperf's own, trust over its
    private socket) is mapped so: the roles reach it as the mapping's user, and what they may do
    with a foreign table is what the coordinator grants them on it (SELECT; DML only inside the
    rolled-back EXPLAIN ANALYZE of ``bbperf_dml``). Returns the roles mapped."""
    superuser = conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
    if not superuser.scalar():
        return []
    roles = list(
        conn.execute(
            text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:r) ORDER BY rolname"),
            {"r": list(ROLES)},
        ).scalars()
    )
    # A role that is no superuser must send a password unless the mapping says otherwise.
    options = options_sql(conn, {**mapping, "password_required": "false"})
    for role in roles:
        conn.execute(
            text(f"CREATE USER MAPPING FOR {quote(role)} SERVER {quote(server)} {options}")
        )
    return roles


def _add_password(conn: Connection, server: str, password: str) -> None:
    """Add ``password`` to the user mapping of ``server`` without writing it into any statement's
    text (pg_stat_statements keeps utility statements' text): it travels as a bound value into a
    transaction-local setting, which a DO block reads and quotes on the server."""
    conn.execute(text("SELECT set_config('bbperf.shard_password', :p, true)"), {"p": password})
    dollar = "$bbperf$"
    conn.execute(
        text(
            f"DO {dollar} BEGIN EXECUTE format('ALTER USER MAPPING FOR CURRENT_USER SERVER %I "
            f"OPTIONS (ADD password %L)', {_literal(server)}, "
            f"current_setting('bbperf.shard_password')); END {dollar}"
        )
    )
    conn.execute(text("SELECT set_config('bbperf.shard_password', '', true)"))


def _literal(value: str) -> str:
    """``value`` as a SQL string literal (for a server name bbperf made: letters, digits, _)."""
    return "'" + value.replace("'", "''") + "'"


def ensure_fdw(conn: Connection, schema: str) -> bool:
    """Create postgres_fdw in bbperf's schema when the database lacks it; True when created here."""
    if extension_schema(conn, FDW) is not None:
        return False
    conn.execute(text(f"CREATE EXTENSION {FDW} SCHEMA {quote(schema)}"))
    return True


def drop_servers(conn: Connection, schema: str, record: dict[str, Any]) -> list[str]:
    """Drop the user mappings and servers ``apply`` recorded, and postgres_fdw when ``apply``
    created it and no other server uses it now; return what was dropped."""
    removed = []
    for shard in record["shards"]:
        name = quote(shard["server"])
        for role in shard.get("roles", []):
            conn.execute(text(f"DROP USER MAPPING IF EXISTS FOR {quote(role)} SERVER {name}"))
        conn.execute(text(f"DROP USER MAPPING IF EXISTS FOR CURRENT_USER SERVER {name}"))
        conn.execute(text(f"DROP SERVER IF EXISTS {name}"))
        removed.append(f"server {shard['server']}")
    if record.get("created_extension"):
        others = conn.execute(
            text(
                "SELECT count(*) FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w "
                "ON w.oid = s.srvfdw WHERE w.fdwname = :f"
            ),
            {"f": FDW},
        ).scalar_one()
        if not others:
            conn.execute(text(f"DROP EXTENSION {FDW}"))
            removed.append(f"extension {FDW}")
    return removed
