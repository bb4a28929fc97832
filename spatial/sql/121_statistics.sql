-- Grid drill-down statistics: counts per building, aggregated up the hierarchy in
-- Python (scenarios/grid_statistics.py). Only counts leave this function, never a
-- resident's fields.

CREATE OR REPLACE FUNCTION onemap.building_statistics(building_ids bigint[], as_of date)
RETURNS TABLE (building_id bigint, households bigint, occupied bigint, residents bigint,
               elderly bigint, tags jsonb)
LANGUAGE sql STABLE PARALLEL SAFE AS
$$
    WITH h AS (
        SELECT h.building_id, count(*) AS households,
               count(*) FILTER (WHERE h.occupancy <> 'vacant') AS occupied
        FROM onemap.household h
        WHERE h.building_id = ANY (building_ids)
        GROUP BY h.building_id
    ), r AS (
        SELECT h.building_id, r.id, r.tags,
               coalesce(date_part('year', age(as_of, r.birth_date)),
                        date_part('year', as_of) - r.birth_year) AS age
        FROM onemap.resident r JOIN onemap.household h ON h.id = r.household_id
        WHERE h.building_id = ANY (building_ids)
    ), per_building AS (
        SELECT building_id, count(*) AS residents, count(*) FILTER (WHERE age >= 65) AS elderly
        FROM r GROUP BY building_id
    ), per_tag AS (
        SELECT building_id, jsonb_object_agg(tag, n) AS tags
        FROM (SELECT building_id, tag, count(*) AS n
              FROM r, unnest(r.tags) AS tag GROUP BY building_id, tag) t
        GROUP BY building_id
    )
    SELECT h.building_id, h.households, h.occupied, coalesce(p.residents, 0),
           coalesce(p.elderly, 0), coalesce(t.tags, '{}'::jsonb)
    FROM h LEFT JOIN per_building p USING (building_id) LEFT JOIN per_tag t USING (building_id)
$$;

COMMENT ON FUNCTION onemap.building_statistics(bigint[], date) IS
    '楼栋人口统计 / households, residents, elderly (65+ on as_of) and residents per tag for buildings';
