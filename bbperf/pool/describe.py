"""``bbperf pool show``: an environment's effective pool settings on a URL, secret-free.

The settings themselves live in core (``bbperf.poolconfig``) and engines are made by
``bbperf.target.make_engine``; the names are handed on here for callers that import them from the
pool package.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL

from bbperf.poolconfig import ENVIRONMENTS, PoolConfig, pool_config
from bbperf.target import engine_kwargs, make_engine
from bbperf.urls import is_sqlite, is_unix_socket, mask_url, parse_url

__all__ = ["ENVIRONMENTS", "PoolConfig", "describe", "make_engine", "pool_config"]


def describe(config: PoolConfig, url: URL | str | None = None) -> dict[str, Any]:
    """The effective config as a secret-free dict: what ``bbperf pool show`` prints."""
    info: dict[str, Any] = config.to_dict()
    if url is not None:
        parsed = parse_url(url) if isinstance(url, str) else url
        kwargs = engine_kwargs(config, parsed)
        info["url"] = mask_url(parsed)
        info["dialect"] = parsed.get_backend_name()
        info["pool_class"] = getattr(kwargs.get("poolclass"), "__name__", "QueuePool")
        info["transport"] = (
            "file" if is_sqlite(parsed) else ("unix-socket" if is_unix_socket(parsed) else "tcp")
        )
        info["connect_args"] = kwargs.get("connect_args", {})
        if info["transport"] == "unix-socket" and (config.sslmode or config.keepalives):
            info["note"] = "sslmode and keepalives do not apply to a Unix-domain socket; omitted"
    return info
