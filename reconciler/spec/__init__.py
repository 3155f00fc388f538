"""Job format v1: models, hostile-input-safe YAML loading, validation, JSON Schema.

    model.py        JobSpec and its parts: strict, frozen pydantic models
    cron.py         cron expressions and field maps -> APScheduler CronTrigger fields
    diagnostics.py  Diagnostic (path:line:col CODE message) and the table of CODES
    files.py        finding job files, refusing symlinks, bounded reads (the only I/O)
    yamlsafe.py     bytes -> plain data from libyaml events; tags, aliases, duplicate
                    keys and deep nesting refused; node positions on request
    explain.py      pydantic errors and check findings -> positioned diagnostics
    checks.py       allowlist, queues, crons that never fire, duplicate names
    loader.py       load_jobs / load_paths / LoadCache: the entry points
    schema.py       the JSON Schema committed as schemas/job.v1.json

Nothing is re-exported here: importing `reconciler.spec.model` must stay cheap.
"""
