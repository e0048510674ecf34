"""The bbperf error hierarchy: every user-facing failure is a BbperfError with a one-line message."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an error, unwrapping a SQLAlchemy DBAPIError to the driver's own message
    (PostgreSQL puts the cause on line one and the DETAIL/HINT/context after it)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


class BbperfError(Exception):
    """Base class: the CLI prints ``bbperf: error: <message>`` and exits 2."""

    exit_code = 2


class ConfigError(BbperfError):
    """A setting, flag or environment variable has a value bbperf cannot use."""


class ConnectionFailed(BbperfError):
    """The database server could not be reached or refused the credentials."""


class ServerError(BbperfError):
    """The embedded PostgreSQL server could not be initialised, started or stopped."""


class SchemaError(BbperfError):
    """bbperf's schema is missing, or an operation would touch objects bbperf does not own."""


class QueryError(BbperfError):
    """A statement failed on the server (syntax, missing relation, timeout, ...)."""


class ProfileError(BbperfError):
    """A dataset profile is unknown or malformed."""


class DataError(BbperfError):
    """Generated data is missing or inconsistent with what an operation needs."""


class CacheError(BbperfError):
    """The result cache's key-value server could not be started, reached or stopped."""


class CacheUnavailable(CacheError):
    """No Valkey or Redis server binary is installed (an optional component)."""
