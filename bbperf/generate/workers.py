"""Worker processes for ``--jobs N``: each generates the (week, barber block) pairs it is given,
reports their row counts, waits for the id offsets the coordinator derives from the counts of the
pairs before, then encodes and fingerprints them a payload at a time; the coordinator hands the
chunks out in pair order. A worker asks for its next pair when it has sent the last one (and when
it has started): a pair the COPY needs that no worker has asked for yet is made by the coordinator
itself, so the COPY does not wait for the workers to start, nor for one that falls behind; the rows
are the same whoever makes a pair. A worker sends each payload as soon as it is encoded on its own
one-way pipe, through a queue of at most AHEAD_PAYLOADS; the consumer reads a pair from the pipe of
the worker that made it, in order. What is in flight is a few payloads whatever the scale, not whole
pairs that grow with the barber block, and it is received by the thread that frees it (a receiving
thread's heap would keep it resident beside the clients made afterwards). Only the worker holds its
pipe's write end, so a worker that dies, even in the middle of a payload, ends the read (EOFError)
instead of leaving it waiting for bytes that will never come.

Workers die with their coordinator: started with ``spawn`` (children of the coordinator itself, no
forkserver in between), each asks the kernel for SIGKILL when its parent dies (Linux
``PR_SET_PDEATHSIG``), and carries ``LOAD_HOME_ENV`` so that ``bbperf db stop`` ends any that survive
elsewhere (``bbperf.topology.running.processes_of``)."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import pickle
import queue
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any

import psycopg2

from bbperf.config import LOAD_HOME_ENV
from bbperf.errors import BbperfError, DataError, QueryError, first_line
from bbperf.generate.cast import n_barbers
from bbperf.generate.staging import ChunkWriter
from bbperf.generate.stream import (
    AHEAD_PER_WORKER,
    PART_BITS,
    Encoded,
    GenerationPlan,
    _encoded,
    _Generator,
    _shift,
    in_order,
    peak_rss_mb,
)
from bbperf.generate.tally import ClientTally

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Payloads (PAYLOAD_ROWS rows, ~1.5 MB) a worker may have encoded that the COPY has not taken yet,
# besides the one in its pipe: at SF 1 about one pair; at SF 10 a pair is 3.2 times bigger and the
# bound stays in bytes.
AHEAD_PAYLOADS = 4
HERE = -1  # the coordinator, as the maker of a pair


def _die_with(parent_pid: int) -> None:
    """SIGKILL this process when its parent dies; exit now if it already has (the parent may die
    between the fork and the prctl)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


@contextlib.contextmanager
def _marked(home: Path | None) -> Iterator[None]:
    """``LOAD_HOME_ENV`` in the environment the worker processes are spawned with, then as it
    was."""
    previous = os.environ.get(LOAD_HOME_ENV)
    os.environ[LOAD_HOME_ENV] = str(home) if home is not None else ""
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(LOAD_HOME_ENV, None)
        else:
            os.environ[LOAD_HOME_ENV] = previous


def _worker(
    plan: GenerationPlan,
    tally_path: Path,
    n: int,
    me: int,
    inbox: Any,
    outbox: Any,
    pipe: Any,
    parent_pid: int,
) -> None:
    """A worker process: take the coordinator's pools and cast, then ask for a pair, generate it,
    wait for its id offsets, encode it and send each payload on ``pipe`` (AHEAD_PAYLOADS queued);
    in a resumable load (``plan.sink``), COPY them too, on its own connection, a transaction each."""
    _die_with(parent_pid)
    out = _Sender(pipe)
    writer = None
    try:
        made = inbox.get()  # where the coordinator's pools and cast are
        if made is None:
            return
        cast = pickle.loads(Path(made[1]).read_bytes())
        gen = _Generator(plan, ClientTally(n, path=tally_path), cast)
        del cast
        if plan.sink is not None:
            writer = ChunkWriter(plan.sink, f"bbperf-load-worker-{mp.current_process().name}")
        waiting: list[Any] = []
        outbox.put(("ready", me))
        while (task := waiting.pop(0) if waiting else inbox.get()) is not None:
            k = task[1]
            started = time.perf_counter()
            (appts, n_a), (pays, n_p) = gen.pair(k, 1, 1)
            spent = time.perf_counter() - started
            outbox.put(("counts", k, n_a, n_p))
            while (message := inbox.get()) is None or message[0] != "offsets":
                waiting.append(message)
            _, _, shift_a, shift_p = message
            _shift(appts, "id", shift_a)
            _shift(pays, "id", shift_p)
            _shift(pays, "appointment_id", shift_a)
            last, base = k == plan.pairs() - 1, k << PART_BITS
            parts = _encoded("appointments", appts, n_a, last, spent, base, plan.done)
            _send(k, parts, writer, out)
            del appts, parts  # not alive while the payments are encoded or the next pair is made
            parts = _encoded("payments", pays, n_p, last, 0.0, base, plan.done)
            _send(k, parts, writer, out)
            del pays, parts
            out.put(("sent", k, None))
            outbox.put(("ready", me))
        gen.tally.close()
        out.close()
        outbox.put(("done", peak_rss_mb()))
    except psycopg2.Error as exc:  # the worker's own connection: one line, the load says what next
        outbox.put(("error", f"a load worker's connection failed: {first_line(exc)}"))
    except BbperfError as exc:  # bad input or no room (the tally): the same one line as at home
        outbox.put(("error", f"a load worker stopped: {exc}"))
    except BaseException:  # noqa: BLE001 - reported to the coordinator, which raises
        outbox.put(("error", traceback.format_exc(limit=5)))
    finally:
        if writer is not None:
            writer.close()


