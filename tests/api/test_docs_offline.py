"""/docs renders in a real browser with no internet: headless Chromium (Debian's) loads
the page from `reconcile api`, every host but 127.0.0.1 unresolvable, and the rendered
DOM lists every operation of /openapi.json — with no token set, and with one set (the
docs are public by default; the data stays behind the token)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import free_port
from tests.polling import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
RECONCILE = str(Path(sys.executable).parent / "reconcile")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "docs-test-token-1234"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("token", [None, TOKEN])
def test_docs_render_the_operation_list_offline(tmp_path: Path, token: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env["RECONCILER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'state.db'}"
    if token:
        env["RECONCILER_API_TOKEN"] = token
    subprocess.run([RECONCILE, "db", "upgrade"], env=env, check=True, capture_output=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (tmp_path / "api.log").open("wb") as log:
        api = subprocess.Popen([RECONCILE, "api", "--port", str(port)], env=env, stdout=log,
                               stderr=log)  # fmt: skip
    try:
        wait_until(lambda: _answers(f"{base}/health/live"), timeout=60, what="the API")
        spec = httpx.get(f"{base}/openapi.json", timeout=10).json()
        if token:
            assert httpx.get(f"{base}/api/v1/jobs", timeout=10).status_code == 401
        html = httpx.get(f"{base}/docs", timeout=10).text
        assert "cdn." not in html and "https://" not in html  # every asset is ours
        dom = _render(f"{base}/docs", tmp_path)
    finally:
        api.terminate()
        api.wait(30)
    rendered = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert rendered == set(spec["paths"]), dom[-2000:]
    assert "/api/v1/jobs" in rendered


def _render(url: str, tmp_path: Path) -> str:
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # root in CI
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-proxy-server",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            # Offline: every host but the API's is unresolvable (no CDN can answer).
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=30000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
