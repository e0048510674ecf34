"""Maintenance checklist: readers against a real server, recommendations on exact frames."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, text

from bbperf import maintenance as m


def tables_frame(**overrides: object) -> pd.DataFrame:
    row = {
        "table_name": "appointments",
        "live_tuples": 1000,
        "dead_tuples": 0,
        "modified_since_analyze": 0,
        "last_analyzed": pd.Timestamp("2026-11-01", tz="UTC"),
    }
    row.update(overrides)
    return pd.DataFrame([row])


def indexes_frame(scans: int, constraint: bool) -> pd.DataFrame:
    df = pd.DataFrame(
        [
            {
                "table_name": "appointments",
                "index_name": "idx_a",
                "scans": scans,
                "size_bytes": 16384,
                "enforces_constraint": constraint,
            }
        ]
    )
    df["unused"] = (df["scans"] == 0) & ~df["enforces_constraint"]
    return df


def test_healthy_tables_need_nothing() -> None:
    assert m.recommendations(tables_frame(), indexes_frame(5, False), hit_ratio=0.99).empty


def test_stale_and_never_analyzed_tables_get_analyze() -> None:
    stale = m.recommendations(tables_frame(modified_since_analyze=101), indexes_frame(1, False))
    assert stale.to_dict("records") == [
        {
            "action": "analyze",
            "target": "bbperf.appointments",
            "reason": "101 rows changed since the last ANALYZE (10% of 1,000)",
            "sql": "ANALYZE bbperf.appointments;",
        }
    ]
    assert m.recommendations(
        tables_frame(modified_since_analyze=100), indexes_frame(1, False)
    ).empty
    never = m.recommendations(tables_frame(last_analyzed=None), indexes_frame(1, False))
    assert never["reason"].tolist() == ["never analyzed"]
    empty = m.recommendations(
        tables_frame(last_analyzed=None, live_tuples=0), indexes_frame(1, False)
    )
    assert empty.empty


def test_dead_tuples_unused_and_bloated_indexes_and_cache() -> None:
    bloated = pd.DataFrame(
        [
            {"index_name": "idx_big", "size_bytes": 4 << 20, "avg_leaf_density": 31.0},
            {"index_name": "idx_small", "size_bytes": 8192, "avg_leaf_density": 10.0},
            {"index_name": "idx_dense", "size_bytes": 4 << 20, "avg_leaf_density": 90.0},
        ]
    )
    recs = m.recommendations(tables_frame(dead_tuples=500), indexes_frame(0, False), bloated, 0.85)
    assert recs["action"].tolist() == ["vacuum", "drop index", "reindex", "tune memory"]
    assert recs["sql"].tolist()[:3] == [
        "VACUUM (ANALYZE) bbperf.appointments;",
        "DROP INDEX CONCURRENTLY bbperf.idx_a;",
        "REINDEX INDEX CONCURRENTLY bbperf.idx_big;",
    ]
    assert recs["reason"].iloc[0] == "500 dead tuples (33%)"
    assert recs["reason"].iloc[3] == "cache hit ratio 85.0% is under 90%"
    # A never-scanned index that enforces a constraint is not a candidate to drop.
    assert m.recommendations(tables_frame(), indexes_frame(0, True)).empty


def test_readers_see_the_database(schema_engine: Engine) -> None:
    # create_schema installs the bench extensions into bbperf's schema.
    assert m.extension_schema(schema_engine, "pgstattuple") == "bbperf"
    with schema_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO organizations (name, slug) "
                "SELECT 'shop ' || g, 'shop-' || g FROM generate_series(1, 200) g"
            )
        )
        conn.execute(text("DELETE FROM organizations WHERE id % 2 = 0"))
        conn.execute(text("SELECT count(*) FROM organizations WHERE slug = 'shop-1'"))
    with schema_engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_force_next_flush()"))
    tables = m.table_stats(schema_engine).set_index("table_name")
    assert tables.loc["organizations", "live_tuples"] == 100
    assert tables.loc["organizations", "dead_tuples"] == 100
    usage = m.index_usage(schema_engine)
    slug = usage[usage["index_name"] == "organizations_slug_key"].iloc[0]
    assert bool(slug["enforces_constraint"]) and not bool(slug["unused"])
    recs = m.recommendations(tables.reset_index(), usage)
    assert {"never analyzed", "100 dead tuples (50%)"} <= set(recs["reason"])
    bloat = m.bloat(schema_engine)
    assert bloat.available
    orgs = bloat.tables.set_index("table_name").loc["organizations"]
    assert orgs["tuples"] == 100 and orgs["dead_tuple_percent"] > 0
    assert "organizations_pkey" in set(bloat.indexes["index_name"])
    cache = m.cache_hits(schema_engine)
    assert set(cache["table_name"]) >= {"organizations", "appointments"}
    ratio = m.overall_hit_ratio(cache)
    assert ratio is not None and 0 < ratio <= 1
    top = m.top_statements(schema_engine, limit=5)
    assert len(top) == 5 and list(top.columns) == ["calls", "total_ms", "mean_ms", "rows", "query"]


def test_bloat_without_pgstattuple_says_so(fresh_engine: Engine) -> None:
    assert m.extension_schema(fresh_engine, "pgstattuple") is None
    assert not m.bloat(fresh_engine).available
