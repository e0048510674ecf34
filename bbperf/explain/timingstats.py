"""Timing statistics, pure: summaries (median, p95, p99, IQR, CV, outliers) and significance of a speedup.

Percentiles use linear interpolation between order statistics (numpy's default, ``R-7``); outliers are
Tukey's: outside ``[Q1 - 1.5 IQR, Q3 + 1.5 IQR]``, counted and kept. ``compare`` calls a speedup
significant only when the bootstrap confidence interval of the median ratio excludes 1 *and* the
Mann–Whitney U test rejects equal distributions: the two tests fail in different ways (the bootstrap
on few samples, the U test on shifted-but-overlapping spreads), so demanding both is conservative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Descriptive statistics of one sample, in the samples' unit (ms for timings)."""

    n: int
    median: float
    mean: float
    stdev: float
    min: float
    max: float
    q1: float
    q3: float
    iqr: float
    p95: float
    p99: float
    cv: float
    outliers: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(samples: Sequence[float]) -> Summary:
    """Summary of ``samples`` (at least one). ``stdev`` is the sample standard deviation (n - 1);
    ``cv`` = stdev / mean (0 for a single sample)."""
    values = np.asarray(samples, dtype=float)
    if values.size == 0:
        raise ValueError("summarize needs at least one sample")
    q1, median, q3, p95, p99 = np.percentile(values, [25, 50, 75, 95, 99])
    iqr = q3 - q1
    mean = float(values.mean())
    stdev = float(values.std(ddof=1)) if values.size > 1 else 0.0
    low, high = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    return Summary(
        n=int(values.size),
        median=float(median),
        mean=mean,
        stdev=stdev,
        min=float(values.min()),
        max=float(values.max()),
        q1=float(q1),
        q3=float(q3),
        iqr=float(iqr),
        p95=float(p95),
        p99=float(p99),
        cv=stdev / mean if mean else 0.0,
        outliers=int(((values < low) | (values > high)).sum()),
    )


@dataclass(frozen=True)
class Timing:
    """Latencies of repeated runs of one statement.

    ``samples_ms`` are client wall-clock times around the driver call (execute + fetch);
    ``server_ms`` holds EXPLAIN ANALYZE execution times when they were measured (never mixed in).
    ``cache`` says the cache state the samples were taken in (``warm`` or a description of cold).
    """

    samples_ms: tuple[float, ...]
    server_ms: tuple[float, ...] | None = None
    label: str = ""
    sql: str | None = None
    warmup: int = 0
    cache: str = "warm"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> Summary:
        return summarize(self.samples_ms)

    @property
    def server_summary(self) -> Summary | None:
        return summarize(self.server_ms) if self.server_ms else None

    @property
    def median_ms(self) -> float:
        return self.summary.median

    @property
    def p95_ms(self) -> float:
        return self.summary.p95

    @property
    def rounds(self) -> int:
        return len(self.samples_ms)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "rounds": self.rounds,
            "warmup": self.warmup,
            "cache": self.cache,
            "client_ms": self.summary.to_dict(),
        }
        if self.server_ms:
            out["server_ms"] = summarize(self.server_ms).to_dict()
        return out

    def __str__(self) -> str:
        s = self.summary
        text = (
            f"{self.label or 'timing'}: median {s.median:.3f} ms, p95 {s.p95:.3f} ms, "
            f"IQR {s.iqr:.3f} ms, CV {s.cv:.1%}, {s.outliers} outlier(s), n={s.n}, {self.cache}"
        )
        if self.server_ms:
            text += f"; server median {summarize(self.server_ms).median:.3f} ms"
        return text

    def _repr_html_(self) -> str:
        return f"<pre>{self}</pre>"


