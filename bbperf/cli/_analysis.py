"""The engine read-only analysis runs on (``explain``, ``advise``, ``workload``): names resolve the
way the user's own session resolves them.

bbperf's engines pin ``search_path`` to bbperf's schema (then ``pg_catalog``), so nothing it writes
can land elsewhere. On a server bbperf does not own, that pin made every unqualified table name of a
user's statement fail unless they knew to pass ``--schema public``. Here, on such a server and
without ``--schema`` (or ``BBPERF_SCHEMA``), the engine connects with the role's and database's own
``search_path``; it still carries bbperf's schema (``bbperf.target.schema_of``), and everything
bbperf writes names that schema explicitly.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from bbperf.cli import settings_from
from bbperf.cli._engine import engine_from
from bbperf.poolconfig import pool_config
from bbperf.target import check_connection, engine_kwargs, is_embedded, schema_of

SEARCH_PATH_RULE = (
    "On a server bbperf does not own, names resolve on your own search_path unless --schema is "
    "given; bbperf's own writes stay in its schema."
)


def analysis_engine(args: argparse.Namespace) -> Any:
    """The checked engine for read-only analysis (see the module docstring)."""
    from sqlalchemy import create_engine

    engine = engine_from(args)
    given = args.schema is not None or bool(os.environ.get("BBPERF_SCHEMA"))
    if given or settings_from(args).database_url is None or is_embedded(engine):
        return engine
    config = pool_config("development", echo_pool=False, connect_timeout_s=5)
    users = create_engine(engine.url, **engine_kwargs(config, engine.url, search_path=None))
    users.update_execution_options(bbperf_schema=schema_of(engine))
    engine.dispose()
    check_connection(users)
    return users
