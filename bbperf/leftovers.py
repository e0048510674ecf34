"""What an interrupted experiment can leave in bbperf's schema, and putting the schema back.

Notebooks build objects for their experiments — the metrics view, the rollup table and its triggers,
the cache's invalidation triggers, partitioned tables, probe bookings — and remove them at their end. A
notebook that fails half-way leaves them, and the next experiment then measures a different schema or
refuses to run (partitioning cannot convert a table a materialized view depends on). ``bbperf report``
tidies after a failed notebook; ``bbperf schema tidy`` does it by hand, leaving what a running process
(the cache listener) still uses. Only objects bbperf itself creates are looked for, each by its own
module's name for it. Index sets a notebook leaves on purpose stay (every notebook sets the indexes it
measures); a set applied for a measurement that drops it afterwards (notebook 01's benchmark, marked
by ``bbperf.indexes.apply.start_trial``) is a leftover when the run stopped before its drop.

Importing this module registers ``blocking`` with ``bbperf.loadguards``: a load then refuses to run
while a leftover that it would not replace is in place (the CLI and the report import it first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from bbperf import loadguards, partition
from bbperf.cache.invalidation import listener_connected, remove_triggers, triggers_installed
from bbperf.catalog import relation_exists
from bbperf.indexes import drop, load_set
from bbperf.indexes.apply import open_trial
from bbperf.metrics.rollup import drop_rollup, installed_mode
from bbperf.metrics.variants import VIEW_NAME, drop_metrics_view
from bbperf.target import schema_of
from bbperf.topology.mix import probe_rows, remove_probe_rows


@dataclass(frozen=True)
class Leftover:
    """One object an experiment left: what it is, how to remove it, and the command that does.

    ``owner`` names the running process that still uses it (then tidy leaves it in place);
    ``replaced_by_load`` marks rows a new ``generate`` replaces anyway.
    """

    what: str
    remove: Callable[[Engine], object]
    command: str
    owner: str | None = None
    replaced_by_load: bool = False


def survey(engine: Engine) -> list[Leftover]:
    """Each leftover in an order that removes dependents first (the view before partitioning,
    which cannot convert a table a view depends on)."""
    schema = schema_of(engine)
    found: list[Leftover] = []
    with engine.connect() as conn:
        if relation_exists(conn, schema, VIEW_NAME):
            found.append(
                Leftover(f"materialized view {VIEW_NAME}", drop_metrics_view, "bbperf schema tidy")
            )
        mode = installed_mode(conn, schema)
        trial = open_trial(conn, schema)
    if trial is not None:
        found.append(
            Leftover(
                f"index set {trial['set']} left applied by {trial['by']}",
                _trial_remover(trial),
                "bbperf schema tidy",
                replaced_by_load=True,  # indexes, not figures: a new load rebuilds the set it finds
            )
        )
    if mode is not None:
        found.append(Leftover(f"rollup ({mode} triggers)", drop_rollup, "bbperf rollup drop"))
    triggers = triggers_installed(engine)
    if triggers:
        # A listener's session in pg_stat_activity is the proof that its process is alive and
        # needs the triggers; `cache stop` ends it and removes them.
        owner = "the running cache listener" if listener_connected(engine) else None
        command = "bbperf cache stop" if owner else "bbperf schema tidy"
        found.append(
            Leftover(f"{triggers} cache invalidation triggers", remove_triggers, command, owner)
        )
    if partition.status(engine).partitioned:
        found.append(
            Leftover("partitioned appointments/payments", partition.drop, "bbperf partition drop")
        )
    probes = probe_rows(engine)
    if probes:
        found.append(
            Leftover(
                f"{probes} probe bookings",
                remove_probe_rows,
                "bbperf schema tidy",
                replaced_by_load=True,
            )
        )
    return found


def _trial_remover(trial: dict[str, str]) -> Callable[[Engine], object]:
    """Drop the set a trial applied (which also clears its mark)."""

    def remove(engine: Engine) -> object:
        source = trial.get("source") or "built-in"
        return drop(engine, load_set(trial["set"] if source == "built-in" else source))

    return remove


def leftovers(engine: Engine) -> list[str]:
    """What experiments left in the engine's schema that tidy would remove, one readable item
    each (empty: nothing). What a running process still uses is not a leftover: see ``in_use``."""
    return [item.what for item in survey(engine) if item.owner is None]


def in_use(engine: Engine) -> list[str]:
    """Experiment objects a running process still uses, each with its owner; tidy leaves them."""
    return [
        f"{item.what}, used by {item.owner} (`{item.command}` removes them)"
        for item in survey(engine)
        if item.owner
    ]


def tidy(engine: Engine) -> list[str]:
    """Remove everything ``leftovers`` finds (partitioned tables are converted back, keeping their
    rows) and leave what a running process uses; returns what was removed."""
    found = [item for item in survey(engine) if item.owner is None]
    for item in found:
        item.remove(engine)
    return [item.what for item in found]


@loadguards.register
def blocking(engine: Engine) -> list[str]:
    """The leftovers a new load would not replace, each with the command that removes it: built from
    the old rows, they would leave figures from both datasets (the rollup keeps the old aggregates,
    the view the old rows)."""
    return [
        f"{item.what} (`{item.command}`)" for item in survey(engine) if not item.replaced_by_load
    ]
