"""Timing statistics on exact values (no server)."""

from __future__ import annotations

import math

import pytest

from bbperf.explain.timingstats import Timing, bootstrap_ratio_ci, compare, summarize


def test_summary_of_one_to_ten_and_an_outlier() -> None:
    s = summarize([1, 2, 3, 4, 5, 6, 7, 8, 9, 100])
    assert s.n == 10
    assert s.median == 5.5
    assert s.mean == 14.5
    assert s.q1 == 3.25 and s.q3 == 7.75 and s.iqr == 4.5
    assert s.p95 == pytest.approx(59.05)
    assert s.p99 == pytest.approx(91.81)
    assert s.min == 1 and s.max == 100
    assert s.stdev == pytest.approx(math.sqrt(8182.5 / 9))  # squared deviations sum to 8182.5
    assert s.cv == pytest.approx(s.stdev / 14.5)
    assert s.outliers == 1  # 100 > Q3 + 1.5 IQR = 14.5


def test_summary_of_one_sample_and_of_none() -> None:
    s = summarize([2.5])
    assert (s.median, s.stdev, s.cv, s.iqr, s.outliers) == (2.5, 0.0, 0.0, 0.0, 0)
    with pytest.raises(ValueError):
        summarize([])


def test_timing_exposes_summary_and_keeps_server_apart() -> None:
    t = Timing(samples_ms=(1.0, 2.0, 3.0), server_ms=(0.5, 0.5, 0.7), label="q")
    assert t.median_ms == 2.0 and t.rounds == 3
    d = t.to_dict()
    assert d["client_ms"]["median"] == 2.0 and d["server_ms"]["median"] == 0.5
    assert "server median 0.500 ms" in str(t)


def test_clear_speedup_is_significant() -> None:
    before = [10.0 + 0.1 * i for i in range(30)]
    after = [5.0 + 0.1 * i for i in range(30)]
    c = compare(before, after)
    assert c.before_median == pytest.approx(11.45) and c.after_median == pytest.approx(6.45)
    assert c.speedup == pytest.approx(11.45 / 6.45)
    assert 1.0 < c.ci_low <= c.speedup <= c.ci_high
    assert c.p_value < 1e-6
    assert c.significant


def test_identical_samples_are_not_significant() -> None:
    same = [float(i % 7) + 1 for i in range(40)]
    c = compare(same, list(reversed(same)))
    assert c.speedup == 1.0
    assert c.ci_low <= 1.0 <= c.ci_high
    assert c.p_value == pytest.approx(1.0)
    assert not c.significant


def test_both_tests_must_agree() -> None:
    # Same medians, different spreads: the U test may see a shift that the median CI does not.
    before = [1.0, 1.0, 1.0, 5.0, 9.0, 9.0, 9.0]
    after = [4.0, 4.5, 5.0, 5.0, 5.0, 5.5, 6.0]
    c = compare(before, after, n_boot=2000)
    assert c.speedup == 1.0
    assert not c.significant


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    a, b = [3.0, 4.0, 5.0, 6.0], [1.0, 2.0, 2.0, 3.0]
    assert bootstrap_ratio_ci(a, b, seed=1) == bootstrap_ratio_ci(a, b, seed=1)
    low, high = bootstrap_ratio_ci(a, b, seed=1, n_boot=3000)
    assert 1.0 < low <= 4.5 / 2.0 <= high <= 6.0


def test_compare_accepts_timings_and_needs_two_samples() -> None:
    c = compare(Timing(samples_ms=(2.0, 2.0, 2.1)), Timing(samples_ms=(1.0, 1.0, 1.1)))
    assert c.speedup == 2.0
    assert not math.isnan(c.p_value)
    with pytest.raises(ValueError):
        compare([1.0], [1.0, 2.0])
