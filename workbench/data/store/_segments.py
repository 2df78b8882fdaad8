"""Packing bars into segments and merging new bars into stored ones (pure numpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.data.store.schema import SEGMENT_BARS

N_VALUES = 5  # open, high, low, close, volume


@dataclass(frozen=True, slots=True)
class Block:
    """Bars as arrays: epoch-ms times (sorted, unique) and a (5, n) float64 value array."""

    ts: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)


def segment_span(step_ms: int) -> int:
    """Milliseconds one segment covers for bars of ``step_ms``."""
    return SEGMENT_BARS * step_ms


def encode(block: Block) -> bytes:
    """One blob: the int64 times, then each value column as float64 (column-major)."""
    return block.ts.astype("<i8", copy=False).tobytes() + np.ascontiguousarray(
        block.values, dtype="<f8"
    ).tobytes()


def decode(data: bytes, rows: int) -> Block:
    """Inverse of :func:`encode`, without copying the buffer."""
    ts = np.frombuffer(data, dtype="<i8", count=rows)
    values = np.frombuffer(data, dtype="<f8", offset=8 * rows).reshape(N_VALUES, rows)
    return Block(ts, values)


def concat(blocks: list[Block]) -> Block:
    """Blocks already in time order, as one block."""
    if not blocks:
        return Block(np.empty(0, "i8"), np.empty((N_VALUES, 0)))
    if len(blocks) == 1:
        return blocks[0]
    return Block(
        np.concatenate([b.ts for b in blocks]),
        np.concatenate([b.values for b in blocks], axis=1),
    )


def merge(old: Block, new: Block) -> Block:
    """Union of two blocks by time; where both hold a time, the new bar wins."""
    if len(old) == 0:
        return new
    ts = np.concatenate([old.ts, new.ts])
    values = np.concatenate([old.values, new.values], axis=1)
    order = np.argsort(ts, kind="stable")  # old before new at equal times
    ts, values = ts[order], values[:, order]
    keep = np.ones(len(ts), dtype=bool)
    keep[:-1] = ts[1:] != ts[:-1]  # keep the last of each run of equal times
    return Block(ts[keep], values[:, keep])


def split(block: Block, span: int) -> dict[int, Block]:
    """The block cut at segment boundaries, keyed by each segment's start time."""
    keys = block.ts // span
    cuts = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(keys)]])
    return {
        int(keys[s]) * span: Block(block.ts[s:e], block.values[:, s:e])
        for s, e in zip(starts.tolist(), ends.tolist())
    }
