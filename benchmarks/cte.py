"""The six-figure metrics CTE rewrite at a given scale: server and end-to-end time per variant.

For the busiest and the median barber (by completed appointments in the 30 days before as_of) it
prints the server Execution Time of each variant (``before`` summed over its four statements), the
end-to-end median with IQR, the speedup over ``before`` with its 95 % bootstrap CI and significance,
the materialized view's build and refresh cost, whether the issue's target holds (``after`` server
time ≤ 1 ms for the median barber), and where ``after`` spends its time for the busiest barber.

    python benchmarks/cte.py [--profile default] [--scale 1] [--seed 42] [--as-of 2026-11-01]
        [--rounds 50] [--server-rounds 20] [--index-set seed] [--json PATH]
    python benchmarks/cte.py --ladder [--scale 1] [--small-scale 0.1] [--small-url URL] ...

``--ladder`` times every variant of the ladder (issue 12) with the seed and metrics sets, the rollup
and the view in place, at ``--small-scale`` and then ``--scale``; prints each row with its price
and the targets' verdicts (see ``run_ladder``).

Works on bbperf's target (embedded server or BBPERF_DATABASE_URL): loads the dataset when the one
there differs, leaves exactly ``--index-set`` applied, and drops the metrics view at the end.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import text

from bbperf.asof import as_of_datetime
from bbperf.explain import explain
from bbperf.generate import ensure_dataset
from bbperf.metrics import variant_timing
from bbperf.metrics.drift import drift_rows, drift_summary
from bbperf.metrics.queries import CTE_SQL, window_params
from bbperf.metrics.variants import drop_metrics_view
from bbperf.target import connect

TARGET_MS = 1.0


def _ci(row: pd.Series) -> str:
    if row["variant"] == "before" or pd.isna(row.get("speedup")):
        return "baseline"
    sig = "significant" if row["significant"] else "not significant"
    return (
        f"x{row['speedup']:.2f} (95% CI x{row['ci_low']:.2f}-x{row['ci_high']:.2f}, "
        f"p={row['p_value']:.2g}, {sig})"
    )


def print_speed(speed: pd.DataFrame) -> None:
    """One block per barber: server ms, end-to-end median ± IQR, speedup over before."""
    for label, rows in speed.groupby("barber", sort=False):
        first = rows.iloc[0]
        print(
            f"\n{label} barber: user {first['user_id']}, "
            f"{first['appointments_30d']} completed appointments in 30 days"
        )
        print(
            f"  {'variant':<17} {'server ms':>10} {'plan ms':>8} {'e2e median ms':>14} "
            f"{'IQR ms':>8}  speedup vs before (end to end)"
        )
        for _, row in rows.iterrows():
            print(
                f"  {row['variant']:<17} {row['server_exec_ms']:>10.3f} "
                f"{row['server_plan_ms']:>8.3f} {row['client_ms']:>14.3f} "
                f"{row['client_iqr_ms']:>8.3f}  {_ci(row)}"
            )


def worst_nodes(engine: Any, user_id: int, when: Any, n: int = 5) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS, TIMING) of ``after`` and its ``n`` nodes with the most self time."""
    plan = explain(engine, CTE_SQL["after"], window_params(user_id, when))
    nodes = [
        {
            "node": node.label,
            "self_ms": node.self_ms,
            "inclusive_ms": node.inclusive_ms,
            "rows": node.actual_rows,
            "est_rows": node.plan_rows,
            "loops": node.loops,
            "shared_hit": node.shared_hit_blocks,
            "shared_read": node.shared_read_blocks,
        }
        for node in plan.worst_nodes(n)
    ]
    return {
        "planning_ms": plan.planning_ms,
        "execution_ms": plan.execution_ms,
        "total_ms": plan.total_ms,
        "nodes": nodes,
    }


