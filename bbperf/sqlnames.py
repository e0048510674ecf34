"""SQL identifiers quoted one way: every schema, table, index and function name bbperf writes into SQL."""

from __future__ import annotations


def quote(name: str) -> str:
    """``name`` as a PostgreSQL delimited identifier: ``"`` doubled, the whole wrapped in ``"``.

    Always quoting keeps the name exactly as given (case, spaces, keywords); it is what libpq's
    ``PQescapeIdentifier`` (psycopg2's ``quote_ident``) returns, without needing a connection, so
    DDL can be built, shown and saved before any server is reached.
    """
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    """``"schema"."name"``: ``name`` in ``schema``, each part quoted."""
    return f"{quote(schema)}.{quote(name)}"
