"""The trade-order bootstrap: determinism, what its distribution centres on, shuffling,
drawdown bounds, the result's table and plot, and bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from workbench.backtest.monte_carlo import MonteCarloResult, monte_carlo
from workbench.errors import ConfigError, DataFormatError, WorkbenchError

SWINGS = np.array([0.08, -0.06, 0.05, -0.04, 0.03, -0.02, 0.01])


def trades(returns, open_=()) -> pd.DataFrame:
    """A trades frame with the columns the bootstrap reads (and a pnl, which it ignores)."""
    returns = np.asarray(returns, dtype=float)
    is_open = np.zeros(len(returns), dtype=bool)
    is_open[list(open_)] = True
    return pd.DataFrame({"pnl": returns * 1000, "return": returns, "open": is_open})


def test_same_seed_same_result_other_seed_other_result():
    frame = trades(np.tile(SWINGS, 5))
    first, again = monte_carlo(frame, 10_000, seed=7), monte_carlo(frame, 10_000, seed=7)
    np.testing.assert_array_equal(first.final_return, again.final_return)
    np.testing.assert_array_equal(first.max_drawdown, again.max_drawdown)
    other = monte_carlo(frame, 10_000, seed=8)
    assert not np.array_equal(first.final_return, other.final_return)
    assert first.runs == 1000 and first.trades == 35


def test_median_final_return_is_the_compounded_geometric_mean():
    """Log final wealth is a sum of n draws, so its median sits at n * mean(log(1 + r)):
    the trades' own compounded return, not the arithmetic mean compounded n times."""
    r = np.tile(SWINGS, 30)
    runs = 4000
    result = monte_carlo(trades(r), 10_000, runs=runs, seed=1)
    log_r = np.log1p(r)
    standard_error = 1.2533 * np.sqrt(len(r)) * log_r.std() / np.sqrt(runs)  # of a median
    median = np.median(np.log1p(result.final_return))
    assert abs(median - log_r.sum()) < 4 * standard_error
    arithmetic = len(r) * np.log1p(r.mean())
    assert abs(median - arithmetic) > 4 * standard_error


def test_without_replacement_only_the_order_changes():
    r = np.r_[np.tile(SWINGS, 5), -0.5]
    shuffled = monte_carlo(trades(r), 10_000, runs=500, replace=False)
    np.testing.assert_allclose(shuffled.final_return, np.prod(1 + r) - 1, rtol=1e-12, atol=0)
    # Every shuffle holds the crash, so every run falls at least 50 %; the order moves the rest.
    assert (shuffled.max_drawdown <= -0.5).all()
    assert np.ptp(shuffled.max_drawdown) > 0.1
    # Resampling leaves the crash out of some runs and repeats it in others.
    resampled = monte_carlo(trades(r), 10_000, runs=500)
    assert (resampled.max_drawdown > -0.5).any() and (resampled.max_drawdown < -0.7).any()
    assert np.ptp(resampled.final_return) > 1.0


def test_drawdown_bounds():
    result = monte_carlo(trades(np.tile(SWINGS, 10)), 10_000, seed=3)
    assert (result.max_drawdown >= -1).all()
    assert (result.max_drawdown <= np.minimum(result.final_return, 0) + 1e-15).all()
    assert (result.max_drawdown < 0).all()

    winners = monte_carlo(trades([0.01, 0.02, 0.0, 0.03]), 10_000)
    assert (winners.max_drawdown == 0).all() and (winners.final_return >= 0).all()

    losers = monte_carlo(trades([-0.01, -0.02, -0.03]), 10_000)
    np.testing.assert_allclose(losers.max_drawdown, losers.final_return, rtol=1e-12)

    # A short that loses 150 %: the run is wiped out and stays at zero, never below.
    ruin = monte_carlo(trades([0.1, -1.5, 0.2]), 10_000, replace=False)
    assert (ruin.final_return == -1).all() and (ruin.max_drawdown == -1).all()


def test_only_closed_trades_are_drawn():
    result = monte_carlo(trades([0.01, 0.02, -0.9], open_=[2]), 10_000, runs=200)
    assert result.trades == 2
    assert (result.final_return > 0).all()


def test_table_probability_and_display():
    result = monte_carlo(trades(np.tile(SWINGS, 4)), 5_000, runs=300, seed=2)
    table = result.table
    assert list(table.index) == ["5%", "25%", "50%", "75%", "95%"]
    assert list(table.columns) == ["final_return", "max_drawdown"]
    q = [0.05, 0.25, 0.5, 0.75, 0.95]
    np.testing.assert_allclose(table["final_return"], np.quantile(result.final_return, q))
    np.testing.assert_allclose(table["max_drawdown"], np.quantile(result.max_drawdown, q))
    assert table["max_drawdown"].is_monotonic_increasing
    assert result.probability_of_loss == np.count_nonzero(result.final_return < 0) / 300
    assert 0 < result.probability_of_loss < 1
    np.testing.assert_allclose(result.final_equity, 5_000 * (1 + result.final_return))
    html = result._repr_html_()
    assert "300 runs of 28 trades" in html and "<table" in html
    assert f"{result.probability_of_loss:.1%}" in html


def test_plot_is_two_histograms_of_every_run():
    import holoviews as hv

    result = monte_carlo(trades(np.tile(SWINGS, 4)), 5_000, runs=300)
    layout = result.plot()
    assert isinstance(layout, hv.Layout)
    histograms = list(layout)
    assert [h.kdims[0].name for h in histograms] == ["final_return", "max_drawdown"]
    assert all(h.dimension_values("runs").sum() == 300 for h in histograms)


def test_result_is_frozen():
    result = monte_carlo(trades(SWINGS), 10_000, runs=10)
    assert isinstance(result, MonteCarloResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.seed = 1
    with pytest.raises(ValueError, match="read-only"):
        result.final_return[0] = 0.0


@pytest.mark.parametrize(
    ("frame", "kwargs", "error", "message"),
    [
        (trades([0.05, 0.01, 0.02], open_=[1, 2]), {}, DataFormatError, "at least 2 closed"),
        (trades([]), {}, DataFormatError, "got 0"),
        (trades([0.05, np.nan]), {}, DataFormatError, "NaN or infinite"),
        (trades([0.05, 0.01]).drop(columns="open"), {}, DataFormatError, "'return' and 'open'"),
        (trades([0.05, 0.01]), {"initial_equity": 0.0}, ConfigError, "initial_equity"),
        (trades([0.05, 0.01]), {"runs": 0}, ConfigError, "runs must be at least 1"),
    ],
)
def test_bad_input_is_a_clear_error(frame, kwargs, error, message):
    arguments = {"initial_equity": 10_000.0} | kwargs
    with pytest.raises(error, match=message) as caught:
        monte_carlo(frame, **arguments)
    assert isinstance(caught.value, WorkbenchError)
