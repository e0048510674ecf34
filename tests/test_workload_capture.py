"""A workload nobody here wrote down: the catalogue runs on generated data, is captured back from
pg_stat_statements (same fingerprints), sampled, replayed, advised and verified on the embedded
server; and the ``bbperf workload`` commands' one-line errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from bbperf.cli import main
from bbperf.errors import ConfigError, SchemaError
from bbperf.workload import catalogue, load_workload, save_workload
from bbperf.workload.advise import advise_workload
from bbperf.workload.capture import capture
from bbperf.workload.replay import replay, replayable
from bbperf.workload.sample import sample
from bbperf.workload.verify import verify_workload


@pytest.fixture
def copy_engine(tiny_copy_url: str) -> Iterator[Engine]:
    from bbperf.pool.config import make_engine

    engine = make_engine(tiny_copy_url, echo_pool=False)
    yield engine
    engine.dispose()


def test_the_catalogue_captured_back_has_the_same_fingerprints_and_columns(
    copy_engine: Engine, tmp_path: Path
) -> None:
    for barber in ("busy", "quiet"):
        for query in catalogue(copy_engine, barber=barber):
            query.run(copy_engine)
    captured = capture(copy_engine, top=50)
    builtin = load_workload("catalogue")
    by_fingerprint = {s.fingerprint: s for s in captured.statements}
    for s in builtin.statements:
        assert by_fingerprint[s.fingerprint].calls == 2, s.name  # grouped: busy + quiet
    schedule = by_fingerprint[builtin.statement("barber_schedule").fingerprint]
    # The constant 'confirmed' became $2 in pg_stat_statements; the parse tree ties it to status.
    assert [str(p) for p in schedule.placeholders] == [
        "$1: bbperf.appointments.barber_id =",
        "$2: bbperf.appointments.status =",
        "$3: bbperf.appointments.start_time >=",
        "$4: bbperf.appointments.start_time <",
    ]
    path = save_workload(captured, tmp_path / "captured.toml")
    with pytest.raises(ConfigError, match="--force"):
        save_workload(captured, path)
    back = load_workload(path)
    assert [s.fingerprint for s in back.statements] == [s.fingerprint for s in captured.statements]

    sampled = sample(copy_engine, back, sets=3)
    assert not sampled.unresolved
    filled = sampled.workload.statement(schedule.name)
    barber_ids = {row[0] for row in filled.values}
    statuses = {row[1] for row in filled.values}
    with copy_engine.connect() as conn:
        known = set(conn.execute(text("SELECT DISTINCT barber_id FROM appointments")).scalars())
    assert barber_ids <= known and statuses <= {
        "pending", "confirmed", "cancelled", "completed", "no_show"
    }  # fmt: skip
    assert all(row[2] <= row[3] for row in filled.values)  # a window, not two random bounds

    result = replay(copy_engine, sampled.workload, duration_s=0.5, concurrency=2, progress=False)
    assert result.calls > 0 and not result.errors, result.first_error
    assert set(result.table()["statement"]) == {s.name for s in sampled.workload.statements}


def test_advice_over_the_catalogue_is_verified_by_building_and_replaying(
    copy_engine: Engine,
) -> None:
    workload = sample(copy_engine, load_workload("catalogue"), sets=3).workload
    with pytest.raises(SchemaError, match="hypopg"):  # the embedded server has no HypoPG
        advise_workload(copy_engine, workload, owned=False)
    advice = advise_workload(copy_engine, workload, owned=True, max_indexes=3, max_candidates=12)
    assert advice.method == "transaction" and len(advice.chosen) == 3
    assert 0 < advice.saved_pct < 100
    assert advice.ddl()[0].startswith("CREATE INDEX CONCURRENTLY")
    # Every kept index clears the bar on each statement it claims.
    table = advice.statements().set_index("statement")
    for choice in advice.chosen:
        for name in choice.statements:
            assert table.loc[name, "cost_after"] <= 0.9 * table.loc[name, "cost_before"]
    indexes = text("SELECT count(*) FROM pg_indexes WHERE schemaname = 'bbperf'")
    with copy_engine.connect() as conn:
        before = conn.execute(indexes).scalar_one()
    check = verify_workload(
        copy_engine, workload, advice, owned=True, duration_s=0.5, progress=False
    )
    frame = check.table()
    assert len(frame) and set(frame["statement"]) <= set(advice.base_cost)
    assert (frame["measured_speedup"] > 0).all() and len(check.built) == 3
    with copy_engine.connect() as conn:
        assert conn.execute(indexes).scalar_one() == before


def test_writes_replay_only_where_bbperf_owns_the_target() -> None:
    workload = load_workload("catalogue")
    with pytest.raises(ConfigError, match="only on a target bbperf owns"):
        replayable(workload, allow_writes=True, owned=False)
    run, skipped = replayable(workload)
    assert [s.name for s in run] == ["active_barbers"]  # the others need sampled values
    assert len(skipped) == 14
    assert [s.name for s in replayable(workload, allow_writes=True, owned=True)[0]] == [
        "active_barbers"
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["workload", "capture", "-o", "{existing}"], "exists: pass --force"),
        (["workload", "show", "{missing}"], "not found"),
        (["workload", "sample", "catalogue"], "built-in catalogue is read-only"),
        (
            [
                "--database-url",
                "postgresql://u@127.0.0.1:1/x",
                "workload",
                "replay",
                "catalogue",
                "--allow-writes",
            ],
            "only on a target bbperf owns",
        ),  # fmt: skip
        (
            [
                "--database-url",
                "postgresql://u@127.0.0.1:1/x",
                "workload",
                "advise",
                "catalogue",
                "--verify",
            ],
            "runs only on the embedded server",
        ),  # fmt: skip
        (["workload", "advise", "catalogue", "--min-savings", "0"], "percentage"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "w.toml"
    existing.write_text("")
    args = [a.format(existing=existing, missing=tmp_path / "nope.toml") for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bbperf: error:") and message in err and "\n" not in err


def test_show_prints_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workload", "show", "catalogue"]) == 0
    out = capsys.readouterr().out
    assert "barber_schedule" in out and "$1: appointments.barber_id =" in out


def test_bbperf_own_write_cost_statements_are_never_captured() -> None:
    from bbperf.workload.capture import _capturable

    own = (
        "INSERT INTO bbperf.appointments (user_id, price) SELECT user_id, price FROM _bbperf_batch"
    )
    assert _capturable(own) is None
    assert _capturable("SELECT count(*) FROM _bbperf_batch") is None
    app = _capturable("SELECT * FROM appointments WHERE user_id = $1")
    assert app is not None and [r.name for r in app.user_relations] == ["appointments"]
