"""Job format v1: models, hostile-input-safe YAML loading, validation, JSON Schema.

    model.py        JobSpec and its parts: strict, frozen pydantic models
    rebuild.py      a spec built, not validated again, from a document validated before
    cron.py         cron expressions and field maps -> APScheduler CronTrigger fields
    diagnostics.py  Diagnostic (path:line:col CODE message) and the table of CODES
    files.py        finding job files, refusing symlinks, bounded reads (the only I/O)
    yamlsafe.py     bytes -> plain data from libyaml events; tags, aliases, duplicate
                    keys and deep nesting refused; node positions on request
    explain.py      pydantic errors and check findings -> positioned diagnostics
    checks.py       allowlist, queues, crons that never fire, duplicate names
    catalog.py      every task's parameters (built-ins declared, yours imported)
    confine.py      the confinement rules of the powerful built-ins (SQL, reports)
    loader.py       load_jobs / load_paths / LoadCache: the entry points
    schema.py       the JSON Schema committed as schemas/job.v1.json

Two layers (pyproject.toml's import contracts): the models and parsers (model, rebuild,
cron, diagnostics, essence, files, yamlsafe, zonenames, schema, catalog, confine) sit
below `reconciler.core`; loading and validating (checks, explain, loader, parallel) sit
above it, because a cron that never fires is found with the core's schedule engine.

Nothing is re-exported here: importing `reconciler.spec.model` must stay cheap.
"""
