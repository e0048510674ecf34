"""Jupyter: ``%load_ext bbperf`` registers ``%sql``/``%%sql``, ``%%explain`` and ``%%bench``.

``%sql SELECT …`` or a ``%%sql`` cell returns the rows as a DataFrame; ``%%explain [--no-analyze]`` the
plan analysis (a Plan, shown as HTML); ``%%bench [--rounds N] [--warmup N] [--server-time] [--cold]``
the Timing of ``measure``. ``:name`` parameters take their values from ``--params JSON`` or, when it is
absent, from the notebook's variables of the same name; a missing one is one line of error. Values are
always bound by the server, never written into the SQL.

The same contract as ``bbperf explain``: one statement; ``%sql`` runs it in a read-only transaction
unless ``--allow-writes`` (then it commits, and says so); on bbperf's own server every magic logs in as
a least-privilege role (``bbperf.roles``); session state a statement takes (an advisory lock, a
setting) ends with the cell.
Options are parsed by IPython's ``magic_arguments``: a bad option prints the usage, ``%%bench?`` the
help. The engine is ``bbperf.target.connect()`` (``BBPERF_DATABASE_URL`` or the embedded server),
created on first use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import psycopg2
from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, magics_class
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from bbperf.binding import execute_args, prepared, reset_session
from bbperf.errors import BbperfError, first_line
from bbperf.explain.measure import measure
from bbperf.explain.run import explain
from bbperf.sql import CheckedStatement, bind_names, parse_one
from bbperf.target import connect, query_error, user_engine

_engine: Engine | None = None


def default_engine() -> Engine:
    global _engine
    if _engine is None:
        _engine = connect(echo_pool=False)
    return _engine


def resolve_params(sql: str, given: str | None, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """``--params`` as a dict, or each ``:name`` of ``sql`` from ``namespace`` (the notebook's
    variables). Raises ``UsageError`` (one line in a notebook) for bad JSON or a missing value."""
    if given:
        if len(given) >= 2 and given[0] == given[-1] and given[0] in "'\"":
            given = given[1:-1]  # magic_arguments keeps the quotes around a shell-quoted value
        try:
            params = json.loads(given)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--params is not valid JSON ({exc.msg})") from None
        if not isinstance(params, dict):
            raise UsageError("--params must be a JSON object of parameter names to values")
        return params
    try:
        names = bind_names(sql)
    except BbperfError as exc:
        raise UsageError(str(exc)) from None
    missing = [n for n in names if n not in namespace]
    if missing:
        raise UsageError(
            f"no value for {', '.join(':' + n for n in missing)}: set "
            f"{', '.join(missing)} in the notebook or pass --params"
        )
    return {n: namespace[n] for n in names}


def _one_statement(sql: str, *, allow_writes: bool) -> CheckedStatement:
    """The cell's SQL, checked: one statement, and a read unless ``allow_writes``."""
    if not sql.strip().rstrip(";").strip():
        raise UsageError("no SQL: write the statement after %sql or in the %%sql cell")
    try:
        checked = parse_one(sql)
    except BbperfError as exc:
        raise UsageError(str(exc)) from None
    if checked.is_write and not allow_writes:
        raise UsageError(
            "this statement modifies data: %sql runs reads only; add --allow-writes to run it and "
            "commit, or use %%explain (which rolls back)"
        )
    return checked


def run_sql(
    engine: Engine, sql: str, params: Mapping[str, Any], *, allow_writes: bool = False
) -> Any:
    """Rows of ``sql`` as a DataFrame (values bound by the server). A read runs in a read-only
    transaction; a write only with ``allow_writes``, committed, and returns a one-line summary that
    says so. The connection's session state is reset afterwards."""
    import pandas as pd

    checked = _one_statement(sql, allow_writes=allow_writes)
    values = checked.values(params)
    target = user_engine(engine, writes=checked.is_write)
    with target.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        try:
            with dbapi.cursor() as cursor:  # type: ignore[union-attr]
                if not checked.is_write:
                    cursor.execute("SET LOCAL transaction_read_only = on")
                with prepared(cursor, checked, values) as name:
                    cursor.execute(f"EXECUTE {name}{execute_args(values)}", values)
                    columns = [c.name for c in cursor.description or ()]
                    rows = cursor.fetchall() if cursor.description is not None else None
                    count = cursor.rowcount
            if checked.is_write:
                dbapi.commit()
            else:
                dbapi.rollback()
        except psycopg2.Error as exc:
            dbapi.rollback()
            raise UsageError(
                query_error(DBAPIError(checked.text, None, exc), checked.text).args[0]
            ) from None
        finally:
            try:
                reset_session(dbapi)
            except psycopg2.Error:
                conn.invalidate()
    if rows is None:
        return f"{count} row(s) affected — committed (--allow-writes)"
    frame = pd.DataFrame(rows, columns=columns)
    return frame


