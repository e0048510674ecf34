"""Index definitions as data: ``IndexDef`` (one index), ``IndexSet`` (a named group), their DDL."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from bbperf.config import validate_identifier
from bbperf.errors import BbperfError
from bbperf.sqlnames import qualified_if_needed, quote_if_needed

Order = Literal["ASC", "DESC"]
Method = Literal["btree", "gin", "brin"]
METHODS: tuple[str, ...] = ("btree", "gin", "brin")
ORDERS: tuple[str, ...] = ("ASC", "DESC")
# A partial-index predicate is SQL text from a set file: forbid what could end or extend a statement.
_UNSAFE_PREDICATE = re.compile(r";|--|/\*")


class IndexSetError(BbperfError):
    """An index definition or index-set file is malformed."""


@dataclass(frozen=True)
class IndexColumn:
    """One key column of an index and its sort order (only meaningful for btree)."""

    name: str
    order: Order = "ASC"

    def sql(self) -> str:
        return f"{self.name} DESC" if self.order == "DESC" else self.name


@dataclass(frozen=True)
class IndexDef:
    """One index: table, key columns in order, optional INCLUDE and partial WHERE, access method.

    ``serves`` names the workload queries (``bbperf.workload``) the index is meant to speed up;
    ``note`` is a human remark shown by validation (e.g. what would serve the same need).
    """

    name: str
    table: str
    columns: tuple[IndexColumn, ...]
    include: tuple[str, ...] = ()
    where: str | None = None
    method: Method = "btree"
    serves: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        validate_identifier(self.name, "index name")
        validate_identifier(self.table, f"table of index {self.name}")
        if not self.columns:
            raise IndexSetError(f"index {self.name}: needs at least one column")
        for col in (*(c.name for c in self.columns), *self.include):
            validate_identifier(col, f"column of index {self.name}")
        if self.method not in METHODS:
            raise IndexSetError(
                f"index {self.name}: method {self.method!r} is not one of {', '.join(METHODS)}"
            )
        for column in self.columns:
            if column.order not in ORDERS:
                raise IndexSetError(f"index {self.name}: order {column.order!r} is not ASC or DESC")
        if self.method != "btree" and (
            self.include or any(c.order == "DESC" for c in self.columns)
        ):
            raise IndexSetError(f"index {self.name}: INCLUDE and DESC need method btree")
        if self.where is not None and (
            not self.where.strip() or _UNSAFE_PREDICATE.search(self.where)
        ):
            raise IndexSetError(
                f"index {self.name}: WHERE must be one predicate without ; or comments"
            )

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def referenced_columns(self) -> tuple[str, ...]:
        """Key and INCLUDE columns (the predicate's columns are checked by the server)."""
        return (*self.column_names, *self.include)

    def create_sql(
        self, schema: str, *, concurrently: bool = False, if_not_exists: bool = False
    ) -> str:
        """``CREATE INDEX`` for this index on ``schema.table``."""
        parts = ["CREATE INDEX"]
        if concurrently:
            parts.append("CONCURRENTLY")
        if if_not_exists:
            parts.append("IF NOT EXISTS")
        parts.append(f"{quote_if_needed(self.name)} ON {qualified_if_needed(schema, self.table)}")
        if self.method != "btree":
            parts.append(f"USING {self.method}")
        parts.append("(" + ", ".join(c.sql() for c in self.columns) + ")")
        if self.include:
            parts.append("INCLUDE (" + ", ".join(self.include) + ")")
        if self.where:
            parts.append(f"WHERE {self.where.strip()}")
        return " ".join(parts)

    def drop_sql(self, schema: str, *, concurrently: bool = False) -> str:
        """``DROP INDEX IF EXISTS`` for this index in ``schema`` (never outside it)."""
        how = "CONCURRENTLY " if concurrently else ""
        return f"DROP INDEX {how}IF EXISTS {qualified_if_needed(schema, self.name)}"


@dataclass(frozen=True)
class IndexSet:
    """A named group of indexes applied and dropped together; ``source`` says where it came from."""

    name: str
    indexes: tuple[IndexDef, ...] = ()
    description: str = ""
    source: str = "built-in"
    serves: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for index in self.indexes:
            if index.name in seen:
                raise IndexSetError(f"index set {self.name}: index name {index.name} appears twice")
            seen.add(index.name)
        queries = dict.fromkeys(q for index in self.indexes for q in index.serves)
        object.__setattr__(self, "serves", tuple(queries))

    def __len__(self) -> int:
        return len(self.indexes)

    def get(self, name: str) -> IndexDef:
        for index in self.indexes:
            if index.name == name:
                return index
        raise IndexSetError(f"index set {self.name} has no index named {name}")

    def only(self, names: Iterable[str]) -> IndexSet:
        """The same set narrowed to the indexes named in ``names`` (e.g. those an apply created,
        so that undoing it leaves alone what was there before)."""
        wanted = set(names)
        return replace(self, indexes=tuple(i for i in self.indexes if i.name in wanted))

    def serving(self, query: str) -> tuple[IndexDef, ...]:
        """The indexes of this set meant to serve workload query ``query``."""
        return tuple(i for i in self.indexes if query in i.serves)
