"""The interactive chart of a backtest result: price with the trades, equity, drawdown, exposure.

``plot_result(result)`` returns a HoloViews layout of four panels stacked on one time axis
(zooming or panning one moves them all), each as wide as the cell or page:

- **price** of one symbol: candles, or the close as a line when there are more than
  ``CANDLE_LIMIT`` bars; entries as ▲ (long, green) or ▼ (short, red), exits as ×, and a
  dotted line from each entry to its exit, green for a winning trade and red for a losing
  one. Hovering a marker shows the trade and its pnl.
- **equity** of the whole account, with the initial equity as a dashed line;
- **drawdown** from the running peak, a negative filled area;
- **exposure**, gross position value over equity.

Long series are thinned before drawing (the minimum and maximum of each slice are kept, so
peaks and the deepest drawdown survive) so that a run over a million bars stays light in a
notebook and in the HTML report.
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401 - registers the Bokeh backend without notebook output
import numpy as np
import pandas as pd
from bokeh.models import BasicTickFormatter, NumeralTickFormatter

from workbench.errors import WorkbenchError

CANDLE_LIMIT = 5_000  # more bars than this: the close as a line instead of candles
MAX_POINTS = 20_000  # longer lines are thinned to about this many points
UP, DOWN = "#26a69a", "#ef5350"
LONG, SHORT, EXIT, WIN, LOSS = "#2e7d32", "#c62828", "#263238", "#43a047", "#e53935"
LINE, FILL = "#1565c0", "#90caf9"
HEIGHTS = {"price": 380, "equity": 200, "drawdown": 140, "exposure": 160}  # the last has the axis

TIME = hv.Dimension("time", label="time (UTC)")
_DATETIME = {"@time": "datetime"}
_TRADE_TIPS = [
    ("trade", "@side @quantity{0,0.[000000]} @symbol"),
    ("entry", "@entry"),
    ("exit", "@exit"),
    ("pnl", "@pnl{0,0.[000000]} (@ret{+0.00%})"),
]
_CANDLE_TIPS = [
    ("time (UTC)", "@time{%F %H:%M}"),
    ("open", "@open{0,0.[00000000]}"),
    ("high", "@high{0,0.[00000000]}"),
    ("low", "@low{0,0.[00000000]}"),
    ("close", "@close{0,0.[00000000]}"),
    ("volume", "@volume{0,0.[00]}"),
]


def plot_result(result: Any, symbol: str | None = None) -> hv.Layout:
    """Price with the trades of ``symbol`` (default: the first), then the account's equity,
    drawdown and exposure, all on one linked time axis.

    ``result`` is a ``BacktestResult`` or anything with its ``bars``, ``equity``,
    ``exposure``, ``trades`` and ``label``.
    """
    bars = result.bars
    if not bars:
        raise WorkbenchError("The result has no bars to plot.")
    symbol = next(iter(bars)) if symbol is None else symbol
    if symbol not in bars:
        raise WorkbenchError(f"The result has no bars of {symbol!r}; choose one of {list(bars)}.")
    equity = result.equity.astype("float64")
    panels = [
        price_panel(bars[symbol], _trades_of(result.trades, symbol), title=_title(result, symbol)),
        equity_panel(equity, _initial_equity(result, equity)),
        drawdown_panel(equity),
        exposure_panel(result.exposure.astype("float64")),
    ]
    panels[-1] = panels[-1].opts(xaxis="bottom", xlabel="time (UTC)")
    return hv.Layout(panels).cols(1).opts(shared_axes=True)


def price_panel(bars: pd.DataFrame, trades: pd.DataFrame, title: str = "") -> hv.Overlay:
    """Candles (or the close) of one symbol with its trades' entries, exits and paths."""
    frame = _time_frame(bars)
    # The first layer sets the axis the panels link by, so it is a plain (time, price) curve:
    # the close itself, or invisible under candles.
    close = hv.Curve(_thin(frame, "close"), TIME, hv.Dimension("close", label="price"))
    if len(frame) > CANDLE_LIMIT:
        tips = [("time (UTC)", "@time{%F %H:%M}"), ("close", "@close{0,0.[00000000]}")]
        layers = [
            close.opts(
                color=LINE,
                line_width=1,
                tools=["hover"],
                hover_mode="vline",
                hover_tooltips=tips,
                hover_formatters=_DATETIME,
            )
        ]
    else:
        layers = [close.opts(line_alpha=0), *_candles(frame)]
    layers += _trade_layers(trades)
    return hv.Overlay(layers).opts(
        **_panel_options("price"),
        title=title,
        ylabel="price",
        legend_position="top",
        legend_opts={"click_policy": "hide", "border_line_alpha": 0, "margin": 0, "padding": 2},
        hooks=[_price_axis(float(np.nanmax(np.abs(frame["close"]))) if len(frame) else 1.0)],
    )


