"""Slow-query alerts: pg_stat_statements deltas per window, and auto_explain's plans read back.

Each poll takes a snapshot of pg_stat_statements (this database, summed per queryid) and compares it
with the previous one, so a window's figures cover only the calls made in it — a statement that was
slow an hour ago does not alert now. The p95 over a window is estimated from the window's mean and
standard deviation (pg_stat_statements keeps a running sum of squares, so the window's variance is
exact) under a normal approximation, capped at the statement's slowest call: it is an estimate, named so.
Plans come from the server log, where auto_explain writes one JSON document per statement slower
than its ``log_min_duration`` (see ``bbperf.embedded.AUTO_EXPLAIN_SETTINGS``), keyed by Query Identifier.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf.catalog import extension_schema
from bbperf.errors import ConfigError, QueryError
from bbperf.sql import unwrap_prepared
from bbperf.sqlnames import qualified
from bbperf.target import query_error

if TYPE_CHECKING:
    import pandas as pd

Z_95 = 1.6449  # one-sided 95 % quantile of the standard normal
QUERY_CHARS = 160


@dataclass(frozen=True)
class StatementTotals:
    """Cumulative pg_stat_statements figures of one queryid (times in ms)."""

    queryid: int
    query: str
    calls: int
    total_ms: float
    sum_squares_ms2: float
    rows: int
    max_ms: float


@dataclass(frozen=True)
class WindowStats:
    """One statement's calls within a window between two snapshots."""

    queryid: int
    query: str
    calls: int
    mean_ms: float
    p95_estimate_ms: float
    rows: int


@dataclass(frozen=True)
class Alert(WindowStats):
    """A statement whose mean or p95 estimate crossed the threshold in one window: its window's
    figures, when, and why."""

    at: str
    threshold_ms: float
    reason: str
    plan: dict[str, Any] | None = None
    plan_duration_ms: float | None = None

    @property
    def fingerprint(self) -> str:
        """pg_stat_statements' queryid (a hash of the normalized statement) as 16 hex digits."""
        return f"{self.queryid & (2**64 - 1):016x}"

    def to_dict(self) -> dict[str, Any]:
        # "at" leads, as it always has: a later key of the same name keeps its first place.
        return {"fingerprint": self.fingerprint, "at": self.at, **asdict(self)}

    def line(self) -> str:
        """One human line: when, why, figures, the statement, and the plan's top node when logged."""
        plan = _plan_summary(self.plan) if self.plan else "no plan logged"
        return (
            f"{self.at} ALERT {self.fingerprint} {self.reason}: mean {self.mean_ms:.1f} ms, "
            f"p95≈{self.p95_estimate_ms:.1f} ms, {self.calls} calls, {self.rows} rows | "
            f"{self.query} | plan: {plan}"
        )


# -- pure --------------------------------------------------------------------------------------
def window(
    previous: dict[int, StatementTotals], current: dict[int, StatementTotals]
) -> list[WindowStats]:
    """Per statement with calls in the window: calls, mean, p95 estimate and rows of those calls.

    A statement whose calls went down was reset (pg_stat_statements_reset or deallocation): its
    current totals are the window.
    """
    stats = []
    for qid, cur in current.items():
        prev = previous.get(qid)
        if prev is None or cur.calls < prev.calls:
            prev = StatementTotals(qid, cur.query, 0, 0.0, 0.0, 0, 0.0)
        calls = cur.calls - prev.calls
        if calls <= 0:
            continue
        total = cur.total_ms - prev.total_ms
        mean = total / calls
        variance = max((cur.sum_squares_ms2 - prev.sum_squares_ms2) / calls - mean * mean, 0.0)
        p95 = min(mean + Z_95 * math.sqrt(variance), max(cur.max_ms, mean))
        stats.append(WindowStats(qid, cur.query, calls, mean, p95, cur.rows - prev.rows))
    return sorted(stats, key=lambda s: s.mean_ms, reverse=True)


