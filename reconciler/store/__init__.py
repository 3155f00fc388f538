"""Adapters to the database: tables, queries, and raw access to `apscheduler_jobs`."""
