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

Multiprocess mode (PROMETHEUS_MULTIPROC_DIR) does not apply: only the daemon moves these
series, and the daemon runs single-process (only workers write sample files).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import metrics as client_metrics
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

JOB_LABEL = "job_name"
# The second label of a family: its name and closed vocabulary; None: job_name only.
LabelVocabulary = tuple[str, Sequence[str]] | None


class JobSeries(Collector):
    """Every per-job series of the daemon's families, and their collector.

    Storage: per job one list of 2 × width entries; entry i is the value of series i
    (None: the series does not exist), entry width + i the Unix time a counter series
    was created (None for a gauge). One lock for all: the dispatcher's threads increment
    while the main thread refreshes the gauges and the HTTP thread collects."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, list[float | None]] = {}
        self._families: list[JobFamily] = []
        self._width = 0
        self._counts: list[bool] = []  # per series index: a counter's (it has `_created`)

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
        self._families.append(family)
        return family

    # --- writes ---------------------------------------------------------------------
    def _row(self, job: str) -> list[float | None]:
        row = self._rows.get(job)
        if row is None:
            row = self._rows[job] = [None] * (2 * self._width)
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

    def set(self, job: str, index: int, value: float) -> None:
        with self._lock:
            self._row(job)[index] = float(value)

    def remove(self, job: str, index: int) -> None:
        """Drop one series (absent: no-op); a job with none left is dropped."""
        width = self._width
        with self._lock:
            row = self._rows.get(job)
            if row is None:
                return
            row[index] = row[width + index] = None
            if all(value is None for value in row[:width]):
                del self._rows[job]

    def forget(self, job: str) -> None:
        """Drop every series of `job`."""
        with self._lock:
            self._rows.pop(job, None)

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
        with self._lock:  # copies only: the samples are built without blocking writers
            rows = [(job, row.copy()) for job, row in self._rows.items()]
        # prometheus_client's own switch (PROMETHEUS_DISABLE_CREATED_SERIES,
        # disable_created_metrics()), read at each collection as its counters do.
        with_created = client_metrics._use_created
        width = self._width
        for family in self._families:
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
            yield gauge if counter is None else counter


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
