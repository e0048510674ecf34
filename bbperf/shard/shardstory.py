"""What notebook 10 tells the report: its verdict line and the road map's sharding claim, computed
from the run's comparisons (pure: no server needed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bbperf.experiment import register, times_ci
from bbperf.explain.timingstats import Comparison

CLAIM = "roadmap.shard_by_organization"
EXPERIMENT = register("10_sharding", "Sharding over postgres_fdw", [CLAIM])


def claim_verdict(routed_vs_local: Comparison, routed_vs_fanout: Comparison) -> str:
    """The claim "shard by organization when one server is not enough", from two 95 % CIs (speedup
    > 1: the first-named side is slower): ``refuted`` when routing to one shard buys nothing over a
    fan-out (the per-tenant work does not shrink, so neither would the load per server);
    ``confirmed`` when it does and a routed query is no slower than on one server; ``partly`` when
    routing helps but a routed query is measurably slower than on one server (the hop to its
    shard), or when routing's gain is not significant in this run."""
    if routed_vs_fanout.ci_high < 1:
        return "refuted"
    if routed_vs_fanout.ci_low <= 1 or routed_vs_local.ci_high < 1:
        return "partly"
    return "confirmed"


def _against_one_server(comparison: Comparison) -> str:
    """How the sharded side fared against the single server, as a phrase."""
    if comparison.ci_high < 1:
        return f"ran ×{1 / comparison.speedup:.2f} slower than on the single server"
    if comparison.ci_low > 1:
        return f"ran ×{comparison.speedup:.2f} faster than on the single server"
    return "showed no measurable difference from the single server"


def verdict(
    shards: int,
    routed_vs_local: Comparison,
    fanout_vs_local: Comparison,
    routed_vs_fanout: Comparison,
    torn: bool | None,
) -> str:
    """Notebook 10's line: the routed query and the fan-out against one server, what routing buys
    on the sharded layout, and whether a shard killed between remote commits tore a transaction."""
    text = (
        f"Over {shards} postgres_fdw shards on this machine, one barber's metrics (routed to one "
        f"shard) {_against_one_server(routed_vs_local)} "
        f"({times_ci(routed_vs_local.speedup, routed_vs_local.ci_low, routed_vs_local.ci_high)}), "
        f"the all-barbers aggregate (fan-out) {_against_one_server(fanout_vs_local)} "
        f"({times_ci(fanout_vs_local.speedup, fanout_vs_local.ci_low, fanout_vs_local.ci_high)}); "
        f"routing instead of fanning out: "
        f"{times_ci(routed_vs_fanout.speedup, routed_vs_fanout.ci_low, routed_vs_fanout.ci_high)}."
    )
    if torn is True:
        text += " A shard killed between the remote commits left one half of a transaction committed (no 2PC)."
    elif torn is False:
        text += " A shard killed before COMMIT tore no transaction in this run."
    return text


def claims(
    shards: int,
    routed_vs_local: Comparison,
    fanout_vs_local: Comparison,
    routed_vs_fanout: Comparison,
) -> list[dict[str, Any]]:
    """The road map's sharding claim, checked on this run."""
    return [
        {
            "claim": CLAIM,
            "measured": f"{shards} shards on one machine: routed one-barber query vs one server "
            f"{times_ci(routed_vs_local.speedup, routed_vs_local.ci_low, routed_vs_local.ci_high)}, "
            f"fan-out vs one server "
            f"{times_ci(fanout_vs_local.speedup, fanout_vs_local.ci_low, fanout_vs_local.ci_high)}, "
            f"routed vs fan-out "
            f"{times_ci(routed_vs_fanout.speedup, routed_vs_fanout.ci_low, routed_vs_fanout.ci_high)}; "
            "capacity beyond one server is not measured here (all shards share the machine)",
            "verdict": claim_verdict(routed_vs_local, routed_vs_fanout),
            "figure": "routed_vs_fanout",
        }
    ]


def figures(
    routed_vs_local: Comparison,
    fanout_vs_local: Comparison,
    routed_vs_fanout: Comparison,
    n: int | Sequence[int],
) -> Sequence[dict[str, Any]]:
    """The three comparisons as figures for ``Results.add`` (speedup, higher: sharded faster);
    ``n``: samples per side, one for all or one per comparison (``Routing.sizes``)."""
    sizes = (n, n, n) if isinstance(n, int) else tuple(n)
    return [
        _figure(
            "routed_vs_single_server",
            routed_vs_local,
            sizes[0],
            True,
            "one barber's metrics: single server ÷ sharded (routed to one shard)",
        ),
        _figure(
            "fanout_vs_single_server",
            fanout_vs_local,
            sizes[1],
            False,
            "every barber's aggregate: single server ÷ sharded (fan-out to all shards)",
        ),
        _figure(
            "routed_vs_fanout",
            routed_vs_fanout,
            sizes[2],
            True,
            "on the sharded layout: fan-out aggregate ÷ one barber's routed query",
        ),
    ]


def _figure(name: str, c: Comparison, n: int, headline: bool, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "value": c.speedup,
        "unit": "x",
        "better": "higher",
        "ci_low": c.ci_low,
        "ci_high": c.ci_high,
        "p_value": c.p_value,
        "significant": c.significant,
        "n": n,
        "headline": headline,
        "description": description,
    }
