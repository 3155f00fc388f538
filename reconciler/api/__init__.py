"""The read-only HTTP API (FastAPI): `create_app(settings)`; served by `reconcile api`."""

from reconciler.api.app import create_app

__all__ = ["create_app"]
