"""EXPLAIN in PostgreSQL's TEXT format (what psql prints, what auto_explain logs) turned into the
document FORMAT JSON would have given, so ``parse_plan`` builds the same node tree and self times.

Pure: text in, a ``{"Plan": ..., "Planning Time": ..., "Execution Time": ...}`` dict out. Only what the
plan model reads is recovered (node type and its variants, relation, alias, index, CTE and subplan
names, costs, actual rows/loops/time, workers, conditions, sort method, buffers); per-worker lines,
``Output:`` and settings blocks are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Signs, NaN and Infinity are matched so that parse_plan refuses them by name instead of the
# line silently becoming part of the node's name.
_NUM = r"[-+]?(?:[\d.]+(?:e[-+]?\d+)?|NaN|Infinity)"
_NODE = re.compile(
    r"^(?P<head>.*?)"
    rf"(?:\s+\(cost=(?P<startup>{_NUM})\.\.(?P<total>{_NUM}) rows=(?P<rows>{_NUM}) width=\d+\))?"
    rf"(?:\s+\((?:actual (?:time=(?P<astart>{_NUM})\.\.(?P<atotal>{_NUM}) )?"
    rf"rows=(?P<arows>{_NUM}) loops=(?P<loops>{_NUM})|(?P<never>never executed))\))?\s*$"
)
_SECTION = re.compile(r"^(CTE \S+|InitPlan \d+.*|SubPlan \d+.*)$")
_DETAIL = re.compile(r"^(?P<key>[A-Z][A-Za-z /-]*?):\s+(?P<value>.*)$")
_JOIN = re.compile(
    r"^(?:(?P<kind>Hash|Merge)(?: (?P<type>Left|Right|Full|Semi|Anti|Right Semi|Right Anti))? Join"
    r"|Nested Loop(?: (?P<ltype>Left|Right|Full|Semi|Anti|Right Semi|Right Anti) Join)?)$"
)
_AGGREGATES = {
    "Aggregate": "Plain",
    "HashAggregate": "Hashed",
    "GroupAggregate": "Sorted",
    "MixedAggregate": "Mixed",
}
_MODIFY = ("Insert", "Update", "Delete", "Merge")
_ON_RELATION = (
    "Seq Scan",
    "Bitmap Heap Scan",
    "Tid Scan",
    "Tid Range Scan",
    "Sample Scan",
    "Foreign Scan",
)
_TEXT_KEYS = (
    "Index Cond",
    "Recheck Cond",
    "Hash Cond",
    "Merge Cond",
    "Join Filter",
    "Filter",
    "Strategy",
    "Scan Direction",
)
_INT_KEYS = ("Workers Planned", "Workers Launched", "Heap Fetches")
_FLOAT_KEYS = (
    "Rows Removed by Filter",
    "Rows Removed by Join Filter",
    "Rows Removed by Index Recheck",
)
_TRAILER = re.compile(rf"^(Planning|Execution) Time:\s+({_NUM}) ms")


@dataclass
class _Open:
    node: dict[str, Any]
    content_col: int
    pending_section: str | None = None
    has_plain_child: bool = False


def looks_like_text_plan(data: str) -> bool:
    """Whether ``data`` is TEXT-format EXPLAIN output rather than JSON."""
    stripped = data.lstrip()
    return not stripped.startswith(("[", "{")) and bool(
        re.search(r"\((?:cost=|actual |never executed)", data)
    )


def _clean_lines(text: str) -> list[str]:
    """The plan's lines, with psql's header/footer, auto_explain's prefix and common indent removed."""
    lines = text.expandtabs(8).splitlines()
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if re.search(r"\((?:cost=|actual |never executed)", line)
        ),
        None,
    )
    if start is None:
        raise ValueError(
            "no plan node found: expected EXPLAIN output with (cost=...) or (actual ...)"
        )
    first = lines[start]
    # auto_explain and some log formats prefix the first node with text ("plan:", "Query Text: ...").
    head = re.match(r"^(.*?)(\S.*\((?:cost=|actual |never executed).*)$", first)
    base = len(head.group(1)) if head else 0
    if head and "plan:" in head.group(1):
        base = len(head.group(1))
    kept = [first[base:]]
    for line in lines[start + 1 :]:
        if re.match(r"^\s*\(\d+ rows?\)\s*$", line):
            break
        kept.append(line[base:] if line[:base].strip() == "" else line.strip())
    return [line.rstrip() for line in kept if line.strip() and not line.startswith("-")]


