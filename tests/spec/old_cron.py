"""The job models and validators as they were before validation was made quicker
(issue 15, helper validatefast): the reference tests/spec/test_validation_reference.py
compares reconciler.spec.cron with. Kept as it was; not used by the package.

Cron expressions and the seed's cron field maps, compiled into a `CronPattern`.

A pattern is the set of WALL times a schedule names, on a naive clock: what matches is
decided here, where each wall time lands in a time zone is `reconciler.core.schedule`.

Two syntaxes, two meanings, never mixed:
- Cron strings (Vixie/ISC cron, as crontab, Kubernetes and cronsim read them): 5 fields
  `minute hour day month weekday`, or 6 with SECONDS FIRST (Quartz, Spring); weekdays
  0-7 from Sunday (0 and 7 are Sunday), names JAN-DEC and SUN-SAT in either case; `*`,
  lists, ranges, steps (`*/15`, `1-30/5`, `5/15` = `5-59/15`); macros `@yearly` ...
  `@hourly`. When day-of-month AND day-of-week are both restricted (neither starts with
  `*` or `?`), a day matching EITHER fires. Quartz extensions with Quartz's meaning:
  `L` (last day), `L-3`, `15W` (nearest weekday), `LW`, `5L` / `FRIL` (last Friday),
  `FRI#3` (third Friday), `?` (= `*`, in the day fields only).
- Field maps (`{day_of_week: "mon-fri", hour: 9}`) are APScheduler 3's CronTrigger
  keyword arguments and keep its meaning EXACTLY, since users paste their old
  `trigger_config`: `day_of_week` 0 = MONDAY, `last`, `last fri`, `2nd mon`, `week`,
  `year`, every field must match (AND), omitted fields below the smallest given one
  are their minimum. APScheduler itself parses the map (same acceptance, same errors);
  its parsed expressions are then translated into sets here.

Anything else is refused with CronSyntaxError (CRON_SYNTAX) and a message that says why:
never misread.
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from reconciler.errors import SpecError

FIELD_NAMES = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_CRON_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # cron numbering: 0 = Sunday


class CronSyntaxError(SpecError, ValueError):
    """The expression cannot be a cron schedule. The message says why."""


@dataclass(frozen=True, slots=True)
class DayRule:
    """Which dates match. Weekdays are Python's (Monday = 0) whatever the syntax.

    `dom_*` restrict the day of month, `dow_*` the weekday; `either` is Vixie's OR (both
    fields restricted in a cron string); field maps AND every field, ISO weeks included."""

    dom: frozenset[int] = frozenset(range(1, 32))
    dom_from_last: frozenset[int] = frozenset()  # 0 = L (last day), 3 = L-3
    dom_nearest_weekday: frozenset[int] = frozenset()  # 15W
    dom_last_weekday: bool = False  # LW
    # (weekday, n): the n-th such weekday of the month, n = 1..5, or -1 for the last one.
    # In the day field for field maps (`2nd mon`, `last fri`), in the weekday field for
    # cron strings (`MON#2`, `FRIL`).
    dom_positions: frozenset[tuple[int, int]] = frozenset()
    dow: frozenset[int] = frozenset(range(7))
    dow_positions: frozenset[tuple[int, int]] = frozenset()
    weeks: frozenset[int] | None = None
    either: bool = False

    def matches(self, day: date) -> bool:
        if self.weeks is not None and day.isocalendar()[1] not in self.weeks:
            return False
        if self.either:
            return self._dom_matches(day) or self._dow_matches(day)
        return self._dom_matches(day) and self._dow_matches(day)

    def _dom_matches(self, day: date) -> bool:
        if day.day in self.dom:
            return True
        if self.dom_positions and _at_position(day, self.dom_positions):
            return True
        if not (self.dom_from_last or self.dom_nearest_weekday or self.dom_last_weekday):
            return False
        last = calendar.monthrange(day.year, day.month)[1]
        if last - day.day in self.dom_from_last:
            return True
        if self.dom_last_weekday and day.day == _nearest_weekday(day.year, day.month, last):
            return True
        return any(
            day.day == _nearest_weekday(day.year, day.month, min(target, last))
            for target in self.dom_nearest_weekday
            if target <= last
        )

    def _dow_matches(self, day: date) -> bool:
        if day.weekday() in self.dow:
            return True
        return bool(self.dow_positions) and _at_position(day, self.dow_positions)


def _at_position(day: date, positions: frozenset[tuple[int, int]]) -> bool:
    weekday = day.weekday()
    if (weekday, (day.day + 6) // 7) in positions:
        return True
    return (weekday, -1) in positions and day.day + 7 > calendar.monthrange(day.year, day.month)[1]


def _nearest_weekday(year: int, month: int, target: int) -> int:
    """Quartz's `W`: the weekday nearest to `target`, never leaving the month."""
    weekday = date(year, month, target).weekday()
    last = calendar.monthrange(year, month)[1]
    if weekday == 5:  # Saturday: Friday before, or Monday after on the 1st
        return target - 1 if target > 1 else target + 2
    if weekday == 6:  # Sunday: Monday after, or Friday before on the last day
        return target + 1 if target < last else target - 2
    return target


