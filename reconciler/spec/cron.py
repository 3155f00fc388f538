"""Cron expressions and the seed's cron field maps, turned into APScheduler field values.

Two traps are handled here so that no other module has to know them:
- 6-field expressions put SECONDS FIRST (Quartz, Spring): `*/30 * * * * *`.
- Standard cron numbers weekdays 0-7 from Sunday; APScheduler 3 numbers them 0-6 from
  MONDAY (its issue #286). Numeric weekday fields are expanded here into explicit names,
  so `1-5` means Monday to Friday, as every crontab user expects.
- In crontab, a day of month AND a day of week both restricted means EITHER matches
  (`0 0 1 * 1`: the 1st, and every Monday); APScheduler requires BOTH. A cron string
  restricting both is refused rather than silently read the other way; the field map,
  which is APScheduler's own form, keeps APScheduler's meaning (both must match).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

FIELD_NAMES = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
_FIVE = ("minute", "hour", "day", "month", "day_of_week")
_SIX = ("second", "minute", "hour", "day", "month", "day_of_week")
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronSyntaxError(ValueError):
    """The expression cannot be a cron schedule. The message says why."""


def cron_fields(expression: str | Mapping[str, str | int]) -> dict[str, str]:
    """Return APScheduler `CronTrigger` keyword arguments for a cron string or field map.

    Raises CronSyntaxError. The result is not yet checked field by field: building the
    trigger does that (see `reconciler.core.triggers`).
    """
    if isinstance(expression, str):
        return dict(_string_fields(expression))
    else:
        unknown = sorted(set(expression) - set(FIELD_NAMES))
        if unknown:
            raise CronSyntaxError(
                f"unknown cron field {unknown[0]!r}; known: {', '.join(FIELD_NAMES)}"
            )
        if not expression:
            raise CronSyntaxError("a cron field map needs at least one field")
        fields = {key: str(value).strip() for key, value in expression.items()}
    if "day_of_week" in fields:
        fields["day_of_week"] = _weekday_names(fields["day_of_week"])
    return fields


@functools.lru_cache(maxsize=4096)
def _string_fields(expression: str) -> dict[str, str]:
    """Memoised: jobs share expressions, and every load, plan and fire-time computation
    asks again. Callers get a copy (see cron_fields)."""
    fields = _split_expression(expression)
    if "day_of_week" in fields:
        fields["day_of_week"] = _weekday_names(fields["day_of_week"])
    return fields


def _split_expression(expression: str) -> dict[str, str]:
    text = _MACROS.get(expression.strip().lower(), expression)
    parts = text.split()
    if len(parts) == 5:
        fields = dict(zip(_FIVE, parts, strict=True))
    elif len(parts) == 6:
        fields = dict(zip(_SIX, parts, strict=True))
    else:
        raise CronSyntaxError(_FIELD_COUNT.format(count=len(parts)))
    if fields["day"] != "*" and fields["day_of_week"] != "*":
        raise CronSyntaxError(
            "day of month and day of week are both restricted: crontab runs on either, "
            "this scheduler only on both; restrict one, or write a cron field map "
            "({day: ..., day_of_week: ...}) to mean both"
        )
    return fields


_FIELD_COUNT = (
    "a cron expression has 5 fields (minute hour day month weekday) or 6 with seconds "
    "first; this one has {count}"
)


def _weekday_names(field: str) -> str:
    """Translate crontab weekday numbers (0 or 7 = Sunday) into names APScheduler reads."""
    if not any(ch.isdigit() for ch in field):
        return field
    days: set[int] = set()
    for item in field.split(","):
        days |= _expand_weekday_item(item.strip())
    ordered = sorted(days, key=lambda d: (d + 6) % 7)  # Monday first, for readable output
    return ",".join(_DAY_NAMES[d] for d in ordered)


def _expand_weekday_item(item: str) -> set[int]:
    base, _, step_text = item.partition("/")
    step = _parse_int(step_text, "weekday step") if step_text else 1
    if step < 1:
        raise CronSyntaxError("a weekday step must be at least 1")
    if base == "*":
        low, high = 0, 6
    elif "-" in base:
        low_text, _, high_text = base.partition("-")
        low, high = _weekday_number(low_text), _weekday_number(high_text)
        if high == 0 and low > 0:
            high = 7  # `5-7` or `fri-sun`: Sunday written as 7 ends the range
        if low > high:
            raise CronSyntaxError(f"weekday range {base!r} runs backwards")
    else:
        low = high = _weekday_number(base)
        if step_text:
            high = 6
    return {day % 7 for day in range(low, high + 1, step)}


def _weekday_number(text: str) -> int:
    lowered = text.strip().lower()
    if lowered[:3] in _DAY_NAMES and not lowered.isdigit():
        return _DAY_NAMES.index(lowered[:3])
    number = _parse_int(lowered, "weekday")
    if not 0 <= number <= 7:
        raise CronSyntaxError(f"weekday {number} is out of range 0-7")
    return number


def _parse_int(text: str, what: str) -> int:
    if not text.isdigit():
        raise CronSyntaxError(f"{what} {text!r} is not a number")
    return int(text)
