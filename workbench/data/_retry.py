"""Retrying calls to outside systems: exponential backoff with jitter and a cap on attempts.

The policy says how long to wait; the caller says which failures are worth another try
and supplies the clock (``sleep``), so tests run the whole schedule without waiting.
Every retried failure is logged as a warning; the last one propagates unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
Failures = type[BaseException] | tuple[type[BaseException], ...]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """``attempts`` tries in all; the pause after try *n* is ``first * factor**(n-1)``.

    Each pause is capped at ``ceiling`` seconds, then stretched by a random fraction up to
    ``jitter`` so that many clients failing together do not retry in lockstep.
    """

    attempts: int = 5
    first: float = 0.5
    factor: float = 2.0
    ceiling: float = 30.0
    jitter: float = 0.25

    def delays(self) -> list[float]:
        """The pauses between tries (one fewer than ``attempts``)."""
        return [
            min(self.ceiling, self.first * self.factor**n) * (1 + self.jitter * random.random())
            for n in range(self.attempts - 1)
        ]


def describe(exc: BaseException) -> str:
    """An exception as its class and message, the way retry logs name a failure."""
    return f"{type(exc).__name__}: {exc}"


def retry(
    call: Callable[[], T],
    *,
    backoff: Backoff,
    retry_on: Failures,
    what: str,
    explain: Callable[[BaseException], str] = describe,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """``call()`` until it succeeds or ``backoff`` runs out of attempts.

    ``what`` names the call in the log; ``explain`` words a failure (callers blank out
    secrets there).
    """
    for attempt, delay in enumerate(backoff.delays(), start=1):
        try:
            return call()
        except retry_on as exc:
            _log_retry(what, explain(exc), attempt, backoff, delay)
            sleep(delay)
    return call()


async def retry_async(
    call: Callable[[], Awaitable[T]],
    *,
    backoff: Backoff,
    retry_on: Failures,
    what: str,
    explain: Callable[[BaseException], str] = describe,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """:func:`retry` for coroutines: waits on the running event loop instead of blocking it."""
    for attempt, delay in enumerate(backoff.delays(), start=1):
        try:
            return await call()
        except retry_on as exc:
            _log_retry(what, explain(exc), attempt, backoff, delay)
            await sleep(delay)
    return await call()


def _log_retry(what: str, failure: str, attempt: int, backoff: Backoff, delay: float) -> None:
    _log.warning(
        "%s: %s (try %d of %d); retrying in %.1f s", what, failure, attempt, backoff.attempts, delay
    )
