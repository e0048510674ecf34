"""The workload file format and the parse-tree walk: pure, no server."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bbperf.errors import ConfigError, QueryError
from bbperf.schema import build_metadata
from bbperf.workload import QUERIES, QUERY_NAMES, Workload, dumps, from_named_sql, load_workload
from bbperf.workload.file import workload_from_dict
from bbperf.workload.parse import Relation, analyze, resolve, typed_literals_as_casts

COLUMNS = {
    (t.schema or "", t.name): {c.name for c in t.columns} for t in build_metadata().tables.values()
}


def test_the_catalogue_is_a_workload_file_whose_placeholders_are_all_tied_to_columns() -> None:
    builtin = load_workload("catalogue")
    assert [s.name for s in builtin.statements] == list(QUERY_NAMES)
    assert all(s.read_only and s.kind == "select" for s in builtin.statements)
    for s in builtin.statements:
        assert not s.unresolved, s.name
        # The file agrees with a fresh analysis of the catalogue's :name SQL.
        again = from_named_sql(s.name, QUERIES[s.name][1], COLUMNS)
        assert again.sql == s.sql and again.placeholders == s.placeholders
        assert again.fingerprint == s.fingerprint
    schedule = builtin.statement("barber_schedule")
    assert [str(p) for p in schedule.placeholders] == [
        "$1: appointments.barber_id =",
        "$2: appointments.start_time >=",
        "$3: appointments.start_time <",
    ]
    join = builtin.statement("payment_appointment_join")  # p.user_id: alias → payments
    assert [p.table for p in join.placeholders] == ["payments", "payments"]


def test_round_trip_keeps_statements_values_and_metadata(tmp_path: Path) -> None:
    when = datetime(2026, 10, 31, 9, 30, tzinfo=UTC)
    s = from_named_sql(
        "window",
        "SELECT id FROM appointments WHERE barber_id = :b AND start_time >= :t AND notes = 'x :b 5%'",
        {("", "appointments"): COLUMNS[("bbperf", "appointments")]},
        calls=7,
    )
    s.values = [[3, when], [4, when]]
    s.total_ms, s.mean_ms, s.rows_per_call = 14.0, 2.0, 1.5
    w = Workload(
        "demo", [s], source="pg_stat_statements", meta={"top": 10, "price": Decimal("1.50")}
    )
    path = tmp_path / "w.toml"
    path.write_text(dumps(w))
    back = load_workload(path)
    (b,) = back.statements
    assert (b.name, b.calls, b.mean_ms, b.rows_per_call) == ("window", 7, 2.0, 1.5)
    assert b.values == [[3, when], [4, when]]
    assert b.placeholders == s.placeholders and back.meta == {"top": 10, "price": "1.50"}
    assert b.params(1) == {"b": 4, "t": when}
    # Colons and percent signs inside literals survive both bind styles.
    assert b.bind_sql().endswith("notes = 'x \\:b 5%'")
    assert ":b AND start_time >= :t" in b.bind_sql()
    assert b.driver_sql().endswith("%(p2)s AND notes = 'x :b 5%%'")
    cast = from_named_sql("cast", "SELECT id FROM users WHERE id = :id::int", {})
    assert cast.bind_sql() == "SELECT id FROM users WHERE id = :id ::int"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"version": 2, "statement": [{}]}, "format version 2"),
        ({"statement": []}, "no \\[\\[statement\\]\\]"),
        ({"statement": [{"name": "a"}]}, "needs sql"),
        ({"statement": [{"name": "a", "sql": "SELECT 1; SELECT 2"}]}, "exactly one statement"),
        ({"statement": [{"name": "a", "sql": "SELEC 1"}]}, "does not parse"),
        ({"statement": [{"name": "a", "sql": "DROP TABLE users"}]}, "statement 1 \\(a\\)"),
        (
            {"statement": [{"name": "a", "sql": "SELECT pg_terminate_backend($1)"}]},
            "pg_terminate_backend\\(\\) has effects",
        ),
        ({"statement": [{"name": "a", "sql": "SELECT $1", "values": [[1, 2]]}]}, "1 value"),
        ({"statement": [{"name": "a", "sql": "SELECT 1", "calls": -1}]}, "calls must be"),
        (
            {"statement": [{"name": "a", "sql": "SELECT 1"}, {"name": "a", "sql": "SELECT 2"}]},
            "used twice",
        ),
    ],
)
def test_bad_files_say_what_is_wrong(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        workload_from_dict(data)


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_workload(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_workload(bad)


def test_parse_tree_walk_reads_operators_kinds_and_scopes() -> None:
    a = analyze(
        "SELECT a.id FROM appointments a JOIN payments p ON p.appointment_id = a.id "
        "WHERE $1 <= a.start_time AND p.status IN ($2, $3) AND a.price BETWEEN $4 AND $5::numeric "
        "AND a.notes LIKE $6 AND a.id = ANY($7) AND now() - $8::interval < a.created_at LIMIT $9"
    )
    ops = {u.number: (u.qualifier, u.column, u.operator) for u in a.uses}
    assert ops == {
        1: ("a", "start_time", ">="),
        2: ("p", "status", "in"),
        3: ("p", "status", "in"),
        4: ("a", "price", ">="),
        5: ("a", "price", "<="),
        6: ("a", "notes", "like"),
        7: ("a", "id", "any"),
        9: (None, None, "limit"),
    }
    assert a.numbers == tuple(range(1, 10)) and a.read_only
    appts, pays = Relation("appointments", None, "a"), Relation("payments", None, "p")
    tables = {appts: ("s", "appointments"), pays: ("s", "payments")}
    cols = {
        ("s", "appointments"): {"id", "start_time", "price", "notes"},
        ("s", "payments"): {"status", "id"},
    }
    found = resolve(a, tables, cols)
    assert found[2] == (("s", "payments"), "status", "in") and 8 not in found
    # An unqualified column two relations have is left unresolved, not guessed.
    b = analyze("SELECT 1 FROM appointments a JOIN payments p ON true WHERE id = $1")
    assert resolve(b, tables, cols)[1][0] is None


@pytest.mark.parametrize(
    ("sql", "kind", "read_only"),
    [
        ("SELECT 1", "select", True),
        ("SELECT * FROM t FOR UPDATE", "select", False),
        ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "select", False),
        ("UPDATE t SET a = $1 WHERE id = $2", "update", False),
        ("INSERT INTO t (a) VALUES ($1)", "insert", False),
        ("VACUUM t", "utility", False),
    ],
)
def test_statement_kinds(sql: str, kind: str, read_only: bool) -> None:
    a = analyze(sql)
    assert (a.kind, a.read_only) == (kind, read_only)


def test_writes_map_placeholders_to_their_target_columns() -> None:
    a = analyze("INSERT INTO s.t (a, b) VALUES ($1, $2)")
    assert [(u.column, u.operator, u.relation) for u in a.uses] == [
        ("a", "insert", Relation("t", "s")),
        ("b", "insert", Relation("t", "s")),
    ]
    with pytest.raises(QueryError, match="exactly one"):
        analyze("SELECT 1; SELECT 2")


def test_a_column_belongs_to_the_nearest_from_list_that_has_it() -> None:
    appts, pays = Relation("appointments"), Relation("payments")
    tables = {appts: ("s", "appointments"), pays: ("s", "payments")}
    cols = {
        ("s", "appointments"): {"id", "user_id", "status"},
        ("s", "payments"): {"user_id", "status"},
    }
    a = analyze(
        "WITH p AS (SELECT amount FROM payments WHERE user_id = $1 AND status = $2) "
        "SELECT * FROM appointments WHERE user_id = $3 AND id IN (SELECT x FROM p WHERE status = $4)"
    )
    found = resolve(a, tables, cols)
    assert found[1][0] == found[2][0] == ("s", "payments")
    assert found[3][0] == ("s", "appointments")
    assert found[4][0] is None  # `p` is a CTE: its columns are not known here, so not guessed


def test_arithmetic_bounds_and_insert_select_tie_placeholders_to_columns() -> None:
    a = analyze(
        "SELECT id FROM appointments WHERE start_time < $1::timestamptz + $2::interval "
        "AND now() - $3::interval < created_at"
    )
    assert {u.number: u.operator for u in a.uses} == {1: "<"}  # $2, $3: left to their type
    b = analyze("INSERT INTO t (a, b, c) SELECT x, $1, $2::date FROM u WHERE id = $3")
    assert [(u.number, u.column, u.operator) for u in b.uses if u.operator == "insert"] == [
        (1, "b", "insert"),
        (2, "c", "insert"),
    ]


def test_typed_literals_pg_stat_statements_normalised_become_casts() -> None:
    sql = (
        "SELECT 'é' || x FROM t WHERE d < $1::timestamptz + interval $2 AND e = date $3 AND f = $4"
    )
    assert typed_literals_as_casts(sql) == (
        "SELECT 'é' || x FROM t WHERE d < $1::timestamptz + $2::interval AND e = $3::date AND f = $4"
    )
    assert (
        typed_literals_as_casts("SELECT 1 +") == "SELECT 1 +"
    )  # not SQL: left for the parser to refuse
