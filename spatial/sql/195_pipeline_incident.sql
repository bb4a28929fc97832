-- 195_pipeline_incident: what a pipe incident (地下管线事故) reaches, for the
-- pipeline-incident process (scenarios/processes/pipeline_incident.py). The
-- network analysis (valves to close, isolated and cut-off pipes) is
-- scenarios/pipeline.py; these functions take its answer — pipe segment ids —
-- to buildings, households, key units, hazard sources and roads.
--
-- The functions reaching key units, hazard sources and roads run as the owner
-- and check the caller's right to read each table themselves
-- (onemap.can_read: pipes and hazard sources internal, roads and key units
-- public; none is scoped by admin unit): under row-level security PostgreSQL
-- may not use a spatial index for PostGIS's && (not leakproof), so as the
-- caller each was a scan of the whole table (85 ms for the roads at L).
-- pipe_incident_buildings counts households and residents of
-- every affected building whoever asks (a duty officer must know how many lose
-- supply outside their own scope): counts only, never a resident's field, and
-- only to callers who may read the pipe network. Names and phones are read
-- from layers.resident on the caller's connection (scope and masking of
-- 130_access.sql).

-- The default impact radius (影响半径) per utility and pressure class, declared
-- as data: an operator tunes a row without a release, and the process reads
-- the row for the failed segment's utility and pressure class ('any': the
-- utility's default). This file is the source of truth; re-running it resets
-- the rows listed here, as 130_access.sql does for layer_access.
CREATE TABLE IF NOT EXISTS onemap.pipe_incident_radius (
    utility         text NOT NULL
                    CHECK (utility IN ('water', 'drainage', 'gas', 'heat', 'power', 'telecom')),
    pressure_class  text NOT NULL DEFAULT 'any'
                    CHECK (pressure_class IN ('any', 'gravity', 'low', 'medium_b', 'medium_a',
                                              'sub_high_b', 'sub_high_a', 'high_b', 'high_a')),
    radius_m        double precision NOT NULL CHECK (radius_m > 0 AND radius_m <= 5000),
    road_buffer_m   double precision NOT NULL CHECK (road_buffer_m >= 0 AND road_buffer_m <= 500),
    basis           text NOT NULL,
    PRIMARY KEY (utility, pressure_class)
);
COMMENT ON TABLE onemap.pipe_incident_radius IS
    '管线事故影响半径 — default impact radius (key units and hazard sources within it) and '
    'road buffer (roads within it of the isolated pipes are closed) per utility and pressure '
    'class; pressure_class ''any'' is the utility''s default. Planning defaults, not a standard.';

INSERT INTO onemap.pipe_incident_radius AS r
    (utility, pressure_class, radius_m, road_buffer_m, basis)
VALUES
    ('water',    'any',        50,  30, '爆管冲刷、路面塌陷 / burst scour and road collapse'),
    ('drainage', 'any',        50,  30, '冒溢、路面塌陷 / overflow and road collapse'),
    ('heat',     'any',       100,  30, '高温水汽烫伤 / scalding water and steam'),
    ('gas',      'any',       100,  30, '燃气泄漏警戒区 / gas leak cordon'),
    ('gas',      'low',        50,  30, '低压燃气泄漏警戒区 / low-pressure gas leak cordon'),
    ('gas',      'medium_b',  100,  30, '中压B燃气泄漏警戒区 / medium-pressure B cordon'),
    ('gas',      'medium_a',  150,  30, '中压A燃气泄漏警戒区 / medium-pressure A cordon'),
    ('gas',      'sub_high_b', 300, 50, '次高压B燃气泄漏警戒区 / sub-high-pressure B cordon'),
    ('gas',      'sub_high_a', 300, 50, '次高压A燃气泄漏警戒区 / sub-high-pressure A cordon'),
    ('gas',      'high_b',    500,  50, '高压B燃气泄漏警戒区 / high-pressure B cordon'),
    ('gas',      'high_a',    500,  50, '高压A燃气泄漏警戒区 / high-pressure A cordon'),
    ('power',    'any',        30,  20, '电缆故障 / cable fault'),
    ('telecom',  'any',        20,  20, '通信管线故障 / telecom duct fault')
ON CONFLICT (utility, pressure_class) DO UPDATE
SET radius_m = EXCLUDED.radius_m, road_buffer_m = EXCLUDED.road_buffer_m, basis = EXCLUDED.basis;

GRANT SELECT ON onemap.pipe_incident_radius TO onemap_api;