def equity_panel(equity: pd.Series, initial: float | None = None) -> hv.Overlay:
    """The account's equity after each bar, and the equity it started with (dashed)."""
    curve = hv.Curve(_thin(_series_frame(equity, "equity"), "equity"), TIME, "equity").opts(
        color=LINE,
        line_width=1.5,
        tools=["hover"],
        hover_mode="vline",
        hover_tooltips=[("time (UTC)", "@time{%F %H:%M}"), ("equity", "@equity{0,0.[000000]}")],
        hover_formatters=_DATETIME,
    )
    layers = [curve]
    if initial is not None and np.isfinite(initial):
        layers.append(hv.HLine(initial).opts(color="#78909c", line_dash="dashed", line_width=1))
    return hv.Overlay(layers).opts(
        **_panel_options("equity"), ylabel="equity", hooks=[_y_format("0,0.[0000]")]
    )


def drawdown_panel(equity: pd.Series) -> hv.Area:
    """How far equity is below its running peak, as a negative fraction."""
    drawdown = equity / equity.cummax() - 1.0
    frame = _thin(_series_frame(drawdown, "drawdown"), "drawdown")
    return hv.Area(frame, TIME, "drawdown").opts(
        **_panel_options("drawdown"),
        color=DOWN,
        fill_alpha=0.45,
        line_color=DOWN,
        line_width=1,
        ylabel="drawdown",
        yticks=4,
        tools=["hover"],
        hover_mode="vline",
        hover_tooltips=[("time (UTC)", "@time{%F %H:%M}"), ("drawdown", "@drawdown{0.00%}")],
        hover_formatters=_DATETIME,
        hooks=[_y_format("0%")],
    )


def exposure_panel(exposure: pd.Series) -> hv.Area:
    """Gross position value over equity after each bar."""
    frame = _thin(_series_frame(exposure, "exposure"), "exposure")
    return hv.Area(frame, TIME, "exposure").opts(
        **_panel_options("exposure"),
        color=FILL,
        fill_alpha=0.6,
        line_color=LINE,
        line_width=1,
        ylabel="exposure",
        yticks=3,
        tools=["hover"],
        hover_mode="vline",
        hover_tooltips=[("time (UTC)", "@time{%F %H:%M}"), ("exposure", "@exposure{0.[0]%}")],
        hover_formatters=_DATETIME,
        hooks=[_y_format("0%")],
    )


# -- layers ----------------------------------------------------------------------------------


def _candles(frame: pd.DataFrame) -> list[hv.Element]:
    """Bodies a little narrower than the bar spacing, with wicks of the same colour on top."""
    times = frame["time"]
    spacing = times.diff().median() if len(times) > 1 else pd.Timedelta(minutes=1)
    half = spacing * 0.35
    data = frame.assign(
        left=times - half,
        right=times + half,
        color=np.where(frame["close"] >= frame["open"], UP, DOWN),
    )
    bodies = hv.Rectangles(
        data, ["left", "open", "right", "close"], ["time", "high", "low", "volume", "color"]
    ).opts(
        color="color",
        line_color="color",
        tools=["hover"],
        hover_tooltips=_CANDLE_TIPS,
        hover_formatters=_DATETIME,
    )
    wicks = hv.Segments(
        data.assign(time_end=times), ["time", "low", "time_end", "high"], ["color"]
    ).opts(color="color", line_width=1)
    return [bodies, wicks]


