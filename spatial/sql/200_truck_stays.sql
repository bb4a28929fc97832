-- 200_truck_stays: a truck's stays and GPS gaps, derived from its fixes as they
-- are written (the geofencing a fleet platform does at ingest), so the spill
-- tracing (scenarios/spill_trace.py) reads a trip in a few index lookups instead
-- of the hours of fixes around each pass.
--
-- rollup.truck_stay: a run of two or more consecutive standing fixes of a truck
-- (speed below 5 km/h; without a reported speed, moved less than 5 km/h since the
-- fix before), each within 50 m of the one before, with the construction or
-- disposal site it stood at (within 40 m of the run's centre) or none. Stays at
-- sites are loading and unloading; long stays elsewhere are where a load could
-- have been dumped (偷倒).
--
-- rollup.truck_gps_gap: consecutive fixes of a truck more than 60 s apart (a
-- tunnel, a flaky terminal, a device switched off): the gaps a truck could have
-- passed a spot through unseen.
--
-- Statement-level triggers on truck_gps keep both exactly: the fixes around the
-- written ones are read again, from the fix before to the fix after, widened to
-- the stays they touch. Rows written straight into a partition bypass the
-- parent's triggers; onemap.rebuild_truck_stays() derives everything again (the
-- generator calls it after loading).

CREATE TABLE IF NOT EXISTS rollup.truck_stay (
    truck_id    bigint NOT NULL,
    first_ts    timestamptz NOT NULL,
    last_ts     timestamptz NOT NULL,
    fixes       integer NOT NULL CHECK (fixes >= 2),
    geom        geometry(Point, 4490) NOT NULL,
    site_kind   text CHECK (site_kind IN ('construction', 'disposal')),
    site_id     bigint,
    PRIMARY KEY (truck_id, first_ts),
    CHECK (last_ts >= first_ts),
    CHECK ((site_kind IS NULL) = (site_id IS NULL))
);
COMMENT ON TABLE rollup.truck_stay IS
    '渣土车停留 — runs of >= 2 consecutive standing fixes of a truck (< 5 km/h, each within '
    '50 m of the last); site_kind/site_id: the construction or disposal site within 40 m of '
    'its centre, NULL elsewhere. Kept by triggers on truck_gps.';
CREATE INDEX IF NOT EXISTS truck_stay_truck_last_idx ON rollup.truck_stay (truck_id, last_ts);

CREATE TABLE IF NOT EXISTS rollup.truck_gps_gap (
    truck_id    bigint NOT NULL,
    from_ts     timestamptz NOT NULL,
    to_ts       timestamptz NOT NULL,
    geom_from   geometry(Point, 4490) NOT NULL,
    geom_to     geometry(Point, 4490) NOT NULL,
    PRIMARY KEY (truck_id, from_ts),
    CHECK (to_ts > from_ts)
);
COMMENT ON TABLE rollup.truck_gps_gap IS
    '渣土车轨迹断点 — consecutive fixes of a truck more than 60 s apart: the fix before '
    '(from_ts, geom_from) and the fix after (to_ts, geom_to). Kept by triggers on truck_gps.';
CREATE INDEX IF NOT EXISTS truck_gps_gap_to_ts_idx ON rollup.truck_gps_gap (to_ts);

-- Readable exactly by those who may read truck_gps.
REVOKE ALL ON rollup.truck_stay, rollup.truck_gps_gap FROM onemap_api;
GRANT SELECT ON rollup.truck_stay, rollup.truck_gps_gap TO onemap_api;
ALTER TABLE rollup.truck_stay ENABLE ROW LEVEL SECURITY;
ALTER TABLE rollup.truck_gps_gap ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS audience_read ON rollup.truck_stay;
CREATE POLICY audience_read ON rollup.truck_stay FOR SELECT TO onemap_api
    USING ((SELECT onemap.can_read('truck_gps')));
DROP POLICY IF EXISTS audience_read ON rollup.truck_gps_gap;
CREATE POLICY audience_read ON rollup.truck_gps_gap FOR SELECT TO onemap_api
    USING ((SELECT onemap.can_read('truck_gps')));

