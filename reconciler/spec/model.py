"""Job format v1: immutable, validated models of one job document.

Everything here is pure. Checks that need configuration (queues, task allowlist) or the
clock (a cron that never fires again) live in `reconciler.spec.checks`.

String fields are STRICT: YAML 1.1 reads unquoted `no`, `on`, `1:30`, `0755` as bool or
int, and a silently coerced string is worse than an error. The loader turns the strict
type error of such a value into YAML_COERCION, which says to quote it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from reconciler.spec.cron import CronSyntaxError, compile_cron
from reconciler.spec.floats import holds_float
from reconciler.spec.plainjson import is_plain_json
from reconciler.spec.zonenames import is_host_dependent

SCHEMA_VERSION = 1
NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$"
TASK_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
# Celery publish options that would let a job chain arbitrary signatures. Like any unknown
# key they are refused (extra="forbid"); the loader reports them as FORBIDDEN_OPTION, so
# that the message says why rather than "typo?".
FORBIDDEN_OPTIONS = frozenset(
    {"link", "link_error", "chain", "chord", "options", "headers", "routing_key", "exchange"}
)

Seconds = Annotated[StrictInt, Field(ge=0, le=31_536_000)]
# The texts of a time the loader takes, for the JSON Schema (an editor reads YAML 1.2, so
# an unquoted time is text to it): pydantic's (`T`, `t`, `_` or a space; minutes or
# seconds, a fraction after `.` or `,`; `Z` or an offset with or without its colon) and
# YAML 1.1's timestamps, which the loader reads unquoted (one-digit month, day and hour,
# spaces before the offset). Not "format": "date-time": RFC 3339 refuses a naive time,
# the README's own `at: 2030-12-31T23:00:00`. Ranges (month 13, 30 February) are left to
# the loader.
TIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(([Tt_]|[ \t]+)[0-9]{1,2}:[0-9]{2}(:[0-9]{2}([.,][0-9]*)?)?"
    r"([ \t]*([Zz]|[-+][0-9]{1,2}(:?[0-9]{2})?))?)?$"
    r"|^[-+]?[0-9]+(\.[0-9]*)?$"
)
# YAML gives a datetime for an unquoted timestamp and a string for a quoted one: take both.
# pydantic's lax datetime also reads a number (or a text of digits) as Unix seconds, so
# the schema says so too: an editor must not flag what the loader runs.
MOMENT_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string", "pattern": TIME_PATTERN}, {"type": "number"}],
    "description": "A date and time (RFC 3339 or a YAML timestamp); without an offset, in "
    "the job's timezone. A number is Unix seconds.",
}
Moment = Annotated[datetime, Field(strict=False), WithJsonSchema(MOMENT_SCHEMA)]
# The placeholders an idempotency key may hold, as the schema's pattern: what
# `JobSpec._known_placeholders` refuses is a `{...}` naming another one (a `{` never closed
# is text).
IDEMPOTENCY_PATTERN = r"^([^{]|\{(job|scheduled_time|date)\})*(\{[^}]*)?$"


def needs_one_field(value: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """A model's `json_schema_extra` saying "one field at least is there and matches
    `value`": a model validator's rule, as far as an editor can check it too."""

    def add(schema: dict[str, Any]) -> None:
        fields = schema["properties"]
        schema["anyOf"] = [{"required": [name], "properties": {name: value}} for name in fields]

    return add


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class CronFieldMap(_Frozen):
    """The seed's cron field map, e.g. `{second: "*/30"}`; omitted fields are `*` or 0."""

    # compile_cron refuses a map without a field (null is no field).
    model_config = ConfigDict(json_schema_extra=needs_one_field({"not": {"type": "null"}}))

    year: StrictStr | StrictInt | None = None
    month: StrictStr | StrictInt | None = None
    day: StrictStr | StrictInt | None = None
    week: StrictStr | StrictInt | None = None
    day_of_week: StrictStr | StrictInt | None = None
    hour: StrictStr | StrictInt | None = None
    minute: StrictStr | StrictInt | None = None
    second: StrictStr | StrictInt | None = None

    def as_mapping(self) -> dict[str, str | int]:
        # The fields as they are (what model_dump gives for these plain values, without
        # the serializer's cost: the cron validator and the checks ask this of each job).
        return {key: value for key, value in self.__dict__.items() if value is not None}