@dataclass(frozen=True, slots=True)
class CronPattern:
    """Wall times a schedule names. `real_time` is Vixie cron's "wildcard job": the
    minute or hour field starts with `*`, so it follows real time across DST (the
    default DST policy depends on it, see core.schedule)."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    days: DayRule
    real_time: bool
    years: frozenset[int] | None = None
    # Matching days per (year, month): patterns are shared and immutable, so is this.
    _month_days: dict[tuple[int, int], tuple[int, ...]] = field(
        default_factory=dict, init=False, compare=False, hash=False, repr=False
    )

    def days_of(self, year: int, month: int) -> tuple[int, ...]:
        """The days of `month` that match (empty when the month or year does not)."""
        key = (year, month)
        known = self._month_days.get(key)
        if known is None:
            if len(self._month_days) > 4096:
                self._month_days.clear()
            known = self._month_days[key] = self._compute_days(year, month)
        return known

    def _compute_days(self, year: int, month: int) -> tuple[int, ...]:
        if month not in self.months or (self.years is not None and year not in self.years):
            return ()
        last = calendar.monthrange(year, month)[1]
        return tuple(d for d in range(1, last + 1) if self.days.matches(date(year, month, d)))


def compile_cron(expression: str | Mapping[str, str | int]) -> CronPattern:
    """The pattern of a cron string or field map. Raises CronSyntaxError."""
    if isinstance(expression, str):
        return _compile_text(expression)
    return _compile_map(tuple(sorted((k, str(v).strip()) for k, v in expression.items())))


def is_real_time(expression: str | Mapping[str, str | int]) -> bool:
    return compile_cron(expression).real_time


# ---- cron strings ------------------------------------------------------------------


# Process-wide memo (docs/architecture.md): pydantic validators and APScheduler's unpickling
# of a trigger call this, where no owner can pass a memory in; text -> frozen pattern.
@functools.lru_cache(maxsize=4096)
def _compile_text(expression: str) -> CronPattern:
    """Memoised: jobs share expressions, and validation, plan and fires all ask."""
    text = expression.strip()
    if text.startswith("@"):
        macro = MACROS.get(text.lower())
        if macro is None:
            known = " ".join(MACROS)
            raise CronSyntaxError(f"unknown macro {text!r}; known: {known}")
        text = macro
    parts = text.split()
    if len(parts) == 5:
        parts.insert(0, "0")
    elif len(parts) != 6:
        raise CronSyntaxError(_FIELD_COUNT.format(count=len(parts)))
    second, minute, hour, dom, month, dow = (part.upper() for part in parts)
    for name, value in (("second", second), ("minute", minute), ("hour", hour)):
        if "?" in value or "L" in value or "W" in value or "#" in value:
            raise CronSyntaxError(f"{name} field {value!r}: L, W, # and ? are day fields only")
    days = _day_rule(dom, dow)
    return CronPattern(
        seconds=tuple(sorted(_numbers(second, 0, 59, "second"))),
        minutes=tuple(sorted(_numbers(minute, 0, 59, "minute"))),
        hours=tuple(sorted(_numbers(hour, 0, 23, "hour"))),
        months=frozenset(_numbers(month, 1, 12, "month", names=_MONTHS, first=1)),
        days=days,
        real_time=minute.startswith("*") or hour.startswith("*"),
    )


_FIELD_COUNT = (
    "a cron expression has 5 fields (minute hour day month weekday) or 6 with seconds "
    "first; this one has {count}"
)


def _day_rule(dom: str, dow: str) -> DayRule:
    dom_free = dom.startswith(("*", "?"))
    dow_free = dow.startswith(("*", "?"))
    plain_dom: set[int] = set()
    from_last: set[int] = set()
    nearest: set[int] = set()
    last_weekday = False
    for item in dom.split(","):
        if item == "?":
            plain_dom |= set(range(1, 32))
        elif item == "LW":
            last_weekday = True
        elif item == "L" or item.startswith("L-"):
            offset = _int(item[2:], "day-of-month offset", 0, 30) if item != "L" else 0
            from_last.add(offset)
        elif item.endswith("W"):
            nearest.add(_int(item[:-1], "day of month", 1, 31))
        else:
            plain_dom |= _numbers(item, 1, 31, "day of month")
    plain_dow: set[int] = set()
    positions: set[tuple[int, int]] = set()
    for item in dow.split(","):
        if item == "?":
            plain_dow |= set(range(7))
        elif "#" in item:
            day_text, _, nth_text = item.partition("#")
            positions.add((_cron_weekday(day_text), _int(nth_text, "weekday occurrence", 1, 5)))
        elif item.endswith("L"):
            if item == "L":
                raise CronSyntaxError(
                    "`L` alone in the weekday field is ambiguous (Quartz: Saturday); "
                    "write SAT, or FRIL / 5L for the last Friday of the month"
                )
            positions.add((_cron_weekday(item[:-1]), -1))
        else:
            plain_dow |= {(d + 6) % 7 for d in _numbers(item, 0, 7, "weekday", names=_CRON_DAYS)}
    return DayRule(
        dom=frozenset(plain_dom),
        dom_from_last=frozenset(from_last),
        dom_nearest_weekday=frozenset(nearest),
        dom_last_weekday=last_weekday,
        dow=frozenset(plain_dow),
        dow_positions=frozenset(positions),
        either=not dom_free and not dow_free,
    )


def _cron_weekday(text: str) -> int:
    """A single cron weekday (0-7 from Sunday, or a name) as Python's (Monday = 0)."""
    return (_value(text, 0, 7, "weekday", _CRON_DAYS, 0) + 6) % 7


