"""The CLI's read commands (`describe`, `runs`) shape their output with this package's
`shape` and `scrub` modules; importing them must not import FastAPI (the app is
imported when `create_app` is first asked for)."""

from __future__ import annotations

import subprocess
import sys


def test_the_shaping_modules_do_not_import_fastapi() -> None:
    probe = (
        "import sys; import reconciler.api.shape, reconciler.api.scrub; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_create_app_is_still_there() -> None:
    import reconciler.api
    from reconciler.api.app import create_app

    assert reconciler.api.create_app is create_app
