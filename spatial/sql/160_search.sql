-- 160_search: the map widget's search box (GET /search, spatial/search.py).
-- Addresses and names of buildings and compounds, household numbers (room_no,
-- optionally with their building's name or address) and alley names, matched
-- by substring (ILIKE) through pg_trgm GIN indexes.
--
-- onemap.search runs as its caller (SECURITY INVOKER): called on a
-- request_connection, the tables' row-level security decides what is found —
-- a grid worker finds the households of their grid only, external systems and
-- the public none (130_access.sql).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX IF NOT EXISTS building_name_trgm_idx
    ON onemap.building USING gin (name gin_trgm_ops);
CREATE INDEX IF NOT EXISTS building_address_trgm_idx
    ON onemap.building USING gin (address gin_trgm_ops);
CREATE INDEX IF NOT EXISTS compound_name_trgm_idx
    ON onemap.compound USING gin (name gin_trgm_ops);
CREATE INDEX IF NOT EXISTS compound_address_trgm_idx
    ON onemap.compound USING gin (address gin_trgm_ops);
CREATE INDEX IF NOT EXISTS household_room_no_trgm_idx
    ON onemap.household USING gin (room_no gin_trgm_ops);
CREATE INDEX IF NOT EXISTS alley_name_trgm_idx
    ON onemap.alley USING gin (name gin_trgm_ops);

-- A LIKE pattern matching `term` anywhere, its wildcards taken literally.
CREATE OR REPLACE FUNCTION onemap.like_anywhere(term text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT '%' || replace(replace(replace(term, '\', '\\'), '%', '\%'), '_', '\_') || '%'
$$;

-- Rank of a match: 0 exact, 1 prefix, 2 elsewhere (lower first).
CREATE OR REPLACE FUNCTION onemap.match_rank(value text, term text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN lower(value) = lower(term) THEN 0
                WHEN strpos(lower(value), lower(term)) = 1 THEN 1
                ELSE 2 END
$$;

DROP FUNCTION IF EXISTS onemap.search(text, integer);
CREATE FUNCTION onemap.search(q text, lim integer)
RETURNS TABLE (kind text, collection text, id bigint, label text,
               lon double precision, lat double precision, bbox double precision[],
               rank integer)
LANGUAGE sql STABLE SECURITY INVOKER AS $$
WITH terms AS (
    SELECT array_agg(t) AS words
    FROM regexp_split_to_table(btrim(q), '\s+') AS t WHERE t <> ''
),
hits AS (
    -- buildings by name, then by address (an address is shown as such)
    (SELECT 'building' AS kind, 'building' AS collection, b.id,
            coalesce(b.name, b.address) AS label, b.geom,
            onemap.match_rank(b.name, q) AS rank
     FROM onemap.building b
     WHERE b.name ILIKE onemap.like_anywhere(q)
     ORDER BY rank, length(b.name), b.id LIMIT lim)
    UNION ALL
    (SELECT 'address', 'building', b.id, b.address, b.geom,
            onemap.match_rank(b.address, q)
     FROM onemap.building b
     WHERE b.address ILIKE onemap.like_anywhere(q)
       AND b.address IS DISTINCT FROM b.name
     ORDER BY 6, length(b.address), b.id LIMIT lim)
    UNION ALL
    (SELECT 'compound', 'compound', c.id, c.name, c.geom, onemap.match_rank(c.name, q)
     FROM onemap.compound c
     WHERE c.name ILIKE onemap.like_anywhere(q)
     ORDER BY 6, length(c.name), c.id LIMIT lim)
    UNION ALL
    (SELECT 'address', 'compound', c.id, c.address, c.geom, onemap.match_rank(c.address, q)
     FROM onemap.compound c
     WHERE c.address ILIKE onemap.like_anywhere(q)
       AND c.address IS DISTINCT FROM c.name
     ORDER BY 6, length(c.address), c.id LIMIT lim)
    UNION ALL
    (SELECT 'alley', 'alley', a.id, a.name, a.geom, onemap.match_rank(a.name, q)
     FROM onemap.alley a
     WHERE a.name ILIKE onemap.like_anywhere(q)
     ORDER BY 6, length(a.name), a.id LIMIT lim)
    UNION ALL
    -- households: one word matches the room number, every other word the
    -- room number or the building's name or address ("示范楼 3-2-501")
    -- (best rank per household first, then the best households: DISTINCT ON
    -- orders by id, so the LIMIT applies outside it)
    (SELECT * FROM (
     SELECT DISTINCT ON (h.id) 'household' AS kind, 'household' AS collection, h.id,
            concat_ws(' ', coalesce(b.address, b.name), h.room_no) AS label,
            coalesce(h.geom, u.geom, ST_PointOnSurface(b.geom)) AS geom,
            onemap.match_rank(h.room_no, w.word) AS rank
     FROM terms, unnest(terms.words) AS w(word)
     JOIN onemap.household h ON h.room_no ILIKE onemap.like_anywhere(w.word)
     JOIN onemap.building b ON b.id = h.building_id
     LEFT JOIN onemap.unit u ON u.id = h.unit_id
     WHERE NOT EXISTS (
         SELECT 1 FROM unnest(terms.words) AS o(word)
         WHERE NOT (h.room_no ILIKE onemap.like_anywhere(o.word)
                    OR b.name ILIKE onemap.like_anywhere(o.word)
                    OR b.address ILIKE onemap.like_anywhere(o.word)))
     ORDER BY h.id, 6) AS best
     ORDER BY best.rank, length(best.label), best.id
     LIMIT lim * 4)
)
SELECT h.kind, h.collection, h.id, h.label,
       ST_X(p.geom), ST_Y(p.geom),
       CASE WHEN GeometryType(h.geom) NOT IN ('POINT', 'MULTIPOINT') THEN
           ARRAY[ST_XMin(e.box), ST_YMin(e.box), ST_XMax(e.box), ST_YMax(e.box)] END,
       h.rank
FROM hits h
CROSS JOIN LATERAL (SELECT ST_Transform(ST_PointOnSurface(h.geom), 4326) AS geom) p
CROSS JOIN LATERAL (SELECT ST_Transform(h.geom, 4326)::box2d AS box) e
WHERE h.geom IS NOT NULL
ORDER BY h.rank, length(h.label), h.kind, h.id
LIMIT lim
$$;
COMMENT ON FUNCTION onemap.search(text, integer) IS
    'Search box of the map widget: buildings, compounds and their addresses, households '
    '(room_no, with building name/address), alleys; runs as the caller, so row-level '
    'security applies. Coordinates in EPSG:4326.';