def _numbers(
    text: str,
    low: int,
    high: int,
    what: str,
    *,
    names: tuple[str, ...] = (),
    first: int = 0,
) -> set[int]:
    """The values of a list of `*`, `a`, `a-b`, each with an optional `/step`."""
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = _int(step_text, f"{what} step", 1, high) if slash else 1
        if base in ("*", "?"):
            start, stop = low, high
        elif "-" in base:
            start_text, _, stop_text = base.partition("-")
            start = _value(start_text, low, high, what, names, first)
            stop = _value(stop_text, low, high, what, names, first)
            if names is _CRON_DAYS and stop == 0 and start > 0:
                stop = 7  # `FRI-SUN`, `5-0`: Sunday ends a range as 7
            if start > stop:
                raise CronSyntaxError(f"{what} range {base!r} runs backwards")
        else:
            start = _value(base, low, high, what, names, first)
            stop = high if slash else start  # `5/15` is Quartz's and cronie's 5-59/15
        values |= set(range(start, stop + 1, step))
    if names is _CRON_DAYS:
        values = {v % 7 for v in values}
    return values


def _value(text: str, low: int, high: int, what: str, names: tuple[str, ...], first: int) -> int:
    if text in names:
        return names.index(text) + first
    return _int(text, what, low, high)