-- Derive the stays and gaps of each truck between lo and hi (inclusive), from its
-- fixes there; the caller has removed what was derived in that span before.
CREATE OR REPLACE FUNCTION rollup.truck_stays_derive(trucks bigint[], los timestamptz[],
                                                     his timestamptz[])
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
    WITH span AS (SELECT * FROM unnest(trucks, los, his) AS s(truck_id, lo, hi)),
    f AS (
        SELECT g.truck_id, g.ts, g.geom, g.speed_kmh,
               lag(g.ts) OVER w AS pts, lag(g.geom) OVER w AS pgeom,
               lead(g.ts) OVER w AS nts, lead(g.geom) OVER w AS ngeom
        FROM span JOIN onemap.truck_gps AS g
          ON g.truck_id = span.truck_id AND g.ts BETWEEN span.lo AND span.hi
        WINDOW w AS (PARTITION BY g.truck_id ORDER BY g.ts)),
    m AS (  -- metres to the fix before (planar, near enough at 50 m)
        SELECT f.*, CASE WHEN f.pgeom IS NOT NULL THEN 111320.0 * sqrt(
                   ((ST_X(f.geom) - ST_X(f.pgeom)) * cos(radians(ST_Y(f.geom)))) ^ 2
                   + (ST_Y(f.geom) - ST_Y(f.pgeom)) ^ 2) END AS moved
        FROM f),
    s AS (
        SELECT m.*, coalesce(m.speed_kmh < 5,
                             m.moved IS NULL OR m.moved / greatest(extract(epoch FROM
                                 m.ts - m.pts), 1) * 3.6 < 5) AS standing
        FROM m),
    b AS (  -- a run breaks where a fix is not standing, or moved, or follows one moving
        SELECT s.*, CASE WHEN s.standing AND lag(s.standing) OVER w AND s.moved <= 50
                         THEN 0 ELSE 1 END AS brk
        FROM s WINDOW w AS (PARTITION BY s.truck_id ORDER BY s.ts)),
    r AS (
        SELECT b.*, sum(b.brk) OVER (PARTITION BY b.truck_id ORDER BY b.ts) AS run FROM b),
    stays AS (
        SELECT r.truck_id, min(r.ts) AS first_ts, max(r.ts) AS last_ts, count(*)::int AS n,
               ST_Centroid(ST_Collect(r.geom)) AS geom
        FROM r WHERE r.standing GROUP BY r.truck_id, r.run HAVING count(*) >= 2),
    ins_stays AS (
        INSERT INTO rollup.truck_stay (truck_id, first_ts, last_ts, fixes, geom, site_kind,
                                       site_id)
        SELECT st.truck_id, st.first_ts, st.last_ts, st.n, st.geom, site.kind, site.id
        FROM stays AS st
        LEFT JOIN LATERAL (
            SELECT x.kind, x.id FROM (
                SELECT 'construction' AS kind, c.id, c.geom FROM onemap.construction_site c
                WHERE ST_DWithin(c.geom, st.geom, 40 / 111320.0)
                UNION ALL
                SELECT 'disposal', d.id, d.geom FROM onemap.disposal_site d
                WHERE ST_DWithin(d.geom, st.geom, 40 / 111320.0)) AS x
            ORDER BY ST_Distance(x.geom, st.geom), x.kind, x.id LIMIT 1) AS site ON true
        ON CONFLICT (truck_id, first_ts) DO UPDATE SET last_ts = EXCLUDED.last_ts,
            fixes = EXCLUDED.fixes, geom = EXCLUDED.geom, site_kind = EXCLUDED.site_kind,
            site_id = EXCLUDED.site_id)
    INSERT INTO rollup.truck_gps_gap (truck_id, from_ts, to_ts, geom_from, geom_to)
    SELECT f.truck_id, f.ts, f.nts, f.geom, f.ngeom FROM f
    WHERE f.nts IS NOT NULL AND f.nts - f.ts > interval '60 seconds'
    ON CONFLICT (truck_id, from_ts) DO UPDATE SET to_ts = EXCLUDED.to_ts,
        geom_from = EXCLUDED.geom_from, geom_to = EXCLUDED.geom_to;
$$;

