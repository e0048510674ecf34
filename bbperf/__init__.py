"""bbperf: a PostgreSQL performance workbench for the BookedBarber schema."""

from bbperf.config import Settings, load_settings
from bbperf.errors import BbperfError
from bbperf.pools import PoolConfig, make_engine, pool_config
from bbperf.schema import build_metadata, create_schema, drop_schema, schema_status
from bbperf.server import EmbeddedServer
from bbperf.target import connect, resolve_url

__version__ = "0.1.0"

__all__ = [
    "BbperfError",
    "EmbeddedServer",
    "PoolConfig",
    "Settings",
    "__version__",
    "build_metadata",
    "connect",
    "create_schema",
    "drop_schema",
    "load_settings",
    "make_engine",
    "pool_config",
    "resolve_url",
    "schema_status",
]
