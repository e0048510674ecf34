"""A loaded dataset's provenance (``bbperf_meta`` key ``dataset``): reading it, checking inputs, and
reusing a matching dataset instead of generating it again."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from bbperf import meta
from bbperf.asof import as_of_date, as_of_datetime
from bbperf.errors import ConfigError, DataError
from bbperf.generate.profile import load_profile
from bbperf.sqlnames import qualified
from bbperf.target import schema_of

DATASET_KEY = "dataset"


@dataclass(frozen=True)
class DatasetInfo:
    """Provenance of a loaded dataset (what ``bbperf_meta`` holds under key ``dataset``).

    ``phases`` are the load's wall-clock steps in seconds (they add up to ``load_seconds``);
    ``client_seconds`` the generator's own time per activity, summed over its workers, spent while
    the COPY ran; ``copy_seconds`` the stream's time per table; ``peak_rss_mb`` the peak resident
    memory of the loading process (``coordinator``) and of its largest worker (``worker``).
    A resumable load sets ``resumable`` and counts its ``chunks``: ``total``, ``sent`` this run,
    ``skipped`` (committed by an interrupted run before).
    """

    profile: str
    scale: float
    seed: int
    as_of: str
    fingerprints: dict[str, dict[str, Any]]
    bbperf_version: str
    server_version: str
    loaded_at: str
    load_seconds: float = 0.0
    copy_seconds: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    client_seconds: dict[str, float] = field(default_factory=dict)
    jobs: int = 1
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    resumable: bool = False
    chunks: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> dict[str, int]:
        return {t: int(fp["rows"]) for t, fp in self.fingerprints.items()}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetInfo:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


MAX_SCALE = 1000.0


@dataclass(frozen=True)
class DatasetSpec:
    """The dataset asked for, checked (``dataset_spec``): what a load generates and what a loaded
    dataset's provenance is compared with."""

    profile: str
    scale: float
    seed: int
    as_of: date

    def provenance(self) -> dict[str, Any]:
        """The four values as a loaded dataset's provenance records them."""
        return {
            "profile": self.profile,
            "scale": self.scale,
            "seed": self.seed,
            "as_of": self.as_of.isoformat(),
        }


def dataset_spec(
    profile: str, scale: Any, seed: Any, as_of: str | date | datetime | None
) -> DatasetSpec:
    """The one check of a dataset's inputs, done where they enter (the CLI, the report, a
    library call): a known profile, ``check_scale``, ``check_seed``, and ``as_of`` as a day
    (``bbperf.asof``; None means today). ConfigError or ProfileError, one line, before any work."""
    load_profile(profile)
    return DatasetSpec(profile, check_scale(scale), check_seed(seed), as_of_date(as_of))


def check_scale(scale: Any) -> float:
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise ConfigError(f"scale {scale!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"scale must be a positive finite number, got {scale!r}")
    if value > MAX_SCALE:
        raise ConfigError(
            f"scale {value:g} is above the largest bbperf generates ({MAX_SCALE:g}, about "
            f"{MAX_SCALE:g} million appointments at the default profile)"
        )
    return value


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer | str):
        raise ConfigError(f"seed {seed!r} is not an integer")
    try:
        value = int(seed)
    except ValueError:
        raise ConfigError(f"seed {seed!r} is not an integer") from None
    if value < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {value}")
    return value


def check_jobs(jobs: Any) -> int:
    """Worker processes for generation: an integer from 1 to 64."""
    if isinstance(jobs, bool) or not isinstance(jobs, int | str):
        raise ConfigError(f"jobs {jobs!r} is not an integer")
    try:
        value = int(jobs)
    except ValueError:
        raise ConfigError(f"jobs {jobs!r} is not an integer") from None
    if not 1 <= value <= 64:
        raise ConfigError(f"jobs must be between 1 and 64, got {value}")
    return value


def dataset_info(engine: Engine) -> dict[str, Any] | None:
    """The provenance of the loaded dataset, or None when there is none (or no schema)."""
    schema = schema_of(engine)
    with engine.connect() as conn:
        if not meta.exists(conn, schema):
            return None
        value = meta.read(conn, schema, DATASET_KEY)
    return dict(value) if value else None


def counts_match(engine: Engine, schema: str, info: dict[str, Any]) -> bool:
    with engine.connect() as conn:
        for table, fp in info.get("fingerprints", {}).items():
            n = conn.execute(text(f"SELECT count(*) FROM {qualified(schema, table)}")).scalar_one()
            if n != fp["rows"]:
                return False
    return True


def dataset_as_of(engine: Engine) -> datetime:
    """The loaded dataset's as_of at 00:00 UTC: the one reader of it. DataError when nothing
    was generated."""
    info = dataset_info(engine)
    if not info or not info.get("as_of"):
        raise DataError(
            "no dataset is loaded, so there is no as_of: run `bbperf generate` "
            "or pass as_of explicitly"
        )
    return as_of_datetime(info["as_of"])


def require_dataset(engine: Engine) -> dict[str, Any]:
    """The loaded dataset's provenance; DataError when nothing was generated."""
    info = dataset_info(engine)
    if info is None:
        raise DataError(
            f"no dataset in schema {schema_of(engine)!r}: run `bbperf generate --profile tiny`"
        )
    return info
