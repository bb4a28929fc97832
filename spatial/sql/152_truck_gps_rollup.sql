-- 152_truck_gps_rollup: GPS fixes counted per hour and per small Web Mercator cell,
-- for the low-zoom density tiles of truck_gps (layers/tiles.yml `rollup:`).
--
-- A zoom-10 tile over a day of fixes would otherwise count every fix of the day
-- (486,000 on the M city: 1.5 s per tile). The rollup holds one row per hour and
-- cell that has fixes; the tile sums whole hours from here and counts only the
-- fixes of the partial hours at the ends of its time window from truck_gps
-- itself, so its counts equal a count of the fixes.
--
-- Cells are 1/2^17 of the Web Mercator world (305.748 m, 16 pixels at zoom 13),
-- aligned to the world's origin, so they nest exactly in the cells of every
-- WebMercatorQuad grid level whose cells are at least this large. Tiles of the
-- lon/lat matrix sets place each cell's count at its centre (within 153 m).
--
-- Statement-level triggers on truck_gps keep it: inserts add, deletes subtract,
-- updates do both. Rows written straight into a partition bypass the parent's
-- statement triggers; onemap.rebuild_truck_gps_hourly() recounts everything.

-- The fixes of the partial hours are found by time: the BRIN index of 070 does
-- not help there (fixes arrive truck by truck, not in time order).
CREATE INDEX IF NOT EXISTS truck_gps_ts_btree_idx ON onemap.truck_gps (ts);

CREATE OR REPLACE FUNCTION onemap.gps_cell_m() RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 40075016.68557849 / 131072 $$;
COMMENT ON FUNCTION onemap.gps_cell_m() IS
    'side of a truck_gps_hourly cell in metres of EPSG:3857 (world / 2^17)';

-- Schema rollup: tables derived from the model and kept by triggers, read by
-- tiles; not layers of their own (nothing to publish, export or edit).
CREATE SCHEMA IF NOT EXISTS rollup;
COMMENT ON SCHEMA rollup IS
    '汇总表 — derived tables kept by triggers for low-zoom tiles (layers/tiles.yml rollup:)';
GRANT USAGE ON SCHEMA rollup TO onemap_api;
-- The first version of this migration kept the rollup in schema onemap.
DROP TABLE IF EXISTS onemap.truck_gps_hourly;

CREATE TABLE IF NOT EXISTS rollup.truck_gps_hourly (
    hour        timestamptz NOT NULL,
    cx          integer NOT NULL,
    cy          integer NOT NULL,
    count       integer NOT NULL CHECK (count >= 0),
    geom_3857   geometry(Point, 3857) NOT NULL,
    geom        geometry(Point, 4490) NOT NULL,
    PRIMARY KEY (hour, cx, cy)
);
COMMENT ON TABLE rollup.truck_gps_hourly IS
    '渣土车轨迹小时网格 — truck_gps fixes per UTC hour and 305.748 m Web Mercator cell '
    '(cx, cy from the world origin); geom_3857/geom: the cell centre. Kept by triggers.';
CREATE INDEX IF NOT EXISTS truck_gps_hourly_geom_3857_idx
    ON rollup.truck_gps_hourly USING gist (geom_3857);
CREATE INDEX IF NOT EXISTS truck_gps_hourly_geom_idx
    ON rollup.truck_gps_hourly USING gist (geom);

-- Readable exactly by those who may read truck_gps.
REVOKE ALL ON rollup.truck_gps_hourly FROM onemap_api;
GRANT SELECT ON rollup.truck_gps_hourly TO onemap_api;
ALTER TABLE rollup.truck_gps_hourly ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS audience_read ON rollup.truck_gps_hourly;
CREATE POLICY audience_read ON rollup.truck_gps_hourly FOR SELECT TO onemap_api
    USING ((SELECT onemap.can_read('truck_gps')));

