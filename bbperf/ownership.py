"""Whether bbperf owns the server an engine reaches, as the server proves it: the one answer every
builder and writer asks ("may I build indexes here", "is this volume mine to check")."""

from __future__ import annotations

import contextlib
from pathlib import Path

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from bbperf.embedded import SERVER_ID_FILE

_OWNER_OPTION = "bbperf_owned_pgdata"  # an engine's cached answer of owned_data_directory


def owns(engine: Engine | Connection) -> bool:
    """True when ``engine`` (a SQLAlchemy Engine or Connection) reaches a server bbperf initialised
    on this machine: see ``owned_data_directory``. The one answer to "is it ours"."""
    return owned_data_directory(engine) is not None


def owned_data_directory(engine: Engine | Connection) -> Path | None:
    """The data directory of ``engine``'s server when bbperf owns it, else None.

    Asked of the server, never read from the URL: its ``data_directory`` must be ``<home>/pgdata``
    and its ``system_identifier`` the one bbperf recorded in ``<home>/server.id`` from that
    directory's pg_control. A server that hides either (a role without the privilege) is not
    ours. One query per engine: the answer is cached as an execution option."""
    target = engine.engine
    cached = target.get_execution_options().get(_OWNER_OPTION)
    if cached is not None:
        return Path(cached) if cached else None
    if target.dialect.name != "postgresql":
        return None
    setting, identifier = None, None
    try:
        with target.connect() as conn:
            setting, identifier = conn.exec_driver_sql(
                "SELECT (SELECT setting FROM pg_catalog.pg_settings WHERE name = 'data_directory'), "
                "(SELECT system_identifier FROM pg_catalog.pg_control_system())"
            ).one()
    except DBAPIError as exc:
        if "permission denied" not in str(exc):
            raise
    owned = None
    if setting and identifier is not None:
        data_directory = Path(str(setting))
        marker = data_directory.parent / SERVER_ID_FILE
        with contextlib.suppress(OSError):
            if data_directory.name == "pgdata" and marker.read_text().strip() == str(identifier):
                owned = data_directory
    target.update_execution_options(**{_OWNER_OPTION: str(owned) if owned else ""})
    return owned


def share_ownership(made: Engine, source: Engine) -> None:
    """Give ``made`` (another login to the same server, e.g. a least-privilege role that may not
    read ``data_directory``) ``source``'s proven answer."""
    made.update_execution_options(**{_OWNER_OPTION: str(owned_data_directory(source) or "")})
