"""Reading market-data files (Parquet, CSV) and working out what they hold.

Files laid out like the recorded data the project ships with
(``<exchange>-<market>/<timeframe>[-mark]/<BASE>_<QUOTE>[_<SETTLE>].parquet`` and
``<exchange>-<market>/trades/<...>.parquet``) describe themselves; anything else takes
the exchange, symbol and timeframe from the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from workbench.data.timeframes import timeframe_ms
from workbench.errors import DataFormatError

_FOLDER = re.compile(r"^(?P<exchange>[a-z0-9]+)(?:-(?P<market>[a-z]+))?$")
_TIMEFRAME = re.compile(r"^(?P<tf>\d+[smhdwMy])(?:-(?P<price>mark|index))?$")


@dataclass(frozen=True)
class FileSpec:
    """What one file holds and where it goes in the store."""

    path: Path
    kind: str  # "bars", "trades" or "funding"
    exchange: str | None = None
    symbol: str | None = None
    timeframe: str | None = None
    price: str = "trade"

    def missing(self) -> list[str]:
        needed = ["exchange", "symbol"] + (["timeframe"] if self.kind == "bars" else [])
        return [name for name in needed if not getattr(self, name)]


def describe(path: str | Path, **given: str | None) -> FileSpec:
    """The file's spec: values given by the caller win over what the path says."""
    path = Path(path)
    inferred = _from_layout(path)
    chosen = {k: v for k, v in given.items() if v}
    spec = replace(inferred, **chosen)
    if spec.kind == "bars" and spec.timeframe:
        timeframe_ms(spec.timeframe)  # validates the spelling
    missing = spec.missing()
    if missing:
        flags = " ".join(f"--{name} ..." for name in missing)
        raise DataFormatError(
            f"Cannot tell the {', '.join(missing)} of {path} from its path; pass {flags}."
        )
    return spec


def read_table(path: str | Path) -> pd.DataFrame:
    """A Parquet or CSV file as a raw DataFrame (conversion to the convention comes later)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"No such file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt") or path.name.endswith(".csv.gz"):
            return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"Cannot read {path}: {exc}") from None
    raise DataFormatError(f"{path}: unsupported file type {suffix!r}; use Parquet or CSV.")


def _from_layout(path: Path) -> FileSpec:
    parts = path.resolve().parts
    parent, grandparent = (parts[-2], parts[-3]) if len(parts) >= 3 else ("", "")
    folder = _FOLDER.match(grandparent)
    exchange = folder.group("exchange") if folder else None
    symbol = _symbol(path.stem)
    if parent in ("trades", "funding"):
        return FileSpec(path, parent, exchange, symbol)
    frame = _TIMEFRAME.match(parent)
    if frame:
        return FileSpec(path, "bars", exchange, symbol, frame.group("tf"), frame.group("price") or "trade")
    return FileSpec(path, "bars")


def _symbol(stem: str) -> str | None:
    """``ETH_BTC`` -> ``ETH/BTC``; ``XRP_USDT_USDT`` -> ``XRP/USDT:USDT`` (ccxt spelling)."""
    pieces = stem.split("_")
    if len(pieces) == 2:
        return f"{pieces[0]}/{pieces[1]}"
    if len(pieces) == 3:
        return f"{pieces[0]}/{pieces[1]}:{pieces[2]}"
    return None
