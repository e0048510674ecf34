"""Progress bars for long measurement loops: shown to an analyst in JupyterLab or a terminal, silent in
rendered reports and test runs (``bbperf report`` sets ``BBPERF_PROGRESS=0`` for its kernels, so the
executed notebooks carry no bar widgets)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

PROGRESS_ENV = "BBPERF_PROGRESS"


def enabled() -> bool:
    """False when ``BBPERF_PROGRESS=0``: a report or test run, where a bar would only add noise."""
    return os.environ.get(PROGRESS_ENV, "1").strip() != "0"


def bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str,
    unit: str = "it",
    leave: bool = False,
) -> Any:
    """A ``tqdm.auto`` bar (a widget in Jupyter, text in a terminal), disabled when not ``enabled()``."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=not enabled())
