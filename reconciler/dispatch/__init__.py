"""Firing: the one stable fire callable, the run ledger, publishing to Celery.

The path of one slot, and the modules that own each step:

    APScheduler (leader only)
      └─ FireExecutor (executor.py)       adds scheduled_time; bounds catch-up
           └─ fire_job (fire.py)          the callable every apscheduler_jobs row names
                └─ Dispatcher.fire        fencing check, ids, enqueue: never blocks
                     └─ recorder thread   per batch: ledger insert FIRST (duplicates and
                        (dispatcher.py)   overlaps decided there, batch.py, store/ledger.py)
                     └─ publisher thread  publish with confirms (publisher.py), then
                                          mark published / retry later (store/ledger.py)
    UnpublishedRetrier (retrier.py)       re-publishes ledger rows left 'scheduled'
    MissedRunRecorder (missed.py)         records slots APScheduler dropped (misfire)
"""
