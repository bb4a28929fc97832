-- 196_refuse_placement: the demand of the refuse-building placement analysis
-- (垃圾楼空间分布优化, scenarios/refuse_placement.py).
--
-- SECURITY INVOKER: the caller's row-level security applies, so a building counts
-- only with the households (and residents) the caller may see — a grid worker's
-- analysis covers the homes of their grid. Counts only leave the function, never
-- a resident's field.

-- Residential buildings (at least one household the caller sees) of an admin unit
-- (level and id: through the building's grid, sub-grids included, as the grid
-- statistics count) or of a polygon (EPSG:4490; buildings whose representative
-- point lies in it), with their households and residents and their footprint.
CREATE OR REPLACE FUNCTION onemap.refuse_placement_demand(unit_level text, unit_id bigint,
                                                          area geometry)
RETURNS TABLE (building_id bigint, households bigint, residents bigint, geom geometry)
LANGUAGE plpgsql STABLE AS
$$
DECLARE
    ids bigint[];
BEGIN
    IF area IS NOT NULL THEN
        SELECT array_agg(b.id) INTO ids FROM onemap.building b
        WHERE ST_Intersects(area, b.geom) AND ST_Intersects(area, ST_PointOnSurface(b.geom));
    ELSIF unit_level = 'grid' THEN
        WITH RECURSIVE sub AS (
            SELECT g.id FROM onemap.grid g WHERE g.id = unit_id
            UNION ALL SELECT g.id FROM onemap.grid g JOIN sub ON g.parent_id = sub.id)
        SELECT array_agg(b.id) INTO ids FROM onemap.building b
        WHERE b.grid_id IN (SELECT id FROM sub);
    ELSIF unit_level = 'community' THEN
        SELECT array_agg(b.id) INTO ids FROM onemap.building b
        JOIN onemap.grid g ON g.id = b.grid_id WHERE g.community_id = unit_id;
    ELSIF unit_level = 'street_office' THEN
        SELECT array_agg(b.id) INTO ids FROM onemap.building b
        JOIN onemap.grid g ON g.id = b.grid_id
        JOIN onemap.community c ON c.id = g.community_id WHERE c.street_office_id = unit_id;
    ELSIF unit_level = 'district' THEN
        SELECT array_agg(b.id) INTO ids FROM onemap.building b
        JOIN onemap.grid g ON g.id = b.grid_id
        JOIN onemap.community c ON c.id = g.community_id
        JOIN onemap.street_office s ON s.id = c.street_office_id WHERE s.district_id = unit_id;
    ELSE
        RAISE EXCEPTION 'unit_level must be district, street_office, community or grid, got %',
            unit_level USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH h AS (
        SELECT h.building_id, count(*) AS households
        FROM onemap.household h WHERE h.building_id = ANY (ids) GROUP BY h.building_id
    ), r AS (
        SELECT h.building_id, count(*) AS residents
        FROM onemap.resident r JOIN onemap.household h ON h.id = r.household_id
        WHERE h.building_id = ANY (ids) GROUP BY h.building_id
    )
    SELECT b.id, h.households, coalesce(r.residents, 0), b.geom
    FROM onemap.building b JOIN h ON h.building_id = b.id
    LEFT JOIN r ON r.building_id = b.id
    WHERE b.id = ANY (ids)
    ORDER BY b.id;
END
$$;
COMMENT ON FUNCTION onemap.refuse_placement_demand(text, bigint, geometry) IS
    '垃圾楼选址需求 — residential buildings of an admin unit or a polygon with the households '
    'and residents the caller may see (counts only), for the refuse-placement analysis';
GRANT EXECUTE ON FUNCTION onemap.refuse_placement_demand(text, bigint, geometry) TO onemap_api;
