-- 130_access: roles, data scopes and personal data, enforced by PostgreSQL.
--
-- Requests run as the NOLOGIN role onemap_api (SET LOCAL ROLE, see
-- spatial/access.py), which owns nothing, so row-level security applies to
-- it. Who the caller is travels in the transaction-local setting
-- onemap.user_id; everything else (roles, data scope) is looked up here, so
-- features, tiles, exports and processes obey the same rules whatever code
-- path runs. The owner role (migrations, imports, the generator) is not
-- subject to these policies.
--
-- Policies call the request functions inside scalar subqueries,
-- "(SELECT onemap.scope_grids())", so PostgreSQL evaluates them once per
-- query (an InitPlan) instead of once per row.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'onemap_api') THEN
        BEGIN
            CREATE ROLE onemap_api NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'role onemap_api is missing and % may not create it', current_user
                USING HINT = 'as a superuser: CREATE ROLE onemap_api NOLOGIN; GRANT onemap_api TO '
                             || current_user || ';';
        END;
    END IF;
    IF NOT pg_has_role(current_user, 'onemap_api', 'MEMBER') THEN
        EXECUTE format('GRANT onemap_api TO %I', current_user);
    END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS layers;
COMMENT ON SCHEMA layers IS
    'published layers: one view per collection choosing its columns (layers/*.sql); '
    'security_invoker, so the base tables'' row-level security applies';
GRANT USAGE ON SCHEMA onemap, layers TO onemap_api;

