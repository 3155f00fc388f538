"""SQL of the API: SQLAlchemy Core selects only, one or two per request, never an N+1.

`apscheduler_jobs` is read with plain SQL, never through APScheduler's job store, whose
readers (`get_all_jobs`, `get_due_jobs`) DELETE every row whose callable they cannot
import. The apscheduler row of a job has the
job's name as its id.
"""