class _Sender:
    """A worker's payloads to its pipe from a thread of their own, at most AHEAD_PAYLOADS waiting: the
    worker encodes the next ones while the coordinator is still copying another worker's pair."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=AHEAD_PAYLOADS)
        self.failed: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="bbperf-send", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (message := self.queue.get()) is not None:
                self.pipe.send(message)
        except BaseException as exc:  # noqa: BLE001 - the coordinator closed its end: raised in put
            self.failed = exc
            while self.queue.get() is not None:  # let put() and close() go on
                pass

    def put(self, message: Any) -> None:
        if self.failed is not None:
            raise RuntimeError(f"the coordinator stopped reading: {self.failed!r}")
        self.queue.put(message)

    def close(self) -> None:
        """Wait until every queued message is in the pipe."""
        self.queue.put(None)
        self.thread.join()


def _send(k: int, parts: Iterator[Encoded], writer: ChunkWriter | None, out: _Sender) -> None:
    """Each payload of pair ``k`` to the coordinator as it is encoded (COPYed first by ``writer``
    in a resumable load), queued for the worker's pipe."""
    for part in parts:
        sent = writer.write(part) if writer is not None else part
        out.put(("part", k, sent))


def chunks(
    plan: GenerationPlan,
    jobs: int = 1,
    stats: dict[str, float] | None = None,
    *,
    make_here: bool | None = None,
) -> Iterator[Encoded]:
    """Every chunk of the dataset in load order, produced ahead of the consumer by ``jobs`` workers
    (a thread when 1): the same chunks, bytes and checksums whatever ``jobs`` is. ``stats`` gets
    ``worker_peak_rss_mb``, the largest worker's peak resident memory (0 without workers).
    ``make_here``: whether the coordinator makes the pairs no worker has asked for yet (default:
    yes, except in a resumable load)."""
    barbers = n_barbers(plan.profile, plan.scale)
    tally = ClientTally(barbers * plan.profile.clients["per_barber"], plan.scratch)
    try:
        if jobs <= 1 or plan.pairs() < 2:
            yield from _ahead(in_order(plan, tally), depth=2)
        else:
            yield from parallel(
                plan, tally, jobs, stats if stats is not None else {}, make_here=make_here
            )
    finally:
        tally.close()