-- Who may read and write which table. audience: public = everyone, anonymous
-- included; internal = any signed-in role (staff, analyst, external system);
-- scoped = the roles in readers, and staff among them only within their data
-- scope (the table's own policy below says how). Write columns list the
-- roles allowed to insert / update / delete; scoped writes also have to stay
-- inside the writer's scope.
CREATE TABLE IF NOT EXISTS onemap.layer_access (
    table_name      text PRIMARY KEY,
    audience        text NOT NULL CHECK (audience IN ('public', 'internal', '{}', 'scoped')),
    readers         text[] NOT NULL DEFAULT '{}'
                    CHECK ((audience = 'scoped') = (cardinality(readers) > 0)),
    can_insert      text[] NOT NULL DEFAULT '{}',
    can_update      text[] NOT NULL DEFAULT '{}',
    can_delete      text[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE onemap.layer_access IS
    '图层权限 — audience and writer roles per table; read by the policies of 130_access.sql.';

INSERT INTO onemap.layer_access AS a
    (table_name, audience, readers, can_insert, can_update, can_delete)
VALUES
    ('district',              'public', '{}',   '{}', '{}', '{}'),
    ('street_office',         'public', '{}',   '{}', '{}', '{}'),
    ('community',             'public', '{}',   '{}', '{}', '{}'),
    ('grid',                  'public', '{}',   '{}', '{}', '{}'),
    ('compound',              'public', '{}',   '{}', '{}', '{}'),
    ('building',              'public', '{}',
        '{district_admin,street_staff}', '{district_admin,street_staff,community_staff}',
        '{district_admin}'),
    ('unit',                  'internal', '{}', '{}', '{}', '{}'),
    ('household',             'scoped',
        '{district_admin,street_staff,community_staff,grid_worker,analyst}',
        '{district_admin,street_staff,community_staff,grid_worker}',
        '{district_admin,street_staff,community_staff,grid_worker}',
        '{district_admin,street_staff,community_staff}'),
    ('resident',              'scoped',
        '{district_admin,street_staff,community_staff,grid_worker,analyst}',
        '{district_admin,street_staff,community_staff,grid_worker}',
        '{district_admin,street_staff,community_staff,grid_worker}',
        '{district_admin,street_staff,community_staff,grid_worker}'),
    ('event',                 'scoped',
        '{district_admin,street_staff,community_staff,grid_worker,analyst,external_system}',
        '{district_admin,street_staff,community_staff,grid_worker,external_system}',
        '{district_admin,street_staff,community_staff,grid_worker}',
        '{district_admin}'),
    ('event_photo',           'scoped',
        '{district_admin,street_staff,community_staff,grid_worker,analyst,external_system}',
        '{district_admin,street_staff,community_staff,grid_worker,external_system}',
        '{}', '{district_admin}'),
    ('event_status_history',  'scoped',
        '{district_admin,street_staff,community_staff,grid_worker,analyst,external_system}',
        '{}', '{}', '{}'),
    ('land_use',              'public', '{}',   '{}', '{}', '{}'),
    ('utility_tunnel',        'internal', '{}', '{}', '{}', '{}'),
    ('pipe_node',             'internal', '{}', '{}', '{}', '{}'),
    ('pipe_segment',          'internal', '{}', '{}', '{}', '{}'),
    ('valve',                 'internal', '{}', '{}', '{}', '{}'),
    ('sensor',                'internal', '{}', '{}', '{}', '{}'),
    ('sensor_alarm',          'internal', '{}', '{}', '{}', '{}'),
    ('road',                  'public', '{}',   '{}', '{}', '{}'),
    ('distribution_box',      'internal', '{}', '{}', '{}', '{}'),
    ('lamp_circuit',          'internal', '{}', '{}', '{}', '{}'),
    ('lamp',                  'public', '{}',   '{}',
        '{district_admin,street_staff,community_staff,grid_worker}', '{}'),
    ('lamp_status_report',    'internal', '{}', '{}', '{}', '{}'),
    ('road_lighting_segment', 'public', '{}',   '{}', '{}', '{}'),
    ('alley',                 'public', '{}',   '{}', '{}', '{}'),
    ('alley_problem',         'internal', '{}',
        '{district_admin,street_staff,community_staff,grid_worker,external_system}',
        '{district_admin,street_staff,community_staff,grid_worker}',
        '{district_admin,street_staff}'),
    ('refuse_facility',       'public', '{}',   '{}', '{}', '{}'),
    ('refuse_load_reading',   'internal', '{}', '{}', '{}', '{}'),
    ('truck_company',         'internal', '{}', '{}', '{}', '{}'),
    ('truck',                 'internal', '{}', '{}', '{}', '{}'),
    ('truck_gps',             'internal', '{}', '{}', '{}', '{}'),
    ('construction_site',     'public', '{}',   '{}', '{}', '{}'),
    ('disposal_site',         'public', '{}',   '{}', '{}', '{}'),
    ('waybill',               'internal', '{}', '{}', '{}', '{}'),
    ('disposal_entry',        'internal', '{}', '{}', '{}', '{}'),
    ('checkpoint',            'internal', '{}', '{}', '{}', '{}'),
    ('checkpoint_hit',        'internal', '{}', '{}', '{}', '{}'),
    ('spill_report',          'internal', '{}', '{}', '{}', '{}'),
    ('key_unit',              'public', '{}',   '{}', '{}', '{}'),
    ('hazard_source',         'internal', '{}', '{}', '{}', '{}'),
    ('charging_pile',         'public', '{}',   '{}', '{}', '{}'),
    ('city_furniture',        'public', '{}',   '{}', '{}', '{}'),
    ('snow_resource',         'internal', '{}', '{}', '{}', '{}')
ON CONFLICT (table_name) DO UPDATE
SET audience = EXCLUDED.audience, readers = EXCLUDED.readers, can_insert = EXCLUDED.can_insert,
    can_update = EXCLUDED.can_update, can_delete = EXCLUDED.can_delete;

-- The request ---------------------------------------------------------------

CREATE OR REPLACE FUNCTION onemap.request_user_id() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT NULLIF(current_setting('onemap.user_id', true), '')::bigint
$$;
COMMENT ON FUNCTION onemap.request_user_id() IS
    'app_user.id of the caller (transaction setting onemap.user_id); NULL when anonymous';

CREATE OR REPLACE FUNCTION onemap.request_roles() RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, onemap AS $$
    SELECT COALESCE(
        (SELECT array_agg(r.code ORDER BY r.code)
         FROM onemap.user_role ur
         JOIN onemap.app_role r ON r.id = ur.role_id
         JOIN onemap.app_user u ON u.id = ur.user_id
         WHERE ur.user_id = onemap.request_user_id() AND u.active),
        ARRAY['public'])
$$;
COMMENT ON FUNCTION onemap.request_roles() IS
    'role codes of the caller; {public} when anonymous, disabled or without roles';

CREATE OR REPLACE FUNCTION onemap.has_role(codes text[]) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT onemap.request_roles() && codes
$$;

CREATE OR REPLACE FUNCTION onemap.is_staff() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT onemap.has_role('{district_admin,street_staff,community_staff,grid_worker}')
$$;
COMMENT ON FUNCTION onemap.is_staff() IS
    'whether the caller holds a staff role (sees personal data within scope)';

CREATE OR REPLACE FUNCTION onemap.personal_access() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN onemap.is_staff() THEN 'full'
        WHEN onemap.has_role('{analyst}') THEN 'masked'
        ELSE 'none'
    END
$$;
COMMENT ON FUNCTION onemap.personal_access() IS
    'full: staff (their rows are already limited to their scope); masked: analysts see '
    '张*三-style masks; none: external systems and the public get NULL';

-- Grids, communities and street offices the caller's data scope covers. A
-- scope unit covers everything below it; a grid covers its sub-grids.
CREATE OR REPLACE FUNCTION onemap.scope_grids() RETURNS bigint[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, onemap AS $$
DECLARE
    uid text := COALESCE(onemap.request_user_id()::text, '');
    memo text := current_setting('onemap.memo_scope_grids', true);
    result bigint[];
BEGIN
    -- One computation per transaction and caller: a query over residents
    -- meets this in several policies (resident, household, building).
    IF memo IS NOT NULL AND memo <> '' AND split_part(memo, '|', 1) = uid THEN
        RETURN split_part(memo, '|', 2)::bigint[];
    END IF;
    WITH RECURSIVE s AS (
        SELECT level, unit_id FROM onemap.data_scope WHERE user_id = onemap.request_user_id()
    ), top AS (
        SELECT g.id
        FROM onemap.grid g
        JOIN onemap.community c ON c.id = g.community_id
        JOIN onemap.street_office so ON so.id = c.street_office_id
        WHERE so.district_id IN (SELECT unit_id FROM s WHERE level = 'district')
           OR so.id IN (SELECT unit_id FROM s WHERE level = 'street_office')
           OR c.id IN (SELECT unit_id FROM s WHERE level = 'community')
        UNION
        SELECT unit_id FROM s WHERE level = 'grid'
    ), tree AS (
        SELECT id FROM top
        UNION
        SELECT g.id FROM onemap.grid g JOIN tree t ON g.parent_id = t.id
    )
    SELECT COALESCE(array_agg(id ORDER BY id), '{}') INTO result FROM tree;
    PERFORM set_config('onemap.memo_scope_grids', uid || '|' || result::text, true);
    RETURN result;
END
$$;

CREATE OR REPLACE FUNCTION onemap.scope_communities() RETURNS bigint[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, onemap AS $$
    WITH s AS (
        SELECT level, unit_id FROM onemap.data_scope WHERE user_id = onemap.request_user_id()
    )
    SELECT COALESCE(array_agg(c.id ORDER BY c.id), '{}')
    FROM onemap.community c
    JOIN onemap.street_office so ON so.id = c.street_office_id
    WHERE so.district_id IN (SELECT unit_id FROM s WHERE level = 'district')
       OR so.id IN (SELECT unit_id FROM s WHERE level = 'street_office')
       OR c.id IN (SELECT unit_id FROM s WHERE level = 'community')
$$;

CREATE OR REPLACE FUNCTION onemap.scope_streets() RETURNS bigint[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, onemap AS $$
    WITH s AS (
        SELECT level, unit_id FROM onemap.data_scope WHERE user_id = onemap.request_user_id()
    )
    SELECT COALESCE(array_agg(so.id ORDER BY so.id), '{}')
    FROM onemap.street_office so
    WHERE so.district_id IN (SELECT unit_id FROM s WHERE level = 'district')
       OR so.id IN (SELECT unit_id FROM s WHERE level = 'street_office')
$$;

CREATE OR REPLACE FUNCTION onemap.can_read(tbl text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, onemap AS $$
    SELECT COALESCE(
        (SELECT CASE a.audience
                    WHEN 'public' THEN true
                    WHEN 'internal' THEN onemap.request_roles() <> ARRAY['public']
                    ELSE onemap.request_roles() && a.readers END
         FROM onemap.layer_access a WHERE a.table_name = tbl),
        false)
$$;
COMMENT ON FUNCTION onemap.can_read(text) IS
    'whether the caller may read the table at all (audience, readers); scoped tables '
    'narrow the rows further';

CREATE OR REPLACE FUNCTION onemap.can_write(tbl text, action text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, onemap AS $$
    SELECT COALESCE(
        (SELECT onemap.request_roles() && CASE action
                    WHEN 'insert' THEN a.can_insert
                    WHEN 'update' THEN a.can_update
                    WHEN 'delete' THEN a.can_delete END
         FROM onemap.layer_access a WHERE a.table_name = tbl),
        false)
$$;

-- Masks ----------------------------------------------------------------------

CREATE OR REPLACE FUNCTION onemap.mask_name(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN v IS NULL THEN NULL
        WHEN char_length(v) <= 1 THEN '*'
        WHEN char_length(v) = 2 THEN left(v, 1) || '*'
        ELSE left(v, 1) || repeat('*', char_length(v) - 2) || right(v, 1)
    END
$$;
COMMENT ON FUNCTION onemap.mask_name(text) IS '张三 → 张*, 欧阳小明 → 欧**明';

CREATE OR REPLACE FUNCTION onemap.mask_digits(v text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN v IS NULL THEN NULL
        WHEN char_length(v) < 8 THEN repeat('*', char_length(v))
        ELSE left(v, 3) || repeat('*', char_length(v) - 7) || right(v, 4)
    END
$$;
COMMENT ON FUNCTION onemap.mask_digits(text) IS
    'phone and ID numbers: 13812345678 → 138****5678, 110101199001011234 → 110***********1234';

-- Grants and policies ----------------------------------------------------------

-- Every table in layer_access: SELECT and the writes its row allows, row-level
-- security on, and a policy per command. Scoped tables get their own read
-- policies below instead of the audience policy. A table added by a later
-- migration inserts its row and calls onemap.apply_layer_access itself.
CREATE OR REPLACE FUNCTION onemap.apply_layer_access(tbl text) RETURNS void
LANGUAGE plpgsql AS
$$
DECLARE
    a record;
BEGIN
    SELECT * INTO a FROM onemap.layer_access WHERE table_name = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'layer_access has no row for %', tbl;
    END IF;
    IF to_regclass(format('onemap.%I', a.table_name)) IS NULL THEN
        RAISE EXCEPTION 'layer_access names a missing table %', a.table_name;
    END IF;
    EXECUTE format('REVOKE ALL ON onemap.%I FROM onemap_api', a.table_name);
    EXECUTE format('GRANT SELECT ON onemap.%I TO onemap_api', a.table_name);
    IF cardinality(a.can_insert) > 0 THEN
        EXECUTE format('GRANT INSERT ON onemap.%I TO onemap_api', a.table_name);
    END IF;
    IF cardinality(a.can_update) > 0 THEN
        EXECUTE format('GRANT UPDATE ON onemap.%I TO onemap_api', a.table_name);
    END IF;
    IF cardinality(a.can_delete) > 0 THEN
        EXECUTE format('GRANT DELETE ON onemap.%I TO onemap_api', a.table_name);
    END IF;
    EXECUTE format('ALTER TABLE onemap.%I ENABLE ROW LEVEL SECURITY', a.table_name);

    EXECUTE format('DROP POLICY IF EXISTS audience_read ON onemap.%I', a.table_name);
    IF a.audience <> 'scoped' THEN
        EXECUTE format(
            'CREATE POLICY audience_read ON onemap.%I FOR SELECT TO onemap_api '
            'USING ((SELECT onemap.can_read(%L)))', a.table_name, a.table_name);
    END IF;
    EXECUTE format('DROP POLICY IF EXISTS role_insert ON onemap.%I', a.table_name);
    EXECUTE format(
        'CREATE POLICY role_insert ON onemap.%I FOR INSERT TO onemap_api '
        'WITH CHECK ((SELECT onemap.can_write(%L, ''insert'')))', a.table_name, a.table_name);
    EXECUTE format('DROP POLICY IF EXISTS role_update ON onemap.%I', a.table_name);
    EXECUTE format(
        'CREATE POLICY role_update ON onemap.%I FOR UPDATE TO onemap_api '
        'USING ((SELECT onemap.can_write(%L, ''update''))) '
        'WITH CHECK ((SELECT onemap.can_write(%L, ''update'')))',
        a.table_name, a.table_name, a.table_name);
    EXECUTE format('DROP POLICY IF EXISTS role_delete ON onemap.%I', a.table_name);
    EXECUTE format(
        'CREATE POLICY role_delete ON onemap.%I FOR DELETE TO onemap_api '
        'USING ((SELECT onemap.can_write(%L, ''delete'')))', a.table_name, a.table_name);
END
$$;
COMMENT ON FUNCTION onemap.apply_layer_access(text) IS
    'grants, row-level security and the per-command policies of a table from its '
    'onemap.layer_access row';

-- Tables of later migrations (their rows are inserted there) are skipped here: on a
-- new database they do not exist yet when this file runs.
DO $$
DECLARE
    a record;
BEGIN
    FOR a IN SELECT * FROM onemap.layer_access ORDER BY table_name LOOP
        IF a.table_name IN ('compound_gate', 'footpath', 'refuse_candidate_site',
                            'refuse_facility_outage')
           AND to_regclass(format('onemap.%I', a.table_name)) IS NULL THEN
            CONTINUE;
        END IF;
        PERFORM onemap.apply_layer_access(a.table_name);
    END LOOP;
END
$$;

-- Users: onemap_api may see who is who (names on events, grid workers), never
-- password hashes.
REVOKE ALL ON onemap.app_user FROM onemap_api;
GRANT SELECT (id, username, display_name, active) ON onemap.app_user TO onemap_api;

-- Scoped reads. Permissive policies of one command are OR-ed, so each scoped
-- table has exactly one read policy spelling out every role's rows; writes to
-- scoped tables must additionally stay in scope (restrictive policies).

-- Households: staff within scope, analysts everywhere; nobody else.
DROP POLICY IF EXISTS scoped_read ON onemap.household;
CREATE POLICY scoped_read ON onemap.household FOR SELECT TO onemap_api USING (
    (SELECT onemap.has_role('{analyst}'))
    OR ((SELECT onemap.is_staff())
        AND EXISTS (SELECT 1 FROM onemap.building b
                    WHERE b.id = household.building_id
                      AND b.grid_id = ANY ((SELECT onemap.scope_grids())::bigint[])))
);
DROP POLICY IF EXISTS scoped_write ON onemap.household;
CREATE POLICY scoped_write ON onemap.household AS RESTRICTIVE FOR ALL TO onemap_api
USING (true) WITH CHECK (
    building_id IN (SELECT b.id FROM onemap.building b
                    WHERE b.grid_id = ANY ((SELECT onemap.scope_grids())::bigint[]))
);

-- Residents: as their household; external systems and the public never.
-- EXISTS, correlated: a tile or a page of residents checks its own rows
-- through the indexes (46 ms for a z16 tile's 973 residents on the M city,
-- against 94 ms hashing every household in scope first); a full scan
-- (an export) pays more.
DROP POLICY IF EXISTS scoped_read ON onemap.resident;
CREATE POLICY scoped_read ON onemap.resident FOR SELECT TO onemap_api USING (
    (SELECT onemap.has_role('{analyst}'))
    OR ((SELECT onemap.is_staff())
        AND EXISTS (
            SELECT 1 FROM onemap.household h
            JOIN onemap.building b ON b.id = h.building_id
            WHERE h.id = resident.household_id
              AND b.grid_id = ANY ((SELECT onemap.scope_grids())::bigint[])))
);
DROP POLICY IF EXISTS scoped_write ON onemap.resident;
CREATE POLICY scoped_write ON onemap.resident AS RESTRICTIVE FOR ALL TO onemap_api
USING (true) WITH CHECK (
    household_id IN (
        SELECT h.id FROM onemap.household h
        JOIN onemap.building b ON b.id = h.building_id
        WHERE b.grid_id = ANY ((SELECT onemap.scope_grids())::bigint[]))
);

-- Events: staff see the events of their scope and those they reported or were
-- assigned; analysts and external systems (12345 hotline) see all, with the
-- reporter masked by the layer view; the public none.
DROP POLICY IF EXISTS scoped_read ON onemap.event;
CREATE POLICY scoped_read ON onemap.event FOR SELECT TO onemap_api USING (
    (SELECT onemap.has_role('{analyst,external_system}'))
    OR ((SELECT onemap.is_staff()) AND (
        grid_id = ANY ((SELECT onemap.scope_grids())::bigint[])
        OR community_id = ANY ((SELECT onemap.scope_communities())::bigint[])
        OR street_office_id = ANY ((SELECT onemap.scope_streets())::bigint[])
        OR reporter_user_id = (SELECT onemap.request_user_id())
        OR assignee_user_id = (SELECT onemap.request_user_id())))
    -- not yet placed (an address-only 12345 ticket): the district dispatches it
    OR ((SELECT onemap.has_role('{district_admin}'))
        AND grid_id IS NULL AND community_id IS NULL AND street_office_id IS NULL)
);
-- A staff writer keeps the event inside their scope (or reports it
-- themselves: a grid worker may report just outside the grid, the locate
-- step assigns it); external systems may create anywhere.
DROP POLICY IF EXISTS scoped_write ON onemap.event;
CREATE POLICY scoped_write ON onemap.event AS RESTRICTIVE FOR ALL TO onemap_api
USING (true) WITH CHECK (
    (SELECT onemap.has_role('{external_system}'))
    OR grid_id = ANY ((SELECT onemap.scope_grids())::bigint[])
    OR community_id = ANY ((SELECT onemap.scope_communities())::bigint[])
    OR street_office_id = ANY ((SELECT onemap.scope_streets())::bigint[])
    OR reporter_user_id = (SELECT onemap.request_user_id())
);

-- Photos and status history follow their event (the sub-select obeys the
-- event's own policy).
DROP POLICY IF EXISTS scoped_read ON onemap.event_photo;
CREATE POLICY scoped_read ON onemap.event_photo FOR SELECT TO onemap_api USING (
    event_id IN (SELECT e.id FROM onemap.event e)
);
DROP POLICY IF EXISTS scoped_read ON onemap.event_status_history;
CREATE POLICY scoped_read ON onemap.event_status_history FOR SELECT TO onemap_api USING (
    event_id IN (SELECT e.id FROM onemap.event e)
);

-- Buildings are public to read; writers stay in their scope.
DROP POLICY IF EXISTS scoped_write ON onemap.building;
CREATE POLICY scoped_write ON onemap.building AS RESTRICTIVE FOR ALL TO onemap_api
USING (true) WITH CHECK (grid_id = ANY ((SELECT onemap.scope_grids())::bigint[]));

-- Audit -------------------------------------------------------------------------

-- Every write through onemap_api lands in audit_log with who, when, before and
-- after, whatever code path made it. The function runs as the caller, so
-- current_user tells a request (onemap_api) from the owner's bulk loads; the
-- serving role may append to the log but not read or change it.
GRANT INSERT ON onemap.audit_log TO onemap_api;

CREATE OR REPLACE FUNCTION onemap.audit_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, onemap AS $$
DECLARE
    uid bigint := onemap.request_user_id();
    old_row jsonb;
    new_row jsonb;
BEGIN
    IF current_user <> 'onemap_api' THEN
        RETURN NULL;  -- bulk loads and migrations by the owner are not user edits
    END IF;
    IF TG_OP <> 'INSERT' THEN
        old_row := to_jsonb(OLD) - 'geom_3857';
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_row := to_jsonb(NEW) - 'geom_3857';
    END IF;
    INSERT INTO onemap.audit_log (user_id, username, action, table_name, row_id, before, after)
    VALUES (uid, (SELECT u.username FROM onemap.app_user u WHERE u.id = uid),
            lower(TG_OP), TG_TABLE_NAME,
            COALESCE((new_row ->> 'id')::bigint, (old_row ->> 'id')::bigint),
            old_row, new_row);
    RETURN NULL;
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT table_name FROM onemap.layer_access
             WHERE cardinality(can_insert) + cardinality(can_update) + cardinality(can_delete) > 0
    LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE '
                       'ON onemap.%I FOR EACH ROW EXECUTE FUNCTION onemap.audit_row()', t);
    END LOOP;
END
$$;
