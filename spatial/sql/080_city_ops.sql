-- 080_city_ops: other city-operations layers (城市运行). Key units and hazard
-- sources feed the pipeline-incident impact range; charging piles, city
-- furniture and snow-removal resources are display layers, kept minimal.

CREATE TABLE IF NOT EXISTS onemap.key_unit (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    name            text NOT NULL,
    kind            text NOT NULL
                    CHECK (kind IN ('school', 'kindergarten', 'hospital', 'clinic', 'care_home',
                                    'government', 'transport_hub', 'shopping_mall', 'stadium',
                                    'cultural_venue', 'religious_site', 'other')),
    address         text,
    people_count    integer CHECK (people_count >= 0),
    geom            geometry(Point, 4490) NOT NULL,
    footprint       geometry(MultiPolygon, 4490),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.key_unit IS
    '重点单位 — school, kindergarten, hospital, care home, government office ...; '
    'geom is the entrance/representative point, footprint the site if known.';
COMMENT ON COLUMN onemap.key_unit.people_count IS '人员规模 — usual number of people present (pupils, beds, staff)';
CREATE INDEX IF NOT EXISTS key_unit_geom_idx ON onemap.key_unit USING gist (geom);
CREATE INDEX IF NOT EXISTS key_unit_footprint_idx ON onemap.key_unit USING gist (footprint);
CREATE OR REPLACE TRIGGER key_unit_touch BEFORE UPDATE ON onemap.key_unit
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.hazard_source (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    name            text NOT NULL,
    kind            text NOT NULL
                    CHECK (kind IN ('gas_station', 'lpg_station', 'chemical_storage',
                                    'chemical_plant', 'explosives', 'radioactive',
                                    'pressure_vessel', 'other')),
    level           smallint CHECK (level BETWEEN 1 AND 4),
    geom            geometry(Point, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.hazard_source IS '危险源 — hazard source (filling station, chemical storage ...).';
COMMENT ON COLUMN onemap.hazard_source.level IS '重大危险源等级 (GB 18218): 1 = 一级 (most severe) .. 4 = 四级; NULL if not graded';
CREATE INDEX IF NOT EXISTS hazard_source_geom_idx ON onemap.hazard_source USING gist (geom);
CREATE OR REPLACE TRIGGER hazard_source_touch BEFORE UPDATE ON onemap.hazard_source
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.charging_pile (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    operator        text,
    connector       text CHECK (connector IN ('dc_fast', 'ac_slow')),
    power_kw        numeric(6, 1) CHECK (power_kw > 0),
    status          text NOT NULL DEFAULT 'available'
                    CHECK (status IN ('available', 'in_use', 'fault', 'offline')),
    geom            geometry(Point, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.charging_pile IS '充电桩 — EV charging pile.';
CREATE INDEX IF NOT EXISTS charging_pile_geom_idx ON onemap.charging_pile USING gist (geom);
CREATE OR REPLACE TRIGGER charging_pile_touch BEFORE UPDATE ON onemap.charging_pile
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.city_furniture (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    kind            text NOT NULL
                    CHECK (kind IN ('bench', 'bus_shelter', 'kiosk', 'sign', 'bollard',
                                    'litter_bin', 'public_toilet', 'other')),
    status          text NOT NULL DEFAULT 'in_service'
                    CHECK (status IN ('in_service', 'damaged', 'removed')),
    geom            geometry(Point, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.city_furniture IS '城市家具 — street furniture (bench, shelter, kiosk, sign, bin, toilet ...).';
CREATE INDEX IF NOT EXISTS city_furniture_geom_idx ON onemap.city_furniture USING gist (geom);
CREATE OR REPLACE TRIGGER city_furniture_touch BEFORE UPDATE ON onemap.city_furniture
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.snow_resource (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    name            text,
    kind            text NOT NULL
                    CHECK (kind IN ('depot', 'snow_plow', 'salt_spreader', 'deicer_stock',
                                    'snow_dump', 'team', 'other')),
    quantity        numeric(10, 2) CHECK (quantity >= 0),
    quantity_unit   text,
    street_office_id bigint REFERENCES onemap.street_office (id),
    geom            geometry(Point, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.snow_resource IS
    '扫雪铲冰资源 — snow-removal resource: depot, plough, spreader, de-icer stock, snow dump, crew.';
COMMENT ON COLUMN onemap.snow_resource.quantity_unit IS 'unit of quantity, e.g. t (融雪剂), vehicles, persons';
CREATE INDEX IF NOT EXISTS snow_resource_street_office_id_idx ON onemap.snow_resource (street_office_id);
CREATE INDEX IF NOT EXISTS snow_resource_geom_idx ON onemap.snow_resource USING gist (geom);
CREATE OR REPLACE TRIGGER snow_resource_touch BEFORE UPDATE ON onemap.snow_resource
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();
