-- 140_jobs: durable jobs of OGC API Processes (spatial/jobs.py).
--
-- Every execution, synchronous or not, is a row here: its inputs, status,
-- progress and result live in PostgreSQL, so a job survives a server restart
-- and any server or `onemap worker` can run it or answer for it. Workers claim
-- accepted jobs with FOR UPDATE SKIP LOCKED and hold a lease they keep
-- renewing; a job whose lease ran out (its worker died) is accepted again, up
-- to max_attempts runs. Finished jobs expire after their retention.
--
-- A system table: read and written by the owner connection only, never by the
-- serving role onemap_api (results may hold what only the submitter may see).

CREATE TABLE IF NOT EXISTS onemap.job (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    process_id          text NOT NULL,
    status              text NOT NULL DEFAULT 'accepted'
                        CHECK (status IN ('accepted', 'running', 'successful', 'failed',
                                          'dismissed')),
    mode                text NOT NULL DEFAULT 'async' CHECK (mode IN ('sync', 'async')),
    inputs              jsonb NOT NULL DEFAULT '{}'::jsonb,
    response            text NOT NULL DEFAULT 'raw' CHECK (response IN ('raw', 'document')),
    result              jsonb,
    result_bytes        bytea,
    result_media_type   text,
    message             text,
    progress            smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    user_id             bigint,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    retention           interval NOT NULL DEFAULT interval '7 days'
                        CHECK (retention >= interval '0'),
    expires_at          timestamptz,
    lease_until         timestamptz,
    worker              text,
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts        integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    CONSTRAINT job_running_has_lease
        CHECK (status <> 'running' OR (lease_until IS NOT NULL AND worker IS NOT NULL)),
    CONSTRAINT job_one_result
        CHECK (result IS NULL OR result_bytes IS NULL)
);
COMMENT ON TABLE onemap.job IS
    '处理作业 — one execution of an OGC API process (sync or async): inputs, status, '
    'progress, result; claimed by workers under a lease; expires after its retention.';
COMMENT ON COLUMN onemap.job.user_id IS
    'app_user.id of the submitter (NULL: anonymous); the job runs as this user. '
    'No foreign key on purpose: deleting a user must not rewrite job history.';
COMMENT ON COLUMN onemap.job.result IS 'JSON result (application/json and +json media types)';
COMMENT ON COLUMN onemap.job.result_bytes IS 'any other result (an image, a GeoTIFF, text)';
COMMENT ON COLUMN onemap.job.message IS
    'status message shown to the client; for a failure a safe text (never SQL, a DSN or a '
    'path; the details are in the server log)';
COMMENT ON COLUMN onemap.job.lease_until IS
    'a running job belongs to its worker until then; the worker renews it while it runs';
COMMENT ON COLUMN onemap.job.expires_at IS
    'set when the job finishes (finished_at + retention); an expired job is gone for clients '
    'and purged by the workers';

-- the claim: oldest accepted job first
CREATE INDEX IF NOT EXISTS job_accepted_created_at_idx ON onemap.job (created_at)
    WHERE status = 'accepted';
-- the watch for workers that died: running jobs by lease
CREATE INDEX IF NOT EXISTS job_running_lease_until_idx ON onemap.job (lease_until)
    WHERE status = 'running';
CREATE INDEX IF NOT EXISTS job_expires_at_idx ON onemap.job (expires_at)
    WHERE expires_at IS NOT NULL;
-- a user's job list, newest first
CREATE INDEX IF NOT EXISTS job_user_id_created_at_idx ON onemap.job (user_id, created_at);

CREATE OR REPLACE TRIGGER job_touch BEFORE UPDATE ON onemap.job
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

-- Workers LISTEN on onemap_job: a job that becomes claimable wakes them at
-- commit instead of at their next poll.
CREATE OR REPLACE FUNCTION onemap.job_notify()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('onemap_job', NEW.process_id);
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION onemap.job_notify() IS
    '作业通知 — NOTIFY onemap_job (payload: the process id) when a job becomes claimable';

CREATE OR REPLACE TRIGGER job_accepted_notify AFTER INSERT ON onemap.job
    FOR EACH ROW WHEN (NEW.status = 'accepted') EXECUTE FUNCTION onemap.job_notify();
CREATE OR REPLACE TRIGGER job_requeued_notify AFTER UPDATE OF status ON onemap.job
    FOR EACH ROW WHEN (NEW.status = 'accepted' AND OLD.status <> 'accepted')
    EXECUTE FUNCTION onemap.job_notify();

-- Belt and braces: the serving role never reads jobs directly.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'onemap_api') THEN
        REVOKE ALL ON onemap.job FROM onemap_api;
    END IF;
END
$$;
