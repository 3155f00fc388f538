"""The daemon's /metrics: prometheus_client's exposition, with the per-job families
written from their rendered lines (reconciler.job_series) instead of Sample objects.

At 100,000 jobs the per-job families are 2.9 million samples; prometheus_client's
`generate_latest` spent ~50 s of CPU on them per scrape, longer than Prometheus' scrape
timeout. Here each family of a JobSeries comes out of `JobFamilyMetric.exposition`
(kept lines, compressed; re-rendered only for the jobs that changed; inflated as the
answer is written, so the whole text is never in memory) and every other family out of
the encoder prometheus_client chose, one family at a time: the same bytes as
prometheus_client's (tests/observability/test_exposition.py), for the formats and
escapings whose lines `JobSeries` renders (the text format, OpenMetrics 1.0.0; names
written as they are or UTF-8 allowed); any other negotiation goes through
prometheus_client whole. `?name[]=` keeps the samples named, as prometheus_client does.

Compression: gzip when the client accepts it, except from a loopback address, where
compressing ~230 MB costs more CPU than sending it (bench/RESULTS.md, "One scrape of the
daemon's /metrics"); level 1 (prometheus_client: 9, ten times slower for 14 % fewer
bytes).
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import exposition as text_exposition
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics_exposition

from reconciler.job_series import OPENMETRICS, TEXT, JobFamilyMetric
from reconciler.kept_lines import Body

Encoder = Callable[[Any], bytes]
_EOF = b"# EOF\n"
# Escapings under which our names (legacy Prometheus names) are written unchanged.
_PLAIN_NAMES = (openmetrics_exposition.UNDERSCORES, openmetrics_exposition.ALLOWUTF8)
GZIP_LEVEL = 1


def format_of(encoder: Encoder) -> str | None:
    """TEXT or OPENMETRICS when `encoder` (from prometheus_client's `choose_encoder`)
    writes what JobFamilyMetric.exposition renders; None otherwise."""
    function = getattr(encoder, "func", encoder)
    options = getattr(encoder, "keywords", {})
    if options.get("escaping", openmetrics_exposition.UNDERSCORES) not in _PLAIN_NAMES:
        return None
    if function is text_exposition.generate_latest:
        return TEXT
    if function is openmetrics_exposition.generate_latest:
        return OPENMETRICS if options.get("version", "1.0.0") == "1.0.0" else None
    return None


class _One:
    """A collector of one family (an encoder writes one family at a time)."""

    def __init__(self, metric: Metric) -> None:
        self._metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self._metric


class _Restricted:
    """The samples named of `registry` (prometheus_client's `?name[]=`; its own
    `restricted_registry` finds nothing behind `metrics.only`'s undescribed collector).
    A per-job family none of whose names is asked is never built."""

    def __init__(self, registry: Any, names: set[str]) -> None:
        self._registry = registry
        self._names = names

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            restricted = metric._restricted_metric(self._names)
            if restricted is not None:
                yield restricted


def expose(registry: Any, encoder: Encoder) -> Body:
    """`encoder(registry)` as chunks to write one after the other (the per-job families'
    inflated as they are read: the whole text is never in memory at once)."""
    body = Body()
    kind = format_of(encoder)
    if kind is None:
        body.add_bytes(encoder(registry))
        return body
    for metric in registry.collect():
        if isinstance(metric, JobFamilyMetric):
            body.extend(metric.exposition(kind))
            continue
        text = encoder(_One(metric))
        if kind == OPENMETRICS:
            text = text.removesuffix(_EOF)
        body.add_bytes(text)
    if kind == OPENMETRICS:
        body.add_bytes(_EOF)
    return body


def gzip_chunks(chunks: Iterable[bytes], level: int = GZIP_LEVEL) -> bytes:
    """One gzip member of the chunks, written one after the other."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join([*map(compressor.compress, chunks), compressor.flush()])


def is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address((address or "").removeprefix("::ffff:")).is_loopback
    except ValueError:
        return False


def make_metrics_app(registry: Any) -> Callable[..., Iterable[bytes]]:
    """A WSGI app serving `registry` as prometheus_client's `make_wsgi_app` does (GET
    any path, OPTIONS, 405 otherwise; content negotiation; `?name[]=`), through
    `expose`, and gzip as the module says."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS":
            start_response("200 OK", [("Allow", "OPTIONS,GET")])
            return [b""]
        if method != "GET":
            status = "405 Method Not Allowed"
            start_response(status, [("Allow", "OPTIONS,GET")])
            return [f"# HTTP {status}: {method}; use OPTIONS or GET\n".encode()]
        if environ["PATH_INFO"] == "/favicon.ico":
            start_response("200 OK", [])
            return [b""]
        encoder, content_type = text_exposition.choose_encoder(environ.get("HTTP_ACCEPT", ""))
        names = parse_qs(environ.get("QUERY_STRING", "")).get("name[]")
        body = expose(_Restricted(registry, set(names)) if names else registry, encoder)
        headers = [("Content-Type", content_type)]
        if text_exposition.gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")) and not (
            is_loopback(environ.get("REMOTE_ADDR"))
        ):
            compressed = gzip_chunks(body)
            body = Body()
            body.add_bytes(compressed)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(body.size)))
        start_response("200 OK", headers)
        return body

    return app
