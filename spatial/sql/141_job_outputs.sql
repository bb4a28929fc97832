-- 141_job_outputs: a job's results stored per named output (spatial/jobs.py).
--
-- A process declares its outputs by id (OGC API Processes 1.0); a job stores
-- each one it produced as a row here, JSON as jsonb and anything else as
-- bytes, with its media type. The execute request's output selection
-- (`outputs`) and response form (`raw` / `document`) stay on the job, so
-- /jobs/{id}/results answers as the request asked. A system table like
-- onemap.job: owner connection only. The rows go with their job (dismissal
-- deletes them, purging the job cascades).

ALTER TABLE onemap.job ADD COLUMN IF NOT EXISTS outputs text[];
COMMENT ON COLUMN onemap.job.outputs IS
    'ids of the outputs the execute request selected (NULL: every declared output)';

CREATE TABLE IF NOT EXISTS onemap.job_output (
    job_id          uuid NOT NULL REFERENCES onemap.job (id) ON DELETE CASCADE,
    output_id       text NOT NULL,
    media_type      text NOT NULL,
    value           jsonb,
    value_bytes     bytea,
    PRIMARY KEY (job_id, output_id),
    CONSTRAINT job_output_one_value CHECK ((value IS NULL) <> (value_bytes IS NULL))
);
COMMENT ON TABLE onemap.job_output IS
    '作业输出 — one named output of a successful job: JSON (value) or bytes (value_bytes) '
    'with its media type';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'onemap_api') THEN
        REVOKE ALL ON onemap.job_output FROM onemap_api;
    END IF;
END
$$;
