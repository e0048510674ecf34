"""Index candidates from parse trees alone (no server): one test per rule of
``bbperf.explain.index_candidates``."""

from __future__ import annotations

import pytest

from bbperf.explain.index_candidates import TableInfo, advisable, candidates, table_uses

APPOINTMENTS = frozenset(
    {"id", "barber_id", "user_id", "client_id", "status", "start_time", "price", "notes"}
)


def info(
    name: str = "appointments",
    *,
    schema: str = "bbperf",
    kind: str = "r",
    columns: frozenset[str] = APPOINTMENTS,
    indexes: tuple[tuple[str, ...], ...] = (("id",),),
    root: TableInfo | None = None,
) -> TableInfo:
    return TableInfo(schema, name, kind, columns, indexes, root)


def shapes(sql: str, table: TableInfo | None = None) -> list[str]:
    """Every candidate of the statement's only table use, as text without the schema."""
    (use,) = table_uses(sql)
    return [str(c).removeprefix("bbperf.") for c in candidates(use, table or info())]


def test_equality_first_then_the_sort_with_a_partial_index_for_the_constant() -> None:
    sql = (
        "SELECT * FROM appointments WHERE barber_id = $1 AND status = 'confirmed' "
        "ORDER BY start_time LIMIT 20"
    )
    assert shapes(sql) == [
        "appointments (barber_id, status, start_time)",
        "appointments (barber_id, start_time) WHERE \"status\" = 'confirmed'",
        "appointments (barber_id, status)",
        "appointments (barber_id)",
        "appointments (start_time)",
    ]


def test_an_order_by_of_two_columns_is_one_index_in_that_order() -> None:
    assert shapes("SELECT * FROM appointments ORDER BY client_id, start_time LIMIT 10") == [
        "appointments (client_id, start_time)"
    ]


def test_a_sort_that_covers_the_range_serves_both_else_each_gets_a_shape() -> None:
    covered = (
        "SELECT * FROM appointments WHERE barber_id = $1 AND start_time >= $2 ORDER BY start_time"
    )
    assert shapes(covered)[0] == "appointments (barber_id, start_time)"
    apart = "SELECT * FROM appointments WHERE barber_id = $1 AND price > $2 ORDER BY start_time"
    assert shapes(apart)[:2] == [
        "appointments (barber_id, start_time)",
        "appointments (barber_id, price)",
    ]
    between = "SELECT * FROM appointments WHERE start_time BETWEEN $1 AND $2"
    assert shapes(between) == ["appointments (start_time)"]


def test_include_columns_when_an_index_only_scan_can_answer_and_none_for_select_star() -> None:
    sql = "SELECT a.id, a.price FROM appointments a WHERE a.barber_id = $1 ORDER BY a.start_time"
    assert shapes(sql)[:2] == [
        "appointments (barber_id, start_time)",
        "appointments (barber_id, start_time) INCLUDE (id, price)",
    ]
    star = "SELECT * FROM appointments a WHERE a.barber_id = $1 ORDER BY a.start_time"
    assert not [s for s in shapes(star) if "INCLUDE" in s]
    many = "SELECT id, price, notes, client_id, user_id FROM appointments WHERE barber_id = $1"
    assert not [s for s in shapes(many) if "INCLUDE" in s]  # more than 4 columns: no covering


def test_constant_predicates_become_partial_indexes_quoted_as_sql() -> None:
    sql = "SELECT id FROM appointments WHERE client_id IS NULL AND notes = 'it''s' AND user_id = $1"
    assert "appointments (user_id) WHERE \"client_id\" IS NULL AND \"notes\" = 'it''s'" in shapes(
        sql
    )


def test_no_candidate_repeats_an_existing_index_prefix() -> None:
    sql = "SELECT * FROM appointments WHERE barber_id = $1 AND status = 'confirmed' ORDER BY start_time"
    existing = info(indexes=(("barber_id", "status", "start_time", "id"), ("start_time",)))
    found = shapes(sql, existing)
    assert "appointments (barber_id, status, start_time)" not in found
    assert "appointments (barber_id)" not in found and "appointments (start_time)" not in found
    assert found == ["appointments (barber_id, start_time) WHERE \"status\" = 'confirmed'"]


def test_a_partition_is_advised_on_its_partitioned_parent() -> None:
    parent = info("appointments_by_month", kind="p", indexes=())
    partition = info("appointments_2026_11", root=parent)
    found = shapes("SELECT * FROM appointments_2026_11 WHERE barber_id = $1", partition)
    assert found == ["appointments_by_month (barber_id)"]


@pytest.mark.parametrize(
    ("schema", "kind"),
    [("pg_catalog", "r"), ("information_schema", "v"), ("bbperf", "v"), ("pg_toast", "t")],
)
def test_system_catalogs_and_views_are_never_advised(schema: str, kind: str) -> None:
    table = info("pg_class", schema=schema, kind=kind, columns=frozenset({"relname", "oid"}))
    assert not advisable(table)
    assert shapes("SELECT oid FROM pg_class WHERE relname = $1", table) == []


def test_ctes_and_subqueries_are_their_own_uses_and_a_cte_name_is_no_table() -> None:
    sql = (
        "WITH recent AS (SELECT id FROM appointments WHERE start_time >= $1) "
        "SELECT * FROM recent r JOIN (SELECT appointment_id FROM payments WHERE status = 'x') p "
        "ON p.appointment_id = r.id"
    )
    uses = table_uses(sql)
    assert [(u.table.name, u.cte) for u in uses] == [("appointments", "recent"), ("payments", "")]
    assert uses[0].ranges == ["start_time"] and "status" in uses[1].constants


def test_a_correlated_column_belongs_to_the_outer_table_an_or_to_nobody() -> None:
    sql = (
        "SELECT * FROM users u WHERE (u.email = $1 OR u.phone = $2) AND EXISTS "
        "(SELECT 1 FROM appointments a WHERE a.barber_id = u.id AND a.status = 'done')"
    )
    users, appointments = table_uses(sql)
    assert users.eq == [] and users.joins == ["id"]
    assert appointments.joins == ["barber_id"] and "status" in appointments.constants


def test_join_columns_lead_a_second_shape_beside_the_filter_alone() -> None:
    sql = (
        "SELECT p.amount FROM payments p JOIN appointments a ON p.appointment_id = a.id "
        "WHERE p.status = 'completed' AND p.created_at >= $1"
    )
    payments = info(
        "payments",
        columns=frozenset({"id", "appointment_id", "status", "created_at", "amount"}),
    )
    use = table_uses(sql)[0]
    found = [str(c).removeprefix("bbperf.") for c in candidates(use, payments)]
    assert found[0] == "payments (status, created_at)"
    assert "payments (appointment_id, status, created_at)" in found


def test_unqualified_columns_go_only_to_tables_that_have_them() -> None:
    sql = "SELECT 1 FROM appointments a, payments p WHERE barber_id = $1 AND amount > $2"
    uses = {u.table.name: u for u in table_uses(sql)}
    payments = info("payments", columns=frozenset({"id", "amount"}))
    found = [str(c) for c in candidates(uses["appointments"], info())]
    assert found == ["bbperf.appointments (barber_id)"]
    assert [str(c) for c in candidates(uses["payments"], payments)] == ["bbperf.payments (amount)"]
