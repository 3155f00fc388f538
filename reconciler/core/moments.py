"""Time in every output: RFC 3339, UTC, with a `Z` (one spelling for the CLI, the API and
the logs), and the two ways people write a window on the command line. Pure.

Stored times: PostgreSQL returns aware datetimes; SQLite returns naive ones, which every
writer of this package stores in UTC, so naive means UTC. APScheduler's next_run_time is a
UTC epoch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, overload


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
@overload
def as_utc(moment: datetime | None) -> datetime | None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """The same instant in UTC; a naive datetime is read as UTC (see the module doc).
    The one "naive means UTC" rule of the package: every reader of a stored time uses it."""
    if moment is None or moment.tzinfo is UTC:  # asyncpg's: already UTC (and cheap)
        return moment
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def from_epoch(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def rfc3339(moment: datetime | None) -> str | None:
    """`2027-03-28T01:00:00Z`; fractions only when there are some (`...00.250000Z`)."""
    if moment is None:
        return None
    if moment.tzinfo is None:  # stored UTC (SQLite): the common case of a long listing
        return moment.isoformat() + "Z"
    return moment.astimezone(UTC).isoformat()[:-6] + "Z"  # without its "+00:00"


def jsonable(value: Any) -> Any:
    """A structure with every datetime as rfc3339 and every enum as its value, for
    json/yaml output."""
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


_AGE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> timedelta:
    """`30s`, `15m`, `24h`, `7d`, `2w` as a duration. Raises ValueError otherwise."""
    match = _AGE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 24h, 7d or 2w")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_moment(text: str) -> datetime:
    """An RFC 3339 / ISO 8601 time; without an offset it is UTC. Raises ValueError."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time like 2027-03-28T02:30:00Z") from None
    return as_utc(parsed)


def human_age(seconds: float) -> str:
    """`45s`, `12m`, `3h`, `2d` (kubectl's AGE column): the largest whole unit."""
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