def _int(text: str, what: str, low: int, high: int) -> int:
    if not text.isdigit() or not text.isascii():
        raise CronSyntaxError(f"{what} {text!r} is not a number")
    number = int(text)
    if not low <= number <= high:
        raise CronSyntaxError(f"{what} {number} is out of range {low}-{high}")
    return number


# ---- field maps (APScheduler 3 CronTrigger semantics) ----------------------------------


# Process-wide memo, as `_compile_text` (validators, unpickled triggers): items -> frozen pattern.
@functools.lru_cache(maxsize=4096)
def _compile_map(items: tuple[tuple[str, str], ...]) -> CronPattern:
    unknown = sorted({key for key, _ in items} - set(FIELD_NAMES))
    if unknown:
        raise CronSyntaxError(f"unknown cron field {unknown[0]!r}; known: {', '.join(FIELD_NAMES)}")
    if not items:
        raise CronSyntaxError("a cron field map needs at least one field")
    trigger = _apscheduler_trigger(items)
    fields = {f.name: f for f in trigger.fields}
    days = DayRule(
        **_map_days(fields["day"]),
        dow=_map_set(fields["day_of_week"], 0, 6),  # APScheduler's 0 = Monday = Python's
        weeks=None if _is_all(fields["week"]) else _map_set(fields["week"], 1, 53),
    )
    years = None if _is_all(fields["year"]) else _map_set(fields["year"], 1970, 9999)
    return CronPattern(
        seconds=tuple(sorted(_map_set(fields["second"], 0, 59))),
        minutes=tuple(sorted(_map_set(fields["minute"], 0, 59))),
        hours=tuple(sorted(_map_set(fields["hour"], 0, 23))),
        months=_map_set(fields["month"], 1, 12),
        days=days,
        real_time=str(fields["minute"]).startswith("*") or str(fields["hour"]).startswith("*"),
        years=years,
    )


def _apscheduler_trigger(items: tuple[tuple[str, str], ...]) -> Any:
    # Imported late: `reconcile schema` should not pay for importing APScheduler. Its
    # CronTrigger is used as a PARSER only (acceptance and errors exactly APScheduler's);
    # its date arithmetic, which skips days across DST, never runs.
    from apscheduler.triggers.cron import CronTrigger

    try:
        return CronTrigger(timezone="UTC", **dict(items))
    except (ValueError, TypeError) as error:
        raise CronSyntaxError(str(error)) from None


def _is_all(cron_field: Any) -> bool:
    return all(type(e).__name__ == "AllExpression" and not e.step for e in cron_field.expressions)


def _map_set(cron_field: Any, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for expression in cron_field.expressions:
        values |= _expression_values(expression, low, high)
    return frozenset(values)


def _expression_values(expression: Any, low: int, high: int) -> set[int]:
    """APScheduler's AllExpression / RangeExpression (and its month and weekday name
    subclasses) as a set: steps count from the range's first value."""
    step = expression.step or 1
    if type(expression).__name__ == "AllExpression":
        return set(range(low, high + 1, step))
    last = expression.last if expression.last is not None else high
    return set(range(expression.first, min(last, high) + 1, step))


def _map_days(cron_field: Any) -> dict[str, Any]:
    plain: set[int] = set()
    from_last: set[int] = set()
    positions: set[tuple[int, int]] = set()
    for expression in cron_field.expressions:
        kind = type(expression).__name__
        if kind == "LastDayOfMonthExpression":
            from_last.add(0)
        elif kind == "WeekdayPositionExpression":  # `2nd mon`, `last fri`
            n = -1 if expression.option_num == 5 else expression.option_num + 1
            positions.add((expression.weekday, n))
        else:
            plain |= _expression_values(expression, 1, 31)
    return {
        "dom": frozenset(plain),
        "dom_from_last": frozenset(from_last),
        "dom_positions": frozenset(positions),
    }
