"""What bbperf accepts as EXPLAIN input: strict JSON, bounded nesting, and nodes whose fields have
the types and ranges PostgreSQL writes (times, costs and rows finite and non-negative).

Every refusal is a ValueError in one line naming the node, so a hand-edited or hostile plan file
gives an answer instead of a KeyError, TypeError or RecursionError.
"""

from __future__ import annotations

import json
import math
from typing import Any

from bbperf.files import MAX_JSON_DEPTH


def load_json(text: str) -> Any:
    """Strict JSON: NaN/Infinity and nesting that exhausts the parser are a one-line ValueError."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError:
        raise ValueError(
            "not EXPLAIN output: expected FORMAT JSON or the TEXT format psql prints"
        ) from None
    except RecursionError:
        raise ValueError(
            f"EXPLAIN output nested more than {MAX_JSON_DEPTH} levels deep: refused"
        ) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"EXPLAIN JSON holds {name}, which is not a number: refused")


_TEXT_FIELDS = (
    "Node Type",
    "Relation Name",
    "Schema",
    "Alias",
    "Index Name",
    "Parent Relationship",
    "Subplan Name",
    "CTE Name",
    "Join Type",
    "Sort Method",
)
_COUNT_FIELDS = (
    "Actual Loops",
    "Workers Launched",
    "Shared Hit Blocks",
    "Shared Read Blocks",
    "Temp Written Blocks",
)
_NUMBER_FIELDS = (
    "Startup Cost",
    "Total Cost",
    "Plan Rows",
    "Actual Rows",
    "Actual Startup Time",
    "Actual Total Time",
    "Rows Removed by Filter",
)


_NUMBERS = (int, float)


def figure(raw: dict[str, Any], key: str, where: str) -> float | None:
    """A finite, non-negative number from the plan, or None when absent; ValueError otherwise."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: {key!r} is {value!r}, not a number")
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"{where}: {key!r} is {value!r}; times, costs and rows are finite and >= 0"
        )
    return float(value)


def check_node(raw: Any, node_id: int) -> None:
    """Refuse, in one line naming the node, what EXPLAIN never writes: wrong types, NaN, negatives."""
    if not isinstance(raw, dict):
        raise ValueError(f"plan node {node_id} is {type(raw).__name__}, not an object")
    if not isinstance(raw.get("Node Type"), str):
        raise ValueError(f"plan node {node_id} has no 'Node Type' text")
    # The common case costs one type test and one comparison per field (plans of 10^5 nodes).
    for key in _TEXT_FIELDS:
        value = raw.get(key)
        if value is not None and type(value) is not str:
            raise ValueError(f"plan node {node_id}: {key!r} is {value!r}, not text")
    for key in _NUMBER_FIELDS:
        value = raw.get(key)
        if value is not None and not (type(value) in _NUMBERS and 0 <= value < math.inf):
            figure(raw, key, f"plan node {node_id}")
    for key in _COUNT_FIELDS:
        value = raw.get(key)
        if value is not None and not (type(value) is int and value >= 0):
            figure(raw, key, f"plan node {node_id}")
            if not float(value).is_integer():
                raise ValueError(f"plan node {node_id}: {key!r} is {value!r}, not a whole number")
    if type(raw.get("Plans", [])) is not list:
        raise ValueError(f"plan node {node_id}: 'Plans' is not a list of nodes")
    sort_key = raw.get("Sort Key")
    if sort_key is not None and type(sort_key) is not list:
        raise ValueError(f"plan node {node_id}: 'Sort Key' is not a list")
