-- 185_whatif: what-if scenarios (spatial/whatif.py, issue 14).
--
-- A scenario is a named, stored set of edits (close a road, a valve that fails
-- to close, remove or add a facility, a changed capacity) that an analysis
-- applies in memory: nothing here or in spatial/whatif.py ever writes the
-- stored city. The edits are validated by the application (one parser,
-- spatial/whatif.py); the table keeps only their JSON shape in check.
--
-- Unlike onemap.job (a system table behind the owner connection), scenarios
-- are read and written on the caller's connection, so row-level security
-- decides who sees what:
--   * the owner reads, changes and deletes their scenarios;
--   * a scenario marked shared is readable (never writable) by the users
--     whose data scope lies in a street office the owner's scope lies in:
--     a street office's planners work on the same what-ifs, a scenario of
--     another street office stays out of sight;
--   * a district administrator reads every scenario (as with jobs).
-- Anonymous callers see none.

CREATE TABLE IF NOT EXISTS onemap.scenario (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description     text CHECK (length(description) <= 4000),
    owner_id        bigint NOT NULL DEFAULT onemap.request_user_id(),
    shared          boolean NOT NULL DEFAULT false,
    edits           jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(edits) = 'array'),
    layers          text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.scenario IS
    '假设情景 — a named set of edits (close_road, valve_fails, remove_facility, '
    'add_facility, set_capacity) an analysis applies without touching the stored city';
COMMENT ON COLUMN onemap.scenario.owner_id IS
    'app_user.id of the author; no foreign key, as onemap.job.user_id';
COMMENT ON COLUMN onemap.scenario.shared IS
    'readable by the users whose data scope lies in a street office of the owner''s scope';
COMMENT ON COLUMN onemap.scenario.edits IS
    'the edits, as validated by spatial/whatif.py (a JSON array of objects with "type")';
COMMENT ON COLUMN onemap.scenario.layers IS
    'the base layers (onemap tables) the edits refer to, e.g. {road,refuse_facility}';

CREATE INDEX IF NOT EXISTS scenario_owner_updated_idx ON onemap.scenario (owner_id, updated_at);

CREATE OR REPLACE TRIGGER scenario_touch BEFORE UPDATE ON onemap.scenario
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

-- Street offices a user's data scope lies in (a district: all of its street
-- offices; a community or grid: the street office it belongs to).
CREATE OR REPLACE FUNCTION onemap.user_street_offices(uid bigint) RETURNS bigint[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, onemap AS $$
    WITH s AS (SELECT level, unit_id FROM onemap.data_scope WHERE user_id = uid)
    SELECT COALESCE(array_agg(DISTINCT so_id), '{}') FROM (
        SELECT so.id AS so_id FROM onemap.street_office so
        WHERE so.district_id IN (SELECT unit_id FROM s WHERE level = 'district')
           OR so.id IN (SELECT unit_id FROM s WHERE level = 'street_office')
        UNION ALL
        SELECT c.street_office_id FROM onemap.community c
        WHERE c.id IN (SELECT unit_id FROM s WHERE level = 'community')
        UNION ALL
        SELECT c.street_office_id FROM onemap.grid g JOIN onemap.community c ON c.id = g.community_id
        WHERE g.id IN (SELECT unit_id FROM s WHERE level = 'grid')
    ) x
$$;
COMMENT ON FUNCTION onemap.user_street_offices(bigint) IS
    '用户所在街道 — street offices the data scope of a user lies in (for shared scenarios)';

ALTER TABLE onemap.scenario ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS scenario_read ON onemap.scenario;
CREATE POLICY scenario_read ON onemap.scenario FOR SELECT TO onemap_api USING (
    onemap.request_user_id() IS NOT NULL AND (
        owner_id = onemap.request_user_id()
        OR onemap.has_role('{district_admin}')
        OR (shared AND onemap.user_street_offices(owner_id)
                       && onemap.user_street_offices(onemap.request_user_id()))));

DROP POLICY IF EXISTS scenario_insert ON onemap.scenario;
CREATE POLICY scenario_insert ON onemap.scenario FOR INSERT TO onemap_api
    WITH CHECK (onemap.request_user_id() IS NOT NULL AND owner_id = onemap.request_user_id());

DROP POLICY IF EXISTS scenario_update ON onemap.scenario;
CREATE POLICY scenario_update ON onemap.scenario FOR UPDATE TO onemap_api
    USING (owner_id = onemap.request_user_id())
    WITH CHECK (owner_id = onemap.request_user_id());

DROP POLICY IF EXISTS scenario_delete ON onemap.scenario;
CREATE POLICY scenario_delete ON onemap.scenario FOR DELETE TO onemap_api
    USING (owner_id = onemap.request_user_id());

REVOKE ALL ON onemap.scenario FROM onemap_api;
GRANT SELECT, INSERT, DELETE ON onemap.scenario TO onemap_api;
GRANT UPDATE (name, description, shared, edits, layers) ON onemap.scenario TO onemap_api;
GRANT EXECUTE ON FUNCTION onemap.user_street_offices(bigint) TO onemap_api;

-- Households (as the caller may see them) in buildings within within_m metres
-- of any of the lines: what a service area reaches (scenarios/service_area.py).
-- SECURITY INVOKER: the household policies of 130_access.sql apply.
CREATE OR REPLACE FUNCTION onemap.households_near(lines geometry[], within_m float8)
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH l AS (SELECT ST_SetSRID(g, 4490) AS geom FROM unnest(lines) AS g),
         b AS (
        SELECT DISTINCT bd.id
        FROM onemap.building bd
        JOIN l ON bd.geom && ST_Expand(l.geom, within_m / 85000.0)
              AND ST_DWithin(bd.geom::geography, l.geom::geography, within_m))
    SELECT count(*) FROM onemap.household h WHERE h.building_id IN (SELECT id FROM b)
$$;
COMMENT ON FUNCTION onemap.households_near(geometry[], float8) IS
    '可达住户 — households the caller may see in buildings within within_m metres of the lines';
GRANT EXECUTE ON FUNCTION onemap.households_near(geometry[], float8) TO onemap_api;
