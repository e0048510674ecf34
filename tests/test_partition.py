"""Partitioning: bounds on exact dates, and apply/drop on a real copy of the tiny dataset."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from bbperf import partition
from bbperf.cli import main
from bbperf.errors import ConfigError, DataError
from bbperf.generate.fingerprint import fingerprints
from bbperf.indexes import apply as apply_set
from bbperf.indexes import load_set


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_monthly_bounds_cover_the_span_and_cross_a_year() -> None:
    ranges = partition.bounds(utc(2025, 11, 17, 9), utc(2026, 1, 3), "month")
    assert ranges == [
        (utc(2025, 11, 1), utc(2025, 12, 1)),
        (utc(2025, 12, 1), utc(2026, 1, 1)),
        (utc(2026, 1, 1), utc(2026, 2, 1)),
    ]
    assert partition.partition_name("appointments", ranges[1][0], "month", 1) == (
        "appointments_p2025_12"
    )


def test_weekly_bounds_start_on_monday_and_daily_bounds_count_days() -> None:
    weeks = partition.bounds(utc(2026, 11, 4), utc(2026, 11, 16), "week")  # a Wednesday, a Monday
    assert [w[0] for w in weeks] == [utc(2026, 11, 2), utc(2026, 11, 9), utc(2026, 11, 16)]
    assert len(partition.bounds(utc(2026, 1, 1), utc(2026, 12, 31, 23), "day")) == 365


def test_equal_bounds_split_the_span_and_include_the_last_moment() -> None:
    ranges = partition.equal_bounds(utc(2026, 1, 1), utc(2026, 1, 11), 10)
    assert len(ranges) == 10 and ranges[0][0] == utc(2026, 1, 1)
    assert ranges[-1][1] > utc(2026, 1, 11)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))


@pytest.mark.parametrize("bad", ["year", "", "MONTH"])
def test_unknown_granularity_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="granularity"):
        partition.bounds(utc(2026, 1, 1), utc(2026, 2, 1), bad)


def _fingerprints(engine: Engine) -> dict[str, dict[str, object]]:
    with engine.begin() as conn:
        return fingerprints(conn, "bbperf")


def _shape(engine: Engine) -> dict[str, object]:
    """Relation kinds, index definitions and foreign keys of the two tables."""
    with engine.connect() as conn:
        kinds = dict(
            conn.execute(
                text(
                    "SELECT relname, relkind FROM pg_class WHERE relname IN "
                    "('appointments', 'payments') AND relnamespace = 'bbperf'::regnamespace"
                )
            ).all()
        )
        indexes = sorted(
            conn.execute(
                text(
                    "SELECT indexname || ': ' || indexdef FROM pg_indexes "
                    "WHERE schemaname = 'bbperf' AND tablename IN ('appointments', 'payments')"
                )
            ).scalars()
        )
        fks = sorted(
            conn.execute(
                text(
                    "SELECT conrelid::regclass::text || '.' || conname FROM pg_constraint "
                    "WHERE contype = 'f' AND connamespace = 'bbperf'::regnamespace "
                    "AND conparentid = 0"
                )
            ).scalars()
        )
    return {"kinds": kinds, "indexes": indexes, "fks": fks}


def test_apply_and_drop_keep_the_data_indexes_and_keys(tiny_copy: Engine) -> None:
    apply_set(tiny_copy, load_set("seed"))
    before_fp, before = _fingerprints(tiny_copy), _shape(tiny_copy)
    assert "payments.payments_appointment_id_fkey" in before["fks"]

    applied = partition.apply(tiny_copy, "month")
    assert [c.primary_key for c in applied.tables] == ["(id, start_time)", "(id, created_at)"]
    assert applied.foreign_keys_dropped == ["payments.payments_appointment_id_fkey"]
    assert _fingerprints(tiny_copy) == before_fp
    during = _shape(tiny_copy)
    assert during["kinds"] == {"appointments": "p", "payments": "p"}
    names = {line.split(":")[0] for line in during["indexes"]}
    assert names == {line.split(":")[0] for line in before["indexes"]}
    assert set(during["fks"]) == set(before["fks"]) - {"payments.payments_appointment_id_fkey"}
    st = partition.status(tiny_copy)
    assert st.by == "month" and st.foreign_keys_waiting == ["payments.payments_appointment_id_fkey"]
    # 2026-09, -10, -11 for appointments (tiny spans 60 days back, 14 ahead of 2026-11-01) + DEFAULT
    assert st.partitions.groupby("table").size().to_dict() == {"appointments": 4, "payments": 3}
    with pytest.raises(DataError, match="already partitioned"):
        partition.apply(tiny_copy, "week")

    with tiny_copy.begin() as conn:  # identity carried over: a new row gets the next id
        new_id = conn.execute(
            text(
                "INSERT INTO bbperf.appointments (user_id, status, start_time, price) "
                "SELECT user_id, status, start_time + interval '5 years', price FROM "
                "bbperf.appointments ORDER BY id LIMIT 1 RETURNING id"
            )
        ).scalar_one()
        top = conn.execute(text("SELECT max(id) FROM bbperf.appointments")).scalar_one()
        stray = conn.execute(text("SELECT count(*) FROM bbperf.appointments_default")).scalar_one()
        assert (new_id, stray) == (top, 1)
        conn.rollback()

    dropped = partition.drop(tiny_copy)
    assert dropped.foreign_keys_restored == ["payments.payments_appointment_id_fkey"]
    assert _fingerprints(tiny_copy) == before_fp
    assert _shape(tiny_copy) == before
    assert not partition.status(tiny_copy).partitioned
    with pytest.raises(DataError, match="not partitioned"):
        partition.drop(tiny_copy)


def _kept_tables(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(
            conn.execute(
                text(
                    "SELECT relname FROM pg_class WHERE relnamespace = 'bbperf'::regnamespace "
                    "AND relname LIKE '%\\_kept%'"
                )
            ).scalars()
        )


def _oids(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT 'bbperf.{t}'::regclass::oid")).scalar_one()
                for t in ("appointments", "payments")}  # fmt: skip


def test_kept_plain_copy_is_put_back_without_rewriting_a_row(tiny_copy: Engine) -> None:
    apply_set(tiny_copy, load_set("seed"))
    before_fp, before, oids = _fingerprints(tiny_copy), _shape(tiny_copy), _oids(tiny_copy)

    partition.apply(tiny_copy, "month", keep_plain=True)
    assert _fingerprints(tiny_copy) == before_fp
    assert "appointments_kept" in _kept_tables(tiny_copy)
    names = {line.split(":")[0] for line in _shape(tiny_copy)["indexes"]}
    assert names == {line.split(":")[0] for line in before["indexes"]}
    with pytest.raises(DataError, match="already partitioned"):
        partition.apply(tiny_copy, "week", keep_plain=True)

    dropped = partition.drop(tiny_copy)
    assert dropped.foreign_keys_restored == ["payments.payments_appointment_id_fkey"]
    assert [c.rows for c in dropped.tables] == [
        before_fp["appointments"]["rows"],
        before_fp["payments"]["rows"],
    ]
    assert _oids(tiny_copy) == oids  # the very tables of before, not a copy of their rows
    assert _fingerprints(tiny_copy) == before_fp and _shape(tiny_copy) == before
    assert _kept_tables(tiny_copy) == []
    with tiny_copy.begin() as conn:  # the identity sequence is the old one, at its old value
        new_id = conn.execute(
            text(
                "INSERT INTO bbperf.appointments (user_id, status, start_time, price) SELECT "
                "user_id, status, start_time, price FROM bbperf.appointments LIMIT 1 RETURNING id"
            )
        ).scalar_one()
        assert new_id == conn.execute(text("SELECT max(id) FROM bbperf.appointments")).scalar()
        conn.rollback()


def test_a_write_while_partitioned_makes_drop_rewrite_the_rows(tiny_copy: Engine) -> None:
    partition.apply(tiny_copy, "month", keep_plain=True)
    with tiny_copy.begin() as conn:
        conn.execute(text("UPDATE bbperf.payments SET amount = amount + 1 WHERE id = 1"))
    after_write = _fingerprints(tiny_copy)
    oids = _oids(tiny_copy)

    partition.drop(tiny_copy)
    assert _fingerprints(tiny_copy) == after_write  # the write survives: rows were copied
    assert _oids(tiny_copy) != oids and _kept_tables(tiny_copy) == []
    assert not partition.status(tiny_copy).partitioned


def test_equal_ranges_give_the_asked_partition_count(tiny_copy: Engine) -> None:
    applied = partition.apply(tiny_copy, partitions=12)
    assert [c.partitions for c in applied.tables] == [13, 13]  # 12 ranges + DEFAULT each
    partition.drop(tiny_copy)


def test_empty_layout_shows_partitions_without_rows_and_changes_nothing(tiny_copy: Engine) -> None:
    from bbperf.partition.effects import planning_by_partition_count, point_lookup

    apply_set(tiny_copy, load_set("seed"))
    shape, prints = _shape(tiny_copy), _fingerprints(tiny_copy)
    with partition.empty_layout(tiny_copy, 6) as conn:
        kind = conn.execute(
            text("SELECT relkind FROM pg_class WHERE oid = 'appointments'::regclass")
        )
        assert kind.scalar_one() == "p"
        parts = conn.execute(text("SELECT count(*) FROM pg_inherits "
                                  "WHERE inhparent = 'appointments'::regclass"))  # fmt: skip
        assert parts.scalar_one() == 7  # 6 ranges + DEFAULT
        assert conn.execute(text("SELECT count(*) FROM appointments")).scalar_one() == 0
    assert _shape(tiny_copy) == shape and _fingerprints(tiny_copy) == prints
    planning = planning_by_partition_count(tiny_copy, [point_lookup(tiny_copy)], [3, 12], 2)
    assert sorted(planning["partitions"].unique()) == [0, 3, 12]
    assert (planning["planning_ms"] > 0).all()
    assert _shape(tiny_copy) == shape and _fingerprints(tiny_copy) == prints
    with pytest.raises(ConfigError), partition.empty_layout(tiny_copy, 10**6):
        pass


def test_no_dataset_is_refused_in_one_line(
    schema_engine: Engine, fresh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(DataError, match="no dataset in schema"):
        partition.apply(schema_engine)
    assert main(["--database-url", fresh_url, "partition", "drop"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bbperf: error: no dataset in schema")


def test_cli_refuses_a_bad_granularity(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["partition", "apply", "--by", "year"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'year'" in err[0]


def test_pruning_counts_partitions_read_out_of_those_the_tables_have() -> None:
    from bbperf.partition.effects import pruning

    parents = {f"appointments_p2026_{m:02d}": "appointments" for m in (9, 10, 11)}
    parents |= {"appointments_default": "appointments", "payments_p2026_09": "payments"}
    doc = {"Plan": {"Node Type": "Append", "Subplans Removed": 1, "Plans": [
        {"Node Type": "Seq Scan", "Relation Name": "appointments_p2026_10", "Actual Loops": 1},
        {"Node Type": "Seq Scan", "Relation Name": "appointments_p2026_11", "Actual Loops": 0},
    ]}}  # fmt: skip
    result = pruning(doc, parents)
    assert (result.partitions_scanned, result.partitions_total, result.subplans_removed) == (
        1,
        4,
        1,
    )
    assert result.pruned


def test_undo_interrupted_converts_back_only_its_owners_partitioning(tiny_copy: Engine) -> None:
    """A notebook killed while the tables were partitioned: its next run converts them back first;
    a partitioning made by anyone else (the CLI, another owner) is left alone."""
    assert partition.undo_interrupted(tiny_copy, "07_partitioning") is None  # plain: nothing to do
    with tiny_copy.begin() as conn:
        before = fingerprints(conn, "bbperf")
    partition.apply(tiny_copy, "month")
    assert partition.undo_interrupted(tiny_copy, "07_partitioning") is None
    assert partition.status(tiny_copy).tables["appointments"]
    partition.drop(tiny_copy)
    partition.apply(tiny_copy, "month", keep_plain=True, owner="07_partitioning")
    assert partition.undo_interrupted(tiny_copy, "someone else") is None
    undone = partition.undo_interrupted(tiny_copy, "07_partitioning")
    assert undone is not None and undone.action == "drop"
    assert not any(partition.status(tiny_copy).tables.values())
    with tiny_copy.begin() as conn:
        assert fingerprints(conn, "bbperf") == before
    assert partition.undo_interrupted(tiny_copy, "07_partitioning") is None


def test_retention_removes_the_same_month_both_ways_and_leaves_nothing_behind(
    tiny_copy: Engine,
) -> None:
    with tiny_copy.begin() as conn:
        before = fingerprints(conn, "bbperf")
    kept = partition.retention(tiny_copy).set_index("method")
    assert set(kept.index) == {"DELETE", "DETACH + DROP"}
    removed = kept["rows_removed"]
    assert removed["DELETE"] == removed["DETACH + DROP"] > 0
    # Which writes less WAL depends on the month's size (at tiny, the catalog changes of DETACH +
    # DROP can outweigh deleting a few rows): the notebook says which at its scale.
    assert (kept["wal_bytes"] > 0).all() and (kept["ms"] > 0).all()
    with tiny_copy.begin() as conn:
        assert fingerprints(conn, "bbperf") == before  # the copies, never the dataset
        assert (
            conn.execute(
                text("SELECT count(*) FROM pg_class WHERE relname LIKE 'retention%'")
            ).scalar_one()
            == 0
        )
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() != "0"
