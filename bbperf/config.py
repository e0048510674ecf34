"""Settings built in one place: defaults, then environment (BBPERF_*), then explicit arguments."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from bbperf.errors import ConfigError

DEFAULT_SCHEMA = "bbperf"
DEFAULT_DATABASE = "bbperf"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

LOAD_HOME_ENV = "BBPERF_LOAD_HOME"  # in a load worker's environment: the home it loads, or ""


def default_home() -> Path:
    """Where bbperf keeps its embedded server: ``$BBPERF_HOME`` or the user's data directory."""
    env = os.environ.get("BBPERF_HOME")
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("bbperf", appauthor=False)).resolve()


@dataclass(frozen=True)
class Settings:
    """Where bbperf works.

    ``database_url`` is None for the embedded server; ``schema`` is the only schema bbperf writes to.
    """

    home: Path
    database_url: str | None = None
    schema: str = DEFAULT_SCHEMA
    database: str = DEFAULT_DATABASE

    @property
    def embedded(self) -> bool:
        return self.database_url is None


def validate_identifier(name: str, what: str) -> str:
    """Accept only plain lower-case SQL identifiers, so names can be interpolated into DDL safely."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ConfigError(
            f"{what} {name!r} is not a plain identifier (lower-case letters, digits, _; max 63)"
        )
    return name


def validate_schema(name: str) -> str:
    """A plain identifier that PostgreSQL does not reserve: ``pg_*`` names (pg_catalog, pg_temp,
    pg_toast, and any new one, which CREATE SCHEMA refuses) and information_schema."""
    validate_identifier(name, "schema")
    if name.startswith("pg_") or name == "information_schema":
        raise ConfigError(
            f"schema {name!r} is reserved by PostgreSQL (pg_* and information_schema): "
            "choose another name, e.g. bbperf"
        )
    return name


def load_settings(
    database_url: str | None = None,
    schema: str | None = None,
    home: str | Path | None = None,
) -> Settings:
    """Merge defaults, ``BBPERF_HOME`` / ``BBPERF_DATABASE_URL`` / ``BBPERF_SCHEMA`` and arguments."""
    settings = Settings(home=default_home())
    env_url = os.environ.get("BBPERF_DATABASE_URL") or None
    env_schema = os.environ.get("BBPERF_SCHEMA") or None
    if env_url:
        settings = replace(settings, database_url=env_url)
    if env_schema:
        settings = replace(settings, schema=env_schema)
    if home is not None:
        settings = replace(settings, home=Path(home).expanduser().resolve())
    if database_url:
        settings = replace(settings, database_url=database_url)
    if schema:
        settings = replace(settings, schema=schema)
    validate_schema(settings.schema)
    return settings
