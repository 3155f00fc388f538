"""The read-only HTTP API (FastAPI): `create_app(settings)`; served by `reconcile api`.

`create_app` is imported when first asked for: the CLI's read commands use this
package's shaping modules (`shape`, `scrub`) and must not import FastAPI with them
(~0.5 s of a `reconcile describe` or `reconcile runs` on a quiet machine)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from reconciler.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