class CronSchedule(_Frozen):
    """`cron: "*/5 * * * *"` (5 fields), `"*/30 * * * * *"` (6, seconds first), or a map."""

    cron: StrictStr | CronFieldMap

    @field_validator("cron")
    @classmethod
    def _parse(cls, value: str | CronFieldMap) -> str | CronFieldMap:
        try:
            compile_cron(value if isinstance(value, str) else value.as_mapping())
        except CronSyntaxError as error:
            why = {"why": str(error)}
            raise PydanticCustomError("cron_syntax", "invalid cron: {why}", why) from None
        return value

    @property
    def kind(self) -> Literal["cron"]:
        return "cron"


class DstPolicySpec(_Frozen):
    """`dst: {gap: shift|next|skip, repeat: first|last|both}`: where a cron's wall times
    land when the clocks jump. Omitted: Vixie cron's rule, {gap: next, repeat: first} for
    fixed-time crons, {gap: skip, repeat: both} (real time) when the minute or hour field
    starts with `*`."""

    gap: Literal["shift", "next", "skip"] | None = Field(
        default=None,
        description="A wall time the spring jump skips: run shifted by the jump, once at "
        "the jump, or not at all",
    )
    repeat: Literal["first", "last", "both"] | None = Field(
        default=None,
        description="A wall time the autumn fall-back repeats: run at its first, its last, "
        "or both occurrences",
    )


class Interval(_Frozen):
    # `_positive`, as far as the schema can say it: one unit at least 1.
    model_config = ConfigDict(json_schema_extra=needs_one_field({"minimum": 1}))

    weeks: Seconds = 0
    days: Seconds = 0
    hours: Seconds = 0
    minutes: Seconds = 0
    seconds: Seconds = 0

    @model_validator(mode="after")
    def _positive(self) -> Interval:
        if self.total_seconds() <= 0:
            raise PydanticCustomError("invalid_value", "an interval must be longer than 0 s")
        return self

    def total_seconds(self) -> int:
        return (
            self.weeks * 604_800
            + self.days * 86_400
            + self.hours * 3_600
            + self.minutes * 60
            + self.seconds
        )


class IntervalSchedule(_Frozen):
    """`interval: {minutes: 5}`. Fires are anchored at `start` (or a fixed epoch), so
    re-applying a job never shifts its phase."""

    interval: Interval

    @property
    def kind(self) -> Literal["interval"]:
        return "interval"


class DateSchedule(_Frozen):
    """`at: 2026-12-01T09:00:00`: fires once. A naive time is read in the job's timezone."""

    at: Moment

    @property
    def kind(self) -> Literal["date"]:
        return "date"


def _schedule_kind(value: Any) -> str | None:
    """Pick the schedule model by its one key, so errors point inside that model only."""
    # Called twice per job (validation, dump): written out, without a comprehension.
    if isinstance(value, dict):
        cron, interval, at = "cron" in value, "interval" in value, "at" in value
        if cron + interval + at != 1:
            return None
        return "cron" if cron else "interval" if interval else "at"
    if isinstance(value, CronSchedule):
        return "cron"
    if isinstance(value, IntervalSchedule):
        return "interval"
    if isinstance(value, DateSchedule):
        return "at"
    return None


Schedule = Annotated[
    Annotated[CronSchedule, Tag("cron")]
    | Annotated[IntervalSchedule, Tag("interval")]
    | Annotated[DateSchedule, Tag("at")],
    Discriminator(
        _schedule_kind,
        custom_error_type="invalid_schedule",
        custom_error_message="a schedule needs exactly one of: cron, interval, at",
    ),
]


