"""Parameter sweeps: every combination of a grid, one row of figures each.

::

    from workbench.backtest.sweep import sweep

    result = sweep(bars, MovingAverageCross, {"fast": range(5, 55, 5), "slow": range(20, 220, 20)},
                   fees=0.001, fixed={"long_only": True})
    result.table                      # one row per combination: parameters, then figures
    result.best("sharpe")             # the best row
    result.heatmap("fast", "slow", "sharpe")

A strategy with a fast path (:data:`workbench.backtest.vectorized.FAST_PATHS`) is swept
without materialising any combination's arrays: each distinct line (one moving average
per distinct window and kind) is computed once, then a parallel numba kernel runs every
combination straight from the lines and keeps only its figures. Lines are computed in
batches that fit ``memory`` bytes, so a large grid does not hold every line at once. Any
other strategy runs ``strategy.target(bars)`` per combination, with a progress bar.
Either way, each row equals a single :func:`~workbench.backtest.vectorized.run_vectorized`
of the same parameters (same fills, same figures).

Combinations that break the strategy's ordering (``fast >= slow``) are skipped and
counted, not errors; values out of a parameter's bounds are errors. With ``client=`` (a
``distributed.Client``, see :func:`workbench.backtest.cluster.get_client`) chunks of
combinations run on the cluster and the table is the same as in-process.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from workbench.backtest import _kernels as k
from workbench.backtest.vectorized import (
    FAST_PATHS,
    _checked_bars,
    _positive,
    _target_array,
    check_settings,
    infer_periods_per_year,
    kernel_settings,
)
from workbench.errors import ConfigError, WorkbenchError
from workbench.strategies import Strategy

if TYPE_CHECKING:
    import holoviews as hv

FIGURES = k.FIGURES
MEMORY = 512 * 2**20  # bytes of lines a fast sweep holds at once


@dataclass(frozen=True, eq=False)
class SweepResult:
    """A sweep's table (one row per combination: the grid's parameters, then ``FIGURES``)."""

    table: pd.DataFrame
    strategy: type[Strategy]
    params: tuple[str, ...]
    objective: str = "sharpe"
    skipped: int = 0
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.table)

    def best(self, objective: str | None = None, *, minimize: bool = False) -> pd.Series:
        """The row with the highest ``objective`` (lowest with ``minimize``), NaN ignored.

        If no combination has a defined value (e.g. none traded, so no Sharpe), the first
        row is returned; its NaN says so.
        """
        column = self._column(objective)
        values = self.table[column].astype(float)
        if len(values) == 0:
            raise WorkbenchError("The sweep has no combinations to choose from.")
        if values.isna().all():
            return self.table.iloc[0]
        return self.table.loc[values.idxmin() if minimize else values.idxmax()]

    def best_params(self, objective: str | None = None, *, minimize: bool = False) -> dict:
        """The grid's parameters of :meth:`best`, as plain Python values."""
        row = self.best(objective, minimize=minimize)  # a row Series upcasts ints to float
        return {name: _plain(self.table.at[row.name, name]) for name in self.params}

    def heatmap(self, x: str, y: str, value: str | None = None) -> hv.HeatMap:
        """A HoloViews HeatMap of ``value`` (default: the objective) over two parameters;
        where other parameters vary too, each cell shows the best value among them."""
        import holoviews as hv
        import holoviews.plotting.bokeh  # noqa: F401 - registers the Bokeh backend's options

        value = self._column(value)
        for name in (x, y):
            if name not in self.params:
                raise ConfigError(f"heatmap: {name!r} is not a swept parameter; use {self.params}.")
        cells = self.table.groupby([x, y], as_index=False)[value].max()
        title = f"{self.strategy.__name__}: {value}"
        return hv.HeatMap(cells, kdims=[x, y], vdims=[value]).opts(
            title=title, colorbar=True, tools=["hover"], cmap="RdYlGn"
        )

    def _column(self, name: str | None) -> str:
        name = self.objective if name is None else name
        if name not in FIGURES:
            raise ConfigError(f"{name!r} is not a sweep figure; choose from {list(FIGURES)}.")
        return name

    def _repr_html_(self) -> str:
        top = self.table.sort_values(self.objective, ascending=False, na_position="last")
        return (
            f"<b>Sweep</b> &middot; {escape(self.strategy.__name__)} &middot; "
            f"{len(self.table):,} combinations ({self.skipped:,} skipped by the parameters' "
            f"ordering) in {self.seconds:.2f} s &middot; best 10 by {escape(self.objective)}"
            f"{top.head(10).to_html(index=False, float_format=lambda v: f'{v:.6g}')}"
        )


