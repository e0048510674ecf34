"""What an interrupted experiment can leave in bbperf's schema, and putting the schema back.

Notebooks build objects for their experiments — the metrics view, the rollup table and its triggers,
the cache's invalidation triggers, partitioned tables, probe bookings — and remove them at their end. A
notebook that fails half-way leaves them, and the next experiment then measures a different schema or
refuses to run (partitioning cannot convert a table a materialized view depends on). ``bbperf report``
tidies after a failed notebook; ``bbperf schema tidy`` does it by hand. Only objects bbperf itself
creates are looked for, each by its own module's name for it. Index sets a notebook leaves on purpose
stay (every notebook sets the indexes it measures); a set applied for a measurement that drops it
afterwards (notebook 01's benchmark, marked by ``bbperf.indexes.apply.start_trial``) is a leftover
when the run stopped before its drop.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, text

from bbperf.target import schema_of


def _found(engine: Engine) -> list[tuple[str, Callable[[Engine], object]]]:
    """Each leftover as (what it is, how to remove it), in an order that removes dependents first
    (the view before partitioning, which cannot convert a table a view depends on)."""
    from bbperf import partition
    from bbperf.cache.invalidation import remove_triggers, triggers_installed
    from bbperf.indexes.apply import open_trial
    from bbperf.metrics.rollup import drop_rollup, installed_mode
    from bbperf.metrics.variants import VIEW_NAME, drop_metrics_view
    from bbperf.topology.mix import probe_rows, remove_probe_rows

    schema = schema_of(engine)
    found: list[tuple[str, Callable[[Engine], object]]] = []
    with engine.connect() as conn:
        if conn.execute(text("SELECT to_regclass(:v)"), {"v": f'"{schema}".{VIEW_NAME}'}).scalar():
            found.append((f"materialized view {VIEW_NAME}", drop_metrics_view))
        mode = installed_mode(conn, schema)
        trial = open_trial(conn, schema)
    if trial is not None:
        found.append(
            (f"index set {trial['set']} left applied by {trial['by']}", _trial_remover(trial))
        )
    if mode is not None:
        found.append((f"rollup ({mode} triggers)", drop_rollup))
    triggers = triggers_installed(engine)
    if triggers:
        found.append((f"{triggers} cache invalidation triggers", remove_triggers))
    if partition.status(engine).partitioned:
        found.append(("partitioned appointments/payments", partition.drop))
    probes = probe_rows(engine)
    if probes:
        found.append((f"{probes} probe bookings", remove_probe_rows))
    return found


def _trial_remover(trial: dict[str, str]) -> Callable[[Engine], object]:
    """Drop the set a trial applied (which also clears its mark)."""

    def remove(engine: Engine) -> object:
        from bbperf.indexes import drop, load_set

        source = trial.get("source") or "built-in"
        return drop(engine, load_set(trial["set"] if source == "built-in" else source))

    return remove


def leftovers(engine: Engine) -> list[str]:
    """What experiments left in the engine's schema, one readable item each (empty: nothing)."""
    return [what for what, _ in _found(engine)]


def tidy(engine: Engine) -> list[str]:
    """Remove everything ``leftovers`` finds (partitioned tables are converted back, keeping their
    rows); returns what was removed."""
    found = _found(engine)
    for _, remove in found:
        remove(engine)
    return [what for what, _ in found]
