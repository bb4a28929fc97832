-- 175_search_units: the search box finds admin units too — street offices,
-- communities and grids by name ("霞光里" → 霞光里社区, "双井街道").
--
-- A function of its own beside onemap.search (160_search.sql) rather than a
-- new version of it: a later change to 160 re-applies that file alone (its
-- checksum changed), which would silently drop units from a redefined
-- onemap.search. spatial/search.py merges both, ranked alike.
--
-- SECURITY INVOKER like onemap.search: admin units are public layers
-- (130_access.sql), so every caller, the anonymous public included, finds them;
-- row-level security still decides should that change.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX IF NOT EXISTS street_office_name_trgm_idx
    ON onemap.street_office USING gin (name gin_trgm_ops);
CREATE INDEX IF NOT EXISTS community_name_trgm_idx
    ON onemap.community USING gin (name gin_trgm_ops);
CREATE INDEX IF NOT EXISTS grid_name_trgm_idx
    ON onemap.grid USING gin (name gin_trgm_ops);

DROP FUNCTION IF EXISTS onemap.search_units(text, integer);
CREATE FUNCTION onemap.search_units(q text, lim integer)
RETURNS TABLE (kind text, collection text, id bigint, label text,
               lon double precision, lat double precision, bbox double precision[],
               rank integer)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
WITH hits AS (
    (SELECT 'street_office' AS kind, 'street_office' AS collection, s.id,
            s.name AS label, s.geom, onemap.match_rank(s.name, q) AS rank
     FROM onemap.street_office s
     WHERE s.name ILIKE onemap.like_anywhere(q)
     ORDER BY 6, length(s.name), s.id LIMIT lim)
    UNION ALL
    (SELECT 'community', 'community', c.id, c.name, c.geom, onemap.match_rank(c.name, q)
     FROM onemap.community c
     WHERE c.name ILIKE onemap.like_anywhere(q)
     ORDER BY 6, length(c.name), c.id LIMIT lim)
    UNION ALL
    (SELECT 'grid', 'grid', g.id, g.name, g.geom, onemap.match_rank(g.name, q)
     FROM onemap.grid g
     WHERE g.name ILIKE onemap.like_anywhere(q)
     ORDER BY 6, length(g.name), g.id LIMIT lim)
)
SELECT h.kind, h.collection, h.id, h.label,
       ST_X(p.geom), ST_Y(p.geom),
       ARRAY[ST_XMin(e.box), ST_YMin(e.box), ST_XMax(e.box), ST_YMax(e.box)],
       h.rank
FROM hits h
CROSS JOIN LATERAL (SELECT ST_Transform(ST_PointOnSurface(h.geom), 4326) AS geom) p
CROSS JOIN LATERAL (SELECT ST_Transform(h.geom, 4326)::box2d AS box) e
ORDER BY h.rank, length(h.label), h.kind, h.id
LIMIT lim
$$;
COMMENT ON FUNCTION onemap.search_units(text, integer) IS
    'Search box of the map widget, admin units: street offices, communities and grids by '
    'name; runs as the caller. Coordinates in EPSG:4326. Merged with onemap.search by '
    'spatial/search.py.';
