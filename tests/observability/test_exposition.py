"""reconciler.exposition against prometheus_client's own encoders: the same registry (a
JobSeries beside ordinary families), the same values, byte-identical text, for every
format and escaping a client can negotiate; over random job states whose names need
escaping (quotes, backslashes, newlines, unicode), and after every kind of change (a
job added, removed, renamed, a value changed, a series removed, `_created` switched
off), scraped again and again so that the kept lines of unchanged jobs are what is
written. prometheus_client's parsers read the text back to the same names and values.
And the daemon's server answers as prometheus_client's `make_wsgi_app` does."""

from __future__ import annotations

import gzip
import io
import random
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    enable_created_metrics,
    make_wsgi_app,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from reconciler.exposition import expose, format_of, make_metrics_app
from reconciler.job_series import OPENMETRICS, TEXT, JobSeries
from reconciler.observability import start_metrics_server

# Every Accept header negotiation of prometheus_client (0.26); the last two are written
# by prometheus_client whole (escapings that rewrite our names, OpenMetrics 2.0.0).
ACCEPTS = {
    None: TEXT,
    "text/plain;version=0.0.4": TEXT,
    "text/plain;version=1.0.0;escaping=allow-utf-8": TEXT,
    "text/plain;version=1.0.0;escaping=underscores": TEXT,
    "application/openmetrics-text": OPENMETRICS,
    "application/openmetrics-text;version=1.0.0": OPENMETRICS,
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8": OPENMETRICS,
    # What Prometheus 3 sends.
    "application/openmetrics-text;version=1.0.0;escaping=underscores,"
    "application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=1.0.0;"
    "escaping=underscores;q=0.5,*/*;q=0.1": OPENMETRICS,
    "text/plain;version=1.0.0;escaping=dots": None,
    "application/openmetrics-text;version=2.0.0": None,
}
NAMES = [
    "plain-job",
    "team/a.b_c",
    'say "hi"',
    "back\\slash",
    "new\nline",
    'all \\ " \n of them \\n',
    "ünïcødé — 作业 🚀",
    "100% done %s %% {0} {}",
    "",
    "x" * 300,
]
# NaN last (a read-back test leaves it out: it equals nothing).
VALUES = [0.0, -0.0, 1.0, 2.5, 60.0, 1e-7, 1_764_651_234.123456, 1e22, float("inf"), float("nan")]


def make_store(pack_size: int = 3) -> tuple[JobSeries, CollectorRegistry, dict[str, Any]]:
    """A JobSeries shaped as the daemon's (counters with and without a vocabulary, gauges),
    with a vocabulary value and documentation that need escaping, in a registry between
    ordinary families. Packs of `pack_size` jobs: the kept lines of a few jobs are
    packed, folded and spliced as the daemon's at 100,000 (reconciler.kept_lines)."""
    registry = CollectorRegistry()
    before = Counter(
        "reconciler_test_before_total", "A counter before", ["kind"], registry=registry
    )
    before.labels('a "quoted" kind').inc(3)
    store = JobSeries(pack_size=pack_size)
    families = {
        "fires": store.counter(
            "reconciler_test_fires_total", "Fires by outcome", ("outcome", ("published", "x\\y"))
        ),
        "dup": store.counter("reconciler_test_dup_total", 'Doc with "quotes", a \\ and a\nnewline'),
        "missed": store.counter(
            "reconciler_test_missed_total", "Missed by reason", ("reason", ("a", 'q"t', "z\nn"))
        ),
        "absent": store.gauge("reconciler_test_absent", "Absent"),
        "next": store.gauge("reconciler_test_next_fire_timestamp_seconds", 'Next\\fire "x"'),
    }
    registry.register(store)
    after = Histogram("reconciler_test_after_seconds", "A histogram after", registry=registry)
    after.observe(0.3)
    return store, registry, families


def random_step(
    rng: random.Random, store: JobSeries, families: dict[str, Any], values: list[float]
) -> None:
    job = rng.choice(NAMES) + rng.choice(["", "", "-2"])
    kind = rng.choice(["track", "inc", "inc", "set", "remove", "forget", "rename", "same"])
    if kind == "track":
        indexes = [*families["fires"].indexes(), *families["dup"].indexes()]
        store.create(job, rng.sample(indexes, rng.randint(0, len(indexes))))
    elif kind == "inc":
        name = rng.choice(["fires", "dup", "missed"])
        family = families[name]
        series = family.labels(job, *([rng.choice(family.values)] if name != "dup" else []))
        series.inc(rng.choice([1, 1, 2.5, 0]))
    elif kind == "set":
        families[rng.choice(["absent", "next"])].labels(job).set(rng.choice(values))
    elif kind == "remove":
        name = rng.choice(list(families))
        family = families[name]
        family.remove(job, *([rng.choice(family.values)] if family.values != (None,) else []))
    elif kind == "forget":
        store.forget(job)
    elif kind == "rename":  # as the daemon does: the old name's series go, the new one's come
        store.forget(job)
        store.create(job + "-renamed", families["missed"].indexes())
        families["next"].labels(job + "-renamed").set(rng.choice(values))
    else:  # the same value again: nothing to render again
        families["absent"].labels(job).set(1.0)
        families["absent"].labels(job).set(1.0)


