"""Plans for PEV2 (github.com/dalibo/pev2, explain.dalibo.com): the document its "new plan" form and
``/new.json`` API accept — the plan as EXPLAIN JSON text and the query beside it.

bbperf does not embed PEV2 in reports: its licence (PostgreSQL-style) would allow it, but it is a
prebuilt JavaScript application that pip cannot fetch and that bbperf would have to vendor and keep
current. Open a saved file in PEV2's all-in-one ``index.html`` (offline) or post it:
``curl -H 'Content-Type: application/json' -d @plan.json https://explain.dalibo.com/new.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from bbperf.files import dumps_json, write_output


class Pev2Plan(Protocol):
    """What PEV2's document needs of a plan (``bbperf.explain.plan.Plan`` has it); a protocol rather
    than ``Plan`` itself, because ``Plan.save`` calls this module."""

    @property
    def raw(self) -> list[dict[str, Any]]: ...
    @property
    def sql(self) -> str | None: ...


def pev2_document(plan: Pev2Plan, title: str | None = None) -> dict[str, Any]:
    """``{"title", "plan", "query"}``: ``plan`` is the EXPLAIN (FORMAT JSON) text PEV2 parses."""
    return {
        "title": title or "bbperf plan",
        "plan": dumps_json(plan.raw),
        "query": plan.sql or "",
    }


def save_plan(
    plan: Pev2Plan, path: str | Path, title: str | None = None, *, force: bool = False
) -> Path:
    """Write ``pev2_document(plan)`` as JSON to ``path``; returns the path. An existing file is
    replaced only with ``force`` (``bbperf.files.write_output`` states every refusal)."""
    return write_output(path, dumps_json(pev2_document(plan, title)) + "\n", force=force)
