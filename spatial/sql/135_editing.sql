-- 135_editing: what writing features (OGC API Features Part 4, spatial/editing.py)
-- needs from the database: row versions for optimistic concurrency, property
-- values checked one by one, and the admin units a location belongs to.
-- Who may write what stays in 130_access.sql (layer_access and its policies).

-- Row versions ------------------------------------------------------------------

-- Every update of a row bumps its version, whatever code path makes it (the
-- API, an import, psql), so an ETag taken from the version can never match a
-- row that changed since. A statement that sets version itself (the importer's
-- "version = t.version + 1") ends up with the same number: OLD + 1.
CREATE OR REPLACE FUNCTION onemap.bump_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION onemap.bump_version() IS
    '行版本 — BEFORE UPDATE trigger: version = OLD.version + 1 on every update (ETag/If-Match)';

-- On the model's tables (those layer_access lists) that carry a version column.
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN
        SELECT a.table_name
        FROM onemap.layer_access a
        JOIN information_schema.columns c
          ON c.table_schema = 'onemap' AND c.table_name = a.table_name
         AND c.column_name = 'version' AND c.data_type = 'integer'
        ORDER BY 1
    LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER version_bump BEFORE UPDATE ON onemap.%I '
                       'FOR EACH ROW EXECUTE FUNCTION onemap.bump_version()', t);
    END LOOP;
END
$$;

-- Property values -----------------------------------------------------------------

-- Which properties of a JSON object PostgreSQL cannot read as the table's
-- column types (typmods included: numeric(8,2), varchar(n)), each with the
-- reason, so a 400 can name the property; one subtransaction per property.
CREATE OR REPLACE FUNCTION onemap.cast_errors(tbl regclass, doc jsonb)
RETURNS TABLE (property text, message text)
LANGUAGE plpgsql AS $$
DECLARE
    k text;
BEGIN
    FOR k IN SELECT jsonb_object_keys(doc) ORDER BY 1 LOOP
        BEGIN
            EXECUTE format('SELECT jsonb_populate_record(NULL::%s, $1)', tbl)
                USING jsonb_build_object(k, doc -> k);
        EXCEPTION WHEN data_exception THEN
            property := k;
            message := SQLERRM;
            RETURN NEXT;
        END;
    END LOOP;
END
$$;
COMMENT ON FUNCTION onemap.cast_errors(regclass, jsonb) IS
    'properties of doc that cannot be cast to the columns of tbl, with the reason';

-- 属地原则 -------------------------------------------------------------------------

-- The street office, community and finest grid covering a location (a point,
-- or a point on a polygon's surface). Units already given are kept, and the
-- missing ones follow from them (a grid's community, a community's street
-- office) before the location is asked.
CREATE OR REPLACE FUNCTION onemap.jurisdiction(
    g geometry,
    given_street bigint DEFAULT NULL,
    given_community bigint DEFAULT NULL,
    given_grid bigint DEFAULT NULL)
RETURNS TABLE (street_office_id bigint, community_id bigint, grid_id bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public, onemap AS $$
DECLARE
    p geometry := CASE WHEN g IS NULL OR ST_IsEmpty(g) THEN NULL
                       ELSE ST_PointOnSurface(ST_SetSRID(g, 4490)) END;
BEGIN
    grid_id := COALESCE(given_grid, (
        SELECT gr.id FROM onemap.grid gr
        JOIN onemap.community c ON c.id = gr.community_id
        WHERE ST_Covers(gr.geom, p)
          AND (given_community IS NULL OR gr.community_id = given_community)
          AND (given_street IS NULL OR c.street_office_id = given_street)
        ORDER BY gr.level DESC, gr.id LIMIT 1));
    community_id := COALESCE(given_community,
        (SELECT gr.community_id FROM onemap.grid gr WHERE gr.id = grid_id),
        (SELECT c.id FROM onemap.community c
         WHERE ST_Covers(c.geom, p)
           AND (given_street IS NULL OR c.street_office_id = given_street)
         ORDER BY c.id LIMIT 1));
    street_office_id := COALESCE(given_street,
        (SELECT c.street_office_id FROM onemap.community c WHERE c.id = community_id),
        (SELECT s.id FROM onemap.street_office s WHERE ST_Covers(s.geom, p)
         ORDER BY s.id LIMIT 1));
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION onemap.jurisdiction(geometry, bigint, bigint, bigint) IS
    '属地 — street office, community and finest grid of a location; given units are kept '
    'and the missing ones follow from them, then from the location';

-- References ------------------------------------------------------------------------

-- Foreign keys of a table whose columns doc fills but whose referenced row does
-- not exist. Row-level security checks a new row before its foreign keys, so a
-- household naming a building that does not exist would be refused as "outside
-- your scope"; asked first, it is a 400 naming building_id. Runs as the owner
-- (a row outside the caller's scope exists too; only existence is told).
CREATE OR REPLACE FUNCTION onemap.missing_references(tbl regclass, doc jsonb)
RETURNS TABLE (columns text[], referenced text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, onemap AS $$
DECLARE
    fk record;
    found boolean;
BEGIN
    FOR fk IN
        SELECT c.confrelid::regclass AS ref,
               array_agg(a.attname::text ORDER BY k.i) AS cols,
               array_agg(r.attname::text ORDER BY k.i) AS refcols
        FROM pg_constraint c
        CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(col, refcol, i)
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.col
        JOIN pg_attribute r ON r.attrelid = c.confrelid AND r.attnum = k.refcol
        WHERE c.conrelid = tbl AND c.contype = 'f'
        GROUP BY c.oid, c.confrelid
        ORDER BY c.oid
    LOOP
        CONTINUE WHEN EXISTS (SELECT FROM unnest(fk.cols) AS col
                              WHERE doc -> col IS NULL OR doc -> col = 'null'::jsonb);
        EXECUTE format(
            'SELECT EXISTS (SELECT FROM %s AS t, jsonb_populate_record(NULL::%s, $1) AS p '
            'WHERE (%s) = (%s))',
            fk.ref, tbl,
            (SELECT string_agg(format('t.%I', x), ', ') FROM unnest(fk.refcols) AS x),
            (SELECT string_agg(format('p.%I', x), ', ') FROM unnest(fk.cols) AS x))
            INTO found USING doc;
        IF NOT found THEN
            columns := fk.cols;
            referenced := fk.ref::text;
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION onemap.missing_references(regclass, jsonb) IS
    'foreign keys of tbl that doc fills with a value no row has (checked as the owner)';

-- Every status change made through the API lands in event_status_history
-- (事件流转记录), whoever made it and however. Requests set onemap.user_id;
-- bulk loads by the owner (the generator writes its own history) do not, and
-- are left alone. SECURITY DEFINER: the serving role has no grant on the
-- history table itself.
CREATE OR REPLACE FUNCTION onemap.record_event_status() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, onemap AS $$
DECLARE
    uid bigint := onemap.request_user_id();
BEGIN
    IF uid IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO onemap.event_status_history (event_id, from_status, to_status, by_user_id)
        VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status, uid);
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER event_status_history
    AFTER INSERT OR UPDATE OF status ON onemap.event
    FOR EACH ROW EXECUTE FUNCTION onemap.record_event_status();
