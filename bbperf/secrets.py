"""Passwords, found wherever they can arrive and masked in every form they can leave in.

A password reaches bbperf as URL userinfo, as a ``?password=`` query parameter, through
``PGPASSWORD`` or from a ``.pgpass`` entry libpq would use; it can leave raw, URL-encoded (both
``%20`` and ``+`` forms), HTML-escaped or JSON-escaped — and a server can hand one back in data bbperf
shows (an ``ALTER ROLE … PASSWORD '…'`` text in pg_stat_statements). ``redact`` masks all of it;
``find_leaks`` scans written files for any form of a known password.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

MASK = "***"
_MIN_SECRET_LEN = 4  # shorter "passwords" would match ordinary text everywhere


@cache
def _shapes() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """The free-text shapes of a password, compiled on first use (every ``bbperf`` command imports
    this module; most never mask free text).

    Userinfo and ``password=`` carry a password whoever it belongs to; stored password hashes
    (pg_authid, PgBouncer's userlist) are not the password but enough to try passwords offline
    against, so they are masked like one; so is the text of ``… PASSWORD '…'`` in SQL."""
    return (
        re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)"),
        re.compile(r"(password\s*=\s*)('(?:[^']|'')*'|[^&\s'\"]+)", re.IGNORECASE),
        re.compile(
            r"SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+"
            r"|\bmd5[0-9a-f]{32}\b"
        ),
        re.compile(
            r"(\bPASSWORD\s+)(E?'(?:[^']|'')*'?|\$\w*\$.*?(?:\$\w*\$|$))",
            re.IGNORECASE | re.DOTALL,
        ),
    )


def passwords(
    url: URL | str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    pgpass: bool = True,
) -> list[str]:
    """Every password bbperf might hold for ``url``: userinfo, ``?password=``, ``PGPASSWORD`` and the
    ``.pgpass`` entry libpq would pick (``PGPASSFILE`` or ``~/.pgpass``)."""
    env = os.environ if environ is None else environ
    found: list[str] = []
    parsed: URL | None = None
    if url is not None:
        # Late: SQLAlchemy is heavy, and `bbperf db start` masks a URL without loading it.
        from sqlalchemy.engine import make_url

        try:
            # SQLAlchemy's own parser, not urls.parse_url: urls masks with this module, and
            # finding a password needs no driver or scheme check.
            parsed = make_url(url) if isinstance(url, str) else url
        except Exception:  # noqa: BLE001 - a malformed URL still must not leak
            parsed = None
            found.extend(_userinfo_passwords(str(url)))
    if parsed is not None:
        if parsed.password:
            found.append(str(parsed.password))
        query_pw = parsed.query.get("password")
        found.extend([query_pw] if isinstance(query_pw, str) else list(query_pw or ()))
    if env.get("PGPASSWORD"):
        found.append(env["PGPASSWORD"])
    if pgpass:
        found.extend(_pgpass_passwords(parsed, env))
    return [s for s in dict.fromkeys(found) if len(s) >= _MIN_SECRET_LEN]


def libpq_password(url: URL, *, environ: Mapping[str, str] | None = None) -> str | None:
    """The password libpq would send for ``url``: userinfo or ``?password=``, else ``PGPASSWORD``,
    else the first matching ``.pgpass`` line (``PGPASSFILE`` or ``~/.pgpass``); None when none."""
    env = os.environ if environ is None else environ
    query_pw = url.query.get("password")
    if isinstance(query_pw, tuple):
        query_pw = query_pw[0] if query_pw else None
    for candidate in (url.password, query_pw, env.get("PGPASSWORD")):
        if candidate:
            return str(candidate)
    found = _pgpass_passwords(url, env)
    return found[0] if found else None


def _userinfo_passwords(text: str) -> list[str]:
    userinfo = _shapes()[0]
    return [m.group(2) for m in userinfo.finditer(text) if m.group(2)]


def _pgpass_passwords(url: URL | None, env: Mapping[str, str]) -> list[str]:
    """Passwords of ``.pgpass`` lines that match ``url`` (or every line when there is no URL)."""
    path = Path(env.get("PGPASSFILE") or Path(env.get("HOME", "~")).expanduser() / ".pgpass")
    try:
        if not path.is_file() or path.stat().st_size > 1_000_000:
            return []
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    wanted = [
        str(url.host or "localhost") if url else "*",
        str(url.port or 5432) if url else "*",
        str(url.database or "") if url else "*",
        str(url.username or "") if url else "*",
    ]
    found = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = re.split(r"(?<!\\):", line, maxsplit=4)
        if len(fields) != 5:
            continue
        if all(f == "*" or w == "*" or f == w for f, w in zip(fields[:4], wanted, strict=True)):
            found.append(fields[4].replace("\\:", ":").replace("\\\\", "\\"))
    return found


def forms(secret: str) -> list[str]:
    """``secret`` as it would appear raw, URL-encoded, HTML-escaped, JSON-escaped, or combinations."""
    # Late: html and json cost more to import than most commands spend masking.
    import html
    import json

    base = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        quote(secret),
    }
    out = set(base)
    for value in base:
        out.add(html.escape(value, quote=True))
        out.add(html.escape(value, quote=False))
        out.add(html.escape(value, quote=True).replace("&#x27;", "&#39;"))
    for value in list(out):
        out.add(json.dumps(value)[1:-1])
        out.add(json.dumps(value, ensure_ascii=False)[1:-1])
    return sorted(out, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret (in every form), every password-shaped value and every stored
    password hash (SCRAM-SHA-256 secret, md5 hash) masked."""
    for secret in secrets:
        for form in forms(secret):
            text = text.replace(form, MASK)
    userinfo, param, stored, sql_password = _shapes()
    text = userinfo.sub(
        lambda m: f"{m.group(1)}{MASK}{m.group(3)}" if m.group(2) else m.group(0), text
    )
    text = param.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = stored.sub(MASK, text)
    return sql_password.sub(lambda m: f"{m.group(1)}'{MASK}'", text)


def find_leaks(paths: Iterable[Path], secrets: Iterable[str]) -> list[Path]:
    """The files among ``paths`` whose bytes hold any form of any of ``secrets``."""
    needles = [form.encode() for secret in secrets for form in forms(secret)]
    if not needles:
        return []
    leaks = []
    for path in paths:
        if path.is_file():
            data = path.read_bytes()
            if any(needle in data for needle in needles):
                leaks.append(path)
    return sorted(leaks)


def redact_files(paths: Iterable[Path], secrets: Iterable[str]) -> None:
    """Rewrite each file with every form of every secret replaced by ``***``."""
    needles = sorted(
        {form.encode() for secret in secrets for form in forms(secret)}, key=len, reverse=True
    )
    for path in paths:
        data = path.read_bytes()
        for needle in needles:
            data = data.replace(needle, MASK.encode())
        path.write_bytes(data)
