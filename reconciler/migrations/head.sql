-- Recorded from Alembic's upgrade of an empty PostgreSQL database to 0008.
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
CREATE TABLE scheduled_jobs (
	name VARCHAR(191) NOT NULL, 
	spec JSONB NOT NULL, 
	spec_hash VARCHAR(64) NOT NULL, 
	task VARCHAR(255) NOT NULL, 
	queue VARCHAR(64) NOT NULL, 
	labels JSONB NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	source_file TEXT NOT NULL, 
	source_line INTEGER NOT NULL, 
	revision VARCHAR(64), 
	revision_dirty BOOLEAN DEFAULT false NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	generation INTEGER DEFAULT '1' NOT NULL, 
	PRIMARY KEY (name)
);
CREATE INDEX ix_scheduled_jobs_status ON scheduled_jobs (status);
CREATE INDEX ix_scheduled_jobs_queue ON scheduled_jobs (queue);
CREATE TABLE job_runs (
	id VARCHAR(36) NOT NULL, 
	job_name VARCHAR(191) NOT NULL, 
	scheduled_time TIMESTAMP WITH TIME ZONE NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	reason TEXT, 
	task VARCHAR(255) NOT NULL, 
	queue VARCHAR(64) NOT NULL, 
	idempotency_key VARCHAR(512) NOT NULL, 
	revision VARCHAR(64), 
	fired_at TIMESTAMP WITH TIME ZONE, 
	published_at TIMESTAMP WITH TIME ZONE, 
	started_at TIMESTAMP WITH TIME ZONE, 
	finished_at TIMESTAMP WITH TIME ZONE, 
	lateness_seconds FLOAT, 
	publish_attempts INTEGER DEFAULT '0' NOT NULL, 
	next_attempt_at TIMESTAMP WITH TIME ZONE, 
	expires_at TIMESTAMP WITH TIME ZONE, 
	retries INTEGER DEFAULT '0' NOT NULL, 
	duplicates INTEGER DEFAULT '0' NOT NULL, 
	worker VARCHAR(255), 
	result_summary TEXT, 
	error TEXT, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_job_runs_job_slot UNIQUE (job_name, scheduled_time)
);
CREATE INDEX ix_job_runs_job_time ON job_runs (job_name, scheduled_time);
CREATE INDEX ix_job_runs_status ON job_runs (status);
CREATE TABLE reconcile_runs (
	id SERIAL NOT NULL, 
	trigger VARCHAR(16) NOT NULL, 
	instance VARCHAR(255), 
	started_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	finished_at TIMESTAMP WITH TIME ZONE, 
	duration_seconds FLOAT, 
	outcome VARCHAR(16) NOT NULL, 
	revision VARCHAR(64), 
	revision_dirty BOOLEAN, 
	plan_hash VARCHAR(64), 
	added INTEGER DEFAULT '0' NOT NULL, 
	updated INTEGER DEFAULT '0' NOT NULL, 
	paused INTEGER DEFAULT '0' NOT NULL, 
	resumed INTEGER DEFAULT '0' NOT NULL, 
	removed INTEGER DEFAULT '0' NOT NULL, 
	repaired INTEGER DEFAULT '0' NOT NULL, 
	quarantined_files INTEGER DEFAULT '0' NOT NULL, 
	foreign_rows INTEGER DEFAULT '0' NOT NULL, 
	errors JSONB, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_reconcile_runs_started ON reconcile_runs (started_at);
CREATE TABLE quarantined_files (
	path TEXT NOT NULL, 
	diagnostics JSONB NOT NULL, 
	since TIMESTAMP WITH TIME ZONE NOT NULL, 
	last_seen TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (path)
);
CREATE TABLE reconciler_instances (
	instance VARCHAR(255) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	epoch BIGINT DEFAULT '0' NOT NULL, 
	started_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	heartbeat_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (instance)
);
CREATE TABLE apscheduler_jobs (
	id VARCHAR(191) NOT NULL, 
	next_run_time FLOAT(25), 
	job_state BYTEA NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_apscheduler_jobs_next_run_time ON apscheduler_jobs (next_run_time);
INSERT INTO alembic_version (version_num) VALUES ('0001') RETURNING alembic_version.version_num;
ALTER TABLE job_runs ADD COLUMN attempt VARCHAR(128);
ALTER TABLE job_runs ADD COLUMN lease_until TIMESTAMP WITH TIME ZONE;
ALTER TABLE job_runs ADD COLUMN takeovers INTEGER DEFAULT '0' NOT NULL;
ALTER TABLE reconciler_instances ADD COLUMN lease_until TIMESTAMP WITH TIME ZONE;
ALTER TABLE reconciler_instances ADD COLUMN backend_pid INTEGER;
UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';
CREATE TABLE job_events (
	id SERIAL NOT NULL, 
	job_name VARCHAR(191) NOT NULL, 
	at TIMESTAMP WITH TIME ZONE NOT NULL, 
	action VARCHAR(16) NOT NULL, 
	status VARCHAR(16), 
	detail TEXT NOT NULL, 
	revision VARCHAR(64), 
	PRIMARY KEY (id)
);
CREATE INDEX ix_job_events_job_at ON job_events (job_name, at);
UPDATE alembic_version SET version_num='0003' WHERE alembic_version.version_num = '0002';
CREATE TABLE job_files (
	path TEXT NOT NULL, 
	digest VARCHAR(64) NOT NULL, 
	context VARCHAR(64) NOT NULL, 
	outcome JSONB NOT NULL, 
	recorded_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (path)
);
UPDATE alembic_version SET version_num='0004' WHERE alembic_version.version_num = '0003';
CREATE INDEX ix_scheduled_jobs_labels ON scheduled_jobs USING gin (labels jsonb_path_ops);
UPDATE alembic_version SET version_num='0005' WHERE alembic_version.version_num = '0004';
CREATE TABLE written_scheduler_rows (
	id VARCHAR(191) NOT NULL, 
	state_sha256 VARCHAR(64) NOT NULL, 
	spec_hash VARCHAR(64) NOT NULL, 
	revision VARCHAR(64), 
	code VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id)
);
UPDATE alembic_version SET version_num='0006' WHERE alembic_version.version_num = '0005';
CREATE TABLE table_changes (
	table_name VARCHAR(64) NOT NULL, 
	txid BIGINT NOT NULL, 
	changes BIGINT NOT NULL, 
	PRIMARY KEY (table_name, txid)
);
CREATE FUNCTION reconciler_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO table_changes (table_name, txid, changes)
    VALUES (TG_TABLE_NAME, txid_current(), 1)
    ON CONFLICT (table_name, txid) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER count_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON scheduled_jobs FOR EACH STATEMENT EXECUTE FUNCTION reconciler_count_change();
ALTER TABLE scheduled_jobs ENABLE ALWAYS TRIGGER count_changes;
CREATE TRIGGER count_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON apscheduler_jobs FOR EACH STATEMENT EXECUTE FUNCTION reconciler_count_change();
ALTER TABLE apscheduler_jobs ENABLE ALWAYS TRIGGER count_changes;
UPDATE alembic_version SET version_num='0007' WHERE alembic_version.version_num = '0006';
ALTER TABLE reconcile_runs ADD COLUMN renamed INTEGER DEFAULT '0' NOT NULL;
UPDATE alembic_version SET version_num='0008' WHERE alembic_version.version_num = '0007';
