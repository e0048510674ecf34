"""Connection URLs: parse, pick the driver once, and mask passwords before anything is shown.

SQLAlchemy (about 0.3 s to import) is imported by the functions that parse; ``socket_url`` builds
the URL of a server on a Unix socket without it, so ``bbperf db start`` on a running server never
loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from bbperf.errors import ConfigError
from bbperf.secrets import MASK, passwords, redact

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

# SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; bbperf's engines use psycopg2 everywhere.
POSTGRES_DRIVER = "postgresql+psycopg2"
_SUPPORTED = {"postgresql", "postgres", "sqlite"}


def parse_url(url: str) -> URL:
    """Parse a user's URL and normalise the PostgreSQL driver to psycopg2."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"malformed database URL {mask_text(url)!r}: {exc}") from None
    backend = parsed.get_backend_name()
    if backend not in _SUPPORTED:
        raise ConfigError(
            f"unsupported database URL scheme {parsed.drivername!r}: use postgresql://… or sqlite://…"
        )
    if backend in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername=POSTGRES_DRIVER)
    if parsed.password == "":
        parsed = parsed.set(password=None)
    return parsed


def socket_url(database: str, socket_dir: str | Path, port: int, user: str = "postgres") -> str:
    """The libpq URL of a server on a Unix socket with trust auth (no password): ``socket_dir``
    percent-encoded, and the port named so that a PGPORT in the user's shell cannot redirect the
    socket path. The text ``mask_url`` prints for it, built without SQLAlchemy."""
    host = quote(str(socket_dir), safe="")
    return f"postgresql://{quote(user, safe='')}@/{database}?host={host}&port={int(port)}"


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def is_unix_socket(url: URL) -> bool:
    """True when libpq will connect over a Unix-domain socket (no host, or a host that is a path)."""
    host = url.host or url.query.get("host")
    if isinstance(host, tuple):
        host = host[0]
    return not host or str(host).startswith("/")


def mask_url(url: URL | str) -> str:
    """The URL as text with its password masked, whether in userinfo or ``?password=``."""
    # Late: secrets compiles its patterns and loads bbperf.sql, tens of ms that `bbperf db start`
    # on a running server never needs.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if isinstance(url, str):
        try:
            url = make_url(url)
        except (ArgumentError, ValueError):
            return redact(str(url))
    known = passwords(url, environ={}, pgpass=False)
    if url.password == "":
        url = url.set(password=None)
    if "password" in url.query:
        url = url.update_query_dict({"password": "BBPERFMASKED"})
    text = url.render_as_string(hide_password=True).replace("BBPERFMASKED", MASK)
    return redact(text, known)


def mask_text(text: str) -> str:
    """Mask anything that looks like a password inside free text (error messages, logs)."""
    return redact(text)


def describe_target(url: URL | str) -> str:
    """Where a URL points, for provenance: ``host:port/database`` or ``unix-socket/database``.

    Carries no user name, password or query options, so it can be written into any report.
    """
    parsed = parse_url(url) if isinstance(url, str) else url
    if is_sqlite(parsed):
        return f"sqlite/{parsed.database or ':memory:'}"
    database = parsed.database or ""
    if is_unix_socket(parsed):
        return f"unix-socket/{database}"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.host}{port}/{database}"
