"""A workload nobody here wrote down: the catalogue runs on generated data, is captured back from
pg_stat_statements (same fingerprints), sampled, replayed, advised and verified on the embedded
server; and the ``bbperf workload`` commands' one-line errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from bbperf.cli import main
from bbperf.errors import ConfigError, SchemaError
from bbperf.workload import catalogue, load_workload, save_workload
from bbperf.workload.capture import capture, counters
from bbperf.workload.replay import replay, replayable
from bbperf.workload.sample import sample
from bbperf.workload.verify import verify_workload
from bbperf.workload.workload_advice import advise_workload


def test_the_catalogue_captured_back_has_the_same_fingerprints_and_columns(
    tiny_copy: Engine, tmp_path: Path
) -> None:
    for barber in ("busy", "quiet"):
        for query in catalogue(tiny_copy, barber=barber):
            query.run(tiny_copy)
    captured = capture(tiny_copy, top=50)
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

    sampled = sample(tiny_copy, back, sets=3)
    assert not sampled.unresolved
    filled = sampled.workload.statement(schedule.name)
    barber_ids = {row[0] for row in filled.values}
    statuses = {row[1] for row in filled.values}
    with tiny_copy.connect() as conn:
        known = set(conn.execute(text("SELECT DISTINCT barber_id FROM appointments")).scalars())
    assert barber_ids <= known and statuses <= {
        "pending", "confirmed", "cancelled", "completed", "no_show"
    }  # fmt: skip
    assert all(row[2] <= row[3] for row in filled.values)  # a window, not two random bounds

    result = replay(tiny_copy, sampled.workload, duration_s=0.5, concurrency=2, progress=False)
    assert result.calls > 0 and not result.errors, result.first_error
    assert set(result.table()["statement"]) == {s.name for s in sampled.workload.statements}


def test_advice_over_the_catalogue_is_verified_by_building_and_replaying(
    tiny_copy: Engine,
) -> None:
    workload = sample(tiny_copy, load_workload("catalogue"), sets=3).workload
    with pytest.raises(SchemaError, match="hypopg"):  # the embedded server has no HypoPG
        advise_workload(tiny_copy, workload, owned=False)
    advice = advise_workload(tiny_copy, workload, owned=True, max_indexes=3, max_candidates=12)
    assert advice.method == "transaction" and len(advice.chosen) == 3
    assert 0 < advice.saved_pct < 100
    assert advice.ddl()[0].startswith("CREATE INDEX CONCURRENTLY")
    # Every kept index clears the bar on each statement it claims.
    table = advice.statements().set_index("statement")
    for choice in advice.chosen:
        for name in choice.statements:
            assert table.loc[name, "cost_after"] <= 0.9 * table.loc[name, "cost_before"]
    indexes = text("SELECT count(*) FROM pg_indexes WHERE schemaname = 'bbperf'")
    with tiny_copy.connect() as conn:
        before = conn.execute(indexes).scalar_one()
    check = verify_workload(tiny_copy, workload, advice, owned=True, duration_s=0.5, progress=False)
    frame = check.table()
    assert len(frame) and set(frame["statement"]) <= set(advice.base_cost)
    assert (frame["measured_speedup"] > 0).all() and len(check.built) == 3
    with tiny_copy.connect() as conn:
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


# What an application sends that no column explains: a COALESCE default, a CTE's columns, the interval
# added to a bound (pg_stat_statements writes `interval '7 days'` as `interval $n`), an INSERT … SELECT,
# an INSERT into a column with a unique index. Each is marked so the test captures only its own.
APPLICATION = [
    "SELECT /* replaytest */ COALESCE(SUM(duration_minutes), 0) AS minutes, COUNT(*) FROM appointments "
    "WHERE user_id = 1 AND status = 'completed' AND start_time >= '2026-10-01'::timestamptz "
    "AND start_time < '2026-11-01'::timestamptz",
    "WITH mine AS (SELECT /* replaytest */ a.id FROM appointments a WHERE a.user_id = 1), "
    "paid AS (SELECT p.amount, p.created_at FROM mine m CROSS JOIN LATERAL (SELECT amount, created_at "
    "FROM payments WHERE appointment_id = m.id AND status = 'completed' OFFSET 0) p) "
    "SELECT COALESCE(SUM(amount) FILTER (WHERE created_at >= '2026-10-01'::timestamptz), 0) FROM paid",
    "SELECT /* replaytest */ id FROM appointments WHERE barber_id = 3 AND start_time >= "
    "'2026-10-01'::timestamptz AND start_time < '2026-10-01'::timestamptz + interval '7 days'",
    "WITH a AS (INSERT INTO appointments (user_id, barber_id, client_id, service_id, organization_id, "
    "status, start_time, duration_minutes, price) SELECT /* replaytest */ user_id, barber_id, client_id, "
    "service_id, organization_id, 'confirmed', '2026-11-02'::timestamptz, duration_minutes, price "
    "FROM appointments WHERE id = 5 RETURNING id, user_id, barber_id, price) "
    "INSERT INTO payments (user_id, appointment_id, barber_id, amount, status, created_at) "
    "SELECT user_id, id, barber_id, price, 'pending', '2026-11-02'::timestamptz FROM a",
    "INSERT /* replaytest */ INTO users (email, name) VALUES ('replay@example.com', 'Replay Test')",
]


def test_placeholders_no_column_explains_take_stated_defaults_and_every_statement_replays(
    tiny_copy: Engine,
) -> None:
    with tiny_copy.connect() as conn:
        for sql in APPLICATION:
            conn.execute(text(sql))
        conn.rollback()  # pg_stat_statements keeps the statements; the rows go
        conn.execute(text("CREATE TABLE scratch_replaytest (g int)"))
        conn.execute(
            text(
                "INSERT /* replaytest */ INTO scratch_replaytest SELECT g FROM generate_series(1, 3) g"
            )
        )
        conn.execute(text("DROP TABLE scratch_replaytest"))
        conn.commit()
    captured = capture(tiny_copy, top=100)
    mine = [s for s in captured.statements if "replaytest" in s.sql]
    assert len(mine) == len(APPLICATION) + 1
    workload = replace(captured, statements=mine)
    interval = next(s for s in mine if "barber_id" in s.sql and s.kind == "select")
    assert "interval $" not in interval.sql and "::interval" in interval.sql  # made a cast

    sampled = sample(tiny_copy, workload, sets=4)
    # The statement on a dropped table is the one left out, with the server's reason.
    dropped = next(s.name for s in mine if "scratch_replaytest" in s.sql)
    assert [(name, "does not exist" in why) for name, _, why in sampled.unresolved] == [
        (dropped, True)
    ], sampled.unresolved
    how = {what for _, _, what in sampled.defaulted}
    assert "interval '30 days'" in how and ("bigint 0" in how or "numeric 0" in how)  # COALESCE
    assert any("times" in what for what in how)  # the CTE's created_at bound: a sampled time
    users = next(s for s in sampled.workload.statements if "INTO users" in s.sql)
    email = next(p for p in users.placeholders if p.column == "email")
    with tiny_copy.connect() as conn:
        existing = set(conn.execute(text("SELECT email FROM users")).scalars())
    drawn = {row[users.placeholders.index(email)] for row in users.values}
    assert drawn and not drawn & existing  # a unique column gets fresh values, not a violation

    result = replay(
        tiny_copy, sampled.workload, duration_s=1.0, concurrency=2, allow_writes=True,
        owned=True, progress=False,
    )  # fmt: skip
    assert not result.errors, result.first_error
    assert len(result.samples_ms) == len(APPLICATION)
    assert result.skipped == [(dropped, f"no values: {sampled.unresolved[0][2]}")]


def test_a_rare_statement_is_replayed_at_least_once_not_lost_to_the_draw(
    tiny_engine: Engine,
) -> None:
    """Drawn ∝ calls alone, a statement with 1 call in a million never runs in a short replay and
    the replay reports fewer statements than the workload has (notebook 09 said "8 of 15")."""
    sampled = sample(tiny_engine, load_workload("catalogue"), sets=2).workload
    common, *rare = sampled.statements[:4]
    workload = replace(
        sampled,
        statements=[replace(common, calls=1_000_000), *(replace(s, calls=1) for s in rare)],
    )
    result = replay(tiny_engine, workload, duration_s=0.5, concurrency=2, progress=False)
    assert not result.errors, result.first_error
    assert set(result.samples_ms) == {s.name for s in workload.statements}
    assert len(result.samples_ms[common.name]) > 10 * max(
        len(result.samples_ms[s.name]) for s in rare
    )


def test_capture_since_a_snapshot_keeps_only_what_ran_after_it(tiny_copy: Engine) -> None:
    """The report's workload is the traffic notebook 09 replays, not every statement the other
    notebooks left in pg_stat_statements; nothing is reset to get it."""
    before_queries = catalogue(tiny_copy, barber="busy")
    for query in before_queries:
        query.run(tiny_copy)
    builtin = load_workload("catalogue")
    chosen = [q for q in catalogue(tiny_copy, barber="quiet") if q.name == "barber_schedule"]
    snapshot = counters(tiny_copy)
    for _ in range(3):
        chosen[0].run(tiny_copy)
    since = capture(tiny_copy, top=50, since=snapshot)
    schedule = builtin.statement("barber_schedule").fingerprint
    assert [(s.fingerprint, s.calls) for s in since.statements] == [(schedule, 3)]
    everything = capture(tiny_copy, top=50)  # the earlier calls are all still counted
    assert {s.fingerprint: s.calls for s in everything.statements}[schedule] == 4
