-- 040_roads_lighting: roads, street lamps and their power supply, and the
-- lit/unlit stretches the unlit-roads analysis (无灯路治理) derives.
--
-- A road row is one centerline LineString (one way/segment of a named road),
-- so linear referencing (ST_LineLocatePoint) and routing work on it directly.

CREATE TABLE IF NOT EXISTS onemap.road (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    name            text,
    road_class      text NOT NULL
                    CHECK (road_class IN ('expressway', 'arterial', 'secondary', 'branch', 'alley')),
    width_m         numeric(6, 2) CHECK (width_m > 0),
    lanes           smallint CHECK (lanes > 0),
    oneway          boolean NOT NULL DEFAULT false,
    geom            geometry(LineString, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.road IS '道路 — road centerline segment; several rows may share a name.';
COMMENT ON COLUMN onemap.road.road_class IS
    '道路等级: expressway 快速路, arterial 主干路, secondary 次干路, branch 支路, alley 街巷';
COMMENT ON COLUMN onemap.road.oneway IS 'true: traffic only in the digitising direction of geom';
CREATE INDEX IF NOT EXISTS road_geom_idx ON onemap.road USING gist (geom);
CREATE INDEX IF NOT EXISTS road_name_idx ON onemap.road (name);
CREATE OR REPLACE TRIGGER road_touch BEFORE UPDATE ON onemap.road
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.distribution_box (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    source_key      text UNIQUE,
    name            text,
    status          text NOT NULL DEFAULT 'working' CHECK (status IN ('working', 'off', 'fault')),
    geom            geometry(Point, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.distribution_box IS '路灯配电箱 — street-lighting distribution box feeding lamp circuits.';
CREATE INDEX IF NOT EXISTS distribution_box_geom_idx ON onemap.distribution_box USING gist (geom);
CREATE OR REPLACE TRIGGER distribution_box_touch BEFORE UPDATE ON onemap.distribution_box
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.lamp_circuit (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    distribution_box_id bigint NOT NULL REFERENCES onemap.distribution_box (id),
    code            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (distribution_box_id, code)
);
COMMENT ON TABLE onemap.lamp_circuit IS '路灯回路 — lighting circuit of a distribution box; code is unique within the box.';
CREATE OR REPLACE TRIGGER lamp_circuit_touch BEFORE UPDATE ON onemap.lamp_circuit
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.lamp (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    height_m        numeric(5, 2) CHECK (height_m > 0),
    luminaire_type  text CHECK (luminaire_type IN ('led', 'hps', 'metal_halide', 'fluorescent',
                                                   'induction', 'other')),
    power_w         numeric(7, 1) CHECK (power_w > 0),
    circuit_id      bigint REFERENCES onemap.lamp_circuit (id),
    road_id         bigint REFERENCES onemap.road (id),
    status          text NOT NULL DEFAULT 'working' CHECK (status IN ('working', 'off', 'fault')),
    last_report_at  timestamptz,
    geom            geometry(Point, 4490) NOT NULL,
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.lamp IS '路灯(灯杆) — street lamp pole; code is the pole number (灯杆编号).';
COMMENT ON COLUMN onemap.lamp.luminaire_type IS '光源: led, hps 高压钠灯, metal_halide 金卤灯, fluorescent, induction 无极灯, other';
COMMENT ON COLUMN onemap.lamp.status IS 'current state: working 正常, off 熄灭, fault 故障; history in lamp_status_report';
COMMENT ON COLUMN onemap.lamp.road_id IS 'road the lamp lights, if known';
CREATE INDEX IF NOT EXISTS lamp_circuit_id_idx ON onemap.lamp (circuit_id);
CREATE INDEX IF NOT EXISTS lamp_road_id_idx ON onemap.lamp (road_id);
CREATE INDEX IF NOT EXISTS lamp_geom_idx ON onemap.lamp USING gist (geom);
CREATE OR REPLACE TRIGGER lamp_touch BEFORE UPDATE ON onemap.lamp
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.lamp_status_report (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lamp_id         bigint NOT NULL REFERENCES onemap.lamp (id) ON DELETE CASCADE,
    at              timestamptz NOT NULL,
    status          text NOT NULL CHECK (status IN ('working', 'off', 'fault')),
    source          text NOT NULL DEFAULT 'telemetry'
                    CHECK (source IN ('telemetry', 'patrol', 'citizen', 'hotline_12345')),
    note            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (lamp_id, at)
);
COMMENT ON TABLE onemap.lamp_status_report IS '路灯状态上报 — history of reported lamp states (单灯控制器, 巡查, 投诉).';
CREATE INDEX IF NOT EXISTS lamp_status_report_at_idx ON onemap.lamp_status_report (at);

CREATE TABLE IF NOT EXISTS onemap.road_lighting_segment (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    road_id         bigint NOT NULL REFERENCES onemap.road (id) ON DELETE CASCADE,
    from_fraction   double precision NOT NULL CHECK (from_fraction BETWEEN 0 AND 1),
    to_fraction     double precision NOT NULL CHECK (to_fraction BETWEEN 0 AND 1),
    state           text NOT NULL CHECK (state IN ('lit', 'unlit')),
    reason          text CHECK (reason IN ('no_lamp', 'lamp_fault', 'lamp_off',
                                           'circuit_fault', 'other')),
    length_m        double precision CHECK (length_m >= 0),
    geom            geometry(LineString, 4490) NOT NULL,
    computed_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT road_lighting_segment_fraction_order CHECK (from_fraction < to_fraction),
    CONSTRAINT road_lighting_segment_reason_if_unlit CHECK (state = 'unlit' OR reason IS NULL)
);
COMMENT ON TABLE onemap.road_lighting_segment IS
    '道路亮灯状态 — derived by the unlit-roads analysis (无灯路治理): a stretch of a road, '
    'from_fraction..to_fraction along road.geom, lit or unlit and why. Rebuilt, not edited.';
COMMENT ON COLUMN onemap.road_lighting_segment.reason IS
    'why unlit: no_lamp 无灯, lamp_fault 灯具故障, lamp_off 熄灯, circuit_fault 回路/配电故障';
CREATE INDEX IF NOT EXISTS road_lighting_segment_road_id_idx ON onemap.road_lighting_segment (road_id);
CREATE INDEX IF NOT EXISTS road_lighting_segment_geom_idx ON onemap.road_lighting_segment USING gist (geom);
