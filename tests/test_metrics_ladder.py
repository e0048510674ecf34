"""The metrics ladder: every variant answers exactly as before does (every tiny barber, 50 sampled
barbers at SF 0.1), and a variant whose prerequisite is missing is refused in one line."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg2
import pytest
from sqlalchemy import Engine

from bbperf.errors import ConfigError, DataError
from bbperf.metrics.ladder import (
    EQUIVALENT,
    FETCHERS,
    LADDER,
    differences,
    equivalence,
    ladder_metrics,
    payer_violations,
    require,
)
from bbperf.metrics.queries import barber_ids, fetch_raw

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def _prepare_every_variant(engine: Engine) -> None:
    """The metrics index set, the rollup and the view: every variant's prerequisite."""
    from bbperf.indexes import apply, load_set
    from bbperf.metrics.rollup import apply_rollup
    from bbperf.metrics.variants import create_metrics_view

    apply(engine, load_set("metrics"))
    apply_rollup(engine)
    create_metrics_view(engine, AS_OF)


@pytest.fixture
def ladder_tiny(tiny_copy: Engine) -> Engine:
    _prepare_every_variant(tiny_copy)
    return tiny_copy


@pytest.fixture(scope="module")
def sf01_engine(server) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """Profile default at SF 0.1 (seed 42), generated once for this module, every variant ready."""
    from bbperf.generate import generate
    from bbperf.schema import create_schema
    from bbperf.target import make_engine

    name = f"t_sf01_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(server.url("postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(str(server.url(name)), echo_pool=False)
    create_schema(engine)
    generate(engine, "default", 0.1, 42, "2026-11-01", progress=False)
    _prepare_every_variant(engine)
    yield engine
    engine.dispose()
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def _agreement(engine: Engine, users: list[int]) -> dict[str, list[str]]:
    """Per variant, the differences from before over ``users`` (before computed once per barber)."""
    for variant in LADDER:
        require(engine, variant, AS_OF)
    found: dict[str, list[str]] = {v: [] for v in LADDER if v != "before"}
    for user in users:
        before = fetch_raw(engine, user, AS_OF, "before")
        for variant in found:
            found[variant] += [
                f"{d.user_id}.{d.metric}: {d.before} != {d.variant}"
                for d in differences(before, FETCHERS[variant](engine, user, AS_OF))
            ]
    return found


def test_every_tiny_barber_every_variant_equals_before(ladder_tiny: Engine) -> None:
    users = barber_ids(ladder_tiny)
    found = _agreement(ladder_tiny, users)
    assert {v: found[v] for v in EQUIVALENT} == {v: [] for v in EQUIVALENT}
    # the check can fail: after changed two meanings, and the comparison sees it
    assert {line.split(":")[0].split(".")[1] for line in found["after"]} == {
        "average_ticket",
        "visits_365d",
    }


def test_fifty_sampled_sf01_barbers_every_variant_equals_before(sf01_engine: Engine) -> None:
    barbers = barber_ids(sf01_engine)  # SF 0.1 has 32 barbers: then every one is checked
    users = random.Random(42).sample(barbers, min(50, len(barbers)))
    found = _agreement(sf01_engine, users)
    assert {v: found[v] for v in EQUIVALENT} == {v: [] for v in EQUIVALENT}
    assert payer_violations(sf01_engine) == 0


@pytest.mark.parametrize(
    "as_of",
    [datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC)],
    ids=["inside-the-data", "after-the-data"],
)
def test_denormalized_equals_before_at_other_windows(ladder_tiny: Engine, as_of: datetime) -> None:
    """Windows that cut the history, and windows past its end: then no barber was paid in the 30
    days, so the list of paid appointment ids is empty and their distinct clients must count 0."""
    users = barber_ids(ladder_tiny)
    before = {u: fetch_raw(ladder_tiny, u, as_of, "before") for u in users}
    paid = [u for u, raw in before.items() if raw.payments_30d > 0]
    assert (paid == []) if as_of > AS_OF else (paid != [])  # the case each window is there for
    assert equivalence(ladder_tiny, "denormalized", users, as_of, before=before) == []


def test_set_indexes_drops_the_former_metrics_indexes(tiny_copy: Engine) -> None:
    """A database that applied the metrics set before issue 23 reshaped it loses those indexes."""
    from sqlalchemy import text

    from bbperf.indexes import load_set
    from bbperf.metrics.variant_timing import FORMER_METRICS_INDEXES, set_indexes

    with tiny_copy.begin() as conn:
        conn.execute(text("CREATE INDEX idx_metrics_appointments_user_status_client "
                          "ON appointments (user_id, status, client_id, start_time)"))  # fmt: skip
        conn.execute(text("CREATE INDEX idx_metrics_payments_user_status_created "
                          "ON payments (user_id, status, created_at)"))  # fmt: skip

    def present() -> set[str]:
        with tiny_copy.connect() as conn:
            return set(conn.execute(text("SELECT indexname FROM pg_indexes")).scalars())

    assert set(FORMER_METRICS_INDEXES) <= present()
    set_indexes(tiny_copy, "seed+metrics")
    assert not set(FORMER_METRICS_INDEXES) & present()
    assert {i.name for i in load_set("metrics").indexes} <= present()


def _cli(engine: Engine, *argv: str) -> int:
    from bbperf.cli import main

    url = engine.url.render_as_string(hide_password=False)
    return main(["--database-url", url, "metrics", "--as-of", "2026-11-01", *argv])


