-- 150_tiles: what changed where, for the vector-tile cache (tiles/freshness.py).
--
-- Every table a layer view reads (the tables of onemap.layer_access with a
-- geometry, and residents, which are mapped at their household's point) gets
-- three statement-level AFTER triggers (INSERT, UPDATE, DELETE) with
-- transition tables. Once per statement they bump onemap.tile_version for the
-- table and send NOTIFY onemap_tiles with the EPSG:4490 bounding box of the
-- old and new geometries:
--
--     {"table": "lamp", "version": 12, "bbox": [116.47, 39.92, 116.48, 39.93]}
--
-- One box per statement keeps the payload far below NOTIFY's 8000 bytes
-- whatever the statement touched (an `onemap import` of 300,000 rows sends
-- one message). "bbox" is null when no old or new row had a geometry.
-- Notifications go out at commit, so a rolled-back edit sends nothing, and
-- every server process listening drops exactly the cached tiles the box
-- touches. The owner's bulk loads fire the triggers as API writes do.
--
-- Aggregated tiles draw some features at another feature's place: households
-- and residents are counted at their building, buildings at their compound.
-- Those places are added to the box so the counts are refreshed too.

CREATE TABLE IF NOT EXISTS onemap.tile_version (
    table_name  text PRIMARY KEY,
    version     bigint NOT NULL DEFAULT 0,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.tile_version IS
    '瓦片数据版本 — bumped once per writing statement on a tiled table (150_tiles.sql); '
    'tile caches compare it to find changes made while they were not listening';

-- Bump the table's version and announce the box. SECURITY DEFINER: the
-- serving role writes layers but has no grant on tile_version.
CREATE OR REPLACE FUNCTION onemap.tile_changed(tbl text, box box2d) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
DECLARE
    v bigint;
BEGIN
    INSERT INTO onemap.tile_version AS t (table_name, version, changed_at)
    VALUES (tbl, 1, now())
    ON CONFLICT (table_name) DO UPDATE SET version = t.version + 1, changed_at = now()
    RETURNING t.version INTO v;
    PERFORM pg_notify('onemap_tiles', json_build_object(
        'table', tbl,
        'version', v,
        'bbox', CASE WHEN box IS NULL THEN NULL
                     ELSE json_build_array(ST_XMin(box), ST_YMin(box),
                                           ST_XMax(box), ST_YMax(box)) END)::text);
END;
$$;
COMMENT ON FUNCTION onemap.tile_changed(text, box2d) IS
    'bump tile_version and NOTIFY onemap_tiles {table, version, bbox (EPSG:4490)}';

-- Two boxes in one (either may be null).
CREATE OR REPLACE FUNCTION onemap.tile_box_union(a box2d, b box2d) RETURNS box2d
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a
                ELSE ST_MakeBox2D(ST_MakePoint(least(ST_XMin(a), ST_XMin(b)),
                                               least(ST_YMin(a), ST_YMin(b))),
                                  ST_MakePoint(greatest(ST_XMax(a), ST_XMax(b)),
                                               greatest(ST_YMax(a), ST_YMax(b)))) END
$$;

-- The generic trigger: old ∪ new geom of the statement's rows. plpgsql
-- compiles a trigger function per table and parses a statement when it first
-- runs it, so each branch below only names the transition tables its
-- operation has.
CREATE OR REPLACE FUNCTION onemap.tile_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    box box2d;
    box_old box2d;
    n bigint;
    n_old bigint := 0;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*), ST_Extent(geom) INTO n, box FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT count(*), ST_Extent(geom) INTO n, box FROM old_rows;
    ELSE
        SELECT count(*), ST_Extent(geom) INTO n, box FROM new_rows;
        SELECT count(*), ST_Extent(geom) INTO n_old, box_old FROM old_rows;
    END IF;
    IF n + n_old > 0 THEN  -- an UPDATE or DELETE matching no row changes no tile
        PERFORM onemap.tile_changed(TG_TABLE_NAME, onemap.tile_box_union(box, box_old));
    END IF;
    RETURN NULL;
END;
$$;

-- Households: their points and their buildings (counted per building).
CREATE OR REPLACE FUNCTION onemap.tile_box_households(geoms geometry[], buildings bigint[])
RETURNS box2d
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
    SELECT ST_Extent(g) FROM (
        SELECT unnest(geoms) AS g
        UNION ALL
        SELECT b.geom FROM onemap.building b WHERE b.id = ANY (buildings)
    ) AS u
$$;


-- Residents have no geometry of their own: the layer draws them at their
-- household's point (layers/010_admin.sql); counts go to the building.
CREATE OR REPLACE FUNCTION onemap.tile_box_residents(households bigint[]) RETURNS box2d
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
    SELECT ST_Extent(g) FROM (
        SELECT h.geom AS g FROM onemap.household h WHERE h.id = ANY (households)
        UNION ALL
        SELECT b.geom FROM onemap.building b
        WHERE b.id IN (SELECT h.building_id FROM onemap.household h
                       WHERE h.id = ANY (households))
    ) AS u
$$;


-- Buildings: their footprints and their compounds (counted per compound).
CREATE OR REPLACE FUNCTION onemap.tile_box_buildings(geoms geometry[], compounds bigint[])
RETURNS box2d
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
    SELECT ST_Extent(g) FROM (
        SELECT unnest(geoms) AS g
        UNION ALL
        SELECT c.geom FROM onemap.compound c WHERE c.id = ANY (compounds)
    ) AS u
$$;


-- Tables whose rows also change tiles elsewhere (households and residents are
-- counted at their building, buildings at their compound; 170_refuse_load.sql
-- adds readings drawn at their facility): the trigger is given a box function
-- and the columns whose arrays it takes, e.g.
-- tile_notify_via('onemap.tile_box_households', 'geom', 'building_id') calls
-- onemap.tile_box_households(array_agg(geom), array_agg(building_id)) over the
-- statement's old and new rows. Transition tables are visible to EXECUTE.
CREATE OR REPLACE FUNCTION onemap.tile_notify_via() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    box box2d;
    box_old box2d;
    n bigint := 0;
    n_old bigint := 0;
    call text;
BEGIN
    SELECT format('SELECT count(*), %s(%s) FROM %%I', TG_ARGV[0]::regproc,
                  string_agg(format('array_agg(%I)', c), ', ' ORDER BY i))
    INTO call
    FROM unnest(TG_ARGV[1:TG_NARGS - 1]) WITH ORDINALITY AS a (c, i);
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        EXECUTE format(call, 'new_rows') INTO n, box;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        EXECUTE format(call, 'old_rows') INTO n_old, box_old;
    END IF;
    IF n + n_old > 0 THEN
        PERFORM onemap.tile_changed(TG_TABLE_NAME, onemap.tile_box_union(box, box_old));
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION onemap.tile_notify_via() IS
    'statement trigger: notify onemap_tiles with the box TG_ARGV[0](array_agg(TG_ARGV[1]), ...) '
    'gives for the old and new rows';

-- Attach the three triggers to a table (re-runnable). A transition table
-- may serve only one event, hence one trigger per operation. ``call`` is the
-- trigger function call (default: the one this file chooses for the table);
-- a later migration passes its own (170_refuse_load.sql).
DROP FUNCTION IF EXISTS onemap.ensure_tile_triggers(regclass);  -- before ``call``
CREATE OR REPLACE FUNCTION onemap.ensure_tile_triggers(tbl regclass, call text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    rel text;
    fn text;
BEGIN
    SELECT c.relname INTO rel FROM pg_class c WHERE c.oid = tbl;
    fn := coalesce(call, CASE rel
        WHEN 'household' THEN 'onemap.tile_notify_via(''onemap.tile_box_households'', ''geom'', ''building_id'')'
        WHEN 'resident' THEN 'onemap.tile_notify_via(''onemap.tile_box_residents'', ''household_id'')'
        WHEN 'building' THEN 'onemap.tile_notify_via(''onemap.tile_box_buildings'', ''geom'', ''compound_id'')'
        ELSE 'onemap.tile_notify()' END);
    EXECUTE format('DROP TRIGGER IF EXISTS tile_insert ON %s', tbl);
    EXECUTE format('CREATE TRIGGER tile_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS '
                   'new_rows FOR EACH STATEMENT EXECUTE FUNCTION %s', tbl, fn);
    EXECUTE format('DROP TRIGGER IF EXISTS tile_update ON %s', tbl);
    EXECUTE format('CREATE TRIGGER tile_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS '
                   'old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION %s',
                   tbl, fn);
    EXECUTE format('DROP TRIGGER IF EXISTS tile_delete ON %s', tbl);
    EXECUTE format('CREATE TRIGGER tile_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS '
                   'old_rows FOR EACH STATEMENT EXECUTE FUNCTION %s', tbl, fn);
END;
$$;
COMMENT ON FUNCTION onemap.ensure_tile_triggers(regclass, text) IS
    '瓦片失效触发器 / attach the statement triggers that notify onemap_tiles';

-- Every table a layer may draw: layer_access tables with a geometry, and residents.
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN
        SELECT c.oid::regclass
        FROM onemap.layer_access a
        JOIN pg_class c ON c.oid = to_regclass(format('onemap.%I', a.table_name))
        WHERE a.table_name = 'resident'
           OR EXISTS (SELECT FROM pg_attribute x
                      WHERE x.attrelid = c.oid AND x.attname = 'geom' AND NOT x.attisdropped)
        ORDER BY a.table_name
    LOOP
        PERFORM onemap.ensure_tile_triggers(t);
    END LOOP;
END
$$;

-- Replaced by tile_notify_via (the triggers above no longer use them).
DROP FUNCTION IF EXISTS onemap.tile_notify_household();
DROP FUNCTION IF EXISTS onemap.tile_notify_resident();
DROP FUNCTION IF EXISTS onemap.tile_notify_building();

-- Scope classes of the tile cache (tiles/cache.py): may one tile of these
-- tables be served to everybody (every table public, its view unmasked), and
-- does a read policy look at the caller's own id (events a worker reported)?
-- Asked on the caller's connection, hence SECURITY DEFINER.
CREATE OR REPLACE FUNCTION onemap.tile_tables_class(tables text[],
                                                    OUT shared boolean, OUT per_user boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, onemap AS $$
    SELECT COALESCE(bool_and(a.audience = 'public'
                             AND NOT EXISTS (
                                 SELECT FROM pg_views v
                                 WHERE v.schemaname = 'layers' AND v.viewname = a.table_name
                                   AND (v.definition LIKE '%personal_access%'
                                        OR v.definition LIKE '%mask\_%'))), false)
               AND count(*) = cardinality(tables),
           EXISTS (SELECT FROM pg_policies p
                   WHERE p.schemaname = 'onemap' AND p.tablename = ANY (tables)
                     AND p.cmd IN ('SELECT', 'ALL')
                     AND p.qual LIKE '%request_user_id%')
    FROM onemap.layer_access a
    WHERE a.table_name = ANY (tables)
$$;
GRANT EXECUTE ON FUNCTION onemap.tile_tables_class(text[]) TO onemap_api;
