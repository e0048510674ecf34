"""Per-environment connection pool settings (the BookedBarber values): what ``bbperf.target``
turns into an engine and ``bbperf pool show`` describes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bbperf.errors import ConfigError

ENVIRONMENTS = ("development", "staging", "production")


@dataclass(frozen=True)
class PoolConfig:
    """One environment's pool and connection settings; times in seconds unless the name says ms."""

    environment: str
    pool_size: int
    max_overflow: int
    pool_timeout_s: int
    pool_recycle_s: int
    statement_timeout_ms: int
    application_name: str
    sslmode: str | None = None
    keepalives: dict[str, int] = field(default_factory=dict)
    echo_pool: bool = False
    pool_pre_ping: bool = True
    connect_timeout_s: int = 10

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_CONFIGS = {
    "production": PoolConfig(
        environment="production",
        pool_size=50,
        max_overflow=100,
        pool_timeout_s=30,
        pool_recycle_s=1800,
        statement_timeout_ms=60000,
        application_name="bookedbarber_prod",
        sslmode="require",
        keepalives={
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 5,
        },
    ),
    "staging": PoolConfig(
        environment="staging",
        pool_size=20,
        max_overflow=40,
        pool_timeout_s=30,
        pool_recycle_s=3600,
        statement_timeout_ms=30000,
        application_name="bookedbarber_staging",
        sslmode="prefer",
    ),
    "development": PoolConfig(
        environment="development",
        pool_size=10,
        max_overflow=20,
        pool_timeout_s=30,
        pool_recycle_s=3600,
        statement_timeout_ms=30000,
        application_name="bookedbarber_dev",
        echo_pool=True,
    ),
}


def pool_config(environment: str = "development", **overrides: Any) -> PoolConfig:
    """The named environment's config with ``overrides`` (field names of PoolConfig) applied."""
    try:
        config = _CONFIGS[environment]
    except KeyError:
        raise ConfigError(
            f"unknown environment {environment!r}: choose one of {', '.join(ENVIRONMENTS)}"
        ) from None
    unknown = set(overrides) - set(PoolConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown pool setting(s): {', '.join(sorted(unknown))}")
    return replace(config, **overrides)
