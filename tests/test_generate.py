"""Generation on real PostgreSQL: determinism, provenance, atomic loads, fingerprints on 15 and 18."""

from __future__ import annotations

import psycopg2
from sqlalchemy import Engine, text

from bbperf.generate import dataset_info, ensure_dataset, generate
from bbperf.pools import make_engine
from bbperf.schema import TABLE_ORDER


def test_tiny_fixture_holds_the_tiny_dataset(tiny_engine: Engine) -> None:
    info = dataset_info(tiny_engine)
    assert info is not None
    assert (info["profile"], info["scale"], info["seed"], info["as_of"]) == ("tiny", 1.0, 42, "2026-11-01")
    assert set(info["fingerprints"]) == set(TABLE_ORDER)
    assert 1000 < info["fingerprints"]["appointments"]["rows"] < 10_000


def test_tiny_copy_is_writable_and_separate(tiny_copy_url: str, tiny_engine: Engine) -> None:
    with psycopg2.connect(tiny_copy_url) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM bbperf.payments")
    with tiny_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM bbperf.payments")).scalar_one() > 0


def test_same_seed_gives_same_fingerprints_and_another_seed_differs(tiny_copy_url: str) -> None:
    engine = make_engine(tiny_copy_url, echo_pool=False)
    before = dataset_info(engine)
    again = generate(engine, "tiny", 1.0, 42, "2026-11-01", progress=False)
    assert before is not None and again.fingerprints == before["fingerprints"]
    other = generate(engine, "tiny", 1.0, 43, "2026-11-01", progress=False)
    assert other.fingerprints["appointments"] != again.fingerprints["appointments"]
    engine.dispose()


def test_ensure_dataset_reuses_matching_data(tiny_copy_url: str) -> None:
    engine = make_engine(tiny_copy_url, echo_pool=False)
    loaded_at = dataset_info(engine)["loaded_at"]  # type: ignore[index]
    info = ensure_dataset(engine, "tiny", 1, 42, "2026-11-01")
    assert info.loaded_at == loaded_at
    engine.dispose()
