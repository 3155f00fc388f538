"""The daemon's per-job series (fires, missed slots, duplicates, absent slot, interval,
next fire), exported by one collector over one small list per job.

Why not prometheus_client children: each child is an object with its own lock and value
(and a `_created` for a counter); a job has 17 of them, so 100,000 jobs cost 1.17 GB and
6.4 million objects, and creating them (the first gauge refresh of each leadership term)
took ~2.3 s of CPU per 10,000 jobs. Here a job costs one list of floats.

Same exposition as the prometheus_client families they replace (names, HELP, types,
label names, values, `_total` and `_created` samples; tests/observability/
test_job_series.py compares both over random operations). Only the order of the samples
inside a family may differ (grouped by job here, by creation there), which Prometheus
ignores.

The families keep the part of the prometheus_client API the daemon uses:
`FAMILY.labels(job, value).inc()` / `.set(v)` and `FAMILY.remove(job, value)`. The second
label, when there is one, is a closed vocabulary (reconciler.core.vocabulary): a value
outside it raises ValueError.

A scrape at 100,000 jobs (2.9 million samples) cost ~50 s of CPU through
prometheus_client's Sample objects and `generate_latest`. So `collect()` yields families
whose samples are built only when read (`generate_latest`, `get_sample_value`), and
`reconciler.exposition` asks them for their exposition text instead
(`JobFamilyMetric.exposition`): each job's lines of each family are rendered once, kept
compressed with those of neighbouring jobs (reconciler.kept_lines: ~0.14 KB a job
instead of ~2.3 KB), and rendered again only after a write to that job (a fire, a gauge
set, a create, a removal). tests/observability/test_exposition.py proves the text
byte-identical to prometheus_client's, in both formats.

Multiprocess mode (PROMETHEUS_MULTIPROC_DIR) does not apply: only the daemon moves these
series, and the daemon runs single-process (only workers write sample files).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from typing import NamedTuple

from prometheus_client import metrics as client_metrics
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from reconciler.kept_lines import PACK_SIZE, Body, Entry, KeptLines, Plan

JOB_LABEL = "job_name"
# The second label of a family: its name and closed vocabulary; None: job_name only.
LabelVocabulary = tuple[str, Sequence[str]] | None
# The exposition formats rendered here (reconciler.exposition picks one per request): the
# Prometheus text format (0.0.4; its 1.0.0 writes our legacy names the same) and
# OpenMetrics 1.0.0.
TEXT = "text"
# Jobs rendered by one scrape past which JobSeries.after_many_renders is called.
RELEASE_AFTER = 10_000
OPENMETRICS = "openmetrics"
FORMATS = (TEXT, OPENMETRICS)


class JobSeries(Collector):
    """Every per-job series of the daemon's families, and their collector.

    Storage: per job one list of 2 × width entries; entry i is the value of series i
    (None: the series does not exist), entry width + i the Unix time a counter series
    was created (None for a gauge). One lock for all: the dispatcher's threads increment
    while the main thread refreshes the gauges and the HTTP thread collects."""

    def __init__(self, *, pack_size: int = PACK_SIZE) -> None:
        """`pack_size`: jobs per compressed pack of kept lines (tests make it small)."""
        self._lock = threading.Lock()
        self._rows: dict[str, list[float | None]] = {}
        self._families: list[JobFamily] = []
        self._width = 0
        self._counts: list[bool] = []  # per series index: a counter's (it has `_created`)
        # Per format: the jobs' rendered lines (_JobLines.render) kept for the next
        # scrape, compressed (reconciler.kept_lines); a write marks the job's lines
        # outdated, a scrape renders the outdated ones. Only the format asked for last is
        # kept (Prometheus asks for OpenMetrics; a person's curl for text costs
        # Prometheus' next scrape a full render).
        self._kept: dict[str, KeptLines] = {}
        self._kept_created = True  # prometheus_client's `_created` switch they follow
        self._pack_size = pack_size
        self._preparing = threading.Lock()  # one scrape renders and packs at a time
        # Called (outside the locks) after a scrape that rendered RELEASE_AFTER jobs or
        # more: the daemon gives the C heap's free pages back (its renders' strings are
        # freed once packed, on the HTTP thread's own malloc arena).
        self.after_many_renders: Callable[[], object] | None = None

    def counter(
        self, name: str, documentation: str, vocabulary: LabelVocabulary = None
    ) -> JobFamily:
        return self._add(JobFamily(self, "counter", name, documentation, vocabulary))

    def gauge(self, name: str, documentation: str, vocabulary: LabelVocabulary = None) -> JobFamily:
        return self._add(JobFamily(self, "gauge", name, documentation, vocabulary))

    def _add(self, family: JobFamily) -> JobFamily:
        if self._rows:
            raise RuntimeError("families are defined before the first series")
        family.offset = self._width
        self._width += len(family.values)
        self._counts += [family.kind == "counter"] * len(family.values)
        family.number = len(self._families)
        self._families.append(family)
        # A TEXT rendering holds every family's lines, then every counter's `_created`.
        counters = [each for each in self._families if each.kind == "counter"]
        for ordinal, counter in enumerate(counters):
            counter.created_part = len(self._families) + ordinal
        return family

    # --- writes ---------------------------------------------------------------------
    def _row(self, job: str) -> list[float | None]:
        row = self._rows.get(job)
        if row is None:
            row = self._rows[job] = [None] * (2 * self._width)
            for kept in self._kept.values():
                kept.added(job)
        return row

    def create(self, job: str, indexes: Iterable[int], now: float | None = None) -> None:
        """Create the series `indexes` of `job` at 0 (an existing one keeps its value),
        as prometheus_client's `labels()` does."""
        width = self._width
        created = time.time() if now is None else now  # one float shared by the row
        with self._lock:
            row = self._row(job)
            for index in indexes:
                if row[index] is None:
                    row[index] = 0.0
                    if self._counts[index]:
                        row[width + index] = created
                    self._stale(job)

    def inc(self, job: str, index: int, amount: float) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        with self._lock:
            row = self._row(job)
            value = row[index]
            if value is None:
                value = 0.0
                row[self._width + index] = time.time()
            row[index] = value + amount
            self._stale(job)

    def set(self, job: str, index: int, value: float) -> None:
        value = float(value)
        with self._lock:
            row = self._row(job)
            if not _same(row[index], value):
                row[index] = value
                self._stale(job)

    def remove(self, job: str, index: int) -> None:
        """Drop one series (absent: no-op); a job with none left is dropped."""
        width = self._width
        with self._lock:
            row = self._rows.get(job)
            if row is None:
                return
            if row[index] is not None:
                row[index] = row[width + index] = None
                self._stale(job)
            if all(value is None for value in row[:width]):
                del self._rows[job]
                self._removed(job)

    def forget(self, job: str) -> None:
        """Drop every series of `job`."""
        with self._lock:
            if self._rows.pop(job, None) is not None:
                self._removed(job)

    def _stale(self, job: str) -> None:
        """The kept lines of `job` are outdated (its values changed). Under the lock."""
        for kept in self._kept.values():
            kept.written(job)

    def _removed(self, job: str) -> None:
        """`job` has no series left. Under the lock."""
        for kept in self._kept.values():
            kept.removed(job)

    def family(self, sample_name: str) -> JobFamily:
        """The family exporting `sample_name` (a counter's with `_total` or `_created`)."""
        for family in self._families:
            suffixes = ("_total", "_created") if family.kind == "counter" else ("",)
            if sample_name in {family._name + suffix for suffix in suffixes}:
                return family
        raise KeyError(sample_name)

    def __contains__(self, job: object) -> bool:
        """Whether `job` has a series (a job with none holds no memory)."""
        return job in self._rows

    # --- the collector --------------------------------------------------------------
    def describe(self) -> Iterator[Metric]:
        for family in self._families:
            yield from family.describe()

    def collect(self) -> Iterator[Metric]:
        """The six families, reading the values once for all of them when first asked:
        as samples or as exposition text (JobFamilyMetric)."""
        snapshot = _Snapshot(self)
        for family in self._families:
            yield JobFamilyMetric(family, snapshot)

    def rows(self) -> list[tuple[str, list[float | None]]]:
        """A copy of every job's row, in job order."""
        with self._lock:  # copies only: the samples are built without blocking writers
            return [(job, row.copy()) for job, row in self._rows.items()]

    def plan(self, kind: str, with_created: bool) -> Plan:
        """Every job's lines in format `kind` (_JobLines.render), in job order, as of now:
        the kept ones, the others rendered now (outside the lock) and kept unless a write
        to the job came in between. Packs the tail and folds packs first (KeptLines)."""
        with self._preparing:
            with self._lock:
                kept = self._kept_for(kind, with_created)
                kept.scrapes += 1
            render = _JobLines(self._families, self._width, kind, with_created).render
            rendered = 0
            # The tail a pack at a time (after a start: every job), never all loose at once.
            while True:
                with self._lock:
                    batch = kept.tail_to_pack()
                    if batch is None:
                        break
                    todo = self._copies(batch, kept)
                made = [(job, row, render(job, row)) for job, row in todo]
                rendered += len(made)
                with self._lock:
                    self._keep(kept, made)
                    kept.pack_tail()
            with self._lock:
                foldable = kept.foldable()
            for pack in foldable:  # one at a time: writers wait for one pack at most
                with self._lock:
                    kept.fold(pack)
            with self._lock:
                plan, missing = kept.plan()
                todo = self._copies(missing, kept)
            made = [(job, row, render(job, row)) for job, row in todo]
            with self._lock:
                self._keep(kept, made)
            for job, _row, entry in made:
                plan.fill(job, entry)
            rendered += len(made)
        if rendered >= RELEASE_AFTER and self.after_many_renders is not None:
            self.after_many_renders()
        return plan

    def _kept_for(self, kind: str, with_created: bool) -> KeptLines:
        """The kept lines of `kind`; the other format's are dropped (kept as they were:
        one format's). Under the lock."""
        if with_created != self._kept_created:
            self._kept.clear()
            self._kept_created = with_created
        for other in [other for other in self._kept if other != kind]:
            del self._kept[other]
        kept = self._kept.get(kind)
        if kept is None:
            parts = len(self._families)
            if kind == TEXT:  # then each counter's `_created` lines
                parts += sum(1 for family in self._families if family.created_part is not None)
            kept = self._kept[kind] = KeptLines(self._rows, parts, self._pack_size)
        return kept

    def _copies(self, jobs: list[str], kept: KeptLines) -> list[tuple[str, list[float | None]]]:
        """Copies of the rows of `jobs` that have no loose lines. Under the lock."""
        rows = self._rows
        return [(job, rows[job].copy()) for job in jobs if job not in kept.loose]

    def _keep(self, kept: KeptLines, made: list[tuple[str, list[float | None], Entry]]) -> None:
        """Keep the lines rendered from rows still current. Under the lock."""
        for job, row, entry in made:
            if self._rows.get(job) == row:
                kept.keep(job, entry)

    def samples(
        self, family: JobFamily, rows: list[tuple[str, list[float | None]]], with_created: bool
    ) -> list[Sample]:
        """The samples of `family` over `rows`, built by prometheus_client's own families."""
        width = self._width
        offset = family.offset
        counter = family.counter_family()
        gauge = family.gauge_family()
        for job, row in rows:
            for position, label in enumerate(family.values):
                value = row[offset + position]
                if value is None:
                    continue
                labels = [job] if label is None else [job, label]
                if counter is None:
                    gauge.add_metric(labels, value)
                else:
                    created = row[width + offset + position] if with_created else None
                    counter.add_metric(labels, value, created=created)
        return (gauge if counter is None else counter).samples