def check_identical(registry: CollectorRegistry) -> None:
    for accept, kind in ACCEPTS.items():
        encoder, _ = choose_encoder(accept or "")
        assert format_of(encoder) == kind, accept
        expected = encoder(registry)
        assert b"".join(expose(registry, encoder)) == expected, accept


@pytest.mark.parametrize("seed", range(12))
def test_the_exposition_is_prometheus_clients_byte_for_byte(seed: int) -> None:
    rng = random.Random(seed)
    store, registry, families = make_store(pack_size=[1, 2, 3, 5, 128][seed % 5])
    # A -0.0 (written "-0.0", equal to 0.0) makes the store write zeros one by one.
    values = VALUES if seed % 2 else [value for value in VALUES if str(value) != "-0.0"]
    check_identical(registry)  # empty families: HELP and TYPE only
    try:
        for number in range(150):
            random_step(rng, store, families, values)
            if number % 10 == 9:
                check_identical(registry)
            if number == 100:
                disable_created_metrics()
        check_identical(registry)
    finally:
        enable_created_metrics()
    check_identical(registry)


def test_prometheus_clients_parsers_read_back_the_names_and_values() -> None:
    _store, registry, families = make_store()
    expected = {}
    for number, job in enumerate(NAMES):
        families["next"].labels(job).set(VALUES[number % (len(VALUES) - 1)] + 1)
        families["fires"].labels(job, "x\\y").inc(number)
        expected[job] = (float(number), VALUES[number % (len(VALUES) - 1)] + 1)  # family order
    for parse, accept in ((parse_text, None), (parse_om, "application/openmetrics-text")):
        encoder, _ = choose_encoder(accept or "")
        text = b"".join(expose(registry, encoder)).decode()
        read: dict[str, list[float]] = {}
        for family in parse(text):
            for sample in family.samples:
                if sample.name in ("reconciler_test_next_fire_timestamp_seconds",) or (
                    sample.name == "reconciler_test_fires_total"
                    and sample.labels["outcome"] == "x\\y"
                ):
                    read.setdefault(sample.labels["job_name"], []).append(sample.value)
        assert {job: tuple(values) for job, values in read.items()} == expected, accept


def test_writes_while_scraping_leave_no_stale_lines() -> None:
    store, registry, families = make_store()
    jobs = [f"job-{number}" for number in range(200)]
    for job in jobs:
        store.create(job, families["fires"].indexes())
    done = threading.Event()

    def fire() -> None:
        rng = random.Random(7)
        while not done.is_set():
            families["fires"].labels(rng.choice(jobs), "published").inc()
            families["next"].labels(rng.choice(jobs)).set(rng.random())

    writers = [threading.Thread(target=fire) for _ in range(3)]
    for writer in writers:
        writer.start()
    encoder, _ = choose_encoder("application/openmetrics-text")
    try:
        for _ in range(30):
            expose(registry, encoder)
    finally:
        done.set()
        for writer in writers:
            writer.join()
    check_identical(registry)


def call(app: Callable[..., list[bytes]], **environ: str) -> tuple[str, dict[str, str], bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    base = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "wsgi.input": io.BytesIO()}
    body = b"".join(app({**base, **environ}, start_response))
    return answer["status"], answer["headers"], body


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"HTTP_ACCEPT": "application/openmetrics-text;version=1.0.0"},
        {"HTTP_ACCEPT": "text/plain;version=1.0.0;escaping=dots"},
        {"QUERY_STRING": "name[]=reconciler_test_before_total&name[]=reconciler_test_dup_total"},
        {"QUERY_STRING": "name[]=reconciler_test_before_total"},
        {"REQUEST_METHOD": "POST"},
        {"REQUEST_METHOD": "OPTIONS"},
        {"PATH_INFO": "/favicon.ico"},
    ],
)
def test_the_app_answers_as_prometheus_clients(environ: dict[str, str]) -> None:
    _store, registry, families = make_store()
    families["dup"].labels('a "job"').inc()
    families["next"].labels("b\\job").set(5)
    ours = call(make_metrics_app(registry), **environ)
    theirs = call(make_wsgi_app(registry), **environ)
    assert ours[0] == theirs[0]
    if "name[]" in environ.get("QUERY_STRING", ""):  # prometheus_client: in set order
        assert sorted(ours[2].splitlines(True)) == sorted(theirs[2].splitlines(True))
    else:
        assert ours[2] == theirs[2]
    assert {k: v for k, v in ours[1].items() if k != "Content-Length"} == theirs[1]


def test_gzip_when_asked_except_on_loopback() -> None:
    _store, registry, families = make_store()
    families["next"].labels("a").set(5)
    app = make_metrics_app(registry)
    plain = call(app)[2]
    for address in ("10.1.2.3", "2001:db8::1"):
        _, headers, body = call(app, HTTP_ACCEPT_ENCODING="gzip", REMOTE_ADDR=address)
        assert headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(body) == plain
    for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        _, headers, body = call(app, HTTP_ACCEPT_ENCODING="gzip", REMOTE_ADDR=address)
        assert "Content-Encoding" not in headers
        assert body == plain


