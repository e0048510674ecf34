"""Defence in depth for report outputs: find (and redact) any password that reached a written file."""

from __future__ import annotations

import os
from pathlib import Path

from bbperf.urls import parse_url

_MIN_SECRET_LEN = 4  # shorter "passwords" would match ordinary text everywhere


def secrets_of(database_url: str | None) -> list[str]:
    """Passwords a report must never write: the URL's and ``PGPASSWORD``'s."""
    found: list[str] = []
    if database_url:
        password = parse_url(database_url).password
        if password:
            found.append(str(password))
    if os.environ.get("PGPASSWORD"):
        found.append(os.environ["PGPASSWORD"])
    return [s for s in dict.fromkeys(found) if len(s) >= _MIN_SECRET_LEN]


def find_leaks(directory: Path, secrets: list[str]) -> list[Path]:
    """Files under ``directory`` whose bytes contain any of ``secrets``."""
    if not secrets:
        return []
    needles = [s.encode() for s in secrets]
    return sorted(
        p for p in directory.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)
    )


def redact(paths: list[Path], secrets: list[str]) -> None:
    """Replace each secret by ``***`` in the given files."""
    for path in paths:
        data = path.read_bytes()
        for secret in secrets:
            data = data.replace(secret.encode(), b"***")
        path.write_bytes(data)