-- Add (sign 1) or take away (sign -1) the fixes of a transition table, given as
-- the counts per hour and cell.
CREATE OR REPLACE FUNCTION rollup.truck_gps_hourly_add(hours timestamptz[], cxs integer[],
                                                       cys integer[], counts integer[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
BEGIN
    INSERT INTO rollup.truck_gps_hourly AS c (hour, cx, cy, count, geom_3857, geom)
    SELECT d.hour, d.cx, d.cy, d.n, p.g, ST_Transform(p.g, 4490)
    FROM unnest(hours, cxs, cys, counts) AS d(hour, cx, cy, n)
    CROSS JOIN LATERAL (
        SELECT ST_SetSRID(ST_MakePoint(
                   -20037508.342789244 + (d.cx + 0.5) * onemap.gps_cell_m(),
                   -20037508.342789244 + (d.cy + 0.5) * onemap.gps_cell_m()), 3857) AS g
    ) AS p
    WHERE d.n > 0
    ON CONFLICT (hour, cx, cy) DO UPDATE SET count = c.count + EXCLUDED.count;

    UPDATE rollup.truck_gps_hourly AS c SET count = greatest(c.count + d.n, 0)
    FROM unnest(hours, cxs, cys, counts) AS d(hour, cx, cy, n)
    WHERE d.n < 0 AND (c.hour, c.cx, c.cy) = (d.hour, d.cx, d.cy);

    DELETE FROM rollup.truck_gps_hourly AS c
    USING unnest(hours, cxs, cys, counts) AS d(hour, cx, cy, n)
    WHERE d.n < 0 AND c.count = 0 AND (c.hour, c.cx, c.cy) = (d.hour, d.cx, d.cy);
END
$$;
COMMENT ON FUNCTION rollup.truck_gps_hourly_add(timestamptz[], integer[], integer[], integer[]) IS
    'add signed counts per (hour, cx, cy) to truck_gps_hourly; cells reaching 0 are removed';

CREATE OR REPLACE FUNCTION rollup.truck_gps_hourly_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
DECLARE
    size CONSTANT double precision := onemap.gps_cell_m();
    origin CONSTANT double precision := -20037508.342789244;
    h timestamptz[]; x integer[]; y integer[]; n integer[];
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT array_agg(g.hour), array_agg(g.cx), array_agg(g.cy), array_agg(-g.n)
        INTO h, x, y, n
        FROM (SELECT date_trunc('hour', o.ts, 'UTC') AS hour,
                     floor((ST_X(o.geom_3857) - origin) / size)::int AS cx,
                     floor((ST_Y(o.geom_3857) - origin) / size)::int AS cy,
                     count(*)::int AS n
              FROM old_rows AS o WHERE o.geom_3857 IS NOT NULL
              GROUP BY 1, 2, 3) AS g;
        IF h IS NOT NULL THEN
            PERFORM rollup.truck_gps_hourly_add(h, x, y, n);
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT array_agg(g.hour), array_agg(g.cx), array_agg(g.cy), array_agg(g.n)
        INTO h, x, y, n
        FROM (SELECT date_trunc('hour', r.ts, 'UTC') AS hour,
                     floor((ST_X(r.geom_3857) - origin) / size)::int AS cx,
                     floor((ST_Y(r.geom_3857) - origin) / size)::int AS cy,
                     count(*)::int AS n
              FROM new_rows AS r WHERE r.geom_3857 IS NOT NULL
              GROUP BY 1, 2, 3) AS g;
        IF h IS NOT NULL THEN
            PERFORM rollup.truck_gps_hourly_add(h, x, y, n);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS gps_hourly_insert ON onemap.truck_gps;
CREATE TRIGGER gps_hourly_insert AFTER INSERT ON onemap.truck_gps
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rollup.truck_gps_hourly_trigger();
DROP TRIGGER IF EXISTS gps_hourly_update ON onemap.truck_gps;
CREATE TRIGGER gps_hourly_update AFTER UPDATE ON onemap.truck_gps
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rollup.truck_gps_hourly_trigger();
DROP TRIGGER IF EXISTS gps_hourly_delete ON onemap.truck_gps;
CREATE TRIGGER gps_hourly_delete AFTER DELETE ON onemap.truck_gps
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rollup.truck_gps_hourly_trigger();

-- Recount everything (after rows were written straight into a partition, or
-- to check the triggers); returns the number of cells.
CREATE OR REPLACE FUNCTION onemap.rebuild_truck_gps_hourly() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
DECLARE
    cells bigint;
BEGIN
    LOCK TABLE onemap.truck_gps IN SHARE MODE;  -- no fix is written meanwhile
    DELETE FROM rollup.truck_gps_hourly;
    INSERT INTO rollup.truck_gps_hourly (hour, cx, cy, count, geom_3857, geom)
    SELECT g.hour, g.cx, g.cy, g.n, p.g, ST_Transform(p.g, 4490)
    FROM (SELECT date_trunc('hour', t.ts, 'UTC') AS hour,
                 floor((ST_X(t.geom_3857) + 20037508.342789244) / onemap.gps_cell_m())::int AS cx,
                 floor((ST_Y(t.geom_3857) + 20037508.342789244) / onemap.gps_cell_m())::int AS cy,
                 count(*)::int AS n
          FROM onemap.truck_gps AS t WHERE t.geom_3857 IS NOT NULL
          GROUP BY 1, 2, 3) AS g
    CROSS JOIN LATERAL (
        SELECT ST_SetSRID(ST_MakePoint(
                   -20037508.342789244 + (g.cx + 0.5) * onemap.gps_cell_m(),
                   -20037508.342789244 + (g.cy + 0.5) * onemap.gps_cell_m()), 3857) AS g
    ) AS p;
    GET DIAGNOSTICS cells = ROW_COUNT;
    RETURN cells;
END
$$;
COMMENT ON FUNCTION onemap.rebuild_truck_gps_hourly() IS
    'recount truck_gps_hourly from truck_gps; returns the number of cells';

-- Fill it once on a database that already has fixes.
SELECT onemap.rebuild_truck_gps_hourly()
WHERE NOT EXISTS (SELECT FROM rollup.truck_gps_hourly)
  AND EXISTS (SELECT FROM onemap.truck_gps);
