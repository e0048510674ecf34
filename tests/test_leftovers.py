"""What an interrupted experiment leaves, found and removed: the schema ends as the dataset made it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from bbperf import partition
from bbperf.cache.invalidation import install_triggers
from bbperf.cli import main
from bbperf.generate.fingerprint import fingerprints
from bbperf.leftovers import leftovers, tidy
from bbperf.metrics.rollup import apply_rollup
from bbperf.metrics.variants import create_metrics_view


@pytest.fixture
def tiny_copy(tiny_copy_url: str) -> Iterator[Engine]:
    from bbperf.pool.config import make_engine

    engine = make_engine(tiny_copy_url, echo_pool=False)
    yield engine
    engine.dispose()


def _prints(engine: Engine) -> dict[str, dict[str, object]]:
    with engine.begin() as conn:
        return fingerprints(conn, "bbperf")


def test_tidy_removes_every_leftover_and_keeps_the_rows(
    tiny_copy: Engine, tiny_copy_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _prints(tiny_copy)
    assert leftovers(tiny_copy) == []
    partition.apply(tiny_copy, "month")
    apply_rollup(tiny_copy)
    create_metrics_view(tiny_copy, datetime(2026, 11, 1, tzinfo=UTC))
    install_triggers(tiny_copy)
    found = leftovers(tiny_copy)
    assert len(found) == 4 and "partitioned appointments/payments" in found
    assert main(["--database-url", tiny_copy_url, "schema", "tidy", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("would remove: materialized view")
    assert leftovers(tiny_copy) == found  # a dry run changes nothing
    assert tidy(tiny_copy) == found
    assert leftovers(tiny_copy) == []
    assert _prints(tiny_copy) == before
    assert main(["--database-url", tiny_copy_url, "schema", "tidy"]) == 0
    assert capsys.readouterr().out.strip() == "nothing left by an experiment"