@magics_class
class BbperfMagics(Magics):
    """bbperf's magics; see the module docstring."""

    def _namespace(self) -> Mapping[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("--params", metavar="JSON", help="values for :name parameters")
    @magic_arguments.argument(
        "--allow-writes",
        action="store_true",
        help="run a data-modifying statement and commit it (reads only without it)",
    )
    @magic_arguments.argument("statement", nargs="*", help="the SQL (line form)")
    @line_cell_magic
    def sql(self, line: str, cell: str | None = None) -> Any:
        """Run one SQL statement and return its rows as a DataFrame."""
        args = magic_arguments.parse_argstring(self.sql, line)
        statement = cell if cell is not None else " ".join(args.statement)
        _one_statement(statement, allow_writes=args.allow_writes)
        params = resolve_params(statement, args.params, self._namespace())
        try:
            return run_sql(default_engine(), statement, params, allow_writes=args.allow_writes)
        except BbperfError as exc:
            raise UsageError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - a driver error becomes one line, not a traceback
            raise UsageError(first_line(exc)) from None

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("--params", metavar="JSON", help="values for :name parameters")
    @magic_arguments.argument("--no-analyze", action="store_true", help="plan only; do not execute")
    @cell_magic
    def explain(self, line: str, cell: str) -> Any:
        """EXPLAIN (ANALYZE, BUFFERS) the cell's statement; returns the Plan (self time per node)."""
        args = magic_arguments.parse_argstring(self.explain, line)
        params = resolve_params(cell, args.params, self._namespace())
        try:
            writes = parse_one(cell).is_write
            engine = user_engine(default_engine(), writes=writes)
            return explain(engine, cell, params, analyze=not args.no_analyze)
        except BbperfError as exc:
            raise UsageError(str(exc)) from None

    @magic_arguments.magic_arguments()
    @magic_arguments.argument("--params", metavar="JSON", help="values for :name parameters")
    @magic_arguments.argument("--rounds", type=int, default=30, help="timed runs (default 30)")
    @magic_arguments.argument(
        "--warmup", type=int, default=5, help="untimed runs first (default 5)"
    )
    @magic_arguments.argument(
        "--server-time", action="store_true", help="also record EXPLAIN's Execution Time"
    )
    @magic_arguments.argument("--cold", action="store_true", help="new connection per round")
    @cell_magic
    def bench(self, line: str, cell: str) -> Any:
        """Time the cell's statement (``bbperf.explain.measure``); returns the Timing."""
        args = magic_arguments.parse_argstring(self.bench, line)
        if args.rounds < 1 or args.warmup < 0:
            raise UsageError("--rounds must be at least 1 and --warmup at least 0")
        params = resolve_params(cell, args.params, self._namespace())
        try:
            return measure(
                user_engine(default_engine()),
                cell,
                params,
                rounds=args.rounds,
                warmup=args.warmup,
                server_time=args.server_time,
                cold=args.cold,
            )
        except BbperfError as exc:
            raise UsageError(str(exc)) from None


def _without_shell(name: str, line: str, cell: str) -> Any:
    try:
        return getattr(BbperfMagics(shell=None), name)(line, cell)
    except UsageError as exc:
        print(f"bbperf: error: {exc}")
        return None


def explain_magic(line: str, cell: str) -> Any:
    """``%%explain`` as a plain function (no IPython shell): on an error, one printed line and None."""
    return _without_shell("explain", line, cell)


def bench_magic(line: str, cell: str) -> Any:
    """``%%bench`` as a plain function (no IPython shell): on an error, one printed line and None."""
    return _without_shell("bench", line, cell)


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext bbperf`` (re-exported from ``bbperf``)."""
    ipython.register_magics(BbperfMagics)
