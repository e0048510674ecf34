"""Replay a workload through bbperf's pool: threads pick statements weighted by their share of the
calls, with sampled values, for a fixed time; per statement p50/p95/p99, calls and errors, and the
overall throughput. Read-only transactions unless writes are allowed on a target bbperf owns."""

from __future__ import annotations

import contextlib
import gc
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg2
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from bbperf.binding import execute_args, prepared, reset_session
from bbperf.errors import ConfigError, first_line
from bbperf.explain.timingstats import summarize
from bbperf.progress import bar as progress_bar
from bbperf.sql import CheckedStatement, parse_one
from bbperf.urls import mask_text
from bbperf.workload.file import Statement, Workload

if TYPE_CHECKING:
    import pandas as pd

# The development pool holds 10 + 20 overflow connections: more threads would wait on the pool.
MAX_CONCURRENCY = 30


@dataclass
class Replay:
    """What a replay measured: client-side milliseconds per statement (execute + fetch)."""

    duration_s: float
    concurrency: int
    planned_share: dict[str, float]
    samples_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    first_error: dict[str, str] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(len(v) for v in self.samples_ms.values()) + sum(self.errors.values())

    @property
    def throughput_per_s(self) -> float:
        return self.calls / self.duration_s if self.duration_s else 0.0

    def table(self) -> pd.DataFrame:
        """One row per statement replayed: planned vs replayed share, calls, errors, p50/p95/p99 (ms)."""
        import pandas as pd

        rows = []
        total = self.calls or 1
        for name, share in self.planned_share.items():
            ok = self.samples_ms.get(name, [])
            summary = summarize(ok) if ok else None
            rows.append(
                {
                    "statement": name,
                    "planned_pct": round(100 * share, 1),
                    "replayed_pct": round(100 * (len(ok) + self.errors.get(name, 0)) / total, 1),
                    "calls": len(ok) + self.errors.get(name, 0),
                    "errors": self.errors.get(name, 0),
                    "p50_ms": round(summary.median, 3) if summary else None,
                    "p95_ms": round(summary.p95, 3) if summary else None,
                    "p99_ms": round(summary.p99, 3) if summary else None,
                }
            )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "duration_s": round(self.duration_s, 3),
            "concurrency": self.concurrency,
            "calls": self.calls,
            "throughput_per_s": round(self.throughput_per_s, 1),
            "statements": self.table().to_dict(orient="records"),
            "skipped": [{"statement": n, "reason": r} for n, r in self.skipped],
            "first_errors": self.first_error,
        }

    def text(self) -> str:
        lines = [
            f"{self.calls} calls in {self.duration_s:.1f} s with {self.concurrency} connection(s): "
            f"{self.throughput_per_s:.1f} calls/s (client time: execute + fetch)",
            self.table().to_string(index=False),
        ]
        lines += [f"skipped {n}: {r}" for n, r in self.skipped]
        lines += [f"first error of {n}: {e}" for n, e in self.first_error.items()]
        return "\n".join(lines)


def replayable(
    workload: Workload, *, allow_writes: bool = False, owned: bool = False
) -> tuple[list[Statement], list[tuple[str, str]]]:
    """The statements a replay may run, and the others with the reason they are skipped."""
    if allow_writes and not owned:
        raise ConfigError(
            "--allow-writes only on a target bbperf owns (the embedded server): "
            "replay writes there, or drop --allow-writes to replay the read-only statements"
        )
    run, skipped = [], []
    unfilled = workload.meta.get("unfilled", {})
    for s in workload.statements:
        if not s.runnable:
            why = unfilled.get(s.name, "run `bbperf workload sample` first")
            skipped.append((s.name, f"no values: {why}"))
        elif not s.read_only and not allow_writes:
            skipped.append((s.name, f"{s.kind} writes (use --allow-writes on the embedded server)"))
        elif s.calls <= 0:
            skipped.append((s.name, "no calls"))
        else:
            run.append(s)
    return run, skipped


