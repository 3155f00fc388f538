"""jobs-reconciler: scheduled jobs declared as YAML in git, reconciled into APScheduler,
fired into Celery exactly once, reported through a read-only API and Prometheus."""

__version__ = "0.1.0"
