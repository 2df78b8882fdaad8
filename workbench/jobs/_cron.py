"""Crontab expressions as APScheduler 3 triggers, with crontab's weekday numbers.

APScheduler 3 numbers weekdays from Monday (0 = mon), while crontab numbers them from
Sunday (0 and 7 = sun), so ``1-5`` would silently mean Tuesday to Saturday. Numeric
weekday fields are rewritten as names, which both read the same way.
"""

from __future__ import annotations

from datetime import UTC

from apscheduler.triggers.cron import CronTrigger

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def cron_trigger(expression: str) -> CronTrigger:
    """The trigger of a five-field crontab expression, in UTC; ValueError when malformed."""
    fields = expression.split()
    if len(fields) == 5:
        fields[4] = _weekday_names(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=UTC)


def _weekday_names(field: str) -> str:
    if field == "*" or any(ch.isalpha() for ch in field):
        return field  # names mean the same to crontab and APScheduler
    days: list[int] = []
    for item in field.split(","):
        span, _, step = item.partition("/")
        first, _, last = span.partition("-")
        if span == "*":
            first, last = "0", "6"
        days += range(int(first), int(last or (6 if step else first)) + 1, int(step or 1))
    if not days or not all(0 <= day <= 7 for day in days):
        raise ValueError(f"weekday field {field!r} must use 0-7 (0 and 7 are Sunday)")
    return ",".join(dict.fromkeys(_DAYS[day] for day in days))