def _split_relation(text: str) -> tuple[str | None, str, str | None]:
    """``bbperf.appointments a`` → (schema, relation, alias)."""
    parts = text.split()
    name, alias = parts[0], (parts[1] if len(parts) > 1 else None)
    schema, _, relation = name.rpartition(".")
    relation = relation.strip('"')
    return (schema.strip('"') or None), relation, (alias or relation)


def _head(head: str) -> dict[str, Any]:
    """Node type and the identifiers in a node line's head (before the cost clause)."""
    raw: dict[str, Any] = {"Parallel Aware": False}
    text = head.strip()
    if text.startswith("Parallel "):
        raw["Parallel Aware"] = True
        text = text[len("Parallel ") :]
    for mode in ("Partial", "Finalize"):
        if text.startswith(mode + " "):
            raw["Partial Mode"] = mode
            text = text[len(mode) + 1 :]
    if text in _AGGREGATES:
        raw.update({"Node Type": "Aggregate", "Strategy": _AGGREGATES[text]})
        return raw
    join = _JOIN.match(text)
    if join:
        kind = join.group("kind")
        raw["Node Type"] = f"{kind} Join" if kind else "Nested Loop"
        raw["Join Type"] = join.group("type") or join.group("ltype") or "Inner"
        return raw
    index = re.match(r"^(Index Only Scan|Index Scan)( Backward)? using (\S+) on (.+)$", text)
    if index:
        schema, relation, alias = _split_relation(index.group(4))
        raw.update(
            {
                "Node Type": index.group(1),
                "Scan Direction": "Backward" if index.group(2) else "Forward",
                "Index Name": index.group(3),
                "Relation Name": relation,
                "Alias": alias,
            }
        )
        if schema:
            raw["Schema"] = schema
        return raw
    bitmap = re.match(r"^Bitmap Index Scan on (\S+)$", text)
    if bitmap:
        raw.update({"Node Type": "Bitmap Index Scan", "Index Name": bitmap.group(1)})
        return raw
    scan = re.match(r"^(.+?) on (.+)$", text)
    if scan:
        kind, target = scan.group(1), scan.group(2)
        schema, relation, alias = _split_relation(target)
        if kind in _MODIFY:
            raw.update(
                {
                    "Node Type": "ModifyTable",
                    "Operation": kind,
                    "Relation Name": relation,
                    "Alias": alias,
                }
            )
        elif kind == "CTE Scan":
            raw.update({"Node Type": kind, "CTE Name": relation, "Alias": alias})
        elif kind in _ON_RELATION:
            raw.update({"Node Type": kind, "Relation Name": relation, "Alias": alias})
        else:  # Subquery Scan, Function Scan, Values Scan, WorkTable Scan, ...
            raw.update({"Node Type": kind, "Alias": alias})
        if schema and "Relation Name" in raw:
            raw["Schema"] = schema
        return raw
    raw["Node Type"] = text
    return raw


def _node(match: re.Match[str]) -> dict[str, Any]:
    raw = _head(match.group("head"))
    if match.group("total") is not None:
        raw["Startup Cost"] = float(match.group("startup"))
        raw["Total Cost"] = float(match.group("total"))
        raw["Plan Rows"] = _number(match.group("rows"))
    if match.group("never"):
        raw.update({"Actual Rows": 0.0, "Actual Loops": 0})
    elif match.group("loops") is not None:
        raw["Actual Rows"] = float(match.group("arows"))
        raw["Actual Loops"] = _number(match.group("loops"))
        if match.group("atotal") is not None:
            raw["Actual Startup Time"] = float(match.group("astart"))
            raw["Actual Total Time"] = float(match.group("atotal"))
    return raw


def _number(text: str) -> int | float:
    """An integer when the text is one (rows, loops), else the float for parse_plan to judge."""
    value = float(text)
    return int(value) if value.is_integer() else value


