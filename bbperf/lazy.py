"""Lazy public faces for packages: names imported on first use, so ``import bbperf`` and every CLI
command stay fast (pandas, numpy and scipy load only when an analysis needs them)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str,
    exports: Mapping[str, str],
    namespace: dict[str, Any],
    imported_first: Mapping[str, Sequence[str]] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose public ``exports`` map a name to where
    it is defined: a module (absolute, or relative to the package with a leading dot) holding an
    attribute or a submodule of that name, or ``module:attribute`` (an attribute or submodule) when
    the public name differs.
    ``imported_first`` names modules imported, for what importing them registers, before a name
    resolves. A name is imported once, then kept in the package's ``namespace`` (its
    ``globals()``)."""
    names = sorted(exports)
    first = imported_first or {}

    def __getattr__(name: str) -> Any:
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        for module in first.get(name, ()):
            importlib.import_module(module, package)
        value = _resolve(package, name, where)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return list(namespace.get("__all__", names))

    return __getattr__, __dir__


def _resolve(package: str, name: str, where: str) -> Any:
    """The object ``where`` names for the public ``name`` (see ``lazy_exports``)."""
    module_name, _, attribute = where.partition(":")
    module = importlib.import_module(module_name, package)
    if attribute:
        try:
            return getattr(module, attribute)
        except AttributeError:
            return importlib.import_module(f"{module.__name__}.{attribute}")
    try:
        return getattr(module, name)
    except AttributeError:
        return importlib.import_module(f"{module.__name__}.{name}")
