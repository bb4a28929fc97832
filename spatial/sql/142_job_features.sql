-- 142_job_features: the features of a job's feature outputs, one row each
-- (spatial/jobs.py, spatial/job_layers.py).
--
-- A feature output (GeoJSON, application/geo+json) is also a map layer: its
-- features are stored here when the job completes, in the same transaction
-- as its completion, so /jobs/{id}/results/{output}/items pages them and
-- /jobs/{id}/results/{output}/tiles/... draws them (ST_AsMVT) without reading
-- the whole FeatureCollection. fid is the feature's place in its output
-- (1, 2, ...), feature_id its GeoJSON id. A system table like onemap.job:
-- owner connection only; a route reads it after spatial.jobs.get has said the
-- caller may see the job. The rows go with their output (dismissal deletes
-- the outputs, purging the job cascades).

CREATE TABLE IF NOT EXISTS onemap.job_feature (
    job_id          uuid NOT NULL,
    output_id       text NOT NULL,
    fid             bigint NOT NULL,
    feature_id      jsonb,
    geom            geometry(Geometry, 4490),
    properties      jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (job_id, output_id, fid),
    FOREIGN KEY (job_id, output_id) REFERENCES onemap.job_output (job_id, output_id)
        ON DELETE CASCADE
);
COMMENT ON TABLE onemap.job_feature IS
    '作业结果要素 — one feature of a job''s feature output (EPSG:4490), for paging and tiles';

CREATE INDEX IF NOT EXISTS job_feature_geom_idx ON onemap.job_feature USING gist (geom);
-- The stored EPSG:3857 column every geom table has (090_mercator.sql): the result's
-- tiles read it, as the tile engine's do.
SELECT onemap.ensure_mercator('onemap.job_feature');

-- Fill onemap.job_feature from a job's stored GeoJSON outputs (onemap.job_output).
-- A feature without a geometry (null) is kept, with a NULL geom.
CREATE OR REPLACE FUNCTION onemap.store_job_features(p_job uuid)
RETURNS bigint
LANGUAGE sql
AS $$
    WITH added AS (
        INSERT INTO onemap.job_feature (job_id, output_id, fid, feature_id, geom, properties)
        SELECT o.job_id, o.output_id, f.n, f.feature -> 'id',
               CASE WHEN jsonb_typeof(f.feature -> 'geometry') = 'object'
                    THEN ST_SetSRID(ST_GeomFromGeoJSON(f.feature -> 'geometry'), 4490) END,
               CASE WHEN jsonb_typeof(f.feature -> 'properties') = 'object'
                    THEN f.feature -> 'properties' ELSE '{}'::jsonb END
        FROM onemap.job_output o
        CROSS JOIN LATERAL jsonb_array_elements(o.value -> 'features')
            WITH ORDINALITY AS f(feature, n)
        WHERE o.job_id = p_job
          AND split_part(lower(o.media_type), ';', 1) = 'application/geo+json'
          AND jsonb_typeof(o.value -> 'features') = 'array'
        RETURNING 1
    )
    SELECT count(*) FROM added
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'onemap_api') THEN
        REVOKE ALL ON onemap.job_feature FROM onemap_api;
        REVOKE ALL ON FUNCTION onemap.store_job_features(uuid) FROM PUBLIC, onemap_api;
    END IF;
END
$$;