def _buffers(value: str, raw: dict[str, Any]) -> None:
    """``shared hit=1 read=2 dirtied=3, temp read=4 written=5`` → the JSON block counters."""
    for part in value.split(","):
        words = part.split()
        if not words:
            continue
        scope = words[0].capitalize()
        for word in words[1:]:
            key, _, number = word.partition("=")
            if number.isdigit():
                raw[f"{scope} {key.capitalize()} Blocks"] = int(number)


def _detail(raw: dict[str, Any], key: str, value: str) -> None:
    if key == "Buffers":
        _buffers(value, raw)
    elif key in _INT_KEYS:
        raw[key] = int(value.split()[0])
    elif key in _FLOAT_KEYS:
        raw[key] = float(value.split()[0])
    elif key == "Sort Key":
        raw[key] = [k.strip() for k in value.split(", ")]
    elif key == "Sort Method":
        raw[key] = re.split(r"\s{2,}", value)[0]
    elif key in _TEXT_KEYS or key not in raw:
        raw[key] = value


def text_to_json(text: str) -> dict[str, Any]:
    """The FORMAT JSON document for TEXT-format EXPLAIN output (see the module docstring)."""
    lines = _clean_lines(text)
    root_match = _NODE.match(lines[0].strip())
    if root_match is None:  # pragma: no cover - _clean_lines found "(cost=" on this line
        raise ValueError(f"cannot read the plan's first line: {lines[0]!r}")
    root = _Open(_node(root_match), content_col=0)
    stack = [root]
    doc: dict[str, Any] = {}
    in_tree = True
    for line in lines[1:]:
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        trailer = _TRAILER.match(body)
        if indent == 0:
            in_tree = False
            if trailer:
                doc[f"{trailer.group(1)} Time"] = float(trailer.group(2))
            continue
        if not in_tree:
            continue
        if body.startswith("->"):
            match = _NODE.match(body[2:].strip())
            if match is None:
                raise ValueError(f"cannot read plan node line: {body!r}")
            while len(stack) > 1 and stack[-1].content_col >= indent:
                stack.pop()
            parent = stack[-1]
            child = _node(match)
            if parent.pending_section:
                child["Parent Relationship"] = (
                    "SubPlan" if parent.pending_section.startswith("SubPlan") else "InitPlan"
                )
                child["Subplan Name"] = parent.pending_section
                parent.pending_section = None
            else:
                # A flag, not a scan of the siblings: 10^5 siblings must parse in linear time.
                child["Parent Relationship"] = "Inner" if parent.has_plain_child else "Outer"
                parent.has_plain_child = True
            parent.node.setdefault("Plans", []).append(child)
            stack.append(_Open(child, content_col=indent + len(body) - len(body[2:].lstrip())))
            continue
        while len(stack) > 1 and stack[-1].content_col >= indent:
            stack.pop()
        if _SECTION.match(body):
            stack[-1].pending_section = body
            continue
        detail = _DETAIL.match(body)
        if detail and not body.startswith("Worker "):
            _detail(stack[-1].node, detail.group("key"), detail.group("value"))

    _zero_missing_buffers(root.node)
    doc["Plan"] = root.node
    return doc


_BLOCK_KEYS = tuple(
    f"{scope} {kind} Blocks"
    for scope in ("Shared", "Local", "Temp")
    for kind in ("Hit", "Read", "Dirtied", "Written")
    if not (scope == "Temp" and kind in ("Hit", "Dirtied"))
)


def _walk(root: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node, without recursion: a TEXT plan may nest deeper than Python's stack."""
    nodes, stack = [], [root]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    return nodes


def _zero_missing_buffers(root: dict[str, Any]) -> None:
    """TEXT leaves out zero counters (and whole Buffers lines); JSON prints 0 for every node."""
    nodes = _walk(root)
    if not any(k in n for n in nodes for k in _BLOCK_KEYS):
        return
    for node in nodes:
        for key in _BLOCK_KEYS:
            node.setdefault(key, 0)


def parse_text(text: str) -> list[dict[str, Any]]:
    """TEXT-format EXPLAIN output as the one-element list FORMAT JSON prints."""
    return [text_to_json(text)]
