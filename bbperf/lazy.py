"""Lazy public faces for packages: names imported on first use, so ``import bbperf`` and every CLI
command stay fast (pandas, numpy and scipy load only when an analysis needs them)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose public ``exports`` map a name to the
    module defining it (absolute, or relative to the package with a leading dot). A name is imported
    once, then kept in the package's ``namespace`` (its ``globals()``)."""
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return list(namespace.get("__all__", names))

    return __getattr__, __dir__
