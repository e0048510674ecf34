"""The least-privilege roles a user's SQL runs as, so that PostgreSQL itself refuses side effects.

On the embedded server bbperf owns, every statement a user types (``explain``, ``advise``,
``measure`` through the CLI, ``%sql``/``%%explain``/``%%bench``, ``pool load --workload``,
``workload replay``) runs on a connection that logs in as one of two roles — never as the superuser:

* ``bbperf_query`` reads: USAGE on the schemas, SELECT on the tables, and ``pg_read_all_stats`` for
  the statistics views. It holds no privilege on any sequence and may not run the functions whose
  effects escape a transaction (revoked from PUBLIC on bbperf's own server; most are superuser-only
  already: statistics resets, server files, replication slots, reloading the configuration).
* ``bbperf_dml`` is the same plus INSERT/UPDATE/DELETE on the tables and USAGE on their sequences
  (an INSERT may draw its id; ``setval`` needs UPDATE, which it does not have). bbperf uses it only
  for EXPLAIN ANALYZE of a data-modifying statement, inside a transaction that is always rolled back.

Neither role can ``SET ROLE`` back to the superuser: it is the session user, not a role switched
to. ``role_sql(schema)`` prints the statements a DBA runs to give a role the same rights on their
own server.
"""

from __future__ import annotations

from typing import Any

from bbperf.sqlnames import quote

QUERY_ROLE = "bbperf_query"
DML_ROLE = "bbperf_dml"
ROLES = (QUERY_ROLE, DML_ROLE)

# Functions PUBLIC may call by default whose effects a rolled-back transaction does not undo
# (session-level advisory locks, signalling other backends, large-object removal, dblink). bbperf's
# own server revokes them from PUBLIC; the superuser bbperf itself runs as is not affected.
ESCAPING_FUNCTIONS = (
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "lo_unlink",
    "lo_import",
    "lo_export",
    "lo_from_bytea",
    "lo_put",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_connect_u",
    "dblink_send_query",
)

_READY = f"""
SELECT EXISTS (
    SELECT 1 FROM pg_default_acl d
    WHERE d.defaclobjtype = 'n' AND d.defaclrole = current_user::regrole
      AND array_to_string(d.defaclacl, ',') LIKE '%{QUERY_ROLE}=%'
) AND (SELECT count(*) FROM pg_roles WHERE rolname IN ('{QUERY_ROLE}', '{DML_ROLE}')) = 2
"""


def ensure_roles(conn: Any) -> None:
    """Create both roles and grant their rights in the current database (idempotent); ``conn`` is a
    psycopg2 connection of the superuser on bbperf's own server, in autocommit."""
    with conn.cursor() as cur:
        cur.execute(_READY)
        if cur.fetchone()[0]:
            return
        cur.execute("BEGIN")
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('bbperf roles'))")
        for role in ROLES:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if cur.fetchone() is None:
                cur.execute(
                    f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                    "NOREPLICATION NOBYPASSRLS"
                )
        cur.execute(f"GRANT pg_read_all_stats TO {QUERY_ROLE}, {DML_ROLE}")
        cur.execute("SELECT current_database()")
        database = cur.fetchone()[0]
        cur.execute(f"REVOKE TEMPORARY, CREATE ON DATABASE {quote(database)} FROM PUBLIC")
        cur.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
            "AND nspname <> 'information_schema'"
        )
        for (schema,) in cur.fetchall():
            cur.execute(_schema_grants(schema))
        cur.execute(
            f"ALTER DEFAULT PRIVILEGES GRANT USAGE ON SCHEMAS TO {QUERY_ROLE}, {DML_ROLE};"
            f"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO {QUERY_ROLE};"
            f"ALTER DEFAULT PRIVILEGES GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {DML_ROLE};"
            f"ALTER DEFAULT PRIVILEGES GRANT USAGE ON SEQUENCES TO {DML_ROLE}"
        )
        cur.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.proname = ANY(%s)",
            (list(ESCAPING_FUNCTIONS),),
        )
        for (signature,) in cur.fetchall():
            cur.execute(f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC")
        cur.execute("COMMIT")


def _schema_grants(schema: str) -> str:
    quoted = quote(schema)
    return (
        f"GRANT USAGE ON SCHEMA {quoted} TO {QUERY_ROLE}, {DML_ROLE};"
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {quoted} TO {QUERY_ROLE};"
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {quoted} TO {DML_ROLE};"
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {quoted} TO {DML_ROLE}"
    )


def role_sql(schema: str, role: str = "bbperf_analyst") -> str:
    """The statements a DBA runs on their own server for a role bbperf can use safely there:
    it logs in, reads the statistics views, reads the schemas it is given, and writes only in
    bbperf's schema (which it owns, so bbperf can create its tables there)."""
    quoted = quote(schema)
    return "\n".join(
        [
            "-- A least-privilege role for bbperf (run as a superuser or a role with CREATEROLE).",
            "-- Replace the password, and repeat the GRANTs on every schema you want analysed.",
            f"CREATE ROLE {role} LOGIN PASSWORD 'change me' NOSUPERUSER NOCREATEDB NOCREATEROLE "
            "NOREPLICATION NOBYPASSRLS;",
            f"GRANT pg_read_all_stats TO {role};  -- pg_stat_statements, pg_stat_activity",
            f"CREATE SCHEMA IF NOT EXISTS {quoted} AUTHORIZATION {role};  -- bbperf writes only here",
            f"GRANT USAGE ON SCHEMA public TO {role};",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};",
            "-- Optional: index advice without building anything needs the hypopg extension,",
            "-- created once by a superuser: CREATE EXTENSION hypopg;",
            f"-- Then: BBPERF_DATABASE_URL=postgresql://{role}@<host>/<database> bbperf …",
        ]
    )


def privilege_line(conn: Any, schema: str) -> str | None:
    """One line when a psycopg2 connection's role can do more than bbperf needs on a server bbperf
    does not own: a superuser, or a role that may write tables outside bbperf's schema."""
    with conn.cursor() as cur:
        cur.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        user, superuser = cur.fetchone()
        if superuser:
            return (
                f"connected as superuser {user}: only bbperf's checks and read-only or rolled-back "
                "transactions stand between your SQL and your data; `bbperf role sql` prints a "
                "least-privilege role to use instead"
            )
        cur.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname <> %s AND n.nspname NOT LIKE 'pg\\_%%' "
            "AND n.nspname <> 'information_schema' "
            "AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')",
            (schema,),
        )
        writable = cur.fetchone()[0]
        if writable:
            return (
                f"role {user} may write {writable} table(s) outside bbperf's schema {schema}: "
                "`bbperf role sql` prints a least-privilege role to use instead"
            )
    return None
