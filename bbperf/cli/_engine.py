"""The engine the global flags name (``--database-url``, ``--schema``), for commands that query: apart
from ``bbperf.cli`` so that a command that runs no query (``bbperf db start``) never loads SQLAlchemy."""

from __future__ import annotations

import argparse

from bbperf.cli import settings_from
from bbperf.target import engine_for


def engine_from(args: argparse.Namespace, environment: str = "development"):
    """A checked engine on the target named by the global flags, carrying ``--schema``."""
    # A CLI user waits for one line, not the pool's 10 s connect_timeout.
    return engine_for(settings_from(args), environment, echo_pool=False, connect_timeout_s=5)
