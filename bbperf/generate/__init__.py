"""Seeded, vectorized data generation for the BookedBarber schema, loaded by binary COPY.

Names load on first use: the CLI lists profiles without paying for numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DatasetInfo": "bbperf.generate.dataset",
    "dataset_as_of": "bbperf.generate.dataset",
    "dataset_info": "bbperf.generate.dataset",
    "dataset_spec": "bbperf.generate.dataset",
    "ensure_dataset": "bbperf.generate.load",
    "generate": "bbperf.generate.load",
    "require_dataset": "bbperf.generate.dataset",
    "verify": "bbperf.generate.fingerprint",
    "Profile": "bbperf.generate.profile",
    "available_profiles": "bbperf.generate.profile",
    "load_profile": "bbperf.generate.profile",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bbperf.generate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