def _same(old: float | None, new: float) -> bool:
    """Whether writing `new` over `old` leaves the exposition as it is (0.0 and -0.0 are
    equal but print differently; a NaN is never equal)."""
    return old == new and (new != 0.0 or math.copysign(1.0, old) == math.copysign(1.0, new))


class _Snapshot:
    """The values of one collection, shared by its six families and read once, when
    first asked: as rows (samples) or as the lines of one format (exposition)."""

    def __init__(self, store: JobSeries) -> None:
        self.store = store
        # prometheus_client's own switch (PROMETHEUS_DISABLE_CREATED_SERIES,
        # disable_created_metrics()), read at each collection as its counters do.
        self.with_created = bool(client_metrics._use_created)
        self._rows: list[tuple[str, list[float | None]]] | None = None
        self._plans: dict[str, Plan] = {}

    def rows(self) -> list[tuple[str, list[float | None]]]:
        if self._rows is None:
            self._rows = self.store.rows()
        return self._rows

    def plan(self, kind: str) -> Plan:
        plan = self._plans.get(kind)
        if plan is None:
            plan = self._plans[kind] = self.store.plan(kind, self.with_created)
        return plan


class JobFamilyMetric(Metric):
    """One per-job family as collected: its samples are built when first read (what
    prometheus_client's encoders and `get_sample_value` read), its exposition text
    (`exposition`) from each job's kept or rendered lines."""

    def __init__(self, family: JobFamily, snapshot: _Snapshot) -> None:
        super().__init__(family._name, family.documentation, family.kind)
        self.family = family
        self._snapshot = snapshot

    @property
    def samples(self) -> list[Sample]:
        built: list[Sample] | None = self.__dict__.get("_built")
        if built is None:
            snapshot = self._snapshot
            built = snapshot.store.samples(self.family, snapshot.rows(), snapshot.with_created)
            self.__dict__["_built"] = built
        return built

    @samples.setter
    def samples(self, samples: list[Sample]) -> None:
        if samples:  # Metric.__init__ sets [] : nothing to keep
            self.__dict__["_built"] = samples

    def _restricted_metric(self, names: Iterable[str]) -> Metric | None:
        """prometheus_client's `?name[]=` filter: none of ours asked, nothing built."""
        if not set(names) & set(self.family.sample_names()):
            return None
        restricted: Metric | None = super()._restricted_metric(names)
        return restricted

    def exposition(self, kind: str) -> Body:
        """This family's exposition in format `kind` (TEXT: `generate_latest`'s, `_created`
        samples in a gauge family after it; OPENMETRICS: `openmetrics.generate_latest`'s
        without `# EOF`), its lines inflated as they are read."""
        family = self.family
        plan = self._snapshot.plan(kind)
        body = Body()
        body.add_bytes(family.heads[kind])
        body.add(plan.chunks(family.number), plan.size(family.number))
        if kind == TEXT and family.created_part is not None:
            size = plan.size(family.created_part)
            if size:
                body.add_bytes(family.created_head)
                body.add(plan.chunks(family.created_part), size)
        return body