def _trade_layers(trades: pd.DataFrame) -> list[hv.Element]:
    """Each trade's path (entry to exit), then its entry (▲ long, ▼ short) and exit (×);
    the marker layers are labelled (the legend's entries) and left out when empty."""
    data = _trade_frame(trades)
    closed = data[~data["open"]]
    vdims = ["price", "symbol", "side", "quantity", "entry", "exit", "pnl", "ret"]
    hover = {"tools": ["hover"], "hover_tooltips": _TRADE_TIPS}

    def markers(rows: pd.DataFrame, at: str, label: str, **style: Any) -> hv.Scatter:
        points = rows.assign(time=rows[f"{at}_time"], price=rows[f"{at}_price"])
        style = {"size": 13, "line_color": "white", "line_width": 0.5, **style}
        return hv.Scatter(points, TIME, vdims, label=label).opts(**hover, **style)

    paths = hv.Segments(
        closed.assign(color=np.where(closed["pnl"] > 0, WIN, LOSS)),
        ["entry_time", "entry_price", "exit_time", "exit_price"],
        ["color"],
    ).opts(color="color", line_dash="dotted", line_width=1.5, alpha=0.8)
    is_long = data["side"] == "long"
    points = [
        markers(data[is_long], "entry", "long entry", marker="triangle", color=LONG),
        markers(data[~is_long], "entry", "short entry", marker="inverted_triangle", color=SHORT),
        markers(
            closed, "exit", "exit", marker="x", color=EXIT, line_color=EXIT, line_width=2.5, size=11
        ),
    ]
    return [paths, *(layer for layer in points if len(layer))]  # no legend entry for no marker


# -- data ------------------------------------------------------------------------------------


def _time_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """Bars with a naive-UTC ``time`` column (Bokeh's datetime axis has no time zones)."""
    frame = bars.reset_index(drop=True)
    frame.insert(0, "time", _naive(bars.index))
    return frame


def _series_frame(series: pd.Series, name: str) -> pd.DataFrame:
    return pd.DataFrame({"time": _naive(series.index), name: series.to_numpy()})


def _naive(index: pd.Index) -> np.ndarray:
    times = pd.DatetimeIndex(index)
    if times.tz is not None:
        times = times.tz_convert("UTC").tz_localize(None)
    return times.as_unit("ns").to_numpy()


def _trades_of(trades: pd.DataFrame, symbol: str) -> pd.DataFrame:
    if trades is None or trades.empty:
        return pd.DataFrame(columns=["symbol", "side", "quantity", "entry_time", "entry_price"])
    return trades[trades["symbol"] == symbol]


def _trade_frame(trades: pd.DataFrame) -> pd.DataFrame:
    """The trade columns the markers and their hover use, with naive-UTC times."""
    n = len(trades)

    def column(name: str, default: object) -> pd.Series:
        values = trades[name] if name in trades else pd.Series([default] * n, dtype=object)
        return pd.Series(np.asarray(values), index=range(n))

    frame = pd.DataFrame(
        {
            "symbol": column("symbol", "").astype(str),
            "side": column("side", "long").astype(str),
            "quantity": column("quantity", np.nan).astype("float64"),
            "entry_time": _naive(pd.to_datetime(column("entry_time", pd.NaT), utc=True)),
            "entry_price": column("entry_price", np.nan).astype("float64"),
            "exit_time": _naive(pd.to_datetime(column("exit_time", pd.NaT), utc=True)),
            "exit_price": column("exit_price", np.nan).astype("float64"),
            "pnl": column("pnl", np.nan).astype("float64"),
            "ret": column("return", np.nan).astype("float64"),
        }
    )
    frame["open"] = column("open", False).astype(bool) | frame["exit_time"].isna()
    frame["entry"] = _when(frame["entry_time"], frame["entry_price"])
    frame["exit"] = _when(frame["exit_time"], frame["exit_price"]).where(~frame["open"], "open")
    return frame


