"""Where a report's figures came from: bbperf version and commit, server and settings, machine, data."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from bbperf import __version__
from bbperf.errors import first_line
from bbperf.generate import dataset_info
from bbperf.urls import describe_target, mask_text

# Settings that change plans or timings enough that two reports differing in them are not like for like.
KEY_SETTINGS = (
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "random_page_cost",
    "max_parallel_workers_per_gather",
    "max_parallel_workers",
    "max_connections",
    "jit",
    "track_io_timing",
    "shared_preload_libraries",
)


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def git_commit(directory: Path | None = None) -> dict[str, Any] | None:
    """``{commit, dirty}`` of the git checkout holding ``directory`` (bbperf's own by default), or None;
    dirty means a tracked file outside ``reports/`` differs from the commit."""
    where = Path(directory) if directory else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            # Rendered reports (the sample a run may be rewriting) are output, not code.
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no",
             "--", ":(top)", ":(top,exclude)reports"],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def machine_info() -> dict[str, Any]:
    """Platform, Python, CPU count and physical memory of this machine."""
    import psutil

    return {
        "node": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": int(psutil.virtual_memory().total),
    }


def server_info(engine: Engine) -> dict[str, Any]:
    """PostgreSQL version and the key settings (as ``SHOW`` prints them)."""
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version()")).scalar_one()
        rows = conn.execute(
            text("SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(:names)"),
            {"names": list(KEY_SETTINGS)},
        ).all()
        version_num = conn.execute(text("SHOW server_version_num")).scalar_one()
    settings = {name: value for name, value in rows}
    return {
        "version": str(version),
        "server_version_num": int(version_num),
        "settings": {name: settings.get(name) for name in KEY_SETTINGS},
    }


def dataset_fingerprint(engine: Engine) -> dict[str, Any] | None:
    """The loaded dataset's provenance (profile, scale, seed, fingerprints), or None when none is loaded."""
    return dataset_info(engine)


def _as_dict(info: Any) -> dict[str, Any]:
    to_dict = getattr(info, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    from dataclasses import asdict, is_dataclass

    return (
        asdict(info) if is_dataclass(info) and not isinstance(info, type) else {"value": str(info)}
    )


def collect_provenance(
    engine: Engine | None,
    *,
    parameters: dict[str, Any] | None = None,
    started_at: str | None = None,
    finished_at: str | None = None,
) -> dict[str, Any]:
    """Everything a reader needs to judge whether two reports are comparable.

    ``engine`` may be None (no database reachable): the server section then says so. The target is
    recorded as ``host:port/database`` (no user, password or options).
    """
    server: dict[str, Any]
    dataset: dict[str, Any] | None = None
    target = None
    if engine is None:
        server = {"error": "no database connection"}
    else:
        target = describe_target(engine.url)
        try:
            server = server_info(engine)
            dataset = dataset_fingerprint(engine)
        except DBAPIError as exc:
            server = {"error": mask_text(first_line(exc))}
    return {
        "bbperf": {"version": __version__, "git": git_commit()},
        "target": target,
        "postgresql": server,
        "machine": machine_info(),
        "parameters": dict(parameters or {}),
        "dataset": dataset,
        "started_at": started_at,
        "finished_at": finished_at or now_utc(),
    }