-- Fixes of trucks between lo and hi were written or removed: derive again what
-- they touch — from the fix before lo to the fix after hi, widened to the stays
-- overlapping that span (a stay is a run: its fixes outside the span still count).
CREATE OR REPLACE FUNCTION rollup.truck_stays_refresh(trucks bigint[], los timestamptz[],
                                                      his timestamptz[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
DECLARE
    t bigint[]; a timestamptz[]; b timestamptz[];
BEGIN
    WITH span AS (SELECT * FROM unnest(trucks, los, his) AS s(truck_id, lo, hi)),
    ab AS (
        SELECT span.truck_id,
               coalesce((SELECT max(g.ts) FROM onemap.truck_gps g WHERE g.truck_id =
                         span.truck_id AND g.ts < span.lo), span.lo) AS a,
               coalesce((SELECT min(g.ts) FROM onemap.truck_gps g WHERE g.truck_id =
                         span.truck_id AND g.ts > span.hi), span.hi) AS b
        FROM span),
    gone AS (
        DELETE FROM rollup.truck_stay AS st USING ab
        WHERE st.truck_id = ab.truck_id AND st.first_ts <= ab.b AND st.last_ts >= ab.a
        RETURNING st.truck_id, st.first_ts, st.last_ts),
    gaps AS (
        DELETE FROM rollup.truck_gps_gap AS gp USING ab
        -- every pair of fixes in [a, b] is derived again (a pair no longer consecutive
        -- has both ends there too)
        WHERE gp.truck_id = ab.truck_id AND gp.from_ts >= ab.a AND gp.to_ts <= ab.b)
    SELECT array_agg(w.truck_id), array_agg(w.a), array_agg(w.b) INTO t, a, b
    FROM (SELECT ab.truck_id, least(ab.a, min(gone.first_ts)) AS a,
                 greatest(ab.b, max(gone.last_ts)) AS b
          FROM ab LEFT JOIN gone ON gone.truck_id = ab.truck_id
          GROUP BY ab.truck_id, ab.a, ab.b) AS w;
    IF t IS NOT NULL THEN
        PERFORM rollup.truck_stays_derive(t, a, b);
    END IF;
END
$$;
COMMENT ON FUNCTION rollup.truck_stays_refresh(bigint[], timestamptz[], timestamptz[]) IS
    'derive truck_stay and truck_gps_gap again around fixes written or removed between '
    'lo and hi (per truck)';

CREATE OR REPLACE FUNCTION rollup.truck_stays_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
DECLARE
    t bigint[]; lo timestamptz[]; hi timestamptz[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(x.truck_id), array_agg(x.lo), array_agg(x.hi) INTO t, lo, hi
        FROM (SELECT truck_id, min(ts) AS lo, max(ts) AS hi FROM new_rows
              GROUP BY truck_id) AS x;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(x.truck_id), array_agg(x.lo), array_agg(x.hi) INTO t, lo, hi
        FROM (SELECT truck_id, min(ts) AS lo, max(ts) AS hi FROM old_rows
              GROUP BY truck_id) AS x;
    ELSE
        SELECT array_agg(x.truck_id), array_agg(x.lo), array_agg(x.hi) INTO t, lo, hi
        FROM (SELECT truck_id, min(ts) AS lo, max(ts) AS hi
              FROM (SELECT truck_id, ts FROM new_rows UNION ALL
                    SELECT truck_id, ts FROM old_rows) AS u
              GROUP BY truck_id) AS x;
    END IF;
    IF t IS NOT NULL THEN
        PERFORM rollup.truck_stays_refresh(t, lo, hi);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS truck_stays_insert ON onemap.truck_gps;
CREATE TRIGGER truck_stays_insert AFTER INSERT ON onemap.truck_gps
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rollup.truck_stays_trigger();
DROP TRIGGER IF EXISTS truck_stays_update ON onemap.truck_gps;
CREATE TRIGGER truck_stays_update AFTER UPDATE ON onemap.truck_gps
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rollup.truck_stays_trigger();
DROP TRIGGER IF EXISTS truck_stays_delete ON onemap.truck_gps;
CREATE TRIGGER truck_stays_delete AFTER DELETE ON onemap.truck_gps
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rollup.truck_stays_trigger();

-- Derive everything again (after rows were written straight into a partition,
-- or to check the triggers); returns the number of stays.
CREATE OR REPLACE FUNCTION onemap.rebuild_truck_stays() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
DECLARE
    t bigint[]; lo timestamptz[]; hi timestamptz[]; stays bigint;
BEGIN
    LOCK TABLE onemap.truck_gps IN SHARE MODE;  -- no fix is written meanwhile
    DELETE FROM rollup.truck_stay;
    DELETE FROM rollup.truck_gps_gap;
    SELECT array_agg(id), array_agg('-infinity'::timestamptz), array_agg('infinity'::timestamptz)
    INTO t, lo, hi FROM onemap.truck;
    IF t IS NOT NULL THEN
        PERFORM rollup.truck_stays_derive(t, lo, hi);
    END IF;
    SELECT count(*) INTO stays FROM rollup.truck_stay;
    RETURN stays;
END
$$;
COMMENT ON FUNCTION onemap.rebuild_truck_stays() IS
    'derive truck_stay and truck_gps_gap from truck_gps again; returns the number of stays';

-- Fill them once on a database that already has fixes.
SELECT onemap.rebuild_truck_stays()
WHERE NOT EXISTS (SELECT FROM rollup.truck_stay)
  AND EXISTS (SELECT FROM onemap.truck_gps);