def _ahead(items: Iterator[Encoded], depth: int) -> Iterator[Encoded]:
    """``items`` produced in a background thread, ``depth`` ahead, so generation on one core
    overlaps the server's COPY on another."""
    done = object()
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            buffer.put(exc)

    worker = threading.Thread(target=produce, name="bbperf-generate", daemon=True)
    worker.start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def parallel(
    plan: GenerationPlan,
    tally: ClientTally,
    jobs: int,
    stats: dict[str, float],
    *,
    make_here: bool | None = None,
) -> Iterator[Encoded]:
    """Every chunk after the small tables' from ``jobs`` worker processes, in load order; the
    workers' client tallies are merged into ``tally`` before the clients are generated here."""
    # spawn, not fork: the caller may have threads (a notebook kernel, a pool) a fork would copy;
    # not forkserver: its server and its children outlived a coordinator killed with SIGKILL.
    # The workers' parent-death signal fires when the thread that starts them exits: this one,
    # which consumes every chunk and joins them first.
    ctx: Any = mp.get_context("spawn")
    pairs, n = plan.pairs(), tally.n
    paths = [ClientTally.scratch_file(n, plan.scratch) for _ in range(jobs)]
    # Started unmarked: the tracker serves this process for its lifetime (not the load's), and
    # exits by itself once this process and the workers are gone.
    resource_tracker.ensure_running()
    inboxes = [ctx.Queue() for _ in range(jobs)]
    outbox = ctx.Queue()
    pipes = [ctx.Pipe(duplex=False) for _ in range(jobs)]  # (read end, write end)
    procs = [
        ctx.Process(
            target=_worker,
            args=(plan, paths[w], n, w, inboxes[w], outbox, pipes[w][1], os.getpid()),
            name=f"bbperf-generate-{w}",
            daemon=True,
        )
        for w in range(jobs)
    ]
    with _marked(plan.home):
        for proc in procs:
            proc.start()
    for _, write_end in pipes:  # the worker's alone: its death ends the coordinator's reads
        write_end.close()
    state = _Dispatch(pairs, jobs, inboxes, procs, [read_end for read_end, _ in pipes])
    dispatcher = threading.Thread(target=state.run, args=(outbox,), daemon=True)
    dispatcher.start()
    made: list[Path] = []
    try:
        parent = _Generator(plan, tally)  # while the workers start
        # In a scratch file, not on the inboxes: they are more than a pipe holds (130 KB at SF 0.3,
        # 2.5 MB at SF 10), and a worker killed before reading them would leave the queue's writer
        # thread blocked, holding this process's exit.
        made.append(_made_file(parent, plan.scratch))
        for inbox in inboxes:
            inbox.put(("made", str(made[0])))
        yield from parent.small_tables()
        # A resumable load's pairs are all made, and committed, by the workers on their connections.
        maker = parent if (plan.sink is None if make_here is None else make_here) else None
        for k in range(pairs):
            yield from state.take(k, maker)
        for inbox in inboxes:
            inbox.put(None)
        state.wait_done()
        stats["worker_peak_rss_mb"] = state.worker_rss_mb
        for path in paths:
            tally.merge(ClientTally(n, path=path))
        yield from parent.clients()
    finally:
        state.stop()
        for read_end, _ in pipes:  # a worker waiting to send gets BrokenPipeError and ends
            read_end.close()
        for inbox in inboxes:
            inbox.put(None)
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
        outbox.put(("stop", None))
        dispatcher.join(timeout=5)
        for path in [*paths, *made]:
            path.unlink(missing_ok=True)


