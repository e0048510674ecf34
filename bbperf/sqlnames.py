"""SQL identifiers quoted one way: every schema, table, index and function name bbperf writes into SQL."""

from __future__ import annotations

import functools
import re

# PostgreSQL's quote_ident() leaves a name bare only when it is all lower-case letters, digits and
# underscores, does not start with a digit, and is not a keyword outside the unreserved category.
_PLAIN = re.compile(r"[a-z_][a-z0-9_]*")


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


def quote_if_needed(name: str) -> str:
    """``name`` as the server's ``quote_ident()`` writes it: bare when that reads the same
    (``bbperf``, ``idx_a``), quoted otherwise (``"Upper"``, ``"user"``). For SQL shown to people."""
    if _PLAIN.fullmatch(name) and name not in _keywords_to_quote():
        return name
    return quote(name)


def qualified_if_needed(schema: str, name: str) -> str:
    """``schema.name`` with each part as ``quote_if_needed`` writes it. For SQL shown to people."""
    return f"{quote_if_needed(schema)}.{quote_if_needed(name)}"


@functools.cache
def _keywords_to_quote() -> frozenset[str]:
    # pglast's import costs ~70 ms, paid only when SQL is written for display.
    from pglast.keywords import COL_NAME_KEYWORDS, RESERVED_KEYWORDS, TYPE_FUNC_NAME_KEYWORDS

    return frozenset(RESERVED_KEYWORDS | COL_NAME_KEYWORDS | TYPE_FUNC_NAME_KEYWORDS)
