"""bbperf.sqlnames: the one way identifiers are quoted, checked by hand and against the server."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions
import pytest

from bbperf.sqlnames import qualified, qualified_if_needed, quote, quote_if_needed

NASTY = [
    "bbperf",
    "Upper",
    "with space",
    'dq"inside',
    '"',
    '""',
    "semi;colon --",
    "it's",
    "select",
    "ünïcödé_名前",
    "a.b",
    "trailing ",
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bbperf", '"bbperf"'),
        ("Upper", '"Upper"'),
        ("with space", '"with space"'),
        ('dq"inside', '"dq""inside"'),
        ('"', '""""'),
        ("it's", '"it\'s"'),
        ("ünïcödé_名前", '"ünïcödé_名前"'),
    ],
)
def test_quote_doubles_the_double_quote_and_wraps(name: str, expected: str) -> None:
    assert quote(name) == expected


def test_qualified_quotes_each_part() -> None:
    assert qualified("bbperf", "bbperf_meta") == '"bbperf"."bbperf_meta"'
    assert qualified('my "s"', "a.b") == '"my ""s"""."a.b"'


def test_quote_matches_the_servers_quote_ident_and_round_trips(fresh_url: str) -> None:
    conn = psycopg2.connect(fresh_url)
    try:
        with conn.cursor() as cur:
            for name in NASTY:
                assert quote(name) == psycopg2.extensions.quote_ident(name, conn), name
                cur.execute(f"CREATE SCHEMA {quote(name)}")
                cur.execute(f"CREATE TABLE {qualified(name, name)} (x int)")
                cur.execute(
                    "SELECT n.nspname, c.relname FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s::regclass",
                    (qualified(name, name),),
                )
                assert cur.fetchone() == (name, name)
    finally:
        conn.rollback()
        conn.close()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bbperf", "bbperf"),
        ("idx_a", "idx_a"),
        ("_x1", "_x1"),
        ("name", "name"),
        ("user", '"user"'),
        ("int", '"int"'),
        ("left", '"left"'),
        ("Upper", '"Upper"'),
        ("1st", '"1st"'),
        ("a$b", '"a$b"'),
        ("with space", '"with space"'),
        ('dq"inside', '"dq""inside"'),
        ("ünïcödé", '"ünïcödé"'),
    ],
)
def test_quote_if_needed_leaves_plain_names_bare(name: str, expected: str) -> None:
    assert quote_if_needed(name) == expected


def test_qualified_if_needed() -> None:
    assert qualified_if_needed("bbperf", "appointments") == "bbperf.appointments"
    assert qualified_if_needed("My Schema", "order") == '"My Schema"."order"'


def test_quote_if_needed_matches_the_servers_quote_ident_on_every_keyword(fresh_url: str) -> None:
    conn = psycopg2.connect(fresh_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT word FROM pg_get_keywords()")
            names = [r[0] for r in cur.fetchall()] + NASTY + ["a$b", "1st", "_x1"]
            cur.execute("SELECT n, quote_ident(n) FROM unnest(%s::text[]) AS n", (names,))
            mismatched = {n: (server, quote_if_needed(n)) for n, server in cur.fetchall()}
            mismatched = {n: v for n, v in mismatched.items() if v[0] != v[1]}
        assert not mismatched
    finally:
        conn.close()
