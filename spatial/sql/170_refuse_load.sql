-- 170_refuse_load: refuse facilities by today's load, fresh in the tiles.
--
-- The published view layers.refuse_facility (layers/060_refuse.sql) shows each
-- facility's newest reading of the current local (Beijing) day from
-- onemap.refuse_load_reading, an internal table: the reading has no geometry
-- of its own, so 150_tiles.sql gives it no tile trigger. This one announces
-- the box of the facilities whose readings a statement wrote, under the table
-- refuse_load_reading; tiles/freshness.py maps that table to every layer set
-- whose views read it (information_schema.view_table_usage), so the
-- refuse_facility collection and the refuse theme drop exactly those tiles.
--
-- "Newest reading of facility F" is served by the unique B-tree index of
-- UNIQUE (facility_id, measured_at) from 060_refuse.sql, scanned backward
-- (Index Only Scan Backward, tests/tiles/test_refuse_load.py checks the plan):
-- a second (facility_id, measured_at DESC) index would only double the writes.

-- The facilities' points of some readings. SECURITY DEFINER: the writer of a
-- reading may not read every facility row it refers to.
CREATE OR REPLACE FUNCTION onemap.tile_box_refuse_facilities(facilities bigint[])
RETURNS box2d
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
    SELECT ST_Extent(f.geom) FROM onemap.refuse_facility f WHERE f.id = ANY (facilities)
$$;

CREATE OR REPLACE FUNCTION onemap.tile_notify_refuse_load() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    box box2d;
    box_old box2d;
    n bigint := 0;
    n_old bigint := 0;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT count(*), onemap.tile_box_refuse_facilities(array_agg(DISTINCT facility_id))
        INTO n, box FROM new_rows;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        SELECT count(*), onemap.tile_box_refuse_facilities(array_agg(DISTINCT facility_id))
        INTO n_old, box_old FROM old_rows;
    END IF;
    IF n + n_old > 0 THEN
        PERFORM onemap.tile_changed(TG_TABLE_NAME, onemap.tile_box_union(box, box_old));
    END IF;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION onemap.tile_notify_refuse_load() IS
    '负荷读数 → 瓦片失效 / a statement on refuse_load_reading notifies onemap_tiles with '
    'the box of the facilities it touched';

DROP TRIGGER IF EXISTS tile_insert ON onemap.refuse_load_reading;
CREATE TRIGGER tile_insert AFTER INSERT ON onemap.refuse_load_reading
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION onemap.tile_notify_refuse_load();
DROP TRIGGER IF EXISTS tile_update ON onemap.refuse_load_reading;
CREATE TRIGGER tile_update AFTER UPDATE ON onemap.refuse_load_reading
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION onemap.tile_notify_refuse_load();
DROP TRIGGER IF EXISTS tile_delete ON onemap.refuse_load_reading;
CREATE TRIGGER tile_delete AFTER DELETE ON onemap.refuse_load_reading
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION onemap.tile_notify_refuse_load();