@dataclass(frozen=True)
class Comparison:
    """``before`` vs ``after``: speedup = median(before) / median(after); > 1 means after is faster."""

    before_median: float
    after_median: float
    speedup: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    alpha: float
    significant: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        verdict = "significant" if self.significant else "not significant"
        return (
            f"speedup ×{self.speedup:.2f} ({self.confidence:.0%} CI ×{self.ci_low:.2f}–×{self.ci_high:.2f}), "
            f"Mann–Whitney p={self.p_value:.3g}: {verdict}"
        )


def _values(data: Timing | Sequence[float]) -> np.ndarray:
    values = np.asarray(data.samples_ms if isinstance(data, Timing) else data, dtype=float)
    if values.size < 2:
        raise ValueError("compare needs at least two samples on each side")
    return values


def bootstrap_ratio_ci(
    before: Sequence[float] | np.ndarray,
    after: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_boot: int = 5000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of median(before) / median(after), each side resampled alone."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    ratios = np.empty(n_boot)
    chunk = max(1, 2_000_000 // max(a.size, b.size))  # bound memory for long samples
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        med_a = np.median(rng.choice(a, (size, a.size)), axis=1)
        med_b = np.median(rng.choice(b, (size, b.size)), axis=1)
        ratios[start : start + size] = med_a / med_b
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(ratios, [tail, 100.0 - tail])
    return float(low), float(high)


def compare(
    before: Timing | Sequence[float],
    after: Timing | Sequence[float],
    *,
    confidence: float = 0.95,
    alpha: float = 0.05,
    n_boot: int = 5000,
    seed: int = 0,
) -> Comparison:
    """Speedup of ``after`` over ``before`` with a bootstrap CI and a two-sided Mann–Whitney U p-value.

    ``significant`` is True only when the CI excludes 1 and p < ``alpha``. Deterministic for a seed.
    """
    from scipy.stats import mannwhitneyu

    a, b = _values(before), _values(after)
    med_a, med_b = float(np.median(a)), float(np.median(b))
    speedup = med_a / med_b if med_b else math.inf
    low, high = bootstrap_ratio_ci(a, b, confidence=confidence, n_boot=n_boot, seed=seed)
    p_value = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
    excludes_one = low > 1.0 or high < 1.0
    return Comparison(
        before_median=med_a,
        after_median=med_b,
        speedup=speedup,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        p_value=p_value,
        alpha=alpha,
        significant=bool(excludes_one and p_value < alpha),
    )


def median_ci(
    samples: Sequence[float], *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``samples`` (at least two)."""
    values = _values(samples)
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(values, (n_boot, values.size)), axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(medians, [tail, 100.0 - tail])
    return float(low), float(high)


def relative_ci_half_width(samples: Sequence[float], *, confidence: float = 0.95) -> float:
    """Half the width of the median's bootstrap CI as a fraction of the median (inf when undefined).

    ``0.1`` means the median is known to ±10 %: the stopping rule for rounds sized to a CI width.
    """
    if len(samples) < 2:
        return math.inf
    median = float(np.median(np.asarray(samples, dtype=float)))
    if median <= 0:
        return math.inf
    low, high = median_ci(samples, confidence=confidence)
    return (high - low) / 2.0 / median


def median_speedup_across(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Median over several queries of median(before) / median(after), with a bootstrap CI: each
    round resamples every query's two sides, recomputes its ratio and takes the median across
    queries. ``pairs`` holds each query's (before, after) samples, at least two a side."""
    sides = [(_values(before), _values(after)) for before, after in pairs]
    if not sides:
        raise ValueError("median_speedup_across needs at least one query")
    rng = np.random.default_rng(seed)
    boot = np.empty((len(sides), n_boot))
    for i, (a, b) in enumerate(sides):
        boot[i] = np.median(rng.choice(a, (n_boot, a.size)), axis=1) / np.median(
            rng.choice(b, (n_boot, b.size)), axis=1
        )
    point = float(np.median([np.median(a) / np.median(b) for a, b in sides]))
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(np.median(boot, axis=0), [tail, 100.0 - tail])
    return point, float(low), float(high)