def alerts(stats: list[WindowStats], threshold_ms: float, at: str) -> list[Alert]:
    """An Alert per statement whose window mean, or p95 estimate, is above ``threshold_ms``."""
    fired = []
    for s in stats:
        if s.mean_ms > threshold_ms:
            reason = f"mean over {threshold_ms:g} ms"
        elif s.p95_estimate_ms > threshold_ms:
            reason = f"p95 estimate over {threshold_ms:g} ms"
        else:
            continue
        rounded = replace(
            s, mean_ms=round(s.mean_ms, 3), p95_estimate_ms=round(s.p95_estimate_ms, 3)
        )
        fired.append(Alert(**asdict(rounded), at=at, threshold_ms=threshold_ms, reason=reason))
    return fired


@dataclass(frozen=True)
class LoggedPlan:
    """One auto_explain entry: its duration, Query Identifier and the JSON plan document."""

    duration_ms: float
    queryid: int | None
    plan: dict[str, Any]


_ENTRY = re.compile(r"^\S+ \S+ \S+ \[\d+\] LOG:  duration: ([0-9.]+) ms  plan:$")


def parse_log(lines: list[str]) -> list[LoggedPlan]:
    """auto_explain's JSON plans from stderr-format server log lines (continuations start with a tab)."""
    plans: list[LoggedPlan] = []
    i = 0
    while i < len(lines):
        match = _ENTRY.match(lines[i].rstrip("\n"))
        i += 1
        if not match:
            continue
        body = []
        while i < len(lines) and lines[i].startswith("\t"):
            body.append(lines[i][1:])
            i += 1
        try:
            doc = json.loads("".join(body))
        except json.JSONDecodeError:
            continue  # a text-format plan, or an entry cut by log rotation
        if isinstance(doc, dict) and "Plan" in doc:
            qid = doc.get("Query Identifier")
            plans.append(LoggedPlan(float(match.group(1)), int(qid) if qid else None, doc))
    return plans


def _plan_summary(doc: dict[str, Any]) -> str:
    nodes: list[str] = []
    stack = [doc["Plan"]]
    while stack and len(nodes) < 4:
        node = stack.pop(0)
        where = node.get("Relation Name")
        rows = node.get("Actual Rows")
        nodes.append(
            node["Node Type"] + (f" on {where}" if where else "")
            + (f" ({float(rows):,.0f} rows)" if rows is not None else "")
        )  # fmt: skip
        stack.extend(node.get("Plans", []))
    return " > ".join(nodes)


