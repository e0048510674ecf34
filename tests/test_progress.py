"""Progress bars: shown by default, silent (and warning-free) when a report or a test run asks."""

from __future__ import annotations

import warnings
from decimal import Decimal

import pytest

from bbperf.progress import PROGRESS_ENV, bar, enabled
from bbperf.report.pages import format_cell


def test_bbperf_progress_0_silences_every_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROGRESS_ENV, "0")
    assert not enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no TqdmWarning about ipywidgets either
        with bar(total=2, desc="x") as shown:
            shown.update(2)
        assert list(bar([1, 2], desc="y")) == [1, 2]
        assert shown.disable


def test_bars_show_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert enabled()
    shown = bar(total=1, desc="z")
    assert not shown.disable
    shown.close()


def test_numeric_cells_are_rounded_like_floats() -> None:
    assert format_cell(Decimal("33.8135506877228732"), None) == "33.8"
    assert format_cell(Decimal("2159"), None) == "2,159"


def test_timestamps_are_shown_to_the_second() -> None:
    import pandas as pd

    stamp = pd.Timestamp("2026-11-30 07:21:38.830197+00:00")
    assert format_cell(stamp, None) == "2026-11-30 07:21:38+00:00"
