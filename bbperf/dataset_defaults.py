"""The one source of the dataset a report, ``bbperf generate`` and every notebook use when none is
asked for: profile, scale, seed and as_of.

Notebooks keep these values as literals in their ``parameters`` cell (papermill reads literals);
tests/test_notebook_parameters.py checks each cell against this mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

# ~100 k appointments: loads in a few seconds, yet every experiment's effect shows.
DEFAULT_DATASET: Mapping[str, Any] = MappingProxyType(
    {
        "profile": "default",
        "scale": 0.1,
        "seed": 42,
        "as_of": "2026-11-01",
    }
)
