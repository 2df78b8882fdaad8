"""Candlestick and volume elements drawn from a *plot frame*.

A plot frame is bars laid out as the glyphs need them: one row per bar, naive UTC times
(Bokeh's datetime axis has no time zones), body edges and a direction colour. The
elements are built on the frame as it is, without copying, because HoloViews streams a
``Buffer`` into Bokeh with ``ColumnDataSource.stream`` only when the element's data *is*
the buffer's data.
"""

from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401 - registers the Bokeh backend without notebook output
import numpy as np
import pandas as pd
from bokeh.models import NumeralTickFormatter
from holoviews.streams import Buffer, Pipe

from workbench.data.model import BAR_COLUMNS
from workbench.data.timeframes import timeframe_ms

UP, DOWN = "#26a69a", "#ef5350"
BODY_WIDTH = 0.7  # of a bar's length, so neighbouring candles never touch
VOLUME_HEIGHT = 170
PADDING = (0.01, 0.08)  # little room beside the first and newest bars, some above and below

_TOOLTIPS = [
    ("time (UTC)", "@timestamp{%F %H:%M}"),
    ("open", "@open{0,0.[0000]}"),
    ("high", "@high{0,0.[0000]}"),
    ("low", "@low{0,0.[0000]}"),
    ("close", "@close{0,0.[0000]}"),
    ("volume", "@volume{0,0.[00]}"),
]


def plot_frame(bars: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Bars in the workbench convention as the columns the candle and volume glyphs draw."""
    times = pd.DatetimeIndex(bars.index).tz_convert(None).as_unit("ns")
    half = pd.Timedelta(milliseconds=timeframe_ms(timeframe) * BODY_WIDTH / 2)
    up = bars["close"].to_numpy() >= bars["open"].to_numpy()
    frame = pd.DataFrame({"timestamp": times, **{c: bars[c].to_numpy() for c in BAR_COLUMNS}})
    frame["left"] = times - half
    frame["right"] = times + half
    frame["base"] = 0.0
    frame["color"] = np.where(up, UP, DOWN)
    return frame


def candles(data: pd.DataFrame) -> hv.Overlay:
    """Bodies, then wicks of the same colour on top (hidden inside a body, visible outside).

    Bodies come first so that the price chart's x axis is the ``left``/``right`` pair the
    volume chart also uses, which is what lets Panel link the two x ranges.
    """
    bodies = hv.Rectangles(
        data, ["left", "open", "right", "close"], ["timestamp", "high", "low", "volume", "color"]
    ).opts(
        color="color",
        line_color="color",
        tools=["hover"],
        hover_tooltips=_TOOLTIPS,
        hover_formatters={"@timestamp": "datetime"},
    )
    wicks = hv.Segments(data, ["timestamp", "low", "timestamp", "high"], ["color"]).opts(
        color="color", line_width=1
    )
    return bodies * wicks


def volume(data: pd.DataFrame) -> hv.Rectangles:
    """Volume bars coloured like their candles."""
    return hv.Rectangles(data, ["left", "base", "right", "volume"], ["color"]).opts(
        color="color", line_alpha=0, alpha=0.6
    )


def _numeral_y_ticks(fmt: str):
    """A plot hook giving the y axis readable numbers (``173,500`` rather than ``1.735e+5``).

    A hook, not the ``yformatter`` option, so that each plot gets its own formatter model
    (a Bokeh model belongs to one document), set once rather than on every update.
    """

    def hook(plot, element) -> None:
        axis = plot.state.yaxis[0]
        if not isinstance(axis.formatter, NumeralTickFormatter):
            axis.formatter = NumeralTickFormatter(format=fmt)

    return hook


def price_chart(
    closed: Buffer, forming: Pipe, overlays: Pipe | None = None, signals: Pipe | None = None
) -> hv.DynamicMap:
    """Candles of the closed bars (streamed) under the forming bar (replaced per tick),
    with indicator ``overlays`` and ``signals`` markers when given (replaced per closed bar)."""
    layers = hv.DynamicMap(candles, streams=[closed]) * hv.DynamicMap(candles, streams=[forming])
    if overlays is not None:
        layers = layers * hv.DynamicMap(lines, streams=[overlays])
    if signals is not None:
        layers = layers * hv.DynamicMap(markers, streams=[signals])
    return layers.opts(
        responsive=True,
        min_height=300,
        padding=PADDING,
        xaxis=None,
        ylabel="price",
        show_grid=True,
        active_tools=["pan", "wheel_zoom"],
        hooks=[_numeral_y_ticks("0,0.[0000]")],
    )


def volume_chart(closed: Buffer, forming: Pipe) -> hv.DynamicMap:
    """Volume bars, split like the candles; its x axis is the price chart's."""
    layers = hv.DynamicMap(volume, streams=[closed]) * hv.DynamicMap(volume, streams=[forming])
    return layers.opts(
        responsive=True,
        height=VOLUME_HEIGHT,
        padding=PADDING,
        xlabel="",
        ylabel="volume",
        yticks=3,
        show_grid=True,
        hooks=[_numeral_y_ticks("0.[0]a")],
    )


LINE_COLORS = ("#f5a623", "#4a90e2", "#9b59b6", "#7f8c8d", "#7f8c8d", "#e67e22", "#16a085")
MARKERS = {1: ("triangle", UP), -1: ("inverted_triangle", DOWN), 0: ("x", "#555555")}


def lines(data: pd.DataFrame) -> hv.Overlay:
    """One curve per column of ``data`` besides ``timestamp`` (indicator overlays)."""
    names = [c for c in data.columns if c != "timestamp"]
    curves = [
        hv.Curve(data, "timestamp", (name, "price"), label=name).opts(
            color=LINE_COLORS[i % len(LINE_COLORS)], line_width=1.5
        )
        for i, name in enumerate(names)
    ]
    return hv.Overlay(curves)


def markers(data: pd.DataFrame) -> hv.Overlay:
    """Signal markers: ▲ long under the bar, ▼ short above it, × flat at the close;
    hovering one shows its reasons."""
    layers = []
    for direction, (marker, color) in MARKERS.items():
        rows = data[data["direction"] == direction]
        layers.append(
            hv.Scatter(rows, "timestamp", ["price", "side", "reasons"]).opts(
                marker=marker,
                color=color,
                size=11,
                tools=["hover"],
                hover_tooltips=[
                    ("time (UTC)", "@timestamp{%F %H:%M}"),
                    ("signal", "@side"),
                    ("reasons", "@reasons"),
                ],
                hover_formatters={"@timestamp": "datetime"},
            )
        )
    return hv.Overlay(layers)