-- The row for a utility and pressure class: the class's own, else 'any'.
CREATE OR REPLACE FUNCTION onemap.pipe_incident_defaults(utility text, pressure_class text)
RETURNS TABLE (radius_m double precision, road_buffer_m double precision, basis text,
               pressure_class text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT r.radius_m, r.road_buffer_m, r.basis, r.pressure_class
    FROM onemap.pipe_incident_radius r
    WHERE r.utility = $1 AND r.pressure_class IN (COALESCE($2, 'any'), 'any')
    ORDER BY r.pressure_class = 'any'
    LIMIT 1
$$;
COMMENT ON FUNCTION onemap.pipe_incident_defaults(text, text) IS
    '管线事故默认半径 — radius_m, road_buffer_m and basis for a utility and pressure class';
GRANT EXECUTE ON FUNCTION onemap.pipe_incident_defaults(text, text) TO onemap_api;

-- The pipe segment of a utility nearest to a point (EPSG:4490), within max_m
-- metres on the ellipsoid; no row when none is that close. Abandoned pipes
-- carry nothing and are left out.
CREATE OR REPLACE FUNCTION onemap.pipe_nearest_segment(utility text, p geometry, max_m float8)
RETURNS TABLE (segment_id bigint, distance_m double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT s.id, ST_Distance(s.geom::geography, ST_SetSRID($2, 4490)::geography) AS d
    FROM (SELECT id, geom FROM onemap.pipe_segment
          WHERE pipe_segment.utility = $1 AND status <> 'abandoned'
          ORDER BY geom <-> ST_SetSRID($2, 4490)
          LIMIT 8) s
    WHERE ST_DWithin(s.geom::geography, ST_SetSRID($2, 4490)::geography, $3)
    ORDER BY d, s.id
    LIMIT 1
$$;
COMMENT ON FUNCTION onemap.pipe_nearest_segment(text, geometry, float8) IS
    '最近管段 — the segment of a utility nearest to a point within max_m metres';
GRANT EXECUTE ON FUNCTION onemap.pipe_nearest_segment(text, geometry, float8) TO onemap_api;

-- From an alarm to a plan: the segment a sensor alarm most likely concerns.
-- The sensor's own segment; else, for a sensor at a node, the widest segment
-- of its utility ending there (the main rather than a service pipe); else the
-- segment of its utility nearest to the sensor within max_m. how says which.
CREATE OR REPLACE FUNCTION onemap.pipe_alarm_segment(alarm bigint, max_m float8)
RETURNS TABLE (alarm_id bigint, sensor_id bigint, sensor_code text, utility text, level text,
               raised_at timestamptz, cleared_at timestamptz, segment_id bigint,
               distance_m double precision, how text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH a AS (
        SELECT al.id, al.sensor_id, se.code, COALESCE(se.utility, seg.utility, nd.utility) AS utility,
               al.level, al.at, al.cleared_at, se.geom, se.segment_id, se.node_id
        FROM onemap.sensor_alarm al
        JOIN onemap.sensor se ON se.id = al.sensor_id
        LEFT JOIN onemap.pipe_segment seg ON seg.id = se.segment_id
        LEFT JOIN onemap.pipe_node nd ON nd.id = se.node_id
        WHERE al.id = $1
    )
    SELECT a.id, a.sensor_id, a.code, a.utility, a.level, a.at, a.cleared_at, c.segment_id,
           c.distance_m, c.how
    FROM a
    LEFT JOIN LATERAL (
        SELECT * FROM (
            SELECT s.id AS segment_id, 0::float8 AS distance_m, 'sensor_segment' AS how, 1 AS pref,
                   0::float8 AS width
            FROM onemap.pipe_segment s WHERE s.id = a.segment_id AND s.status <> 'abandoned'
            UNION ALL
            SELECT s.id, ST_Distance(s.geom::geography, a.geom::geography), 'sensor_node', 2,
                   -COALESCE(s.diameter_mm, 0)
            FROM onemap.pipe_segment s
            WHERE a.node_id IS NOT NULL AND s.utility = a.utility AND s.status <> 'abandoned'
              AND a.node_id IN (s.from_node_id, s.to_node_id)
            UNION ALL
            SELECT n.segment_id, n.distance_m, 'nearest', 3, 0
            FROM onemap.pipe_nearest_segment(a.utility, a.geom, $2) n
            WHERE a.utility IS NOT NULL
        ) k
        ORDER BY k.pref, k.width, k.distance_m, k.segment_id
        LIMIT 1
    ) c ON true
$$;
COMMENT ON FUNCTION onemap.pipe_alarm_segment(bigint, float8) IS
    '报警定位管段 — the alarm, its sensor and the segment it most likely concerns '
    '(sensor_segment, sensor_node: the widest segment at the sensor''s node, or nearest '
    'within max_m); segment_id NULL when none';
GRANT EXECUTE ON FUNCTION onemap.pipe_alarm_segment(bigint, float8) TO onemap_api;

-- Buildings served by the service connections (接户点) at either end of the
-- given segments, with their households and residents counted whoever asks
-- (see the head of this file); no rows for a caller who may not read pipes.
CREATE OR REPLACE FUNCTION onemap.pipe_incident_buildings(segment_ids bigint[])
RETURNS TABLE (building_id bigint, node_id bigint, segment_id bigint, households bigint,
               occupied bigint, residents bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
    WITH sc AS (
        SELECT DISTINCT ON (n.building_id) n.building_id, n.id AS node_id, s.id AS segment_id
        FROM onemap.pipe_segment s
        JOIN onemap.pipe_node n ON n.id IN (s.from_node_id, s.to_node_id)
        WHERE s.id = ANY ($1) AND n.kind = 'service_connection' AND n.building_id IS NOT NULL
          AND (SELECT onemap.can_read('pipe_segment')) AND (SELECT onemap.can_read('pipe_node'))
        ORDER BY n.building_id, n.id
    ), h AS (
        SELECT h.building_id, count(*) AS households,
               count(*) FILTER (WHERE h.occupancy <> 'vacant') AS occupied
        FROM onemap.household h WHERE h.building_id IN (SELECT building_id FROM sc)
        GROUP BY h.building_id
    ), r AS (
        SELECT h.building_id, count(*) AS residents
        FROM onemap.resident r JOIN onemap.household h ON h.id = r.household_id
        WHERE h.building_id IN (SELECT building_id FROM sc)
        GROUP BY h.building_id
    )
    SELECT sc.building_id, sc.node_id, sc.segment_id, COALESCE(h.households, 0),
           COALESCE(h.occupied, 0), COALESCE(r.residents, 0)
    FROM sc LEFT JOIN h USING (building_id) LEFT JOIN r USING (building_id)
    ORDER BY sc.building_id
$$;
COMMENT ON FUNCTION onemap.pipe_incident_buildings(bigint[]) IS
    '停供楼栋 — buildings whose service connection ends one of the segments, with household, '
    'occupied and resident counts (counts only; callers who may read the pipe network)';
REVOKE ALL ON FUNCTION onemap.pipe_incident_buildings(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION onemap.pipe_incident_buildings(bigint[]) TO onemap_api;

-- Key units (重点单位) cut off or within radius_m of the failed segment. A key
-- unit is cut off when a building losing supply holds its point, or when the
-- service connection of the utility nearest to it (within 150 m) is among
-- the cut-off nodes: key units carry no building link, the connection nearest
-- to the entrance stands for theirs.
CREATE OR REPLACE FUNCTION onemap.pipe_incident_key_units(failed_id bigint, radius_m float8,
                                                          cut_nodes bigint[],
                                                          cut_buildings bigint[])
RETURNS TABLE (id bigint, name text, kind text, people_count integer, cut_off boolean,
               in_range boolean, distance_m double precision, geom geometry)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
    WITH f AS (SELECT s.geom, s.utility FROM onemap.pipe_segment s
               WHERE s.id = $1 AND (SELECT onemap.can_read('pipe_segment'))
                 AND (SELECT onemap.can_read('key_unit'))),
    -- the only key units that can qualify, each found through an index: within
    -- the radius, in a cut-off building, or within 150 m of a cut-off node
    candidate AS (
        SELECT k.id FROM f JOIN onemap.key_unit k
          ON k.geom && ST_Expand(f.geom, $2 / 85000.0)
         AND ST_DWithin(k.geom::geography, f.geom::geography, $2)
        UNION
        SELECT k.id FROM f, onemap.building b JOIN onemap.key_unit k
          ON k.geom && b.geom AND ST_Intersects(b.geom, k.geom)
        WHERE b.id = ANY ($4)
        UNION
        SELECT k.id FROM f, onemap.pipe_node n JOIN onemap.key_unit k
          ON k.geom && ST_Expand(n.geom, 150 / 85000.0)
         AND ST_DWithin(n.geom::geography, k.geom::geography, 150)
        WHERE n.id = ANY ($3)
    ),
    k AS (
        SELECT k.*, ST_Distance(k.geom::geography, f.geom::geography) AS d,
               EXISTS (SELECT 1 FROM onemap.building b
                       WHERE b.id = ANY ($4) AND ST_Intersects(b.geom, k.geom))
               OR (SELECT n.id FROM onemap.pipe_node n
                   WHERE n.utility = f.utility AND n.kind = 'service_connection'
                     AND ST_DWithin(n.geom::geography, k.geom::geography, 150)
                   ORDER BY n.geom <-> k.geom, n.id LIMIT 1) = ANY ($3) AS cut
        FROM f, onemap.key_unit k WHERE k.id IN (SELECT candidate.id FROM candidate)
    )
    SELECT k.id, k.name, k.kind, k.people_count, k.cut, k.d <= $2, k.d, k.geom
    FROM k WHERE k.cut OR k.d <= $2
    ORDER BY k.d, k.id
$$;
COMMENT ON FUNCTION onemap.pipe_incident_key_units(bigint, float8, bigint[], bigint[]) IS
    '受影响重点单位 — key units cut off (in a cut-off building, or their nearest service '
    'connection is cut off) or within radius_m of the failed segment';
GRANT EXECUTE ON FUNCTION onemap.pipe_incident_key_units(bigint, float8, bigint[], bigint[])
    TO onemap_api;

-- Hazard sources (危险源) within radius_m of the failed segment.
CREATE OR REPLACE FUNCTION onemap.pipe_incident_hazards(failed_id bigint, radius_m float8)
RETURNS TABLE (id bigint, name text, kind text, level smallint, distance_m double precision,
               geom geometry)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
    SELECT h.id, h.name, h.kind, h.level, ST_Distance(h.geom::geography, s.geom::geography) AS d,
           h.geom
    FROM onemap.pipe_segment s
    JOIN onemap.hazard_source h
      ON h.geom && ST_Expand(s.geom, $2 / 85000.0)
     AND ST_DWithin(h.geom::geography, s.geom::geography, $2)
    WHERE s.id = $1
      AND (SELECT onemap.can_read('pipe_segment')) AND (SELECT onemap.can_read('hazard_source'))
    ORDER BY d, h.id
$$;
COMMENT ON FUNCTION onemap.pipe_incident_hazards(bigint, float8) IS
    '影响范围内危险源 — hazard sources within radius_m of the failed segment';
GRANT EXECUTE ON FUNCTION onemap.pipe_incident_hazards(bigint, float8) TO onemap_api;

-- Roads to close (交通管制): road rows within buffer_m of the failed segment or
-- of the isolated pipes (where crews dig), with their distance to the failed
-- segment and whether they run along it (within buffer_m of it).
CREATE OR REPLACE FUNCTION onemap.pipe_incident_roads(failed_id bigint, isolated_ids bigint[],
                                                      buffer_m float8)
RETURNS TABLE (id bigint, name text, road_class text, distance_m double precision,
               along_failed boolean, geom geometry)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
    WITH p AS (
        SELECT s.geom FROM onemap.pipe_segment s
        WHERE (s.id = $1 OR s.id = ANY ($2))
          AND (SELECT onemap.can_read('pipe_segment')) AND (SELECT onemap.can_read('road'))
    ), f AS (SELECT s.geom FROM onemap.pipe_segment s WHERE s.id = $1),
    near AS (
        SELECT DISTINCT r.id FROM onemap.road r JOIN p
          ON r.geom && ST_Expand(p.geom, $3 / 85000.0)
         AND ST_DWithin(r.geom::geography, p.geom::geography, $3)
    )
    SELECT r.id, r.name, r.road_class, ST_Distance(r.geom::geography, f.geom::geography) AS d,
           ST_DWithin(r.geom::geography, f.geom::geography, $3), r.geom
    FROM onemap.road r, f
    WHERE r.id IN (SELECT near.id FROM near)
    ORDER BY d, r.id
$$;
COMMENT ON FUNCTION onemap.pipe_incident_roads(bigint, bigint[], float8) IS
    '需管制道路 — road rows within buffer_m of the failed segment or the isolated pipes';
GRANT EXECUTE ON FUNCTION onemap.pipe_incident_roads(bigint, bigint[], float8) TO onemap_api;
