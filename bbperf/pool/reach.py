"""Which pool configs can connect to a server at all, and why the others cannot.

A config's connection settings (sslmode, keepalives, options) decide whether it reaches a server:
the production config's ``sslmode=require`` finds no way into a server without SSL. Loading such a
config measures nothing (every request fails), so notebook 03 measures only the configs that
connect and names the others as skipped, with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from bbperf.errors import first_line
from bbperf.pool.describe import make_engine, pool_config
from bbperf.target import schema_of
from bbperf.urls import mask_text

_NO_SSL = ("does not support SSL", "server does not support ssl")


@dataclass(frozen=True)
class PoolReach:
    """``usable``: environments whose config connects; ``skipped``: environment → why not."""

    usable: list[str]
    skipped: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """One line per environment, in the order asked: "connects" or "skipped: <reason>"."""
        status = {env: "connects" for env in self.usable}
        status.update({env: f"skipped: {reason}" for env, reason in self.skipped.items()})
        return [f"{env}: {state}" for env, state in status.items()]


def why_not(engine: Engine, environment: str) -> str | None:
    """Why ``environment``'s config cannot connect to ``engine``'s server (one connection, with
    that config's settings), or None when it can."""
    config = pool_config(environment)
    probe = make_engine(engine.url, environment, schema=schema_of(engine), poolclass=NullPool)
    try:
        with probe.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        message = first_line(exc)
        if config.sslmode and any(part.lower() in message.lower() for part in _NO_SSL):
            return f"sslmode={config.sslmode} but the server has no SSL"
        return f"its connection settings fail on this server: {mask_text(message)}"
    finally:
        probe.dispose()
    return None


def pool_reach(engine: Engine, environments: Sequence[str]) -> PoolReach:
    """Try one connection per environment's config (``environments`` as named, e.g.
    ``["development", "production"]``) against ``engine``'s server."""
    usable: list[str] = []
    skipped: dict[str, str] = {}
    for env in environments:
        reason = why_not(engine, env)
        if reason is None:
            usable.append(env)
        else:
            skipped[env] = reason
    return PoolReach(usable, skipped)
