"""Numbers for people: three significant digits, units spelled out (×522, 0.482 ms, 39.1 MiB, 93.4 %)."""

from __future__ import annotations

import math
from typing import Any


def _sig(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits, thousands separated, no exponent."""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    rounded = round(value, decimals)
    return f"{rounded:,.{decimals}f}"


def _bytes(value: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.0f} bytes" if unit == "bytes" else f"{_sig(value)} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_number(value: float, unit: str = "") -> str:
    """A finite number with its unit, rounded for reading."""
    if unit == "x":
        return f"×{_sig(value)}"
    if unit == "bytes":
        return _bytes(value)
    if unit == "ratio":
        # 99.97 % must not read as 100.0 %: near the top, the missing share is what matters
        if 0.9999 <= value < 1:
            return "> 99.99 %"
        digits = 2 if 0.9995 <= value < 1 else 1
        return f"{value * 100:.{digits}f} %"
    if unit == "%":
        return f"{_sig(value)} %"
    if unit == "ms" and abs(value) >= 10_000:
        return f"{_sig(value / 1000)} s"
    text = f"{value:,}" if isinstance(value, int) else _sig(value)
    return f"{text} {_singular(unit) if value == 1 else unit}".strip()


def _singular(unit: str) -> str:
    """ "1 alert", "1 index": a counted noun loses its plural ending (ms, s, req/s… are kept)."""
    if not unit.isalpha() or len(unit) < 4 or not unit.endswith("s"):
        return unit
    if unit.endswith("xes") or unit.endswith("ches") or unit.endswith("shes"):
        return unit[:-2]
    return unit[:-1]


def format_value(value: Any, unit: str = "") -> str:
    """Any figure value: numbers rounded with their unit, None as "none", text as it is."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return "none"
        return format_number(value, unit)
    return f"{value} {unit}".strip()


def format_ci(low: float | None, high: float | None, unit: str = "") -> str:
    """``low–high`` in the figure's unit, or "" when there is no interval."""
    if low is None or high is None:
        return ""
    return f"{format_number(low, unit)} – {format_number(high, unit)}"


def format_p(p_value: float | None) -> str:
    if p_value is None:
        return ""
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.2g}"
