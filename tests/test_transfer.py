"""Streaming COPY between two connections (bbperf.shard.transfer) on the real server: rows arrive
whole, a failing source or target raises instead of hanging, and nothing is committed for the
caller."""

from __future__ import annotations

import pytest
from psycopg2 import errors
from sqlalchemy import Engine, text

from bbperf.shard.transfer import CHUNK_BYTES, stream_copy


@pytest.fixture
def scratch(tiny_copy: Engine) -> Engine:
    with tiny_copy.begin() as conn:
        conn.execute(text("CREATE TABLE bbperf.t_transfer (id int, payload text)"))
    return tiny_copy


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM bbperf.t_transfer")).scalar_one()


def test_rows_bigger_than_the_pipe_arrive_whole(scratch: Engine) -> None:
    rows = 4 * CHUNK_BYTES // 100
    source, target = scratch.raw_connection(), scratch.raw_connection()
    try:
        stream_copy(
            source,
            f"COPY (SELECT g, repeat('x', 90) FROM generate_series(1, {rows}) g) TO STDOUT",
            target,
            "COPY bbperf.t_transfer FROM STDIN",
        )
        assert _count(scratch) == 0  # nothing committed by stream_copy
        target.commit()
    finally:
        source.close()
        target.close()
    with scratch.connect() as conn:
        total, distinct = conn.execute(
            text("SELECT sum(id), count(DISTINCT payload) FROM bbperf.t_transfer")
        ).one()
    assert total == rows * (rows + 1) // 2 and distinct == 1


def test_a_source_that_fails_midway_raises_its_error(scratch: Engine) -> None:
    source, target = scratch.raw_connection(), scratch.raw_connection()
    try:
        with pytest.raises(errors.DivisionByZero):
            stream_copy(
                source,
                "COPY (SELECT 1 / (50000 - g), 'x' FROM generate_series(1, 100000) g) TO STDOUT",
                target,
                "COPY bbperf.t_transfer FROM STDIN",
            )
        target.rollback()
    finally:
        source.close()
        target.close()
    assert _count(scratch) == 0


def test_a_target_that_refuses_the_rows_raises_and_stops_the_source(scratch: Engine) -> None:
    source, target = scratch.raw_connection(), scratch.raw_connection()
    try:
        with pytest.raises(errors.InvalidTextRepresentation):
            stream_copy(
                source,
                "COPY (SELECT 'not a number', 'x' FROM generate_series(1, 1000000)) TO STDOUT",
                target,
                "COPY bbperf.t_transfer FROM STDIN",
            )
    finally:
        source.close()
        target.close()
    assert _count(scratch) == 0
