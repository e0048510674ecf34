"""Every file bbperf writes for a user (``--out``, ``-o``) and every file it reads from one (``-f``,
``--from-file``, TOML and JSON inputs) goes through here: one place that refuses system paths,
existing files without ``force`` and directories, writes atomically, and reads with bounds."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from bbperf.errors import ConfigError

# Top-level folders whose files belong to the system; ``/lib*`` covers lib32, lib64, libx32.
SYSTEM_DIRS = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/lib",
)
MAX_JSON_DEPTH = 500
"""Deeper JSON is refused: real EXPLAIN plans and bbperf documents nest a few dozen levels."""


def is_system_path(path: str | Path) -> bool:
    """Whether ``path`` (after following symlinks) is the root or lies in a system folder."""
    resolved = Path(path).expanduser().resolve()
    if resolved == Path("/"):
        return True
    top = resolved.parts[1] if len(resolved.parts) > 1 else ""
    return top.startswith("lib") or any(resolved.is_relative_to(d) for d in SYSTEM_DIRS)


def check_output(path: str | Path, *, force: bool = False) -> Path:
    """Refuse what ``write_output`` would refuse, before any work is done; returns the path.

    Refused: a system path (or a symlink resolving into one), a directory, and an existing file
    unless ``force``.
    """
    target = Path(path).expanduser()
    if is_system_path(target):
        raise ConfigError(
            f"refusing to write {target}: it is in a system folder; choose another path"
        )
    if target.is_dir():
        raise ConfigError(f"{target} is a directory: name a file to write")
    if target.exists() and not force:
        raise ConfigError(f"{target} exists: pass --force to overwrite it, or choose another name")
    if target.exists() and not target.is_file():
        raise ConfigError(f"{target} is not a regular file: choose another name")
    return target


def write_output(path: str | Path, data: str | bytes, *, force: bool = False) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically, creating its folder; returns the path.

    The data goes to a temporary file in the same folder, which then replaces ``path``: a failed
    write leaves the old file whole. Refusals as in ``check_output``; ConfigError in one line.
    """
    target = check_output(path, force=force)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(temp, target)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


def read_input(path: str | Path, *, limit_bytes: int, kind: str) -> str:
    """The UTF-8 text of ``path`` (``-`` reads stdin), at most ``limit_bytes`` bytes.

    ``kind`` names what is read in the one-line ConfigError ("the plan", "workload file", ...).
    At most ``limit_bytes + 1`` bytes are read, so ``/dev/zero`` or a huge file cannot exhaust memory.
    """
    where = "stdin" if str(path) == "-" else str(path)
    try:
        if str(path) == "-":
            stream = getattr(sys.stdin, "buffer", None)  # a text-only stdin (a notebook, a test)
            raw = (
                stream.read(limit_bytes + 1)
                if stream is not None
                else sys.stdin.read(limit_bytes + 1).encode("utf-8")
            )
        else:
            with Path(path).open("rb") as handle:
                raw = handle.read(limit_bytes + 1)
    except FileNotFoundError:
        raise ConfigError(f"cannot read {kind} from {where}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"cannot read {kind} from {where}: it is a directory") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {kind} from {where}: {exc.strerror or exc}") from None
    if len(raw) > limit_bytes:
        raise ConfigError(f"{kind} in {where} is larger than {limit_bytes:,} bytes: refused")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{kind} in {where} is not UTF-8 text") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def loads_json(text: str, *, kind: str) -> Any:
    """Strict JSON (no NaN/Infinity), nested at most ``MAX_JSON_DEPTH`` deep; ConfigError otherwise."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{kind} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    except RecursionError:
        too_deep = True
    except ValueError as exc:
        raise ConfigError(f"{kind} is not valid JSON: {exc}") from None
    else:
        too_deep = json_depth(data) > MAX_JSON_DEPTH
    if too_deep:
        raise ConfigError(f"{kind} is nested more than {MAX_JSON_DEPTH} levels deep: refused")
    return data


def json_depth(data: Any) -> int:
    """How deeply parsed JSON nests lists and objects (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def loads_toml(text: str, *, kind: str) -> dict[str, Any]:
    """Parsed TOML; malformed or too deeply nested TOML is a ConfigError naming ``kind``."""
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ConfigError(f"{kind} is not valid TOML: {reason}") from None


def dumps_json(data: Any, *, indent: int | None = 2) -> str:
    """Strict JSON text: NaN and ±Infinity become null (JSON has no such numbers)."""
    return json.dumps(_finite(data), indent=indent, default=str, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
