-- 168_road_lighting: which stretches of every road are lit, derived from the
-- lamps (道路亮灯状态), and kept current by triggers.
--
-- A lamp lights its own road (lamp.road_id) for onemap.lamp_reach_m(road_class)
-- metres either way along the road, measured from where the lamp projects onto
-- the centreline (ST_LineLocatePoint, in EPSG:4548 metres as truth.unlit_stretch
-- is). A lamp lights only when it works: lamp.status = 'working' and neither
-- its circuit nor the circuit's distribution box is off or faulty. The union
-- of the lit intervals is lit; every gap is unlit, and the non-working lamps
-- whose reach would cover the gap say why:
--
--   circuit_fault  one of them hangs on a circuit or box that is off/faulty
--   lamp_fault     otherwise, faulty lamps (ties with lamp_off go to fault)
--   lamp_off       otherwise, lamps switched off
--   no_lamp        no lamp would reach the gap at all
--
-- (the same rule democity/lighting.py uses to plant truth.unlit_stretch).
-- onemap.rebuild_road_lighting(road_ids) rewrites the segments of those roads
-- (all when NULL): lit and unlit pieces covering each road from fraction 0 to
-- 1 without overlap. Statement-level triggers on lamp, lamp_circuit,
-- distribution_box and road call it for the roads a statement touched; the
-- rewritten rows fire the tile triggers of road_lighting_segment
-- (150_tiles.sql), so tile caches drop the affected tiles.

-- A circuit can trip (跳闸) or fail on its own, with its box working.
ALTER TABLE onemap.lamp_circuit
    ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'working'
    CHECK (status IN ('working', 'off', 'fault'));
COMMENT ON COLUMN onemap.lamp_circuit.status IS
    'working 正常, off 断电/跳闸, fault 故障: the lamps of a circuit (or box) that is not working are dark';

-- The reach of a lamp, by road class: the largest design spacing of the class
-- (CJJ 45: spacing about three to four mounting heights). The generator reads
-- it from here (democity/lighting.py), so the truth it plants and this
-- derivation use the same figures; tests/spatial/test_road_lighting.py checks
-- that it is the largest spacing of the generator's design. After changing
-- it, run SELECT onemap.rebuild_road_lighting().
CREATE OR REPLACE FUNCTION onemap.lamp_reach_m(road_class text) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE road_class
        WHEN 'expressway' THEN 48.0  -- 14 m poles, 42–48 m apart
        WHEN 'arterial'   THEN 40.0  -- 12 m poles, 35–40 m
        WHEN 'secondary'  THEN 35.0  -- 10 m poles, 30–35 m
        WHEN 'branch'     THEN 30.0  --  8 m poles, 25–30 m
        WHEN 'alley'      THEN 22.0  --  6 m wall lamps, 18–22 m
    END
$$;
COMMENT ON FUNCTION onemap.lamp_reach_m(text) IS
    '路灯照明距离 — metres a working lamp lights its road either way, by road class '
    '(the largest design spacing of the class)';

