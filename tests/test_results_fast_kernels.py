"""The metrics' numba kernels give the numpy expressions they replace, to the bit.

A run's stats scan a curve of hundreds of thousands of bars; the kernels do it in one pass
without numpy's temporaries or its slow cumulative ufuncs, so each is checked here bit for
bit against the numpy it stands for: on lengths around numpy's summation blocks (8 and
128 values), on ties, exact zeros, a total loss and an overflow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.backtest import metrics

LENGTHS = [*range(0, 300), 1_000, 1_023, 1_024, 1_025, 4_103, 100_003]


def same(a: float, b: float) -> bool:
    return a == b or (np.isnan(a) and np.isnan(b))


@pytest.mark.parametrize("center", [0.0, 3e-4])
def test_sums_of_squares_are_numpys_pairwise_sums(center):
    rng = np.random.default_rng(1)
    for n in LENGTHS:
        x = rng.normal(0, 1e-2, n)
        assert metrics._sum_of_squares(x, center, False) == np.sum(np.square(x - center)), n
        below = np.sum(np.square(np.minimum(x - center, 0.0)))
        assert metrics._sum_of_squares(x, center, True) == below, n
        if n >= 2:
            assert metrics._deviation(x, metrics._mean(x)) == np.std(x, ddof=1), n


def numpy_path(r: np.ndarray) -> tuple[float, float, np.ndarray]:
    """The growth, max drawdown and drawdowns as numpy computes them."""
    wealth = np.cumprod(r + 1)
    falls = wealth / np.maximum(np.maximum.accumulate(wealth), 1.0) - 1
    return np.prod(1 + r), falls.min(), falls


def returns_cases() -> list[np.ndarray]:
    rng = np.random.default_rng(2)
    cases = [rng.normal(0, 10 ** rng.uniform(-4, -1), n) for n in (1, 2, 7, 130, 50_000)]
    flat = rng.normal(0, 1e-3, 5_000)
    flat[rng.integers(0, flat.size, 2_000)] = 0.0  # plateaus: wealth equal to its peak
    edges = [[1e300, 1e300, -0.5], [0.1, -1.0, 0.5], [1e300, 1e300, -1.0, 0.2], [-0.0, 0.0]]
    return [*cases, flat, *map(np.array, edges)]


@pytest.mark.parametrize("r", returns_cases())
def test_wealth_path_is_cumprod_over_the_running_peak(r):
    with np.errstate(all="ignore"):
        growth, worst, falls = numpy_path(r)
    ours = np.empty_like(r)
    got_growth, got_worst = metrics._wealth_path(r, ours)
    assert same(got_growth, growth) and same(got_worst, worst)
    assert all(map(same, metrics._wealth_path(r, None), (got_growth, got_worst)))
    np.testing.assert_array_equal(ours, falls)


def numpy_longest(values: np.ndarray, stamps: np.ndarray) -> int:
    at_peak = np.flatnonzero(values >= np.maximum.accumulate(values))
    ends = np.append(at_peak[1:], len(values) - 1)
    underwater = ends > at_peak + 1
    return int((stamps[ends[underwater]] - stamps[at_peak[underwater]]).max(initial=-1))


def test_longest_underwater_is_the_longest_span_between_peaks():
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 10, 1_000, 20_000):
        stamps = np.cumsum(rng.integers(1, 4, n)) * 60_000_000_000
        for curve in (
            np.round(100 + np.cumsum(rng.normal(0, 1, n)), 0),  # ties with the peak
            100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))),
            np.arange(1.0, n + 1),  # never below: -1
        ):
            assert metrics._longest_underwater(curve, stamps) == numpy_longest(curve, stamps)


def test_count_steps_counts_the_spacing():
    stamps = pd.date_range("2024-01-01", periods=1_000, freq="5min").asi8
    stamps = np.delete(stamps, [3, 4, 500])
    for step in np.unique(np.diff(stamps)):
        assert metrics._count_steps(stamps, step) == np.count_nonzero(np.diff(stamps) == step)