def test_the_daemons_server_serves_it() -> None:
    _store, registry, families = make_store()
    families["fires"].labels("ü\n", "published").inc()
    server = start_metrics_server(0, registry=registry) or None
    assert server is None  # port 0: off
    server = start_metrics_server(_free_port(), registry=registry)
    assert server is not None
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/metrics",
            headers={"Accept": "application/openmetrics-text;version=1.0.0"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        encoder, _ = choose_encoder("application/openmetrics-text;version=1.0.0")
        assert body == encoder(registry)
    finally:
        server.close()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_healthcheck_reads_two_families_of_the_daemons_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler import healthcheck, metrics

    job = 'health "check" job'
    metrics.track_job(job, interval_seconds=60, next_fire=1.0)
    port = _free_port()
    server = start_metrics_server(port, registry=metrics.only(metrics.DAEMON_METRICS))
    assert server is not None
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/metrics?{healthcheck._ONLY}", timeout=10
        ) as response:
            text = response.read().decode()
        assert "reconciler_leader " in text and "job_name" not in text, text
        monkeypatch.setenv("RECONCILER_METRICS_PORT", str(port))
        assert healthcheck.main() == 0
        assert capsys.readouterr().out == "standby\n"
    finally:
        server.close()
        metrics.forget_job(job)


def test_only_the_format_asked_for_last_is_kept() -> None:
    store, registry, families = make_store()
    families["next"].labels("a").set(5)
    for accept, kind, other in (
        ("application/openmetrics-text", OPENMETRICS, TEXT),
        ("", TEXT, OPENMETRICS),
    ):
        expose(registry, choose_encoder(accept)[0])
        assert "a" in store._kept[kind].loose and other not in store._kept
    families["next"].labels("a").set(6)  # a write drops the job's lines
    assert "a" not in store._kept[TEXT].loose


def samples_of(text: str, kind: str | None) -> list[tuple[str, tuple[tuple[str, str], ...], str]]:
    """Every sample of `text` as prometheus_client's own parser reads it: name, labels,
    value (as text: NaN equals nothing), sorted."""
    parse = parse_om if kind == OPENMETRICS else parse_text
    return sorted(
        (sample.name, tuple(sorted(sample.labels.items())), repr(sample.value))
        for family in parse(text)
        for sample in family.samples
    )


@pytest.mark.parametrize("pack_size", [1, 2, 7, 16])
@pytest.mark.parametrize("accept", [None, "application/openmetrics-text"])
def test_kept_packed_lines_scrape_as_the_straightforward_rendering(
    accept: str | None, pack_size: int
) -> None:
    """Scraped again and again in one format (its lines kept, packed, folded, spliced)
    over random jobs and changes: the same text as prometheus_client renders from the
    values, and the same samples read back by prometheus_client's parser."""
    rng = random.Random(f"{accept}-{pack_size}")
    store, registry, families = make_store(pack_size=pack_size)
    encoder, _ = choose_encoder(accept or "")
    kind = format_of(encoder)
    names = [f"job-{number}" for number in range(40)] + NAMES
    for job in names:  # the daemon's start: every job tracked before the first scrape
        store.create(job, [*families["fires"].indexes(), *families["missed"].indexes()])
        families["next"].labels(job).set(rng.choice(VALUES[:-1]))
    for scrape in range(60):
        for _ in range(rng.choice([0, 1, 2, 5, 20])):
            if rng.random() < 0.7:  # most writes: a fire of a job already packed
                job = rng.choice(names)
                families["fires"].labels(job, "published").inc()
                families["next"].labels(job).set(rng.choice(VALUES[:-1]))
            else:
                random_step(rng, store, families, VALUES)
        body = expose(registry, encoder)
        text = b"".join(body)
        assert len(text) == body.size
        straight = encoder(registry)
        assert text == straight, scrape
        assert samples_of(text.decode(), kind) == samples_of(straight.decode(), kind)
    kept = store._kept[kind or TEXT]
    assert kept.packs, "packs were made"
    assert len(kept.loose) < len(names), "most kept lines are packed"


def test_a_scrape_that_rendered_many_jobs_calls_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon gives the C heap back after a scrape that rendered many jobs (the first
    after a start), not after a steady one."""
    from reconciler import job_series

    monkeypatch.setattr(job_series, "RELEASE_AFTER", 10)
    store, registry, families = make_store(pack_size=4)
    calls: list[int] = []
    store.after_many_renders = lambda: calls.append(1)
    encoder, _ = choose_encoder("application/openmetrics-text")
    for number in range(30):
        families["next"].labels(f"job-{number}").set(number)
    b"".join(expose(registry, encoder))
    assert calls == [1]
    families["next"].labels("job-3").set(-1)  # one job rendered again: no call
    b"".join(expose(registry, encoder))
    assert calls == [1]
