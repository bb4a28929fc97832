-- 010_admin: the admin and grid hierarchy down to residents.
--
-- district (区) -> street_office (街道) -> community (社区) -> grid (网格,
-- multi-level) -> compound (小区) -> building (楼栋) -> unit (单元) ->
-- household (户室) -> resident (居民).
--
-- Admin units carry their official code (行政区划代码 / 统计用区划代码) as
-- code; the finer layers are imported and carry source_key so a re-import
-- updates (ON CONFLICT (source_key)) instead of duplicating.

CREATE TABLE IF NOT EXISTS onemap.district (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    name            text NOT NULL,
    geom            geometry(MultiPolygon, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.district IS '区 — district; code is the 6-digit administrative division code.';
CREATE INDEX IF NOT EXISTS district_geom_idx ON onemap.district USING gist (geom);
CREATE OR REPLACE TRIGGER district_touch BEFORE UPDATE ON onemap.district
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.street_office (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    name            text NOT NULL,
    district_id     bigint NOT NULL REFERENCES onemap.district (id),
    geom            geometry(MultiPolygon, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.street_office IS '街道(乡镇) — street office; code is the 9-digit division code.';
CREATE INDEX IF NOT EXISTS street_office_district_id_idx ON onemap.street_office (district_id);
CREATE INDEX IF NOT EXISTS street_office_geom_idx ON onemap.street_office USING gist (geom);
CREATE OR REPLACE TRIGGER street_office_touch BEFORE UPDATE ON onemap.street_office
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.community (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    name            text NOT NULL,
    street_office_id bigint NOT NULL REFERENCES onemap.street_office (id),
    geom            geometry(MultiPolygon, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.community IS '社区(村) — community; code is the 12-digit statistical division code.';
CREATE INDEX IF NOT EXISTS community_street_office_id_idx ON onemap.community (street_office_id);
CREATE INDEX IF NOT EXISTS community_geom_idx ON onemap.community USING gist (geom);
CREATE OR REPLACE TRIGGER community_touch BEFORE UPDATE ON onemap.community
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.grid (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    name            text NOT NULL,
    community_id    bigint NOT NULL REFERENCES onemap.community (id),
    parent_id       bigint REFERENCES onemap.grid (id),
    level           smallint NOT NULL DEFAULT 1 CHECK (level BETWEEN 1 AND 5),
    worker_user_id  bigint REFERENCES onemap.app_user (id) ON DELETE SET NULL,
    geom            geometry(MultiPolygon, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT grid_parent_not_self CHECK (parent_id IS DISTINCT FROM id)
);
COMMENT ON TABLE onemap.grid IS '网格 — management grid within a community; multi-level through parent_id (1 = top level).';
COMMENT ON COLUMN onemap.grid.worker_user_id IS '网格员 — grid worker responsible for this grid, if assigned.';
CREATE INDEX IF NOT EXISTS grid_community_id_idx ON onemap.grid (community_id);
CREATE INDEX IF NOT EXISTS grid_parent_id_idx ON onemap.grid (parent_id);
CREATE INDEX IF NOT EXISTS grid_worker_user_id_idx ON onemap.grid (worker_user_id);
CREATE INDEX IF NOT EXISTS grid_geom_idx ON onemap.grid USING gist (geom);
CREATE OR REPLACE TRIGGER grid_touch BEFORE UPDATE ON onemap.grid
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.compound (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    name            text NOT NULL,
    address         text,
    property_manager text,
    grid_id         bigint REFERENCES onemap.grid (id),
    geom            geometry(MultiPolygon, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.compound IS '小区(院落) — residential compound; grid_id may be NULL until assigned by location.';
COMMENT ON COLUMN onemap.compound.property_manager IS '物业公司 — property management company';
CREATE INDEX IF NOT EXISTS compound_grid_id_idx ON onemap.compound (grid_id);
CREATE INDEX IF NOT EXISTS compound_geom_idx ON onemap.compound USING gist (geom);
CREATE OR REPLACE TRIGGER compound_touch BEFORE UPDATE ON onemap.compound
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.building (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    name            text,
    address         text,
    building_type   text
                    CHECK (building_type IN ('walk_up', 'tower', 'courtyard', 'public',
                                             'commercial', 'industrial', 'other')),
    floors          smallint CHECK (floors > 0),
    basement_floors smallint NOT NULL DEFAULT 0 CHECK (basement_floors >= 0),
    year_built      smallint CHECK (year_built BETWEEN 1000 AND 2100),
    compound_id     bigint REFERENCES onemap.compound (id),
    grid_id         bigint REFERENCES onemap.grid (id),
    geom            geometry(MultiPolygon, 4490) NOT NULL,
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.building IS
    '楼栋 — building with its footprint; compound_id is NULL for buildings outside a compound '
    '(street-side, public).';
COMMENT ON COLUMN onemap.building.building_type IS
    '楼型 (NULL = unknown): walk_up 多层无电梯, tower 高层, courtyard 平房/院落, public 公共建筑, commercial 商业, industrial 工业, other';
COMMENT ON COLUMN onemap.building.floors IS '地上层数 — floors above ground';
COMMENT ON COLUMN onemap.building.version IS 'optimistic-concurrency counter; writers compare and increment';
CREATE INDEX IF NOT EXISTS building_compound_id_idx ON onemap.building (compound_id);
CREATE INDEX IF NOT EXISTS building_grid_id_idx ON onemap.building (grid_id);
CREATE INDEX IF NOT EXISTS building_geom_idx ON onemap.building USING gist (geom);
CREATE OR REPLACE TRIGGER building_touch BEFORE UPDATE ON onemap.building
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.unit (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_key      text UNIQUE,
    building_id     bigint NOT NULL REFERENCES onemap.building (id) ON DELETE CASCADE,
    number          text NOT NULL,
    geom            geometry(Point, 4490),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (building_id, number),
    -- target of household's composite foreign key (unit in the same building)
    UNIQUE (id, building_id)
);
COMMENT ON TABLE onemap.unit IS '单元 — stairwell/entrance unit of a building; geom NULL means use the building.';
CREATE INDEX IF NOT EXISTS unit_geom_idx ON onemap.unit USING gist (geom);
CREATE OR REPLACE TRIGGER unit_touch BEFORE UPDATE ON onemap.unit
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.household (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_key      text UNIQUE,
    building_id     bigint NOT NULL REFERENCES onemap.building (id),
    unit_id         bigint,
    room_no         text NOT NULL,
    floor           smallint,
    area_m2         numeric(8, 2) CHECK (area_m2 > 0),
    occupancy       text NOT NULL DEFAULT 'unknown'
                    CHECK (occupancy IN ('owner', 'tenant', 'vacant', 'unknown')),
    geom            geometry(Point, 4490),
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (building_id, room_no),
    FOREIGN KEY (unit_id, building_id) REFERENCES onemap.unit (id, building_id)
);
COMMENT ON TABLE onemap.household IS '户室 — dwelling (room) in a building, e.g. room_no ''3-2-501'' (楼-单元-室).';
COMMENT ON COLUMN onemap.household.floor IS '所在楼层; negative below ground';
COMMENT ON COLUMN onemap.household.occupancy IS '居住状态: owner 自住, tenant 出租, vacant 空置, unknown 未知';
COMMENT ON COLUMN onemap.household.unit_id IS '单元; must belong to the same building (composite foreign key)';
CREATE INDEX IF NOT EXISTS household_unit_id_idx ON onemap.household (unit_id);
CREATE INDEX IF NOT EXISTS household_geom_idx ON onemap.household USING gist (geom);
CREATE OR REPLACE TRIGGER household_touch BEFORE UPDATE ON onemap.household
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.resident (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_key      text UNIQUE,
    household_id    bigint NOT NULL REFERENCES onemap.household (id),
    name            text NOT NULL,
    id_number       text,
    phone           text,
    birth_date      date,
    birth_year      smallint CHECK (birth_year BETWEEN 1880 AND 2100),
    gender          text CHECK (gender IN ('male', 'female')),
    tags            text[] NOT NULL DEFAULT '{}'
                    CHECK (tags <@ ARRAY[
                        'elderly_alone', 'empty_nest', 'disabled', 'low_income',
                        'extreme_poverty', 'key_person', 'veteran', 'child_left_behind',
                        'floating_population', 'party_member', 'volunteer'
                    ]::text[]),
    synthetic       boolean NOT NULL DEFAULT false,
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT resident_birth_year_matches_date CHECK (birth_date IS NULL OR birth_year IS NULL
           OR birth_year = extract(year FROM birth_date))
);
COMMENT ON TABLE onemap.resident IS
    '居民 — resident of a household (居民台账). Personal data: visible only within the '
    'reader''s data_scope.';
COMMENT ON COLUMN onemap.resident.id_number IS '身份证号/证件号 — sensitive';
COMMENT ON COLUMN onemap.resident.birth_year IS 'when only the year is known; must agree with birth_date if both are set';
COMMENT ON COLUMN onemap.resident.tags IS
    '人群标签: elderly_alone 独居老人, empty_nest 空巢老人, disabled 残疾人, low_income 低保, '
    'extreme_poverty 特困, key_person 重点人员, veteran 退役军人, child_left_behind 留守儿童, '
    'floating_population 流动人口, party_member 党员, volunteer 志愿者';
COMMENT ON COLUMN onemap.resident.synthetic IS 'true for generated test/demo people, never real';
CREATE INDEX IF NOT EXISTS resident_household_id_idx ON onemap.resident (household_id);
CREATE INDEX IF NOT EXISTS resident_id_number_idx ON onemap.resident (id_number);
CREATE INDEX IF NOT EXISTS resident_tags_idx ON onemap.resident USING gin (tags);
CREATE OR REPLACE TRIGGER resident_touch BEFORE UPDATE ON onemap.resident
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();
