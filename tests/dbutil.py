"""Small helpers the tests share for looking at a database from outside bbperf."""

from __future__ import annotations

import psycopg2


def scalar(url: str, sql: str) -> object:
    """The first column of the first row of ``sql``, on a connection of its own."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    finally:
        conn.close()