def print_worst(worst: dict[str, Any], user_id: int) -> None:
    print(
        f"\nwhere after's time goes, busiest barber (user {user_id}), EXPLAIN (ANALYZE, BUFFERS, "
        f"TIMING ON) — timing adds overhead: execution {worst['execution_ms']:.3f} ms, "
        f"planning {worst['planning_ms']:.3f} ms"
    )
    for node in worst["nodes"]:
        share = node["self_ms"] / worst["total_ms"] if worst["total_ms"] else math.nan
        print(
            f"  {node['self_ms']:>8.3f} ms self ({share:>4.0%})  incl {node['inclusive_ms']:>8.3f} ms  "
            f"rows {node['rows']:>8,.0f} (est {node['est_rows']:,.0f})  loops {node['loops']}  "
            f"hit {node['shared_hit']} read {node['shared_read']}  {node['node']}"
        )


def target_verdict(speed: pd.DataFrame) -> tuple[bool, str]:
    """The issue's target: after's server time ≤ 1 ms for a typical (median) barber, and end to
    end significantly faster than before."""
    typical = "median" if (speed["barber"] == "median").any() else "busiest"  # one-barber data
    after = speed[(speed["barber"] == typical) & (speed["variant"] == "after")].iloc[0]
    holds = bool(
        after["server_exec_ms"] <= TARGET_MS and after["significant"] and after["speedup"] > 1
    )
    word = "HOLDS" if holds else "DOES NOT HOLD"
    return holds, (
        f"target (after server time <= {TARGET_MS:g} ms for the {typical} barber, end to end "
        f"significantly faster than before): {word} — server {after['server_exec_ms']:.3f} ms, "
        f"end to end x{after['speedup']:.2f}"
    )


def _ladder_state(engine: Any, profile: str, scale: float, seed: int, when: Any) -> Any:
    """Dataset, seed + metrics sets, VACUUM (index-only scans need the visibility map), rollup,
    view."""
    from bbperf.metrics.ladder_timing import prepare_ladder

    drop_metrics_view(engine)
    info = ensure_dataset(engine, profile, scale, seed, when.date())
    prepare_ladder(engine, when)
    return info


def print_ladder(table: pd.DataFrame, prices: dict[str, Any] | None, scale: float) -> None:
    for label, rows in table.groupby("barber", sort=False):
        first = rows.iloc[0]
        print(f"\nSF {scale:g}, {label} barber: user {first['user_id']}, "
              f"{first['appointments_30d']} completed appointments in 30 days")  # fmt: skip
        print(f"  {'variant':<17} {'server ms':>9} {'95% CI':>15} {'e2e ms':>8}  price")
        for _, row in rows.iterrows():
            price = (prices or {}).get(row["variant"], {}).get("price", "")
            ci = f"{row['server_ci_low']:.3f}-{row['server_ci_high']:.3f}"
            print(f"  {row['variant']:<17} {row['server_ms']:>9.3f} {ci:>15} "
                  f"{row['client_ms']:>8.3f}  {price}")  # fmt: skip


