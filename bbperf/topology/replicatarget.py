"""Which replica to read from for a primary, an engine on it, and its state and lag
(``bbperf replica status``). Apart from ``bbperf.topology.replica`` (the standby's lifecycle) so that
starting and stopping a replica, and ``bbperf db stop`` with it, load no SQLAlchemy engine code."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from bbperf.embedded import EmbeddedServer
from bbperf.errors import ConfigError
from bbperf.ownership import owned_data_directory
from bbperf.processes import ProcessStatus
from bbperf.target import make_engine
from bbperf.topology.lag import Lag, read_lag
from bbperf.topology.replica import REPLICA_URL_ENV, EmbeddedReplica
from bbperf.urls import is_unix_socket, mask_url, parse_url

if TYPE_CHECKING:
    from sqlalchemy import Engine


def is_embedded_primary(url: str, home: Path) -> bool:
    """True when ``url`` reaches the embedded server under ``home``, as that server proves it
    (``bbperf.ownership``): a URL naming its socket directory but a ``hostaddr`` elsewhere does not."""
    parsed = parse_url(url)
    if not is_unix_socket(parsed) or not EmbeddedServer(home).status().running:
        return False  # the embedded server listens on no TCP port
    engine = create_engine(parsed, poolclass=NullPool)
    try:
        owned = owned_data_directory(engine)
    except DBAPIError:
        return False
    finally:
        engine.dispose()
    return owned is not None and owned.resolve() == (Path(home) / "pgdata").resolve()


def resolve_replica_url(
    primary_url: str, home: Path, replica_url: str | None = None, *, start: bool = False
) -> str | None:
    """The replica to read from for ``primary_url``: ``replica_url``, else ``BBPERF_REPLICA_URL``,
    else the embedded replica (started when ``start`` and the primary is the embedded server).

    Returns None when there is none. Never creates a replica of an external primary.
    """
    named = replica_url or os.environ.get(REPLICA_URL_ENV) or None
    if named:
        parse_url(named)
        return named
    if not is_embedded_primary(primary_url, home):
        if start:
            raise ConfigError(
                "bbperf creates replicas only of its embedded server; for "
                f"{mask_url(primary_url)} name an existing replica with {REPLICA_URL_ENV} "
                "or --replica-url"
            )
        return None
    database = parse_url(primary_url).database or "bbperf"
    replica = EmbeddedReplica(home, database=database)
    if start:
        replica.start()
    proc = replica.process()
    return replica.url(database) if proc is not None and proc.ready else None


@dataclass(kw_only=True)
class ReplicaStatus(ProcessStatus):
    """What ``bbperf replica status`` reports; lag fields are None when not measurable."""

    SHOWN_FIRST: ClassVar[tuple[str, ...]] = ("kind", "running", "url", "pid")

    kind: str  # "embedded" or "external"
    url: str | None = None
    data_dir: str | None = None
    socket_dir: str | None = None
    port: int | None = None
    hot_standby_feedback: str | None = None
    receiver: str | None = None
    lag_bytes: int | None = None
    lag_s: float | None = None
    lagging: bool = False
    warnings: list[str] = field(default_factory=list)


def replica_engine(url: str, **overrides: Any) -> Engine:
    """An engine on a replica with a short connect timeout, so a replica that is down is reported
    at once instead of stalling a run."""
    return make_engine(url, echo_pool=False, connect_timeout_s=2, **overrides)


def replica_status(
    primary_url: str | None,
    home: Path,
    replica_url: str | None = None,
    *,
    max_lag_s: float = 10.0,
    max_lag_bytes: int | None = None,
) -> ReplicaStatus:
    """State and lag of the replica ``resolve_replica_url`` would use (``lagging`` when a threshold
    is broken or the replica cannot be read). ``primary_url`` None: the primary is down."""
    named = replica_url or os.environ.get(REPLICA_URL_ENV) or None
    if named:
        status = ReplicaStatus(kind="external", running=False, url=mask_url(named))
        url = named
    else:
        database = parse_url(primary_url).database if primary_url else None
        replica = EmbeddedReplica(home, database=database or "bbperf")
        proc = replica.process()
        status = ReplicaStatus(
            kind="embedded",
            running=proc is not None and proc.ready,
            data_dir=str(replica.pgdata),
            pid=proc.pid if proc else None,
            socket_dir=proc.socket_dir if proc else None,
            port=proc.port if proc else None,
        )
        if not status.running:
            if replica.created:
                status.warnings.append(
                    "the replica exists but is not running: `bbperf replica start`"
                )
            return status
        url = replica.url()
        status.url = mask_url(url)
    if primary_url is None:
        status.warnings.append("the primary is not running: lag cannot be measured")
        return status
    primary = replica_engine(primary_url, pool_size=1, max_overflow=0)
    standby = replica_engine(url, pool_size=1, max_overflow=0)
    try:
        lag: Lag = read_lag(primary, standby)
        if lag.error is None:
            with standby.connect() as conn:
                status.hot_standby_feedback = str(
                    conn.exec_driver_sql("SHOW hot_standby_feedback").scalar()
                )
    finally:
        primary.dispose()
        standby.dispose()
    status.running = status.running or lag.in_recovery is not None
    status.receiver, status.lag_bytes = lag.receiver, lag.lag_bytes
    status.lag_s = round(lag.lag_s, 3) if lag.lag_s is not None else None
    status.lagging = lag.beyond(max_lag_s, max_lag_bytes)
    if lag.error:
        status.warnings.append(lag.error)
    elif status.lagging:
        status.warnings.append(
            f"replica lags {status.lag_s} s / {status.lag_bytes} bytes, beyond the threshold "
            f"({max_lag_s} s{f', {max_lag_bytes} bytes' if max_lag_bytes is not None else ''}): "
            "reads there may miss recent writes"
        )
    if lag.receiver not in (None, "streaming"):
        status.warnings.append(f"WAL receiver is {lag.receiver!r}, not streaming")
    elif lag.error is None and lag.receiver is None:
        status.warnings.append("no WAL receiver: the replica is not streaming from the primary")
    if status.hot_standby_feedback == "off":
        status.warnings.append(
            "hot_standby_feedback is off: long analytics on the replica may be cancelled "
            "by conflicts with recovery"
        )
    return status