# -- I/O ---------------------------------------------------------------------------------------
class PlanLog:
    """Reads auto_explain entries appended to the server log since this object was made."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.offset = path.stat().st_size if path is not None and path.exists() else 0
        self.latest: dict[int, LoggedPlan] = {}

    @property
    def readable(self) -> bool:
        return self.path is not None and self.path.exists()

    def read(self) -> None:
        """Take in the entries written since the last read; the newest plan per queryid wins."""
        if not self.readable:
            return
        assert self.path is not None
        if self.path.stat().st_size < self.offset:  # the log was truncated or replaced
            self.offset = 0
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        # The server writes each entry with one write(): complete lines hold complete entries.
        cut = data.rfind(b"\n") + 1
        chunk, self.offset = data[:cut], self.offset + cut
        for plan in parse_log(chunk.decode(errors="replace").splitlines(keepends=True)):
            if plan.queryid is not None:
                self.latest[plan.queryid] = plan


_OWN = "bbperf-watch"  # tags the watcher's own reads so they never alert on themselves


def _statements_schema(conn: Connection) -> str:
    schema = extension_schema(conn, "pg_stat_statements")
    if schema is None:
        raise QueryError(
            "pg_stat_statements is not installed in this database: run `bbperf schema create` "
            "(the server needs shared_preload_libraries = pg_stat_statements)"
        )
    return schema


def snapshot(engine: Engine) -> dict[int, StatementTotals]:
    """pg_stat_statements of the current database, summed per queryid (top level and nested).

    Texts are not read here (``showtext => false`` spares reading the query-text file each poll):
    ``query`` is empty; ``statement_texts`` fetches the texts of the statements that alerted.
    """
    try:
        with engine.connect() as conn:
            schema = _statements_schema(conn)
            rows = conn.execute(
                text(
                    f"SELECT /* {_OWN} */ s.queryid, sum(s.calls) AS calls, "
                    "sum(s.total_exec_time) AS total_ms, "
                    "sum(s.calls * (s.stddev_exec_time ^ 2 + s.mean_exec_time ^ 2)) AS sum_squares, "
                    "sum(s.rows) AS rows, max(s.max_exec_time) AS max_ms "
                    f"FROM {qualified(schema, 'pg_stat_statements')}(false) s "
                    "WHERE s.queryid IS NOT NULL "
                    "AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "GROUP BY s.queryid"
                )
            )
            totals = {
                int(r.queryid): StatementTotals(
                    int(r.queryid),
                    "",
                    int(r.calls),
                    float(r.total_ms),
                    float(r.sum_squares),
                    int(r.rows),
                    float(r.max_ms),
                )  # fmt: skip
                for r in rows
            }
            own = conn.execute(
                text(
                    f"SELECT /* {_OWN} */ DISTINCT queryid FROM {qualified(schema, 'pg_stat_statements')} "
                    "WHERE query LIKE :own"
                ),
                {"own": f"%/* {_OWN} */%"},
            ).scalars()
            for qid in own:
                totals.pop(int(qid), None)
            return totals
    except DBAPIError as exc:
        raise query_error(exc, "pg_stat_statements") from None


def statement_texts(engine: Engine, queryids: list[int]) -> dict[int, str]:
    """queryid → normalized statement text (whitespace collapsed, first QUERY_CHARS characters)."""
    if not queryids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT /* {_OWN} */ queryid, min(left(regexp_replace(query, '\\s+', ' ', 'g'), :chars)) "
                f"FROM {qualified(_statements_schema(conn), 'pg_stat_statements')} WHERE queryid = ANY(:ids) GROUP BY queryid"
            ),
            # Room for the ``PREPARE bbperf_… AS`` prefix of user SQL that bbperf ran, cut after.
            {"chars": QUERY_CHARS + 64, "ids": queryids},
        )
        return {int(r[0]): unwrap_prepared(str(r[1]))[:QUERY_CHARS] for r in rows}


@dataclass
class Watcher:
    """Polls pg_stat_statements; ``poll()`` closes a window and returns the alerts it fired.

    ``log_path``: the server log to read auto_explain plans from (None: alerts carry no plan).
    """

    engine: Engine
    threshold_ms: float = 50.0
    log_path: Path | None = None
    fired: list[Alert] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_positive("threshold-ms", self.threshold_ms, "milliseconds")
        self.plans = PlanLog(self.log_path)
        self.previous = snapshot(self.engine)
        self.opened = time.monotonic()

    def _with_text_and_plan(self, alert: Alert, query: str) -> Alert:
        """``alert`` with its statement's text and, when auto_explain logged one, its plan."""
        logged = self.plans.latest.get(alert.queryid)
        if logged is None:
            return replace(alert, query=query)
        return replace(alert, query=query, plan=logged.plan, plan_duration_ms=logged.duration_ms)

    def poll(self) -> list[Alert]:
        current = snapshot(self.engine)
        now = datetime.now(UTC)
        stats = window(self.previous, current)
        self.previous = current
        self.plans.read()
        found = alerts(stats, self.threshold_ms, now.isoformat(timespec="seconds"))
        texts = statement_texts(self.engine, [a.queryid for a in found])
        fired = [self._with_text_and_plan(a, texts.get(a.queryid, "")) for a in found]
        self.windows.append(
            {
                "at": now,
                "seconds": round(time.monotonic() - self.opened, 3),
                "statements": len(stats),
                "calls": sum(s.calls for s in stats),
                "alerts": len(fired),
            }  # fmt: skip
        )
        self.fired.extend(fired)
        return fired


