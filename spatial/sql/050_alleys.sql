-- 050_alleys: back alleys (背街小巷) and the problems found on them by
-- supervision checks, sanitation checks, grid patrols, 12345 complaints and
-- third-party checks. Problems arrive as points; the alley analysis snaps
-- them to alleys and fills alley_id and snap_distance_m.

CREATE TABLE IF NOT EXISTS onemap.alley (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    name            text NOT NULL,
    start_desc      text,
    end_desc        text,
    length_m        numeric(8, 1) CHECK (length_m > 0),
    width_m         numeric(6, 2) CHECK (width_m > 0),
    alley_type      text
                    CHECK (alley_type IN ('hutong', 'back_street', 'lane', 'other')),
    alley_chief_name  text,
    alley_chief_phone text,
    street_office_id bigint NOT NULL REFERENCES onemap.street_office (id),
    community_id    bigint REFERENCES onemap.community (id),
    geom            geometry(LineString, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.alley IS '背街小巷 — back alley with its start/end description (起止点) and its alley chief.';
COMMENT ON COLUMN onemap.alley.length_m IS '长度 as recorded in the ledger (台账), not recomputed from geom';
COMMENT ON COLUMN onemap.alley.alley_type IS 'hutong 胡同, back_street 背街, lane 小巷, other';
COMMENT ON COLUMN onemap.alley.alley_chief_name IS '街巷长 — a public post: name of the office holder';
COMMENT ON COLUMN onemap.alley.alley_chief_phone IS '街巷长 office phone (公示电话), not a private number';
COMMENT ON COLUMN onemap.alley.community_id IS 'NULL when the alley crosses communities';
CREATE INDEX IF NOT EXISTS alley_street_office_id_idx ON onemap.alley (street_office_id);
CREATE INDEX IF NOT EXISTS alley_community_id_idx ON onemap.alley (community_id);
CREATE INDEX IF NOT EXISTS alley_geom_idx ON onemap.alley USING gist (geom);
CREATE OR REPLACE TRIGGER alley_touch BEFORE UPDATE ON onemap.alley
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.alley_problem (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source          text NOT NULL
                    CHECK (source IN ('supervision_check', 'sanitation_check', 'grid_patrol',
                                      'hotline_12345', 'third_party_check')),
    external_ref    text,
    alley_id        bigint REFERENCES onemap.alley (id),
    snap_distance_m double precision CHECK (snap_distance_m >= 0),
    reported_at     timestamptz NOT NULL,
    category        text NOT NULL
                    CHECK (category IN ('sanitation', 'garbage_exposed', 'illegal_parking',
                                        'illegal_construction', 'street_occupation',
                                        'advertising', 'road_surface', 'facility_damage',
                                        'greening', 'drainage', 'overhead_wires', 'other')),
    description     text,
    status          text NOT NULL DEFAULT 'reported'
                    CHECK (status IN ('reported', 'assigned', 'resolved', 'closed', 'invalid')),
    photo_ref       text,
    resolved_at     timestamptz,
    geom            geometry(Point, 4490) NOT NULL,
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, external_ref),
    CONSTRAINT alley_problem_resolved_after_reported
        CHECK (resolved_at IS NULL OR resolved_at >= reported_at)
);
COMMENT ON TABLE onemap.alley_problem IS
    '背街小巷问题 — problem found on a back alley: 督查检查, 环卫检查, 网格巡查, 12345 投诉, 第三方检查.';
COMMENT ON COLUMN onemap.alley_problem.external_ref IS 'record number in the source system; unique per source so a re-import updates';
COMMENT ON COLUMN onemap.alley_problem.alley_id IS 'NULL until snapped to an alley';
COMMENT ON COLUMN onemap.alley_problem.snap_distance_m IS 'distance from the reported point to the alley it was snapped to';
COMMENT ON COLUMN onemap.alley_problem.photo_ref IS 'storage reference (object key or URL) of the photo';
CREATE INDEX IF NOT EXISTS alley_problem_alley_id_idx ON onemap.alley_problem (alley_id);
CREATE INDEX IF NOT EXISTS alley_problem_reported_at_idx ON onemap.alley_problem (reported_at);
CREATE INDEX IF NOT EXISTS alley_problem_geom_idx ON onemap.alley_problem USING gist (geom);
CREATE OR REPLACE TRIGGER alley_problem_touch BEFORE UPDATE ON onemap.alley_problem
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();
