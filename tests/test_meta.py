"""bbperf_meta read and written through bbperf.meta only, on a real schema: write, replace or keep,
merge, add to a counter, delete; a schema without the table answers False/None, never an error."""

from __future__ import annotations

from sqlalchemy import Engine, text

from bbperf import meta
from bbperf.target import schema_of


def test_write_read_replace_keep_and_delete(schema_engine: Engine) -> None:
    schema = schema_of(schema_engine)
    with schema_engine.begin() as conn:
        assert meta.exists(conn, schema)
        assert meta.read(conn, schema, "probe") is None
        meta.write(conn, schema, "probe", {"a": 1, "b": [1, 2]})
        assert meta.read(conn, schema, "probe") == {"a": 1, "b": [1, 2]}
        meta.write(conn, schema, "probe", {"a": 2})
        assert meta.read(conn, schema, "probe") == {"a": 2}
        meta.write(conn, schema, "probe", {"a": 3}, replace=False)
        assert meta.read(conn, schema, "probe") == {"a": 2}
        meta.delete(conn, schema, "probe")
        assert meta.read(conn, schema, "probe") is None
        meta.delete(conn, schema, "probe")  # absent: nothing happens


def test_merge_keeps_other_keys_and_new_ones_win(schema_engine: Engine) -> None:
    schema = schema_of(schema_engine)
    with schema_engine.begin() as conn:
        meta.merge(conn, schema, "builds", {"idx_a": {"ms": 1}, "idx_b": {"ms": 2}})
        meta.merge(conn, schema, "builds", {"idx_b": {"ms": 5}, "idx_c": {"ms": 3}})
        assert meta.read(conn, schema, "builds") == {
            "idx_a": {"ms": 1},
            "idx_b": {"ms": 5},
            "idx_c": {"ms": 3},
        }


def test_add_counts_on_a_raw_cursor_in_the_callers_transaction(schema_engine: Engine) -> None:
    schema = schema_of(schema_engine)
    raw = schema_engine.raw_connection()
    try:
        cur = raw.cursor()
        meta.add(cur, schema, "journal", "7", 15)
        meta.add(cur, schema, "journal", "7", 15)
        meta.add(cur, schema, "journal", "9", 5)
        raw.rollback()
        with schema_engine.connect() as conn:
            assert meta.read(conn, schema, "journal") is None  # nothing without the caller's commit
        meta.add(cur, schema, "journal", "7", 15)
        meta.add(cur, schema, "journal", "7", 15)
        meta.add(cur, schema, "journal", "9", 5)
        raw.commit()
    finally:
        raw.close()
    with schema_engine.connect() as conn:
        assert meta.read(conn, schema, "journal") == {"7": 30, "9": 5}


def test_create_schema_records_its_version_through_meta(schema_engine: Engine) -> None:
    from bbperf import __version__

    with schema_engine.connect() as conn:
        assert meta.read(conn, schema_of(schema_engine), "schema") == {
            "bbperf_version": __version__
        }


def test_a_schema_without_the_table_is_not_an_error(fresh_engine: Engine) -> None:
    with fresh_engine.connect() as conn:
        assert not meta.exists(conn, schema_of(fresh_engine))
        conn.execute(text("CREATE SCHEMA odd"))
        assert not meta.exists(conn, "odd")