MAX_SECONDS = 7 * 24 * 3600.0  # a week: longer waits are typos, and 1e308 s overflows the clock


def check_positive(name: str, value: float | None, unit: str, at_most: float | None = None) -> None:
    """ConfigError unless ``value`` is None or a positive finite number no larger than ``at_most``
    (``--name`` in the message)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ConfigError(f"--{name} must be a positive number of {unit}, got {value:g}")
    if value is not None and at_most is not None and value > at_most:
        days = f" ({at_most / 86400:g} days)" if unit == "seconds" else ""
        raise ConfigError(f"--{name} must be at most {at_most:g} {unit}{days}, got {value:g}")


def watch(
    engine: Engine,
    *,
    threshold_ms: float = 50.0,
    interval_s: float = 5.0,
    duration_s: float | None = None,
    log_path: Path | None = None,
) -> Iterator[Alert]:
    """Yield alerts as windows of ``interval_s`` seconds close, for ``duration_s`` seconds (None: until
    interrupted). ``threshold_ms`` applies to each window's mean and p95 estimate."""
    check_positive("interval", interval_s, "seconds", at_most=MAX_SECONDS)
    check_positive("duration", duration_s, "seconds", at_most=MAX_SECONDS)
    watcher = Watcher(engine, threshold_ms, log_path)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    while True:
        wait = interval_s if deadline is None else min(interval_s, deadline - time.monotonic())
        if wait > 0:
            time.sleep(wait)
        yield from watcher.poll()
        if deadline is not None and time.monotonic() >= deadline:
            return


@dataclass(frozen=True)
class Timeline:
    """Windows of a driven workload (one per step) and the alerts each fired."""

    windows: pd.DataFrame
    alerts: pd.DataFrame
    fired: list[Alert]


SqlWithParams = tuple[
    str, dict[str, Any]
]  # one statement of a step: SQL with :name parameters, values


def alert_timeline(
    engine: Engine,
    steps: list[list[SqlWithParams]],
    *,
    threshold_ms: float = 50.0,
    log_path: Path | None = None,
) -> Timeline:
    """Run each step's statements (SQL with ``:name`` parameters) and close one window after each.

    Window columns: window, seconds (since the first snapshot), statements, calls, alerts. Alert
    columns: window, fingerprint, reason, calls, mean_ms, p95_estimate_ms, rows, plan (the logged
    plan's top nodes, or "none logged"), query.
    """
    import pandas as pd

    watcher = Watcher(engine, threshold_ms, log_path)
    rows = []
    for number, step in enumerate(steps, start=1):
        with engine.connect() as conn:
            for sql, params in step:
                conn.execute(text(sql), params).all()
        for alert in watcher.poll():
            rows.append({
                "window": number, "fingerprint": alert.fingerprint, "reason": alert.reason,
                "calls": alert.calls, "mean_ms": round(alert.mean_ms, 2),
                "p95_estimate_ms": round(alert.p95_estimate_ms, 2), "rows": alert.rows,
                "plan": _plan_summary(alert.plan) if alert.plan else "none logged",
                "query": alert.query,
            })  # fmt: skip
    windows = pd.DataFrame(watcher.windows).drop(columns="at")
    windows.insert(0, "window", range(1, len(windows) + 1))
    columns = ["window", "fingerprint", "reason", "calls", "mean_ms", "p95_estimate_ms", "rows",
               "plan", "query"]  # fmt: skip
    return Timeline(windows, pd.DataFrame(rows, columns=columns), list(watcher.fired))
