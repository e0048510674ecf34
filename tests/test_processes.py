"""The process base (bbperf.processes) on real processes: a small Python daemon that forks away from
its launcher and writes its own pid file, as pg_ctl, pgbouncer -d and valkey do."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psutil
import pytest

from bbperf.processes import (
    ManagedProcess,
    ProcessStatus,
    gone,
    locked,
    terminate,
    wait_gone,
    wait_until,
)

# Forks twice (the launcher exits at once, the daemon is nobody's child here), then writes its pid
# file atomically and sleeps; argv[1] is the pid file, which also marks the daemon's command line.
_DAEMON = """
import os, sys, time
if os.fork():
    sys.exit(0)
os.setsid()
if os.fork():
    os._exit(0)
with open(sys.argv[1] + ".tmp", "w") as handle:
    handle.write(f"{os.getpid()}\\n")
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(300)
"""


class Sleeper(ManagedProcess):
    """A daemon of this test, recognised by its pid file's path on its command line."""

    names = ("python",)
    what = "sleeper"

    def __init__(self, directory: Path) -> None:
        super().__init__(
            directory / "sleeper.pid",
            lock_file=directory / "sleeper.lock",
            log_file=directory / "sleeper.log",
        )

    def identifies(self, proc: psutil.Process) -> bool:
        return str(self.pid_file) in proc.cmdline()

    def launch(self, timeout_s: float) -> None:
        self.log_file.write_text("launching\nsleeping\n")
        subprocess.run(
            [sys.executable, "-c", _DAEMON, str(self.pid_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout_s,
            check=True,
        )


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[Sleeper]:
    """A Sleeper in a private directory; whatever it started is killed afterwards."""
    made = Sleeper(tmp_path)
    yield made
    pid = made.pid()
    if pid is not None:
        terminate(pid, 5.0, signal.SIGKILL)


def _python(*code: str) -> subprocess.Popen[bytes]:
    """A plain Python child (not a Sleeper): runs ``code``."""
    return subprocess.Popen([sys.executable, "-c", "\n".join(code)], stdin=subprocess.DEVNULL)


def test_start_attach_status_and_stop(sleeper: Sleeper, tmp_path: Path) -> None:
    assert sleeper.pid() is None and not sleeper.ready()
    assert sleeper.process_status() == ProcessStatus(running=False, pid=None)

    assert sleeper.start_process(30.0)
    pid = sleeper.pid()
    assert pid is not None and pid == int(sleeper.pid_file.read_text())
    assert psutil.Process(pid).ppid() != psutil.Process().pid  # a daemon, not our child
    assert sleeper.process_status().to_dict() == {"running": True, "pid": pid}

    # A later bbperf process knows nothing but the files: a fresh object finds the same daemon,
    # and starting again attaches instead of launching a second one.
    again = Sleeper(tmp_path)
    assert again.pid() == pid
    assert again.start_process(30.0) and again.pid() == pid
    assert sleeper.last_log_line() == "sleeping"

    assert again.stop_process(timeout_s=10.0)
    assert gone(pid) and sleeper.pid() is None
    assert not again.stop_process(timeout_s=10.0)  # nothing left to stop


def test_a_stale_pid_file_is_not_trusted_and_is_cleared(sleeper: Sleeper) -> None:
    exited = _python("pass")
    exited.wait()
    sleeper.pid_file.write_text(f"{exited.pid}\n")  # a process that has gone
    assert sleeper.pid() is None
    sleeper.clear_stale_pid_file()
    assert not sleeper.pid_file.exists()

    other = subprocess.Popen(["sleep", "300"])  # a live process of another program
    try:
        sleeper.pid_file.write_text(f"{other.pid}\n")
        assert sleeper.pid() is None
        assert not sleeper.stop_process(timeout_s=1.0)
        assert other.poll() is None  # never signalled
        sleeper.clear_stale_pid_file()
        assert not sleeper.pid_file.exists()
    finally:
        other.kill()
        other.wait()

    # A stale pid file does not stop a start: it is cleared and the daemon launched.
    sleeper.pid_file.write_text(f"{exited.pid}\n")
    assert sleeper.start_process(30.0)
    assert sleeper.pid() not in (None, exited.pid)


def test_a_live_process_of_the_same_program_that_is_not_ours_is_left_alone(
    sleeper: Sleeper,
) -> None:
    stranger = _python("import time", "time.sleep(300)")  # a python, but not this Sleeper
    try:
        sleeper.pid_file.write_text(f"{stranger.pid}\n")
        assert wait_until(lambda: psutil.Process(stranger.pid).name().startswith("python"), 10.0)
        assert not sleeper.is_ours(stranger.pid)
        assert sleeper.pid() is None
        assert not sleeper.stop_process(timeout_s=1.0)
        assert stranger.poll() is None
        sleeper.clear_stale_pid_file()  # it may be one still starting: the file stays
        assert sleeper.pid_file.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_half_written_or_empty_pid_file_reads_as_none(sleeper: Sleeper) -> None:
    for text in ("", "\n", "not-a-pid\n", "12ab"):
        sleeper.pid_file.write_text(text)
        assert sleeper.recorded_pid() is None and sleeper.pid() is None


def test_lock_excludes_other_processes(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    probe = (
        "import fcntl, sys\n"
        f"handle = open({str(path)!r}, 'a')\n"
        "try:\n"
        "    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(3)\n"
    )
    with locked(path):
        assert subprocess.run([sys.executable, "-c", probe], timeout=60).returncode == 3
    assert subprocess.run([sys.executable, "-c", probe], timeout=60).returncode == 0


def test_terminate_escalates_to_sigkill(tmp_path: Path) -> None:
    armed = tmp_path / "armed"
    stubborn = _python(
        "import signal, time, pathlib",
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)",
        f"pathlib.Path({str(armed)!r}).touch()",
        "time.sleep(300)",
    )
    try:
        assert wait_until(armed.exists, 30.0)
        assert not wait_gone(stubborn.pid, 0.2)
        terminate(stubborn.pid, 0.5)  # SIGTERM is ignored: SIGKILL follows
        assert gone(stubborn.pid)
        assert stubborn.wait(timeout=10) == -signal.SIGKILL
    finally:
        stubborn.kill()
        stubborn.wait()


def test_an_exited_child_not_yet_reaped_counts_as_gone() -> None:
    child = _python("pass")
    try:
        assert wait_until(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, 30.0)
        assert gone(child.pid)
    finally:
        child.wait()


def test_no_log_reads_as_such(sleeper: Sleeper) -> None:
    assert sleeper.last_log_line() == "no log written"
    sleeper.log_file.write_text("")
    assert sleeper.last_log_line() == "empty log"


@dataclass(kw_only=True)
class _Shown(ProcessStatus):
    SHOWN_FIRST: ClassVar[tuple[str, ...]] = ("kind", "running")

    kind: str
    extra: int | None = None


def test_status_keys_keep_the_order_a_command_prints() -> None:
    status = _Shown(kind="embedded", running=True, pid=7, extra=1)
    assert list(status.to_dict()) == ["kind", "running", "pid", "extra"]
    assert status.to_dict() == {"kind": "embedded", "running": True, "pid": 7, "extra": 1}