def _when(times: pd.Series, prices: pd.Series) -> pd.Series:
    """``2018-01-10 08:15 UTC at 0.094`` for each fill (the hover's text, made once here)."""
    text = [
        f"{pd.Timestamp(t):%Y-%m-%d %H:%M} UTC at {_price(p)}" if pd.notna(t) else "—"
        for t, p in zip(times, prices, strict=True)
    ]
    return pd.Series(text, index=times.index, dtype=object)


def _price(value: float) -> str:
    if abs(value) >= 1 or not np.isfinite(value):
        return f"{value:,.6g}"
    return np.format_float_positional(value, precision=6, fractional=False, trim="-")


def _thin(frame: pd.DataFrame, column: str, limit: int = MAX_POINTS) -> pd.DataFrame:
    """At most about ``limit`` rows: the lowest and highest of each slice, first and last kept."""
    n = len(frame)
    if n <= limit:
        return frame
    size = -(-n // (limit // 2))
    buckets = -(-n // size)
    values = frame[column].to_numpy(dtype="float64")
    padded = np.concatenate([values, np.full(buckets * size - n, values[-1])]).reshape(buckets, -1)
    offsets = np.arange(buckets) * size
    low = np.where(np.isnan(padded), np.inf, padded).argmin(axis=1) + offsets
    high = np.where(np.isnan(padded), -np.inf, padded).argmax(axis=1) + offsets
    keep = np.unique(np.concatenate([[0, n - 1], np.minimum(low, n - 1), np.minimum(high, n - 1)]))
    return frame.iloc[keep].reset_index(drop=True)


def _initial_equity(result: Any, equity: pd.Series) -> float | None:
    stats = getattr(result, "stats", None)
    if stats is not None and "initial_equity" in stats:
        return float(stats["initial_equity"])
    cash = (getattr(result, "settings", None) or {}).get("cash")
    if cash is not None:
        return float(cash)
    return float(equity.iloc[0]) if len(equity) else None


def _title(result: Any, symbol: str) -> str:
    label = getattr(result, "label", "") or ""
    return f"{label} · {symbol}" if label else symbol


# -- options ---------------------------------------------------------------------------------


def _panel_options(name: str) -> dict[str, Any]:
    return {
        "responsive": True,
        "height": HEIGHTS[name],
        "show_grid": True,
        "xaxis": None,
        "active_tools": ["xpan", "xwheel_zoom"],
        "default_tools": ["xpan", "xwheel_zoom", "box_zoom", "reset", "save"],
        "autorange": "y",
        "padding": (0.01, 0.08),
    }


def _price_axis(largest: float):
    """Prices with thousands separators, or, below 1 (an altcoin priced in BTC), as many
    decimals as the ticks need (``0.0000341``) rather than ``3.41e-5``."""
    if largest >= 1:
        return _y_format("0,0.[0000]")

    def hook(plot, element) -> None:
        axis = plot.state.yaxis[0]
        if not isinstance(axis.formatter, BasicTickFormatter) or axis.formatter.use_scientific:
            axis.formatter = BasicTickFormatter(use_scientific=False)

    return hook


def _y_format(fmt: str):
    """A plot hook giving the y axis readable numbers; a fresh formatter model per plot."""

    def hook(plot, element) -> None:
        axis = plot.state.yaxis[0]
        if not isinstance(axis.formatter, NumeralTickFormatter):
            axis.formatter = NumeralTickFormatter(format=fmt)

    return hook
