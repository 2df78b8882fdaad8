"""Store throughput: upsert 1,000,000 bars into SQLite, read them back, against Parquet.

Targets (issue 2): upsert >= 200,000 bars/s; read within 3x of reading the same bars
from a Parquet file into the same DataFrame convention. Prints a table, then one JSON
line of the figures so runs can be compared over time.

    .venv/bin/python benchmarks/store.py [--bars 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.data.model import to_bars
from workbench.data.store import MarketStore


def synthetic_bars(n: int, seed: int = 42) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.standard_t(4, n) * 5e-4))
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0, 3e-4, n)) * close
    index = pd.date_range("2022-01-01", periods=n, freq="1min", tz="UTC", name="timestamp").as_unit(
        "ns"
    )
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.fmax(open_, close) + wick,
            "low": np.fmin(open_, close) - wick,
            "close": close,
            "volume": rng.gamma(2, 5, n),
        },
        index=index,
    )


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def read_parquet(path: Path) -> pd.DataFrame:
    """The reference: the same bars from Parquet, brought into the same convention."""
    return to_bars(pd.read_parquet(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    bars = synthetic_bars(args.bars)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = MarketStore(f"sqlite:///{tmp / 'bench.db'}")
        start = time.perf_counter()
        store.upsert_bars("sim", "BTC/USDT", "1m", bars)
        upsert_cold = time.perf_counter() - start
        upsert_again = best_of(
            args.repeat, lambda: store.upsert_bars("sim", "BTC/USDT", "1m", bars)
        )
        read = best_of(args.repeat, lambda: store.bars("sim", "BTC/USDT", "1m"))
        back = store.bars("sim", "BTC/USDT", "1m")
        assert back.equals(bars), "the store did not return the bars it was given"
        store.close()

        parquet = tmp / "bench.parquet"
        bars.reset_index().assign(
            timestamp=lambda f: f.timestamp.astype("int64") // 1_000_000
        ).to_parquet(parquet)
        reference = best_of(args.repeat, lambda: read_parquet(parquet))
        raw_parquet = best_of(args.repeat, lambda: pd.read_parquet(parquet))
        assert read_parquet(parquet).equals(bars)
        db_bytes = (tmp / "bench.db").stat().st_size

    figures = {
        "benchmark": "store",
        "bars": args.bars,
        "upsert_s": round(upsert_cold, 4),
        "upsert_bars_per_s": round(args.bars / upsert_cold),
        "re_upsert_s": round(upsert_again, 4),
        "re_upsert_bars_per_s": round(args.bars / upsert_again),
        "read_s": round(read, 4),
        "parquet_read_s": round(reference, 4),
        "read_ratio_vs_parquet": round(read / reference, 2),
        "parquet_raw_read_s": round(raw_parquet, 4),
        "read_ratio_vs_raw_parquet": round(read / raw_parquet, 2),
        "sqlite_mb": round(db_bytes / 2**20, 1),
        "targets_met": bool(args.bars / upsert_cold >= 200_000 and read / reference <= 3),
    }
    print(
        f"{'upsert (new)':24}{upsert_cold:9.3f} s  {figures['upsert_bars_per_s']:>12,} bars/s   target >= 200,000"
    )
    print(
        f"{'upsert (same again)':24}{upsert_again:9.3f} s  {figures['re_upsert_bars_per_s']:>12,} bars/s"
    )
    print(f"{'read from SQLite':24}{read:9.3f} s")
    print(
        f"{'read from Parquet':24}{reference:9.3f} s   ratio {figures['read_ratio_vs_parquet']:.2f}x   target <= 3x"
    )
    print(
        f"{'  (pd.read_parquet only)':24}{raw_parquet:9.3f} s   ratio {figures['read_ratio_vs_raw_parquet']:.2f}x"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