class JobSpec(_Frozen):
    """One job, as written in a `jobs.d/**/*.yaml` document."""

    # `_consistent`'s first rule, for editors: a `dst` policy needs a cron schedule.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"dst": {"type": "object"}}, "required": ["dst"]},
            "then": {"properties": {"schedule": {"required": ["cron"]}}},
        }
    )

    name: Annotated[StrictStr, Field(pattern=NAME_PATTERN, description="Stable identity")]
    previous_names: list[Annotated[StrictStr, Field(pattern=NAME_PATTERN)]] = Field(
        default_factory=list,
        description="Names this job had before: renaming keeps its history and next fire",
    )
    task: Annotated[StrictStr, Field(pattern=TASK_PATTERN, description="Celery task name")]
    schedule: Schedule = Field(description="cron, interval or a one-off date")
    args: list[JsonValue] = Field(default_factory=list)
    kwargs: dict[str, JsonValue] = Field(default_factory=dict)
    queue: StrictStr = "default"
    timezone: StrictStr = Field(default="UTC", description="IANA name; never the host's")
    dst: DstPolicySpec | None = Field(
        default=None, description="Cron only: DST policy (default: Vixie cron's rule)"
    )
    paused: StrictBool = False
    misfire_grace_seconds: Seconds = Field(
        default=60, description="How late a fire may still run; later slots are recorded missed"
    )
    coalesce: StrictBool = Field(
        default=True, description="Several missed slots run once (true) or each (false)"
    )
    max_concurrent_runs: Annotated[StrictInt, Field(ge=1, le=1000)] = 1
    jitter_seconds: Seconds = 0
    start: Moment | None = None
    end: Moment | None = None
    retries: Annotated[StrictInt, Field(ge=0, le=100)] = 0
    retry_delay_seconds: Seconds = 10
    time_limit_seconds: Annotated[StrictInt, Field(ge=1, le=86_400)] | None = None
    expires_seconds: Annotated[StrictInt, Field(ge=1, le=31_536_000)] | None = None
    idempotency_key: (
        Annotated[StrictStr, WithJsonSchema({"type": "string", "pattern": IDEMPOTENCY_PATTERN})]
        | None
    ) = Field(
        default=None,
        description="Template over {job}, {scheduled_time}, {date}; default: one key per fire",
    )
    description: StrictStr | None = None
    owner: StrictStr | None = None
    labels: dict[StrictStr, StrictStr] = Field(default_factory=dict)

    # Wrapped: a plain value (nearly all of them) is taken as it is after one walk, in
    # place of pydantic's call per value and a second walk (spec.plainjson).
    @field_validator("args", mode="wrap")
    @classmethod
    def _finite_args(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if type(value) is list and is_plain_json(value):
            return value
        return _finite(handler(value))

    @field_validator("kwargs", mode="wrap")
    @classmethod
    def _finite_kwargs(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if type(value) is dict and is_plain_json(value):
            return value
        return _finite(handler(value))

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if is_host_dependent(value):
            raise PydanticCustomError(
                "host_timezone",
                "time zone {zone} depends on the host's configuration; name an IANA zone "
                "such as Europe/Berlin",
                {"zone": value},
            )
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "unknown_timezone", "unknown time zone {zone}", {"zone": value}
            ) from None
        return value

    @field_validator("idempotency_key")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        if value is None:
            return value
        unknown = set(re.findall(r"{([^}]*)}", value)) - {"job", "scheduled_time", "date"}
        if unknown:
            raise PydanticCustomError(
                "invalid_value",
                "unknown placeholder {name}; the known ones are job, scheduled_time and date",
                {"name": sorted(unknown)[0]},
            )
        return value

    # One validator for both rules, not one each: each is a Python call per job.
    @model_validator(mode="after")
    def _consistent(self) -> JobSpec:
        if self.dst is not None and not isinstance(self.schedule, CronSchedule):
            raise PydanticCustomError(
                "invalid_value", "dst applies to cron schedules only (intervals follow real time)"
            )
        if self.start and self.end and self.zoned(self.start) >= self.zoned(self.end):
            raise PydanticCustomError("start_after_end", "start must be before end")
        return self

    def zoned(self, moment: datetime) -> datetime:
        """A naive datetime of this spec, read in the job's own time zone."""
        if moment.tzinfo is None:
            return moment.replace(tzinfo=ZoneInfo(self.timezone))
        return moment


def _finite(value: Any) -> Any:
    # YAML's .nan and .inf are floats but not JSON: the hash, the database's JSON
    # columns and Celery's JSON serializer would each spell them differently.
    if holds_float(value, nonfinite_only=True):
        raise PydanticCustomError(
            "invalid_value", "numbers must be finite: .nan and .inf are not JSON"
        )
    return value