@pytest.mark.parametrize("variant", EQUIVALENT)
def test_cli_check_passes_for_every_equivalent_variant(
    ladder_tiny: Engine, capsys: pytest.CaptureFixture[str], variant: str
) -> None:
    user = barber_ids(ladder_tiny)[0]
    assert _cli(ladder_tiny, "--user-id", str(user), "--variant", variant, "--check") == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict == {"variant": variant, "user_id": user, "equivalent": True, "differences": []}


def test_cli_check_exits_1_on_a_difference(
    ladder_tiny: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    user = barber_ids(ladder_tiny)[0]
    assert _cli(ladder_tiny, "--user-id", str(user), "--variant", "after", "--check") == 1
    verdict = json.loads(capsys.readouterr().out)
    assert not verdict["equivalent"]
    assert {d["metric"] for d in verdict["differences"]} == {"average_ticket", "visits_365d"}


def test_cli_check_without_a_user_proves_every_variant_for_every_barber(
    ladder_tiny: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    barbers = len(barber_ids(ladder_tiny))
    assert _cli(ladder_tiny, "--check") == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{len(EQUIVALENT)} variants x {barbers} barbers: every figure equals before's"
    ]
    assert _cli(ladder_tiny, "--check", "--barbers", "3", "--format", "json") == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict == {"equivalent": True, "barbers": 3, "variants": list(EQUIVALENT),
                       "failures": []}  # fmt: skip


def test_cli_check_without_a_user_prints_one_line_per_differing_figure(
    ladder_tiny: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check can fail: a running total nudged by a cent behind the triggers' back."""
    from sqlalchemy import text

    user = barber_ids(ladder_tiny)[0]
    with ladder_tiny.begin() as conn:
        conn.execute(
            text("UPDATE metrics_running SET pay_sum = pay_sum + 0.01 WHERE user_id = :u"),
            {"u": user},
        )
    assert _cli(ladder_tiny, "--check", "--variant", "rollup") == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:-1] == [
        line for line in lines[:-1] if line.startswith(f"rollup differs for barber {user}: ")
    ]
    assert len(lines) == 2 and "average_ticket" in lines[0]
    assert lines[-1].endswith("1 figures differ")
    assert _cli(ladder_tiny, "--check", "--variant", "rollup", "--format", "json") == 1
    (failure,) = json.loads(capsys.readouterr().out)["failures"]
    assert (failure["variant"], failure["user_id"], failure["metric"]) == (
        "rollup",
        user,
        "average_ticket",
    )
    assert failure["before"] != failure["value"]


def test_cli_prints_the_figures_of_a_new_variant(
    ladder_tiny: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    user = barber_ids(ladder_tiny)[0]
    assert _cli(ladder_tiny, "--user-id", str(user), "--variant", "rollup") == 0
    data = json.loads(capsys.readouterr().out)
    expected = ladder_metrics(ladder_tiny, user, "before", as_of=AS_OF).to_dict()
    assert data == json.loads(json.dumps({"variant": "rollup", **expected}, default=str))


@pytest.mark.parametrize(
    ("variant", "fix"),
    [
        ("fast", "unknown variant 'fast': choose one of before, after"),
        ("barber_driven", "run `bbperf indexes apply --set metrics`"),
        ("denormalized", "run `bbperf indexes apply --set metrics`"),
        ("rollup", "run `bbperf rollup apply`"),
        ("view", "run `bbperf metrics --variant view --build-view`"),
    ],
)
def test_missing_prerequisite_is_one_line_naming_the_fix(
    tiny_engine: Engine, capsys: pytest.CaptureFixture[str], variant: str, fix: str
) -> None:
    user = barber_ids(tiny_engine)[0]
    assert _cli(tiny_engine, "--user-id", str(user), "--variant", variant) == 2
    err = capsys.readouterr().err
    assert err.startswith("bbperf: error: ") and err.count("\n") == 1 and fix in err


def test_rollup_refuses_an_as_of_inside_a_day() -> None:
    from bbperf.metrics.rollup import read_params

    with pytest.raises(ConfigError, match="must be 00:00 UTC"):
        read_params(1, datetime(2026, 10, 31, 12, tzinfo=UTC))
    assert read_params(1, AS_OF)["last_day"].isoformat() == "2026-10-31"


@pytest.fixture
def foreign_payers(fresh_engine: Engine) -> Engine:
    """Profile tiny_foreign_payers: 5 % of payments under another account; metrics set applied."""
    from bbperf.generate import generate
    from bbperf.indexes import apply, load_set
    from bbperf.schema import create_schema

    create_schema(fresh_engine)
    generate(fresh_engine, "tiny_foreign_payers", 1.0, 42, "2026-11-01", progress=False)
    apply(fresh_engine, load_set("metrics"))
    return fresh_engine


def test_denormalized_is_refused_with_the_violation_count(
    foreign_payers: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = payer_violations(foreign_payers)
    assert bad > 0
    users = barber_ids(foreign_payers)
    with pytest.raises(DataError, match=f"refused: {bad} payments have a user_id other than"):
        equivalence(foreign_payers, "denormalized", users, AS_OF)
    assert _cli(foreign_payers, "--user-id", str(users[0]), "--variant", "denormalized") == 2
    assert f"{bad} payments" in capsys.readouterr().err
    # the refusal is needed: forced anyway, the shortcut gives other figures than before's
    wrong = [
        d
        for u in users
        for d in differences(
            fetch_raw(foreign_payers, u, AS_OF, "before"),
            fetch_raw(foreign_payers, u, AS_OF, "denormalized"),
        )
    ]
    assert {d.metric for d in wrong} >= {"revenue_30d", "payments_30d"}
    # barber_driven does not lean on the invariant and still agrees
    assert equivalence(foreign_payers, "barber_driven", users, AS_OF) == []
