"""The rollup: built from the data, then kept equal to before by its triggers through a burst of
random inserts, status changes, refunds, owner and client changes and deletes — in both modes."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, text

from bbperf.metrics.ladder import differences
from bbperf.metrics.prices import WRITES
from bbperf.metrics.queries import barber_ids, fetch_raw
from bbperf.metrics.rollup import (
    apply_rollup,
    drop_rollup,
    fetch_from_rollup,
    installed_mode,
    rollup_status,
)

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
# The running totals are step functions of the day: check them inside the data, at its as_of and
# past its end (windows that empty out), not only where the notebook reads.
CHECKED_AS_OFS = (AS_OF - timedelta(days=45), AS_OF, AS_OF + timedelta(days=200))


def _mismatches(engine: Engine) -> list[str]:
    return [
        f"{when:%Y-%m-%d} {d.user_id}.{d.metric}: before {d.before}, rollup {d.variant}"
        for when in CHECKED_AS_OFS
        for user in barber_ids(engine)
        for d in differences(
            fetch_raw(engine, user, when, "before"), fetch_from_rollup(engine, user, when)
        )
    ]


def _ids(conn: Connection, sql: str) -> list[int]:
    return [int(r[0]) for r in conn.execute(text(sql))]


def _burst(engine: Engine, rng: random.Random, rounds: int = 6) -> int:
    """Random writes as an application makes them, one statement per change or per small batch;
    returns how many statements ran."""
    statements = 0
    with engine.begin() as conn:
        users = _ids(conn, "SELECT id FROM users")
        clients = _ids(conn, "SELECT id FROM clients")
    for _ in range(rounds):
        with engine.begin() as conn:
            appts = _ids(conn, "SELECT id FROM appointments ORDER BY id")
            paid = _ids(conn, "SELECT appointment_id FROM payments ORDER BY id")
            unpaid = sorted(set(appts) - set(paid))
            # new completed appointments with payments, some inside the windows, some outside
            for _ in range(5):
                start = AS_OF - timedelta(days=rng.choice([1, 5, 29, 31, 200, 400]), hours=3)
                new = conn.execute(
                    text(
                        "INSERT INTO appointments (user_id, barber_id, client_id, status, "
                        "start_time, duration_minutes, price) VALUES (:u, :u, :c, 'completed', "
                        ":t, :m, 40) RETURNING id"
                    ),
                    {
                        "u": rng.choice(users),
                        "c": rng.choice([*clients[:20], None]),
                        "t": start,
                        "m": rng.choice([15, 30, 45]),
                    },
                ).scalar_one()
                conn.execute(
                    text(
                        "INSERT INTO payments (user_id, appointment_id, amount, status, "
                        "created_at) SELECT user_id, id, :amt, :st, start_time + interval "
                        "'1 hour' FROM appointments WHERE id = :a"
                    ),
                    {"a": new, "amt": rng.choice(["19.99", "40.00", "61.50"]),
                     "st": rng.choice(["completed", "completed", "pending"])},
                )  # fmt: skip
                statements += 2
            picks = rng.sample(appts, 12)
            conn.execute(
                text(
                    "UPDATE appointments SET status = CASE status WHEN 'completed' THEN "
                    "'cancelled' ELSE 'completed' END WHERE id = ANY(:ids)"
                ),
                {"ids": picks[:6]},
            )
            conn.execute(
                text("UPDATE appointments SET user_id = :u, client_id = :c WHERE id = ANY(:ids)"),
                {"u": rng.choice(users), "c": rng.choice(clients), "ids": picks[6:9]},
            )
            conn.execute(
                text("UPDATE appointments SET start_time = start_time - interval '20 days' "
                     "WHERE id = :id"),
                {"id": picks[9]},
            )  # fmt: skip
            refunds = rng.sample(paid, 6)
            conn.execute(
                text("UPDATE payments SET status = 'refunded' WHERE appointment_id = ANY(:ids)"),
                {"ids": refunds[:4]},
            )
            conn.execute(
                text(
                    "UPDATE payments SET status = 'completed', amount = amount + 0.01 "
                    "WHERE appointment_id = :id"
                ),
                {"id": refunds[4]},
            )
            conn.execute(
                text("DELETE FROM payments WHERE appointment_id = ANY(:ids)"),
                {"ids": rng.sample(paid, 3)},
            )
            conn.execute(
                text("DELETE FROM appointments WHERE id = ANY(:ids)"),
                {"ids": rng.sample(unpaid, 3)},
            )
            statements += 7
    return statements


@pytest.mark.parametrize("mode", ["statement", "row"])
def test_rollup_stays_equal_to_before_through_a_burst_of_writes(
    tiny_copy: Engine, mode: str
) -> None:
    built = apply_rollup(tiny_copy, mode)  # type: ignore[arg-type]
    assert built["mode"] == mode and built["rows"] > 0
    assert _mismatches(tiny_copy) == []
    assert _burst(tiny_copy, random.Random(7)) == 6 * 17
    assert _mismatches(tiny_copy) == []


def test_rollup_without_triggers_goes_stale(tiny_copy: Engine) -> None:
    """The burst test can fail: with the triggers gone, the same writes leave the table behind."""
    from bbperf.target import schema_of

    apply_rollup(tiny_copy)
    schema = schema_of(tiny_copy)
    with tiny_copy.begin() as conn:
        for table in ("payments", "appointments"):
            for event in ("insert", "update", "delete"):
                conn.execute(text(f"DROP TRIGGER bbperf_rollup_{table}_{event} ON {table}"))
        assert installed_mode(conn, schema) is None
    _burst(tiny_copy, random.Random(7), rounds=1)
    assert _mismatches(tiny_copy) != []


def test_status_and_drop(tiny_copy: Engine) -> None:
    assert rollup_status(tiny_copy) == {"installed": False, "mode": None}
    apply_rollup(tiny_copy, "row")
    status = rollup_status(tiny_copy)
    assert status["installed"] and status["mode"] == "row" and status["barbers"] >= 4
    assert drop_rollup(tiny_copy) is True
    assert drop_rollup(tiny_copy) is False


def test_cli_rollup_commands(tiny_copy: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    from bbperf.cli import main

    url = tiny_copy.url.render_as_string(hide_password=False)
    assert main(["--database-url", url, "rollup", "apply", "--mode", "row"]) == 0
    assert '"mode": "row"' in capsys.readouterr().out
    assert main(["--database-url", url, "rollup", "status"]) == 0
    assert '"installed": true' in capsys.readouterr().out
    assert main(["--database-url", url, "rollup", "apply", "--mode", "daily"]) == 2
    err = capsys.readouterr().err
    assert err == "bbperf: error: unknown rollup mode 'daily': choose one of statement, row\n"
    assert (
        main(["--database-url", url, "rollup", "price", "--rounds", "2", "--batch-rows", "5"]) == 0
    )
    priced = json.loads(capsys.readouterr().out)
    assert {(r["write"], r["mode"]) for r in priced} == {
        (w, m) for w in WRITES for m in ("none", "row", "statement")
    }
    assert main(["--database-url", url, "rollup", "status"]) == 0
    assert '"mode": "row"' in capsys.readouterr().out  # priced, and left as found
    assert main(["--database-url", url, "rollup", "drop"]) == 0
    assert capsys.readouterr().out == "dropped\n"


def test_concurrent_writers_of_one_barber_keep_the_running_totals_exact(
    tiny_copy: Engine,
) -> None:
    """Two transactions book for the same barber: the later day's new row must carry the earlier
    write's change. Without serialization it copies the row as it was before the other commit."""
    import threading

    apply_rollup(tiny_copy)
    user = barber_ids(tiny_copy)[0]
    book = text(
        "INSERT INTO appointments (user_id, barber_id, client_id, status, start_time, "
        "duration_minutes, price) VALUES (:u, :u, NULL, 'completed', :t, 45, 40)"
    )
    first = tiny_copy.connect()
    first.begin()
    first.execute(book, {"u": user, "t": AS_OF - timedelta(days=100)})

    def second() -> None:
        with tiny_copy.begin() as conn:
            conn.execute(book, {"u": user, "t": AS_OF + timedelta(days=10, hours=3)})

    worker = threading.Thread(target=second)
    worker.start()
    worker.join(timeout=1.0)  # waits for the first transaction when writers are serialized
    first.commit()
    first.close()
    worker.join()
    later = AS_OF + timedelta(days=20)
    assert (
        differences(
            fetch_raw(tiny_copy, user, later, "before"), fetch_from_rollup(tiny_copy, user, later)
        )
        == []
    )