-- SECURITY DEFINER: the triggers run it for requests (onemap_api), which may
-- edit lamps but not the derived table. The table lock serialises rebuilds, so
-- two transactions editing lamps of one road cannot both write its segments.
CREATE OR REPLACE FUNCTION onemap.rebuild_road_lighting(road_ids bigint[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
DECLARE
    written integer;
BEGIN
    IF road_ids IS NOT NULL AND cardinality(road_ids) = 0 THEN
        RETURN 0;
    END IF;
    LOCK TABLE onemap.road_lighting_segment IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM onemap.road_lighting_segment s
    WHERE road_ids IS NULL OR s.road_id = ANY (road_ids);

    WITH road AS (
        SELECT r.id, r.g, ST_Length(r.g) AS len, onemap.lamp_reach_m(r.road_class) AS reach
        FROM (SELECT id, road_class, ST_Transform(geom, 4548) AS g FROM onemap.road
              WHERE road_ids IS NULL OR id = ANY (road_ids)) r
    ),
    lamp AS (  -- position along the road (m), and why the lamp is dark (NULL: it works)
        SELECT l.id, l.road_id,
               ST_LineLocatePoint(r.g, ST_Transform(l.geom, 4548)) * r.len AS at,
               r.reach, r.len,
               CASE WHEN c.status <> 'working' OR b.status <> 'working' THEN 'circuit_fault'
                    WHEN l.status = 'fault' THEN 'lamp_fault'
                    WHEN l.status = 'off' THEN 'lamp_off' END AS cause
        FROM onemap.lamp l
        JOIN road r ON r.id = l.road_id AND r.len > 0 AND r.reach IS NOT NULL
        LEFT JOIN onemap.lamp_circuit c ON c.id = l.circuit_id
        LEFT JOIN onemap.distribution_box b ON b.id = c.distribution_box_id
    ),
    lit AS (
        SELECT id, road_id,
               CASE WHEN at - reach > 1e-6 THEN at - reach ELSE 0.0 END AS lo,
               CASE WHEN at + reach < len - 1e-6 THEN at + reach ELSE len END AS hi
        FROM lamp WHERE cause IS NULL
    ),
    run AS (  -- an interval starting after every earlier one ended opens an island
        SELECT road_id, lo, hi, id,  -- (intervals a micrometre apart touch: no dust)
               CASE WHEN lo <= 1e-6 + max(hi) OVER (PARTITION BY road_id ORDER BY lo, hi, id
                                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                    THEN 0 ELSE 1 END AS opens
        FROM lit
    ),
    island AS (  -- the union of the lit intervals
        SELECT road_id, min(lo) AS lo, max(hi) AS hi
        FROM (SELECT road_id, lo, hi, sum(opens) OVER (PARTITION BY road_id ORDER BY lo, hi, id
                                                       ROWS UNBOUNDED PRECEDING) AS k
              FROM run) x
        GROUP BY road_id, k
    ),
    gap AS (  -- before each island, and after the last (the whole road when none)
        SELECT road_id, coalesce(lag(hi) OVER (PARTITION BY road_id ORDER BY lo), 0.0) AS lo,
               lo AS hi
        FROM island
        UNION ALL
        SELECT r.id, coalesce(max(i.hi), 0.0), r.len
        FROM road r LEFT JOIN island i ON i.road_id = r.id
        WHERE r.len > 0
        GROUP BY r.id, r.len
    ),
    unlit AS (
        SELECT g.road_id, g.lo, g.hi,
               CASE WHEN bool_or(l.cause = 'circuit_fault') THEN 'circuit_fault'
                    WHEN count(l.cause) = 0 THEN 'no_lamp'
                    WHEN count(*) FILTER (WHERE l.cause = 'lamp_fault')
                         >= count(*) FILTER (WHERE l.cause = 'lamp_off') THEN 'lamp_fault'
                    ELSE 'lamp_off' END AS reason
        FROM gap g
        LEFT JOIN lamp l ON l.road_id = g.road_id AND l.cause IS NOT NULL
                        AND l.at - l.reach < g.hi AND l.at + l.reach > g.lo
        WHERE g.hi > g.lo
        GROUP BY g.road_id, g.lo, g.hi
    ),
    piece AS (
        SELECT road_id, lo, hi, 'lit' AS state, NULL AS reason FROM island WHERE hi > lo
        UNION ALL
        SELECT road_id, lo, hi, 'unlit', reason FROM unlit
    )
    INSERT INTO onemap.road_lighting_segment
        (road_id, from_fraction, to_fraction, state, reason, length_m, geom)
    SELECT p.road_id, p.lo / r.len, p.hi / r.len, p.state, p.reason, p.hi - p.lo,
           ST_Transform(ST_LineSubstring(r.g, p.lo / r.len, p.hi / r.len), 4490)
    FROM piece p JOIN road r ON r.id = p.road_id
    WHERE p.lo / r.len < p.hi / r.len
    ORDER BY p.road_id, p.lo;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;
COMMENT ON FUNCTION onemap.rebuild_road_lighting(bigint[]) IS
    '重算道路亮灯状态 — rewrite road_lighting_segment for these roads (all when NULL) from '
    'the lamps; returns the segments written';

-- Keeping it current ----------------------------------------------------------

-- The roads a statement on lamp, lamp_circuit, distribution_box or road
-- touched, rebuilt once per statement. An UPDATE counts only rows whose
-- lighting inputs changed (a lamp's new power_w darkens nothing). plpgsql
-- parses a statement when it first runs it, so each branch names only the
-- transition tables its trigger has (as tile_notify in 150_tiles.sql).
CREATE OR REPLACE FUNCTION onemap.road_lighting_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, onemap AS $$
DECLARE
    ids bigint[];
BEGIN
    IF TG_TABLE_NAME = 'lamp' AND TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT road_id) INTO ids FROM new_rows WHERE road_id IS NOT NULL;
    ELSIF TG_TABLE_NAME = 'lamp' AND TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT road_id) INTO ids FROM old_rows WHERE road_id IS NOT NULL;
    ELSIF TG_TABLE_NAME = 'lamp' THEN
        SELECT array_agg(DISTINCT x.road_id) INTO ids
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        CROSS JOIN LATERAL (VALUES (o.road_id), (n.road_id)) AS x (road_id)
        WHERE x.road_id IS NOT NULL
          AND ((o.status, o.road_id, o.circuit_id) IS DISTINCT FROM (n.status, n.road_id, n.circuit_id)
               OR NOT ST_OrderingEquals(o.geom, n.geom));
    ELSIF TG_TABLE_NAME = 'lamp_circuit' THEN
        SELECT array_agg(DISTINCT l.road_id) INTO ids
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        JOIN onemap.lamp l ON l.circuit_id = n.id
        WHERE l.road_id IS NOT NULL
          AND (o.status, o.distribution_box_id) IS DISTINCT FROM (n.status, n.distribution_box_id);
    ELSIF TG_TABLE_NAME = 'distribution_box' THEN
        SELECT array_agg(DISTINCT l.road_id) INTO ids
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        JOIN onemap.lamp_circuit c ON c.distribution_box_id = n.id
        JOIN onemap.lamp l ON l.circuit_id = c.id
        WHERE l.road_id IS NOT NULL AND o.status IS DISTINCT FROM n.status;
    ELSIF TG_OP = 'INSERT' THEN  -- road
        SELECT array_agg(id) INTO ids FROM new_rows;
    ELSE
        SELECT array_agg(n.id) INTO ids
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.road_class IS DISTINCT FROM n.road_class OR NOT ST_OrderingEquals(o.geom, n.geom);
    END IF;
    IF ids IS NOT NULL THEN
        PERFORM onemap.rebuild_road_lighting(ids);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION onemap.road_lighting_changed() IS
    'statement trigger: rebuild road_lighting_segment for the roads whose lamps, circuits, '
    'boxes or geometry the statement changed';

-- A trigger with transition tables serves one event, hence one per event.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('lamp', 'insert', 'NEW TABLE AS new_rows'),
        ('lamp', 'update', 'OLD TABLE AS old_rows NEW TABLE AS new_rows'),
        ('lamp', 'delete', 'OLD TABLE AS old_rows'),
        ('lamp_circuit', 'update', 'OLD TABLE AS old_rows NEW TABLE AS new_rows'),
        ('distribution_box', 'update', 'OLD TABLE AS old_rows NEW TABLE AS new_rows'),
        ('road', 'insert', 'NEW TABLE AS new_rows'),
        ('road', 'update', 'OLD TABLE AS old_rows NEW TABLE AS new_rows')) AS v (tbl, op, refs)
    LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER %s ON onemap.%I REFERENCING %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION onemap.road_lighting_changed()',
                       'road_lighting_' || t.op, upper(t.op), t.tbl, t.refs);
    END LOOP;
END
$$;

-- Bring the table up to date with the lamps already loaded.
SELECT onemap.rebuild_road_lighting();
