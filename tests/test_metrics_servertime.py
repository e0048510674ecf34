"""Server time per call from pg_stat_statements: the variant's own statements, counted per call."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from bbperf.errors import DataError
from bbperf.metrics.queries import barber_ids
from bbperf.metrics.rollup import apply_rollup
from bbperf.metrics.servertime import query_ids, server_time

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def _with_statements(engine: Engine) -> Engine:
    with engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA bbperf"))
    return engine


@pytest.mark.parametrize(("variant", "statements"), [("before", 4), ("after", 1), ("rollup", 1)])
def test_server_time_counts_each_call_once_with_its_own_statements(
    tiny_copy: Engine, variant: str, statements: int
) -> None:
    engine = _with_statements(tiny_copy)
    apply_rollup(engine)
    user = barber_ids(engine)[0]
    with engine.connect() as conn:
        assert len(query_ids(conn, variant, user, AS_OF)) == statements
    found = server_time(engine, variant, user, AS_OF, calls=12, batches=3, warmup=2)
    assert (found.calls, found.batches, found.statements_per_call) == (12, 3, statements)
    assert 0 < found.min_batch_ms <= found.median_batch_ms <= found.max_batch_ms
    assert found.min_batch_ms <= found.mean_ms <= found.max_batch_ms


def test_a_variant_without_its_prerequisite_is_refused(tiny_copy: Engine) -> None:
    engine = _with_statements(tiny_copy)
    with pytest.raises(DataError, match="bbperf rollup apply"):
        server_time(engine, "rollup", barber_ids(engine)[0], AS_OF, calls=2, batches=1)