def run_ladder(args: argparse.Namespace) -> None:
    """Every ladder variant at --small-scale then --scale, priced, with the targets' verdicts."""
    from bbperf.metrics import ladder_timing
    from bbperf.metrics.ladder import equivalence

    when = as_of_datetime(args.as_of)
    small_engine = connect(args.small_url, echo_pool=False) if args.small_url else None
    tables: dict[float, pd.DataFrame] = {}
    prices: dict[str, Any] = {}
    for scale, engine in ((args.small_scale, small_engine), (args.scale, None)):
        engine = engine or connect(echo_pool=False)
        info = _ladder_state(engine, args.profile, scale, args.seed, when)
        picks = variant_timing.pick_barbers(engine, when, 2, args.seed)
        users = [p.user_id for p in picks]
        unequal = {v: len(equivalence(engine, v, users, when)) for v in ladder_timing.NON_CACHED}
        print(f"SF {scale:g}: {info.rows['appointments']:,} appointments, "
              f"{info.rows['payments']:,} payments; differences from before over the two "
              f"barbers: {unequal}")  # fmt: skip
        tables[scale] = ladder_timing.speed(
            engine, when, picks, rounds=args.rounds, server_rounds=args.server_rounds
        )
        if scale == args.scale:
            prices = ladder_timing.price_list(engine, when, picks[0].user_id)
            best = ladder_timing.best_non_cached(tables[scale])
            with engine.connect() as conn:
                sql = variant_timing.server_statements(conn, best)[0]
            if best != "prepared":
                worst = explain(engine, sql, window_params(picks[0].user_id, when))
                print(f"\nwhere {best} spends its time, busiest barber (TIMING ON): "
                      f"{worst.execution_ms:.3f} ms")  # fmt: skip
                for node in worst.worst_nodes(4):
                    print(f"  {node.self_ms:>8.3f} ms self  rows {node.actual_rows:>8,.0f}  "
                          f"loops {node.loops}  {node.label}")  # fmt: skip
        print_ladder(tables[scale], prices if scale == args.scale else None, scale)
        engine.dispose()
    print("\nverdicts (server: median EXPLAIN ANALYZE Execution Time; e2e: median whole call):")
    for line in ladder_timing.verdicts(
        tables[args.scale], tables[args.small_scale], args.scale, args.small_scale
    ):
        print("  " + line)
    if args.json:
        figures = {
            "scales": {str(k): json.loads(v.to_json(orient="records")) for k, v in tables.items()},
            "prices": prices,
        }
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", default="2026-11-01")
    parser.add_argument("--rounds", type=int, default=50, help="end-to-end rounds per variant")
    parser.add_argument("--server-rounds", type=int, default=20, help="EXPLAIN ANALYZE rounds")
    parser.add_argument("--index-set", default="seed", help="seed, none, or a set bbperf knows")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--ladder", action="store_true", help="time every variant of the ladder")
    parser.add_argument("--small-scale", type=float, default=0.1, help="--ladder: scale compared")
    parser.add_argument("--small-url", help="--ladder: database for the small scale")
    args = parser.parse_args()
    if args.ladder:
        run_ladder(args)
        return

    engine = connect(echo_pool=False)
    when = as_of_datetime(args.as_of)
    drop_metrics_view(engine)  # a view left by an earlier run would hold another as_of
    info = ensure_dataset(engine, args.profile, args.scale, args.seed, when.date())
    variant_timing.set_indexes(engine, args.index_set)
    with engine.connect() as conn:
        version = conn.execute(text("SHOW server_version")).scalar()
    print(
        f"dataset: profile {args.profile}, scale {args.scale:g}, seed {args.seed}, as_of "
        f"{when:%Y-%m-%d}; {info.rows['appointments']:,} appointments, "
        f"{info.rows['payments']:,} payments; indexes: {args.index_set}; PostgreSQL {version}"
    )
    try:
        costs = variant_timing.view_costs(engine, when)
        picks = variant_timing.pick_barbers(engine, when, 2, args.seed)
        speed, _ = variant_timing.benchmark(
            engine, when, picks, rounds=args.rounds, warmup=5, server_rounds=args.server_rounds
        )
        print(
            f"server: median Execution Time of {args.server_rounds} EXPLAIN (ANALYZE, TIMING OFF) "
            f"rounds; end to end: {args.rounds} interleaved calls (pool checkout, round trips, "
            "Python aggregation)"
        )
        print_speed(speed)
        print(
            f"\nmaterialized view: build {costs['view_build_ms']:.0f} ms, refresh "
            f"{costs['view_refresh_ms']:.0f} ms (median of 3) — the price of its reads"
        )
        busiest = picks[0]
        worst = worst_nodes(engine, busiest.user_id, when)
        print_worst(worst, busiest.user_id)
        drift = drift_summary(drift_rows(engine, [p.user_id for p in picks], when), len(picks))
    finally:
        drop_metrics_view(engine)
    print("\n" + variant_timing.conclusion(speed, drift, len(picks), TARGET_MS))
    holds, verdict = target_verdict(speed)
    print(verdict)
    if args.json:
        figures = {
            "dataset": {
                "profile": args.profile,
                "scale": args.scale,
                "seed": args.seed,
                "as_of": args.as_of,
                "rows": info.rows,
                "index_set": args.index_set,
                "server_version": version,
            },
            "rounds": args.rounds,
            "server_rounds": args.server_rounds,
            "speed": json.loads(speed.to_json(orient="records")),
            "view": costs,
            "after_worst_nodes_busiest": worst,
            "drift": drift,
            "target_ms": TARGET_MS,
            "target_holds": holds,
        }
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
        print(f"figures written to {args.json}")
    engine.dispose()


if __name__ == "__main__":
    main()
