"""Built-in index sets (``seed``: the original migration's; ``none``: keys only; ``metrics``:
the six-figure metrics' covering indexes, in ``builtin/metrics.toml``) and TOML sets.

A set file looks like::

    name = "mine"
    description = "what it is for"

    [[index]]
    name = "idx_appointments_barber_day"
    table = "appointments"
    columns = ["barber_id", "start_time DESC"]
    include = ["status"]             # optional
    where = "status <> 'cancelled'"  # optional partial-index predicate
    method = "btree"                 # btree (default), gin or brin
    serves = ["barber_schedule"]     # workload queries it should speed up
    note = "free text shown by validation"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bbperf.errors import BbperfError, ConfigError
from bbperf.files import loads_toml, read_input
from bbperf.indexes.indexdefs import IndexColumn, IndexDef, IndexSet, IndexSetError

_SET_KEYS = {"name", "description", "index"}
MAX_SET_BYTES = 1_000_000
_INDEX_KEYS = {"name", "table", "columns", "include", "where", "method", "serves", "note"}
PRIMARY_ORG_NOTE = (
    "users has no primary_organization_id: a user's primary organization is the "
    "user_organizations row with is_primary; "
    "CREATE INDEX ON user_organizations (user_id) WHERE is_primary serves that need"
)


def parse_column(spec: str) -> IndexColumn:
    """``"start_time"`` or ``"start_time DESC"`` → IndexColumn."""
    words = spec.split()
    if len(words) == 1:
        return IndexColumn(words[0])
    if len(words) == 2 and words[1].upper() in ("ASC", "DESC"):
        return IndexColumn(words[0], words[1].upper())  # type: ignore[arg-type]
    raise IndexSetError(f"column {spec!r} is not 'name' or 'name ASC|DESC'")


def _ix(name: str, table: str, columns: str, *serves: str, note: str = "") -> IndexDef:
    return IndexDef(
        name=name,
        table=table,
        columns=tuple(parse_column(c) for c in columns.split(",")),
        serves=serves,
        note=note,
    )


SEED = IndexSet(
    name="seed",
    description="every index of the original BookedBarber migration, with its names",
    indexes=(
        _ix("idx_users_email", "users", "email", "user_by_email"),
        _ix("idx_users_role", "users", "role", "active_barbers"),
        _ix(
            "idx_users_primary_org",
            "users",
            "primary_organization_id",
            "user_primary_org",
            note=PRIMARY_ORG_NOTE,
        ),
        _ix("idx_users_is_active", "users", "is_active", "active_barbers"),
        _ix(
            "idx_appointments_user_status_start",
            "appointments",
            "user_id, status, start_time",
            "user_appointments",
        ),
        _ix(
            "idx_appointments_barber_status_start",
            "appointments",
            "barber_id, status, start_time",
            "barber_schedule",
            "revenue_join",
        ),
        _ix(
            "idx_appointments_client_status", "appointments", "client_id, status", "client_history"
        ),
        _ix("idx_appointments_start_time", "appointments", "start_time", "appointments_in_range"),
        _ix("idx_appointments_service_id", "appointments", "service_id", "service_analytics"),
        _ix(
            "idx_payments_user_status_created",
            "payments",
            "user_id, status, created_at",
            "payment_history",
        ),
        _ix(
            "idx_payments_appointment_status", "payments", "appointment_id, status", "revenue_join"
        ),
        _ix(
            "idx_payments_stripe_payment_intent",
            "payments",
            "stripe_payment_intent_id",
            "payment_by_intent",
        ),
        _ix("idx_payments_created_at", "payments", "created_at", "payments_in_range"),
        _ix(
            "idx_payments_user_appointment",
            "payments",
            "user_id, appointment_id",
            "payment_appointment_join",
        ),
        _ix(
            "idx_appointments_user_client",
            "appointments",
            "user_id, client_id",
            "user_client_lookup",
        ),
        _ix(
            "idx_appointments_barber_client",
            "appointments",
            "barber_id, client_id",
            "barber_client_lookup",
        ),
    ),
)
NONE = IndexSet(name="none", description="keys and unique constraints only (the 'before' state)")
BUILTIN_DIR = Path(__file__).with_name("builtin")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise IndexSetError(f"{where} must be a list of strings")
    return tuple(value)


def _index_from_toml(entry: Any, where: str) -> IndexDef:
    if not isinstance(entry, dict):
        raise IndexSetError(f"{where} must be a table ([[index]])")
    unknown = sorted(set(entry) - _INDEX_KEYS)
    if unknown:
        raise IndexSetError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_INDEX_KEYS))})"
        )
    for key in ("name", "table", "columns"):
        if key not in entry:
            raise IndexSetError(f"{where}: missing key {key!r}")
    for key in ("name", "table", "where", "method", "note"):
        if key in entry and not isinstance(entry[key], str):
            raise IndexSetError(f"{where}.{key} must be a string")
    try:
        return IndexDef(
            name=entry["name"],
            table=entry["table"],
            columns=tuple(parse_column(c) for c in _strings(entry["columns"], f"{where}.columns")),
            include=_strings(entry.get("include", []), f"{where}.include"),
            where=entry.get("where"),
            method=entry.get("method", "btree"),
            serves=_strings(entry.get("serves", []), f"{where}.serves"),
            note=entry.get("note", ""),
        )
    except IndexSetError as exc:
        if str(exc).startswith(where):
            raise
        raise IndexSetError(f"{where}: {exc}") from None
    except BbperfError as exc:
        raise IndexSetError(f"{where}: {exc}") from None


def load_toml(path: str | Path) -> IndexSet:
    """Read an index set from a TOML file; IndexSetError names the file and the offending key."""
    path = Path(path)
    try:
        data = loads_toml(
            read_input(path, limit_bytes=MAX_SET_BYTES, kind=f"index set {path}"),
            kind=f"index set {path}",
        )
    except ConfigError as exc:
        raise IndexSetError(str(exc)) from None
    unknown = sorted(set(data) - _SET_KEYS)
    if unknown:
        raise IndexSetError(
            f"{path}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_SET_KEYS))})"
        )
    entries = data.get("index", [])
    if not isinstance(entries, list):
        raise IndexSetError(f"{path}: 'index' must be an array of tables ([[index]])")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not isinstance(data.get("description", ""), str):
        raise IndexSetError(f"{path}: 'name' and 'description' must be strings")
    indexes = tuple(
        _index_from_toml(entry, f"{path}: index[{i}]") for i, entry in enumerate(entries)
    )
    try:
        return IndexSet(name, indexes, data.get("description", ""), source=str(path))
    except IndexSetError as exc:
        raise IndexSetError(f"{path}: {exc}") from None


# Built-in sets kept as TOML beside this module (same format as a user's set file).
BUILTIN_SETS: dict[str, IndexSet] = {
    s.name: s for s in (SEED, NONE, *(load_toml(p) for p in sorted(BUILTIN_DIR.glob("*.toml"))))
}


def load_set(name_or_path: str | Path | IndexSet) -> IndexSet:
    """A built-in set by name (``seed``, ``none``), a TOML file by path, or an IndexSet as is."""
    if isinstance(name_or_path, IndexSet):
        return name_or_path
    key = str(name_or_path)
    if key in BUILTIN_SETS:
        return BUILTIN_SETS[key]
    path = Path(key)
    if path.suffix == ".toml" or path.exists():
        return load_toml(path)
    raise IndexSetError(
        f"unknown index set {key!r}: use a built-in ({', '.join(BUILTIN_SETS)}) or a .toml path"
    )