def sweep(
    bars: pd.DataFrame,
    strategy: type[Strategy] | Strategy,
    grid: Mapping[str, Sequence[Any]],
    *,
    cash: float = 10_000.0,
    fees: float = 0.0,
    slippage: float = 0.0,
    units: float | None = None,
    fixed: Mapping[str, Any] | None = None,
    objective: str = "sharpe",
    periods_per_year: float | None = None,
    client: Any = None,
    progress: bool = True,
    memory: int = MEMORY,
) -> SweepResult:
    """Run ``strategy`` over ``bars`` for every combination of ``grid``.

    ``strategy`` is a Strategy class (or an instance, whose parameters become the
    defaults); ``fixed`` sets parameters outside the grid (e.g. ``long_only``). The
    settings are :func:`~workbench.backtest.vectorized.run_vectorized`'s. ``client`` runs
    chunks of combinations on a Dask cluster.
    """
    started = time.perf_counter()
    cls, base = _strategy(strategy, fixed)
    if objective not in FIGURES:
        raise ConfigError(
            f"objective={objective!r} is not a sweep figure; choose from {list(FIGURES)}."
        )
    names = _grid(cls, grid)
    settings = check_settings(cash=cash, fees=fees, slippage=slippage, units=units)
    open_, close = _checked_bars(bars, f"sweep({cls.__name__})")
    ppy = infer_periods_per_year(bars.index) if periods_per_year is None else periods_per_year
    settings["periods_per_year"] = _positive(ppy, "periods_per_year")
    combos, skipped = _combinations(cls, base, names, grid)
    knobs = np.array(kernel_settings(settings))
    if not combos:
        figures = np.empty((0, k.N_FIGURES))
    elif client is not None:
        figures = _on_cluster(client, bars, cls, combos, knobs, progress)
    elif cls in FAST_PATHS:
        figures = _fast(open_, close, bars, cls, combos, knobs, True, memory, progress)
    else:
        figures = _generic(open_, close, bars, cls, combos, knobs, progress)
    table = pd.DataFrame([{name: combo[name] for name in names} for combo in combos], columns=names)
    table = pd.concat([table, pd.DataFrame(figures, columns=list(FIGURES))], axis=1)
    table["trades"] = table["trades"].astype(np.int64)
    return SweepResult(
        table=table,
        strategy=cls,
        params=tuple(names),
        objective=objective,
        skipped=skipped,
        seconds=time.perf_counter() - started,
        settings=settings,
    )


# -- grid -------------------------------------------------------------------------------------


def _strategy(
    strategy: type[Strategy] | Strategy, fixed: Mapping[str, Any] | None
) -> tuple[type[Strategy], dict[str, Any]]:
    """The strategy class and the parameters every combination starts from."""
    if isinstance(strategy, Strategy):
        cls, base = type(strategy), dict(strategy.param.values())
    elif isinstance(strategy, type) and issubclass(strategy, Strategy):
        cls, base = strategy, {}
    else:
        raise ConfigError(f"sweep needs a Strategy class or instance, not {strategy!r}.")
    base.pop("name", None)
    base.update(fixed or {})
    unknown = sorted(set(base) - set(_parameters(cls)))
    if unknown:
        raise ConfigError(
            f"{cls.__name__} has no parameter(s) {unknown}; it has {_parameters(cls)}."
        )
    return cls, base


def _parameters(cls: type[Strategy]) -> list[str]:
    return [name for name in cls.param if name != "name"]


def _grid(cls: type[Strategy], grid: Mapping[str, Sequence[Any]]) -> list[str]:
    if not isinstance(grid, Mapping) or not grid:
        raise ConfigError("grid must be a non-empty mapping of parameter name to values.")
    names = list(grid)
    unknown = [name for name in names if name not in _parameters(cls)]
    if unknown:
        raise ConfigError(
            f"{cls.__name__} has no parameter(s) {unknown}; it has {_parameters(cls)}."
        )
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(
            values, (Sequence, range, np.ndarray)
        ):
            raise ConfigError(f"grid[{name!r}] must be a list of values, not {values!r}.")
        if len(values) == 0:
            raise ConfigError(f"grid[{name!r}] has no values.")
    return names


def _combinations(
    cls: type[Strategy], base: Mapping[str, Any], names: list[str], grid: Mapping[str, Sequence]
) -> tuple[list[dict[str, Any]], int]:
    """Every combination's full parameters (validated), and how many the ordering skipped."""
    combos, skipped = [], 0
    for values in itertools.product(*(grid[name] for name in names)):
        params = {**base, **{name: _plain(v) for name, v in zip(names, values, strict=True)}}
        if any(_unordered(params, cls, low, high) for low, high in cls.ordered):
            skipped += 1
            continue
        try:
            params = {k: v for k, v in cls(**params).param.values().items() if k != "name"}
        except ValueError as exc:  # a value out of bounds or of the wrong type
            raise ConfigError(f"sweep: {cls.__name__}({_show(params)}): {exc}") from None
        combos.append(params)
    return combos, skipped


def _unordered(params: Mapping[str, Any], cls: type[Strategy], low: str, high: str) -> bool:
    a = params.get(low, cls.param[low].default)
    b = params.get(high, cls.param[high].default)
    return not a < b


