-- 180_network: the road and pipe networks as edge lists, for spatial/network.py
-- (graphs held in process) and for pgRouting (pgr_dijkstra, pgr_drivingDistance),
-- so both read the very same edges.
--
-- A road row is one edge between junctions (the generator nodes its linework;
-- see 040_roads_lighting.sql), but the table carries no node ids: a junction is
-- where rows end on the same point. onemap.network_vertex turns a point into a
-- bigint key on a 1e-6 degree grid (about 0.1 m): rows ending within the same
-- cell share a vertex. spatial/network.py reads the keys from the view, so its
-- node ids are pgRouting's vertex ids.
--
-- Pipe segments name their nodes (from_node_id, to_node_id), so the pipe edges
-- need no key.
--
-- The views are security_invoker: a caller reads them under its own row-level
-- security, as it reads the tables (road: audience public; pipes: internal).

-- Two float8 arguments, each used once, so that the planner inlines the body
-- into the view (a geometry argument used twice is not inlined: a call per
-- row cost twice as much as the arithmetic at scale L).
CREATE OR REPLACE FUNCTION onemap.network_vertex(x float8, y float8) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (floor((x + 180.0::float8) * 1e6::float8 + 0.5::float8)::bigint << 28)
         | floor((y + 90.0::float8) * 1e6::float8 + 0.5::float8)::bigint
$$;
COMMENT ON FUNCTION onemap.network_vertex(float8, float8) IS
    '网络节点键 — bigint key of a point (x, y in EPSG:4490) on a 1e-6 degree grid: '
    '(round((x + 180) * 1e6) << 28) | round((y + 90) * 1e6); road rows ending on the '
    'same key meet there';

CREATE OR REPLACE FUNCTION onemap.network_vertex(p geometry) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT onemap.network_vertex(ST_X(p), ST_Y(p))
$$;
COMMENT ON FUNCTION onemap.network_vertex(geometry) IS
    'onemap.network_vertex(x, y) of a point';

-- Roads: one row per road row, both ends as vertex keys, length in metres on
-- the ellipsoid. Direction of travel: geom's digitising direction when oneway.
CREATE OR REPLACE VIEW onemap.network_road_edge WITH (security_invoker = true) AS
SELECT r.id,
       onemap.network_vertex(ST_X(ST_StartPoint(r.geom)), ST_Y(ST_StartPoint(r.geom)))
           AS source,
       onemap.network_vertex(ST_X(ST_EndPoint(r.geom)), ST_Y(ST_EndPoint(r.geom))) AS target,
       ST_Length(r.geom::geography) AS length_m,
       r.oneway,
       r.road_class,
       r.geom
FROM onemap.road r;
COMMENT ON VIEW onemap.network_road_edge IS
    '道路网边 — road rows as graph edges (source/target: onemap.network_vertex of the '
    'ends; length_m on the ellipsoid) for spatial/network.py and pgRouting';

-- Pipes: segments that still carry something (abandoned ones are left out).
CREATE OR REPLACE VIEW onemap.network_pipe_edge WITH (security_invoker = true) AS
SELECT s.id,
       s.utility,
       s.from_node_id AS source,
       s.to_node_id AS target,
       ST_Length(s.geom::geography) AS length_m,
       s.status,
       s.geom
FROM onemap.pipe_segment s
WHERE s.status <> 'abandoned'
  AND s.from_node_id IS NOT NULL
  AND s.to_node_id IS NOT NULL;
COMMENT ON VIEW onemap.network_pipe_edge IS
    '管网边 — pipe segments (not abandoned, both nodes known) as graph edges, '
    'source = from_node_id, target = to_node_id (flow direction for drainage)';

GRANT SELECT ON onemap.network_road_edge, onemap.network_pipe_edge TO onemap_api;
GRANT EXECUTE ON FUNCTION onemap.network_vertex(float8, float8), onemap.network_vertex(geometry)
    TO onemap_api;
