"""One named query with the values to run it with: what a workload hands to benchmarks and replay."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, text

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class WorkloadQuery:
    """One named query: what it does, its SQL (``:name`` parameters) and the values to run it with."""

    name: str
    description: str
    sql: str
    params: dict[str, Any] = field(default_factory=dict)

    def run(self, engine_or_conn: Engine | Connection) -> pd.DataFrame:
        """Execute the query alone and return its rows."""
        import pandas as pd  # late: the workload file format needs no pandas to load

        if isinstance(engine_or_conn, Engine):
            with engine_or_conn.connect() as conn:
                return self.run(conn)
        result = engine_or_conn.execute(text(self.sql), self.params)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