# -- runners ----------------------------------------------------------------------------------


def _fast(
    open_: np.ndarray,
    close: np.ndarray,
    bars: pd.DataFrame,
    cls: type[Strategy],
    combos: Sequence[Mapping[str, Any]],
    knobs: np.ndarray,
    parallel: bool,
    memory: int = MEMORY,
    progress: bool = False,
) -> np.ndarray:
    """Figures of every combination from its strategy's fast path, batch by batch of lines."""
    path = FAST_PATHS[cls]
    short = [c for c in combos if close.size < path.warmup(c)]
    if short:  # the strategy's own error for too few bars
        cls(**short[0]).target(bars)
    pairs = [path.lines(combo) for combo in combos]
    order = sorted(range(len(combos)), key=lambda i: (_key(pairs[i][0]), _key(pairs[i][1])))
    per_batch = max(2, int(memory // max(1, 8 * close.size)))
    out = np.empty((len(combos), k.N_FIGURES))
    run = k.sweep_parallel if parallel else k.sweep_serial
    with tqdm(total=len(combos), desc="sweep", unit="combination", disable=not progress) as bar:
        for batch in _batches(order, pairs, per_batch):
            keys: dict[Hashable, int] = {}
            for i in batch:
                for key in pairs[i]:
                    keys.setdefault(key, len(keys))
            lines = np.empty((len(keys), close.size))
            path.compute(list(keys), close, lines, parallel)
            index = np.array(
                [[keys[pairs[i][0]], keys[pairs[i][1]]] for i in batch], dtype=np.int64
            )
            flags = np.array([bool(combos[i].get("long_only", False)) for i in batch])
            figures = np.empty((len(batch), k.N_FIGURES))
            run(open_, close, lines, index, flags, knobs, figures)
            out[batch] = figures
            del lines
            bar.update(len(batch))
    return out


def _key(key: Hashable) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def _batches(
    order: Sequence[int], pairs: Sequence[tuple[Hashable, Hashable]], per_batch: int
) -> list[list[int]]:
    """Combinations in groups whose distinct lines number at most ``per_batch``."""
    batches: list[list[int]] = []
    current: list[int] = []
    keys: set[Hashable] = set()
    for i in order:
        new = set(pairs[i]) - keys
        if current and len(keys) + len(new) > per_batch:
            batches.append(current)
            current, keys, new = [], set(), set(pairs[i])
        current.append(i)
        keys |= new
    if current:
        batches.append(current)
    return batches


def _generic(
    open_: np.ndarray,
    close: np.ndarray,
    bars: pd.DataFrame,
    cls: type[Strategy],
    combos: Sequence[Mapping[str, Any]],
    knobs: np.ndarray,
    progress: bool = False,
) -> np.ndarray:
    """Figures of every combination from ``strategy.target(bars)``, one at a time."""
    out = np.empty((len(combos), k.N_FIGURES))
    cash0, fee, slip, units, ppy = knobs
    for row, params in enumerate(
        tqdm(combos, desc="sweep", unit="combination", disable=not progress)
    ):
        target = _target_array(cls(**params).target(bars), close.size)
        k.summarise(
            open_, close, target, target, k.TARGET, False, cash0, fee, slip, units, ppy, out[row]
        )
    return out


def _chunk(
    bars: pd.DataFrame, cls: type[Strategy], combos: list[dict[str, Any]], knobs: np.ndarray
) -> np.ndarray:
    """One cluster task: a chunk of combinations, in the worker's thread (its kernels
    release the GIL, so threads of a local cluster run side by side)."""
    open_, close = _checked_bars(bars, f"sweep({cls.__name__})")
    if cls in FAST_PATHS:
        return _fast(open_, close, bars, cls, combos, knobs, False)
    return _generic(open_, close, bars, cls, combos, knobs)


def _on_cluster(
    client: Any,
    bars: pd.DataFrame,
    cls: type[Strategy],
    combos: list[dict[str, Any]],
    knobs: np.ndarray,
    progress: bool,
) -> np.ndarray:
    from distributed import as_completed

    workers = max(1, sum(client.nthreads().values()))
    size = max(1, math.ceil(len(combos) / (2 * workers)))
    chunks = [combos[i : i + size] for i in range(0, len(combos), size)]
    data = client.scatter(bars, broadcast=True)
    futures = [client.submit(_chunk, data, cls, chunk, knobs, pure=False) for chunk in chunks]
    where = {future.key: i for i, future in enumerate(futures)}
    parts: list[np.ndarray | None] = [None] * len(chunks)
    with tqdm(total=len(combos), desc="sweep", unit="combination", disable=not progress) as bar:
        for future in as_completed(futures):
            i = where[future.key]
            parts[i] = future.result()
            bar.update(len(chunks[i]))
    return np.concatenate(parts)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _show(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in params.items())
