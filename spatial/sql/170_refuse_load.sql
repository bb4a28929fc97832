-- 170_refuse_load: refuse facilities by today's load, fresh in the tiles.
--
-- The published view layers.refuse_facility (layers/060_refuse.sql) shows each
-- facility's newest reading of the current local (Beijing) day from
-- onemap.refuse_load_reading, an internal table: the reading has no geometry
-- of its own, so 150_tiles.sql does not attach tile triggers to it. This file
-- does, with a box function announcing the facilities whose readings a
-- statement wrote, under the table refuse_load_reading; tiles/freshness.py maps that table to every layer set
-- whose views read it (information_schema.view_table_usage), so the
-- refuse_facility collection and the refuse theme drop exactly those tiles.
--
-- "Newest reading of facility F" is served by the unique B-tree index of
-- UNIQUE (facility_id, measured_at, stream) from 198_refuse_streams.sql, scanned backward
-- (Index Only Scan Backward, tests/tiles/test_refuse_load.py checks the plan):
-- a second (facility_id, measured_at DESC) index would only double the writes.

-- The facilities' points of some readings. SECURITY DEFINER: the writer of a
-- reading may not read every facility row it refers to.
CREATE OR REPLACE FUNCTION onemap.tile_box_refuse_facilities(facilities bigint[])
RETURNS box2d
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
    SELECT ST_Extent(f.geom) FROM onemap.refuse_facility f WHERE f.id = ANY (facilities)
$$;

-- The three statement triggers of 150_tiles.sql, boxed by the facilities.
SELECT onemap.ensure_tile_triggers(
    'onemap.refuse_load_reading',
    'onemap.tile_notify_via(''onemap.tile_box_refuse_facilities'', ''facility_id'')');
-- This file's first version had a trigger function of its own.
DROP FUNCTION IF EXISTS onemap.tile_notify_refuse_load();
