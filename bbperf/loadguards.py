"""Checks a dataset load must pass before it replaces the rows, registered by the features that know
them. A load refuses to run while an experiment built on the old rows is in place; which objects
those are only the features above the data layer know (``bbperf.leftovers`` registers its check
when imported), so ``bbperf.generate`` asks this registry instead of importing them."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

LoadGuard = Callable[[Engine], list[str]]
"""What keeps a load from running on an engine: one readable item each (empty: nothing)."""

_GUARDS: list[LoadGuard] = []


def register(guard: LoadGuard) -> LoadGuard:
    """Add ``guard`` to the checks every load runs (once, however often it is registered)."""
    if guard not in _GUARDS:
        _GUARDS.append(guard)
    return guard


def blockers(engine: Engine) -> list[str]:
    """What the registered guards find on ``engine``, in the order they were registered."""
    return [item for guard in _GUARDS for item in guard(engine)]
