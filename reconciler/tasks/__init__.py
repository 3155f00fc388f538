"""Tasks a job may name. Every task's name is `reconciler.tasks.<function>`. Only the
first two are on the default allowlist (`reconciler.settings.DEFAULT_TASK_ALLOWLIST`):
the SQL and report tasks are opt-in and confined (`reconciler.spec.confine`), the demo helpers are
for `reconcile dev` and tests.

| task | arguments | does |
| --- | --- | --- |
| reconciler.tasks.example_task | data | the seed's example: echoes `data` with a timestamp |
| reconciler.tasks.http_probe | url, timeout=5, expect_status=200 | GET it, fail on another status |
| reconciler.tasks.sql_maintenance | statement | ONE allowlisted statement (SQL_MAINTENANCE_URL) |
| reconciler.tasks.write_report | path, rows, fields=None, append=False | JSON/CSV, in REPORT_DIR |
| reconciler.tasks.sleep_task | seconds | sleep (demos, tests) |
| reconciler.tasks.fail_task | message, permanent=False | always fail (demos, tests) |
| reconciler.tasks.noop | (none) | return None (benchmarks) |

Your own tasks: put them in an importable module, decorate them with
`@shared_task(base=BaseTask, bind=True, name="yourpkg.tasks.do_it")` (BaseTask from
`reconciler.worker`), list the module in RECONCILER_TASK_MODULES (comma separated; the
worker imports each at start) and add its name or prefix to RECONCILER_TASK_ALLOWLIST.
BaseTask gives them the idempotency guard, the run ledger, retries, logs and metrics.
Raise `reconciler.worker.PermanentTaskError` for input that can never succeed (no retry).

Their parameters are declared again, without Celery, in `reconciler.spec.catalog` (what
`reconcile validate` checks a job's args and kwargs against; tests/test_task_params.py
keeps both equal).

This package imports nothing at import time: the worker imports the task modules it is
configured with (`reconciler.worker.app.BUILTIN_TASK_MODULES`).
"""