def replay(
    engine: Engine,
    workload: Workload,
    *,
    duration_s: float = 10.0,
    concurrency: int = 2,
    seed: int = 42,
    allow_writes: bool = False,
    owned: bool = False,
    warmup: int = 1,
    progress: bool = True,
) -> Replay:
    """Run ``workload`` for ``duration_s`` seconds on ``concurrency`` pooled connections of ``engine``.

    Each connection first runs its share of the statements once each (every statement is timed at
    least once when the duration allows: a rare one is listed, not lost to the draw), then draws
    statements with probability ∝ calls and a random sampled value set;
    every statement runs in its own transaction, rolled back afterwards — read-only transactions
    (``postgresql_readonly``) unless ``allow_writes`` on a target bbperf ``owned``, where writes run
    and are undone (commit cost is not measured). ``warmup`` untimed runs of each statement come
    first. Times are client-side (execute + fetch, ``perf_counter_ns``, GC off while timing).
    """
    if duration_s <= 0:
        raise ConfigError(f"--duration must be positive, got {duration_s}")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ConfigError(f"--concurrency must be 1–{MAX_CONCURRENCY}, got {concurrency}")
    statements, skipped = replayable(workload, allow_writes=allow_writes, owned=owned)
    if not statements:
        raise ConfigError(
            f"nothing to replay in {workload.name!r}: "
            + "; ".join(f"{n}: {r}" for n, r in skipped[:3])
        )
    total = sum(s.calls for s in statements)
    result = Replay(
        0.0, concurrency, {s.name: s.calls / total for s in statements}, skipped=skipped
    )
    prepared = [(s, checked(s)) for s in statements]
    readonly = not allow_writes
    _warm(engine, prepared, warmup, readonly, result)
    lock = threading.Lock()
    stop = threading.Event()
    counter = [0]

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        samples: dict[str, list[float]] = defaultdict(list)
        errors: dict[str, int] = defaultdict(int)
        firsts: dict[str, str] = {}
        weights = [s.calls for s, _ in prepared]
        first = iter(prepared[index::concurrency])
        with engine.connect() as conn, _session(conn, readonly) as (run, undo):
            while not stop.is_set():
                statement, bound = next(first, None) or rng.choices(prepared, weights)[0]
                values = _values(statement, rng.randrange(max(1, len(statement.values))))
                try:
                    start = time.perf_counter_ns()
                    run(bound, values)
                    elapsed_ms = (time.perf_counter_ns() - start) / 1e6
                    samples[statement.name].append(elapsed_ms)
                except (DBAPIError, psycopg2.Error) as exc:
                    errors[statement.name] += 1
                    firsts.setdefault(statement.name, mask_text(first_line(exc)))
                finally:
                    undo()
                counter[0] += 1
        with lock:
            for name, values in samples.items():
                result.samples_ms.setdefault(name, []).extend(values)
            for name, count in errors.items():
                result.errors[name] = result.errors.get(name, 0) + count
            for name, message in firsts.items():
                result.first_error.setdefault(name, message)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    gc_was_enabled = gc.isenabled()
    gc.disable()
    started = time.monotonic()
    try:
        for t in threads:
            t.start()
        _wait(started, duration_s, counter, progress)
    finally:
        stop.set()
        for t in threads:
            t.join()
        result.duration_s = time.monotonic() - started
        if gc_was_enabled:
            gc.enable()
    return result


def checked(statement: Statement) -> CheckedStatement:
    """A workload statement as PostgreSQL's parser reads it: exactly one statement, ``$n`` kept."""
    return parse_one(statement.sql)


def _values(statement: Statement, index: int) -> tuple[Any, ...]:
    """Value set ``index`` in ``$1 … $n`` order (a number no placeholder uses gets NULL)."""
    params = statement.params(index, bind_names=False)
    count = max((p.number for p in statement.placeholders), default=0)
    return tuple(params.get(f"p{n}") for n in range(1, count + 1))


@contextlib.contextmanager
def _session(
    conn: Connection, readonly: bool
) -> Iterator[tuple[Callable[[CheckedStatement, tuple], None], Callable[[], None]]]:
    """A runner on ``conn`` and its undo: each statement prepared once on first use (values bound
    by the server, each execution planned for its values), executed and fetched; undo rolls the
    connection's own transaction back (the runner works below SQLAlchemy, so SQLAlchemy's rollback
    would see no transaction of its own and leave a replayed write in place for the next
    statement); everything deallocated and the session reset at the end."""
    conn = conn.execution_options(postgresql_readonly=readonly)
    dbapi = conn.connection.dbapi_connection
    cursor = dbapi.cursor()  # type: ignore[union-attr]
    names: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        cursor.execute("SET plan_cache_mode = force_custom_plan")
        dbapi.commit()

        def run(bound: CheckedStatement, values: tuple) -> None:
            name = names.get(bound.numbered)
            if name is None:
                name = stack.enter_context(prepared(cursor, bound, values))
                names[bound.numbered] = name
            cursor.execute(f"EXECUTE {name}{execute_args(values)}", values)
            if cursor.description is not None:
                cursor.fetchall()

        try:
            yield run, dbapi.rollback
        finally:
            dbapi.rollback()
    cursor.close()
    try:
        reset_session(dbapi)
    except psycopg2.Error:
        conn.invalidate()


def _warm(
    engine: Engine,
    prepared: list[tuple[Statement, CheckedStatement]],
    rounds: int,
    readonly: bool,
    result: Replay,
) -> None:
    with engine.connect() as conn, _session(conn, readonly) as (run, undo):
        for _ in range(rounds):
            for statement, bound in prepared:
                try:
                    run(bound, _values(statement, 0))
                except (DBAPIError, psycopg2.Error) as exc:
                    result.first_error.setdefault(statement.name, mask_text(first_line(exc)))
                finally:
                    undo()


def _wait(started: float, duration_s: float, counter: list[int], progress: bool) -> None:
    from tqdm import tqdm

    ticks = max(1, round(duration_s * 10))
    shown = (
        progress_bar(total=ticks, desc="replay", unit="tick")
        if progress
        else tqdm(total=ticks, disable=True)
    )
    with shown as bar:
        done = 0
        while (elapsed := time.monotonic() - started) < duration_s:
            time.sleep(min(0.1, duration_s - elapsed))
            now = min(ticks, round((time.monotonic() - started) * 10))
            bar.update(now - done)
            done = now
            bar.set_postfix(calls=counter[0], refresh=False)
