"""Progress bars for long measurement loops: shown to an analyst in JupyterLab or a terminal, silent in
rendered reports and test runs (``bbperf report`` sets ``BBPERF_PROGRESS=0`` for its kernels, so the
executed notebooks carry no bar widgets)."""

from __future__ import annotations

import os
import warnings
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
    if not enabled():
        from tqdm import tqdm as silent  # tqdm.auto would warn in a kernel without ipywidgets

        return silent(iterable, total=total, disable=True)
    with warnings.catch_warnings():  # no ipywidgets: tqdm.auto falls back to text, with a warning
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave)