class _Dispatch:
    """The coordinator's side: gives a worker that asks the next pair (none beyond AHEAD_PER_WORKER
    a worker past the one being copied), turns counts into id offsets in pair order (in its own
    thread), and hands each pair's payloads out in the consumer's thread: read from the queue of the
    worker that made it (a credit freed each), or made there when no worker had asked for it."""

    def __init__(
        self,
        pairs: int,
        jobs: int,
        inboxes: list[Any],
        procs: list[Any],
        pipes: list[Any],
    ) -> None:
        self.pairs, self.jobs, self.inboxes, self.procs = pairs, jobs, inboxes, procs
        self.pipes = pipes
        self.cond = threading.Condition()
        self.owner: dict[int, int] = {}  # pair -> the worker making it, or HERE
        self.idle: deque[int] = deque()  # workers that asked and have no pair yet
        self.counts: dict[int, tuple[int, int]] = {}
        self.next_offset, self.offsets = 0, (1, 1)
        self.assigned, self.taken, self.done, self.error = 0, 0, 0, ""
        self.stopped = False
        self.worker_rss_mb = 0.0

    def _assign(self) -> None:
        limit = min(self.pairs, self.taken + 1 + AHEAD_PER_WORKER * self.jobs)
        while self.idle and self.assigned < limit:
            worker = self.idle.popleft()
            self.owner[self.assigned] = worker
            self.inboxes[worker].put(("gen", self.assigned))
            self.assigned += 1

    def _offsets(self) -> None:
        while self.next_offset in self.counts:
            n_a, n_p = self.counts.pop(self.next_offset)
            a, p = self.offsets
            worker = self.owner[self.next_offset]
            if worker != HERE:
                self.inboxes[worker].put(("offsets", self.next_offset, a - 1, p - 1))
            self.offsets = (a + n_a, p + n_p)
            self.next_offset += 1

    def run(self, outbox: Any) -> None:
        while True:
            kind, *rest = outbox.get()
            with self.cond:
                if kind == "stop":
                    return
                if kind == "ready":
                    self.idle.append(rest[0])
                    self._assign()
                elif kind == "counts":
                    self.counts[rest[0]] = (rest[1], rest[2])
                    self._offsets()
                elif kind == "done":
                    self.done += 1
                    self.worker_rss_mb = max(self.worker_rss_mb, rest[0])
                elif kind == "error":
                    self.error = rest[0]
                self.cond.notify_all()

    def take(self, k: int, here: _Generator | None) -> Iterator[Encoded]:
        """Pair ``k``'s payloads, appointments then payments: from its worker's queue as they arrive
        (its next messages: the worker's earlier pairs were taken before), or made by ``here`` when
        no worker has asked for it (None: wait for one)."""
        with self.cond:
            self.taken = k
            mine = here is not None and k == self.assigned
            if mine:
                self.owner[k] = HERE
                self.assigned += 1
            self._assign()
            while k not in self.owner:
                self._check()
                self.cond.wait(timeout=1.0)
            worker = self.owner[k]
        if here is not None and worker == HERE:
            yield from self._make(k, here)
            return
        pipe = self.pipes[worker]
        while True:
            if not pipe.poll(1.0):
                with self.cond:
                    self._check()
                continue
            try:
                kind, pair, part = pipe.recv()
            except (EOFError, OSError):  # the worker is gone, maybe in the middle of a payload
                self.procs[worker].join(timeout=5)
                with self.cond:
                    self._check()
                raise QueryError("a load worker ended without a word") from None
            if pair != k:
                raise RuntimeError(f"pair {pair} came from worker {worker} when {k} was due")
            if kind == "sent":
                return
            yield part

    def _make(self, k: int, here: _Generator) -> Iterator[Encoded]:
        """Pair ``k`` made in this process: the pairs before it were all taken, so once their counts
        are in (a worker's counts and payloads travel on different queues) its ids are known."""
        with self.cond:
            while self.next_offset < k:
                self._check()
                self.cond.wait(timeout=1.0)
            first_a, first_p = self.offsets
        started = time.perf_counter()
        (appts, n_a), (pays, n_p) = here.pair(k, first_a, first_p)
        spent = time.perf_counter() - started
        with self.cond:
            self.counts[k] = (n_a, n_p)
            self._offsets()
        plan = here.plan
        last, base = k == plan.pairs() - 1, k << PART_BITS
        yield from _encoded("appointments", appts, n_a, last, spent, base, plan.done)
        del appts
        yield from _encoded("payments", pays, n_p, last, 0.0, base, plan.done)

    def wait_done(self) -> None:
        with self.cond:
            while self.done < self.jobs:
                self._check()
                self.cond.wait(timeout=1.0)

    def _check(self) -> None:
        if self.error.startswith(("a load worker's connection failed", "a load worker stopped")):
            raise QueryError(self.error)
        if self.error:
            raise RuntimeError(f"a generator worker failed:\n{self.error}")
        if self.stopped:
            raise RuntimeError("generation stopped")
        # A worker the kernel or a user killed (SIGKILL, SIGBUS) says nothing: its exit code does.
        for proc in self.procs:
            if proc.exitcode is not None and proc.exitcode != 0:
                raise QueryError(f"a load worker {_ended(proc.exitcode)}")

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()


def _made_file(parent: _Generator, directory: Path | None) -> Path:
    """The coordinator's pools and cast, pickled into a scratch file for the workers."""
    made = pickle.dumps((parent.pools, parent.cast), protocol=pickle.HIGHEST_PROTOCOL)
    with tempfile.NamedTemporaryFile(prefix="bbperf-cast-", dir=directory, delete=False) as f:
        try:
            f.write(made)
        except OSError as exc:
            Path(f.name).unlink(missing_ok=True)
            where = directory if directory is not None else Path(tempfile.gettempdir())
            raise DataError(
                f"no room for the load's cast file in {where}: {exc.strerror}"
            ) from None
    return Path(f.name)


def _ended(exitcode: int) -> str:
    """How a worker process ended, from its exit code (negative: the signal that ended it)."""
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-exitcode).name}"
        return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"
