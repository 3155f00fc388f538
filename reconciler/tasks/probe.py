"""`reconciler.tasks.http_probe`: is an HTTP endpoint up?"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from celery import shared_task

from reconciler.errors import TransientError
from reconciler.worker.base import BaseTask, PermanentTaskError
from reconciler.worker.runtime import settings_of

MAX_TIMEOUT_SECONDS = 300


class ProbeFailed(TransientError):
    """The endpoint answered with another status, or not at all. Retried per policy."""


@shared_task(base=BaseTask, bind=True, name="reconciler.tasks.http_probe")
def http_probe(
    self: BaseTask, url: str, timeout: float = 5, expect_status: int = 200
) -> dict[str, Any]:
    """GET `url` (no redirects followed) and expect `expect_status`. A `url` that is a
    path (`/health/live`) is taken from RECONCILER_PROBE_BASE_URL.

    Returns {"url", "status", "seconds"}. Raises PermanentTaskError for a URL that is not
    http(s) or a timeout out of 0..300 s; ProbeFailed for another status, a refused
    connection or a timeout (retried per the job's policy)."""
    if isinstance(url, str) and url.startswith("/"):
        # A path: on the configured base (RECONCILER_PROBE_BASE_URL), so one job file
        # probes the right host on a laptop and in compose.
        url = settings_of(self.app).probe_base_url.rstrip("/") + url
    if urlsplit(url).scheme not in ("http", "https"):
        raise PermanentTaskError(f"not an http(s) URL: {url!r}")
    if not 0 < float(timeout) <= MAX_TIMEOUT_SECONDS:
        raise PermanentTaskError(f"timeout must be within 0..{MAX_TIMEOUT_SECONDS} s")
    started = time.monotonic()
    status = _get_status(url, float(timeout))
    seconds = round(time.monotonic() - started, 6)
    if status != int(expect_status):
        raise ProbeFailed(f"{url} answered {status}, expected {expect_status}")
    return {"url": url, "status": status, "seconds": seconds}


def _get_status(url: str, timeout: float) -> int:
    opener = urllib.request.build_opener(_NoRedirect)
    # The scheme was checked by the caller: http(s) only, never file: or custom schemes.
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "reconciler"})  # noqa: S310
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:  # a status outside 2xx is an answer too
        return int(error.code)
    except (urllib.error.URLError, OSError) as error:
        raise ProbeFailed(f"{url}: {getattr(error, 'reason', error)}") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A probe reports what the URL itself answers: a 302 is a 302, not the login page.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