def escape_label_value(value: str) -> str:
    """A label value as both text formats write it."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _Lines(NamedTuple):
    """How one family writes one job's samples of one name: the whole as one template
    (the fast case, every series present: the job's name for each NAME, then `%` with
    the values; half the instructions of a `str.format` with the name as an argument),
    and the text around the name and value of each line (some series absent)."""

    template: str
    pieces: list[tuple[str, str]]

    @classmethod
    def of(cls, pieces: list[tuple[str, str]]) -> _Lines:
        return cls(_template(pieces), pieces)

    def write(
        self, name: str, values: list[float | None], go: Callable[[float], str], percent: str
    ) -> str:
        """`percent`: the name with its `%` doubled (it goes through `%`)."""
        if None not in values:
            return self.template.replace(NAME, percent) % tuple(map(go, values))  # type: ignore[arg-type]
        return "".join(
            [
                f"{head}{name}{tail}{go(value)}\n"
                for (head, tail), value in zip(self.pieces, values, strict=True)
                if value is not None
            ]
        )


# Where a template has the job's name: a character no fixed text of ours holds
# (JobFamily checks its names, label names and vocabulary).
NAME = "\0"


def _template(pieces: list[tuple[str, str]]) -> str:
    return "".join(
        f"{head.replace('%', '%%')}{NAME}{tail.replace('%', '%%')}%s\n" for head, tail in pieces
    )


class _JobLines:
    """Renders jobs' lines in one format: per job a list with, per family, its lines
    (OPENMETRICS: a counter's `_total` and `_created` of each series in turn) and, for
    TEXT, then per counter family its `_created` lines.

    Values are written by prometheus_client's floatToGoString, once per distinct value
    of one scrape (the `_created` of a job's counters are one time; most values are 0)."""

    def __init__(
        self, families: list[JobFamily], width: int, kind: str, with_created: bool
    ) -> None:
        self._families = families
        self._width = width
        self._apart = kind == TEXT  # `_created` lines in parts of their own
        self._with_created = with_created
        self._written: dict[float, str] = {}

    def _go(self, value: float) -> str:
        if not value:  # 0.0 and -0.0 are one key, not one text
            return repr(value)
        text = self._written.get(value)
        if text is None:
            text = self._written[value] = floatToGoString(value)
        return text

    def render(self, job: str, row: list[float | None]) -> list[bytes]:
        name = escape_label_value(job)
        percent = name.replace("%", "%%")
        go = self._go
        width = self._width
        parts: list[bytes] = []
        created_parts: list[bytes] = []
        for family in self._families:
            start, end = family.offset, family.offset + len(family.values)
            values = row[start:end]
            created = None
            if family.created_part is not None and self._with_created:
                created = row[width + start : width + end]
            if self._apart or created is None:
                parts.append(family.lines.write(name, values, go, percent).encode())
                if self._apart and family.created_part is not None:
                    text = ""
                    if created is not None:
                        text = family.created_lines.write(name, created, go, percent)
                    created_parts.append(text.encode())
            else:
                parts.append(self._interleaved(family, name, percent, values, created).encode())
        return parts + created_parts

    def _interleaved(
        self,
        family: JobFamily,
        name: str,
        percent: str,
        values: list[float | None],
        created: list[float | None],
    ) -> str:
        """A counter's OpenMetrics lines: each series' `_total`, then its `_created`."""
        go = self._go
        if None not in values and None not in created:
            both = chain.from_iterable(zip(values, created, strict=True))
            return family.interleaved.replace(NAME, percent) % tuple(map(go, both))  # type: ignore[arg-type]
        lines = []
        for (head, tail), (c_head, c_tail), value, when in zip(
            family.lines.pieces, family.created_lines.pieces, values, created, strict=True
        ):
            if value is not None:
                lines.append(f"{head}{name}{tail}{go(value)}\n")
                if when is not None:
                    lines.append(f"{c_head}{name}{c_tail}{go(when)}\n")
        return "".join(lines)


class JobFamily:
    """One family of per-job series: labels `job_name` and, optionally, one label of a
    closed vocabulary. Its values live in the JobSeries it was made by."""

    def __init__(
        self,
        store: JobSeries,
        kind: str,
        name: str,
        documentation: str,
        vocabulary: LabelVocabulary,
    ) -> None:
        self.store = store
        self.kind = kind
        # As prometheus_client names a counter's family: without `_total`.
        self._name = name.removesuffix("_total") if kind == "counter" else name
        self.documentation = documentation
        self.offset = 0
        if vocabulary is None:
            self._labelnames: tuple[str, ...] = (JOB_LABEL,)
            self.values: tuple[str | None, ...] = (None,)
        else:
            self._labelnames = (JOB_LABEL, vocabulary[0])
            self.values = tuple(str(value) for value in vocabulary[1])
        self._positions = {value: position for position, value in enumerate(self.values)}
        self.number = 0  # its place among the store's families (JobSeries._add)
        self.created_part: int | None = None  # a counter's: where its `_created` lines are
        templates = [self._template(value) for value in self.values]
        self.lines = _Lines.of([(head, tail) for head, tail, _, _ in templates])
        self.created_lines = _Lines.of([(head, tail) for _, _, head, tail in templates])
        # A counter's OpenMetrics template: each series' `_total` line, then its `_created`.
        self.interleaved = "".join(
            _template([line, created])
            for line, created in zip(self.lines.pieces, self.created_lines.pieces, strict=True)
        )
        fixed = (self._name, documentation, *self._labelnames, *self.values)
        if any(NAME in text for text in fixed if text is not None):
            raise ValueError(f"{self._name}: a name, label or value holds {NAME!r}")
        self.heads, self.created_head = self._heads()

    def sample_names(self) -> tuple[str, ...]:
        if self.kind == "counter":
            return (f"{self._name}_total", f"{self._name}_created")
        return (self._name,)

    def _template(self, value: str | None) -> tuple[str, str, str, str]:
        """The text around the job's name in the lines of one series: (head, tail) of
        its sample and of its `_created` sample. The labels in name order, as both
        encoders sort them."""
        marker = "\0"
        labels = (
            {JOB_LABEL: marker}
            if value is None
            else {JOB_LABEL: marker, self._labelnames[1]: value}
        )
        text = ",".join(
            f'{label}="{marker if given is marker else escape_label_value(given)}"'
            for label, given in sorted(labels.items())
        )
        head, tail = text.split(marker)
        names = self.sample_names()
        return (
            f"{names[0]}{{{head}",
            f"{tail}}} ",
            f"{names[-1]}{{{head}",
            f"{tail}}} ",
        )

    def _heads(self) -> tuple[dict[str, bytes], bytes]:
        """The HELP and TYPE lines of each format, and the TEXT `_created` gauge's."""
        help_text = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        openmetrics_help = help_text.replace('"', r"\"")
        exported = self.sample_names()[0]  # a counter's with `_total` in the text format
        heads = {
            TEXT: f"# HELP {exported} {help_text}\n# TYPE {exported} {self.kind}\n".encode(),
            OPENMETRICS: (
                f"# HELP {self._name} {openmetrics_help}\n# TYPE {self._name} {self.kind}\n"
            ).encode(),
        }
        created = f"{self._name}_created"
        return heads, f"# HELP {created} {help_text}\n# TYPE {created} gauge\n".encode()

    def counter_family(self) -> CounterMetricFamily | None:
        """An empty exported family, for a counter; None for a gauge."""
        if self.kind != "counter":
            return None
        return CounterMetricFamily(self._name, self.documentation, labels=self._labelnames)

    def gauge_family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self._name, self.documentation, labels=self._labelnames)

    def describe(self) -> list[Metric]:
        return [self.counter_family() or self.gauge_family()]

    def index(self, *values: object, **named: object) -> tuple[str, int]:
        """The job and the series index of these label values (as `labels()` takes them)."""
        if named:
            if values:
                raise ValueError("Can't pass both *args and **kwargs")
            if set(named) != set(self._labelnames):
                raise ValueError(f"Incorrect label names: {sorted(named)}")
            values = tuple(named[label] for label in self._labelnames)
        if len(values) != len(self._labelnames):
            raise ValueError(f"Incorrect label count for {self._name}: {values!r}")
        position = 0
        if len(values) == 2:
            position_of = self._positions.get(str(values[1]))
            if position_of is None:
                raise ValueError(f"{values[1]!r} is not a {self._labelnames[1]} of {self._name}")
            position = position_of
        return str(values[0]), self.offset + position

    def indexes(self) -> range:
        """Every series index of this family (one per label value)."""
        return range(self.offset, self.offset + len(self.values))

    def labels(self, *values: object, **named: object) -> Series:
        job, index = self.index(*values, **named)
        return Series(self.store, job, index)

    def remove(self, *values: object) -> None:
        job, index = self.index(*values)
        self.store.remove(job, index)


class Series:
    """One series of one job: a handle made per call (nothing stored)."""

    __slots__ = ("_index", "_job", "_store")

    def __init__(self, store: JobSeries, job: str, index: int) -> None:
        self._store = store
        self._job = job
        self._index = index

    def inc(self, amount: float = 1) -> None:
        self._store.inc(self._job, self._index, float(amount))

    def set(self, value: float) -> None:
        self._store.set(self._job, self._index, value)
