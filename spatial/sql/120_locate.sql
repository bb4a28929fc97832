-- 属地原则: the admin units and grids a point falls in or lies near.
-- Distances in metres on the spheroid (geography), candidates found through the
-- GiST index with a degree box first.

CREATE OR REPLACE FUNCTION onemap.locate_candidates(p geometry, tolerance_m double precision)
RETURNS TABLE (level text, id bigint, code text, name text, parent_id bigint,
               distance_m double precision, inside boolean)
LANGUAGE sql STABLE PARALLEL SAFE AS
$$
    WITH q AS (
        SELECT ST_SetSRID(p, 4490) AS p,
               -- a box wide enough for the tolerance at Beijing's latitude and beyond
               tolerance_m / 60000.0 AS deg
    ), units AS (
        SELECT 'street_office' AS level, s.id, s.code, s.name, s.district_id AS parent_id, s.geom
        FROM onemap.street_office s, q WHERE s.geom && ST_Expand(q.p, q.deg)
        UNION ALL
        SELECT 'community', c.id, c.code, c.name, c.street_office_id, c.geom
        FROM onemap.community c, q WHERE c.geom && ST_Expand(q.p, q.deg)
        UNION ALL
        SELECT 'grid', g.id, g.code, g.name, g.community_id, g.geom
        FROM onemap.grid g, q WHERE g.geom && ST_Expand(q.p, q.deg)
    )
    SELECT u.level, u.id, u.code, u.name, u.parent_id,
           CASE WHEN ST_Intersects(u.geom, q.p) THEN 0.0
                ELSE ST_Distance(u.geom::geography, q.p::geography) END AS distance_m,
           ST_Intersects(u.geom, q.p) AS inside
    FROM units u, q
    WHERE ST_Intersects(u.geom, q.p)
       OR ST_DWithin(u.geom::geography, q.p::geography, tolerance_m)
$$;

COMMENT ON FUNCTION onemap.locate_candidates(geometry, double precision) IS
    '属地定位候选 / street offices, communities and grids containing a point or within tolerance_m of it';

CREATE OR REPLACE FUNCTION onemap.nearest_addresses(p geometry, max_m double precision)
RETURNS TABLE (kind text, id bigint, building_id bigint, label text, address text,
               distance_m double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS
$$
  SELECT * FROM (
    (SELECT 'building', b.id, b.id, b.name, b.address,
            ST_Distance(b.geom::geography, ST_SetSRID(p, 4490)::geography)
     FROM onemap.building b
     ORDER BY b.geom <-> ST_SetSRID(p, 4490) LIMIT 1)
    UNION ALL
    (SELECT 'household', h.id, h.building_id, h.room_no, b.address,
            ST_Distance(h.geom::geography, ST_SetSRID(p, 4490)::geography)
     FROM onemap.household h JOIN onemap.building b ON b.id = h.building_id
     WHERE h.geom IS NOT NULL
     ORDER BY h.geom <-> ST_SetSRID(p, 4490) LIMIT 1)
  ) nearest (kind, id, building_id, label, address, distance_m)
  WHERE nearest.distance_m <= max_m
$$;

COMMENT ON FUNCTION onemap.nearest_addresses(geometry, double precision) IS
    '最近楼栋与户室 / the nearest building and household within max_m of a point, with their address';
