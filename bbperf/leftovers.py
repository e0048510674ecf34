"""What an interrupted experiment can leave in bbperf's schema, and putting the schema back.

Notebooks build objects for their experiments — the metrics view, the rollup table and its triggers,
the cache's invalidation triggers, partitioned tables, probe bookings — and remove them at their end. A
notebook that fails half-way leaves them, and the next experiment then measures a different schema or
refuses to run (partitioning cannot convert a table a materialized view depends on). ``bbperf report``
tidies after a failed notebook; ``bbperf schema tidy`` does it by hand. Only objects bbperf itself
creates are looked for, each by its own module's name for it; index sets are left as they are (every
notebook sets the indexes it measures).
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from bbperf.target import schema_of


def leftovers(engine: Engine) -> list[str]:
    """What experiments left in the engine's schema, one readable item each (empty: nothing)."""
    from bbperf import partition
    from bbperf.cache.invalidation import triggers_installed
    from bbperf.metrics.rollup import installed_mode
    from bbperf.metrics.variants import VIEW_NAME
    from bbperf.topology.mix import probe_rows

    schema = schema_of(engine)
    found = []
    with engine.connect() as conn:
        if conn.execute(text("SELECT to_regclass(:v)"), {"v": f'"{schema}".{VIEW_NAME}'}).scalar():
            found.append(f"materialized view {VIEW_NAME}")
        mode = installed_mode(conn, schema)
    if mode is not None:
        found.append(f"rollup ({mode} triggers)")
    triggers = triggers_installed(engine)
    if triggers:
        found.append(f"{triggers} cache invalidation triggers")
    if partition.status(engine).partitioned:
        found.append("partitioned appointments/payments")
    probes = probe_rows(engine)
    if probes:
        found.append(f"{probes} probe bookings")
    return found


def tidy(engine: Engine) -> list[str]:
    """Remove everything ``leftovers`` finds (partitioned tables are converted back, keeping their
    rows); returns what was removed."""
    from bbperf import partition
    from bbperf.cache.invalidation import remove_triggers
    from bbperf.metrics.rollup import drop_rollup
    from bbperf.metrics.variants import drop_metrics_view
    from bbperf.topology.mix import remove_probe_rows

    found = leftovers(engine)
    for item in found:
        if item.startswith("materialized view"):
            drop_metrics_view(engine)
        elif item.startswith("rollup"):
            drop_rollup(engine)
        elif item.endswith("cache invalidation triggers"):
            remove_triggers(engine)
        elif item.startswith("partitioned"):
            partition.drop(engine)
        elif item.endswith("probe bookings"):
            remove_probe_rows(engine)
    return found
