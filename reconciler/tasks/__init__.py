"""Tasks a job may name. Every task's name is `reconciler.tasks.<function>`, inside the
default allowlist prefix `reconciler.tasks.`.

| task | arguments | does |
| --- | --- | --- |
| reconciler.tasks.example_task | data | the seed's example: echoes `data` with a timestamp |
| reconciler.tasks.http_probe | url, timeout=5, expect_status=200 | GET it, fail on another status |
| reconciler.tasks.sql_maintenance | statement, database_url=None | run ONE SQL statement |
| reconciler.tasks.write_report | path, rows, fields=None, append=False | JSON/CSV, atomically |
| reconciler.tasks.sleep_task | seconds | sleep (demos, tests) |
| reconciler.tasks.fail_task | message, permanent=False | always fail (demos, tests) |
| reconciler.tasks.noop | (none) | return None (benchmarks) |

Your own tasks: put them in an importable module, decorate them with
`@shared_task(base=BaseTask, bind=True, name="yourpkg.tasks.do_it")` (BaseTask from
`reconciler.worker`), list the module in RECONCILER_TASK_MODULES (comma separated; the
worker imports each at start) and add its name or prefix to RECONCILER_TASK_ALLOWLIST.
BaseTask gives them the idempotency guard, the run ledger, retries, logs and metrics.
Raise `reconciler.worker.PermanentTaskError` for input that can never succeed (no retry).

This package imports nothing at import time: the worker imports the task modules it is
configured with (`reconciler.worker.app.BUILTIN_TASK_MODULES`).
"""
