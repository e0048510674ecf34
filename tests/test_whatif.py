"""The what-if costing's pure parts: candidate DDL, placeholders, cost summaries, the method rule.
Costing on a server is exercised by test_index_advice.py and test_workload_pg15.py."""

from __future__ import annotations

import pytest

from bbperf.errors import SchemaError
from bbperf.explain.whatif import (
    Candidate,
    StatementCost,
    choose_method,
    has_placeholders,
    named_placeholders,
)


def test_candidate_ddl_quotes_names_and_writes_include_and_where() -> None:
    cand = Candidate("bbperf", "visits", ("barber_id", "start_time"), ("id",), "\"status\" = 'x'")
    assert cand.ddl("ix") == (
        'CREATE INDEX "ix" ON "bbperf"."visits" ("barber_id", "start_time") INCLUDE ("id") '
        "WHERE \"status\" = 'x'"
    )
    assert str(cand) == "bbperf.visits (barber_id, start_time) INCLUDE (id) WHERE \"status\" = 'x'"
    assert cand.width == 2 and Candidate("s", "t", ("a",)).width == 1
    assert cand == Candidate(*cand.key(), cte="another")  # the CTE that suggested it is no identity


def test_dollar_placeholders_become_named_outside_literals_and_comments() -> None:
    sql = "SELECT '$1', $1 /* $2 */ FROM t WHERE a = $12::int AND b = $2"
    assert named_placeholders(sql) == (
        "SELECT '$1', :p1 /* $2 */ FROM t WHERE a = :p12::int AND b = :p2"
    )
    assert has_placeholders(sql) and not has_placeholders("SELECT '$1' -- $2")


def test_a_statement_cost_is_the_mean_and_the_worst_of_its_value_sets() -> None:
    cost = StatementCost("s", (10.0, 30.0, 500.0), used=True)
    assert cost.mean == 180.0 and cost.worst == 500.0


def test_hypopg_first_then_a_rolled_back_build_on_owned_servers_then_only_when_allowed() -> None:
    assert choose_method("public", owned=False, allow_build=False) == "hypopg"
    assert choose_method(None, owned=True, allow_build=False) == "transaction"
    assert choose_method(None, owned=False, allow_build=True) == "build"
    with pytest.raises(SchemaError, match="CREATE EXTENSION hypopg"):
        choose_method(None, owned=False, allow_build=False)
