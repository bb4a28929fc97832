-- 030_pipelines: underground pipeline networks (地下管线), utility tunnels
-- (综合管廊), valves, lifeline sensors (生命线监测) and their alarms.
--
-- One network per utility: water 供水, drainage 排水, gas 燃气, heat 供热,
-- power 电力, telecom 通信. Nodes, segments and valves repeat the utility
-- and composite foreign keys keep a segment from joining nodes of another
-- network, which the incident analysis (关阀分析) relies on.
-- Households are reached through service_connection nodes -> building.

CREATE TABLE IF NOT EXISTS onemap.utility_tunnel (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    name            text,
    utilities       text[] NOT NULL DEFAULT '{}'
                    CHECK (utilities <@ ARRAY['water', 'drainage', 'gas', 'heat',
                                              'power', 'telecom']::text[]),
    operator        text,
    status          text NOT NULL DEFAULT 'in_service'
                    CHECK (status IN ('in_service', 'abandoned', 'under_repair', 'under_construction')),
    geom            geometry(MultiLineString, 4490) NOT NULL,
    footprint       geometry(MultiPolygon, 4490),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.utility_tunnel IS '综合管廊 — utility tunnel: centerline in geom, outline in footprint if surveyed.';
COMMENT ON COLUMN onemap.utility_tunnel.utilities IS '入廊管线 — utilities carried in the tunnel';
CREATE INDEX IF NOT EXISTS utility_tunnel_geom_idx ON onemap.utility_tunnel USING gist (geom);
CREATE INDEX IF NOT EXISTS utility_tunnel_footprint_idx ON onemap.utility_tunnel USING gist (footprint);
CREATE OR REPLACE TRIGGER utility_tunnel_touch BEFORE UPDATE ON onemap.utility_tunnel
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.pipe_node (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    utility         text NOT NULL
                    CHECK (utility IN ('water', 'drainage', 'gas', 'heat', 'power', 'telecom')),
    kind            text NOT NULL DEFAULT 'junction'
                    CHECK (kind IN ('junction', 'end', 'service_connection', 'source', 'tank',
                                    'pump_station', 'regulator_station', 'manhole', 'inlet',
                                    'outlet', 'substation', 'other')),
    building_id     bigint REFERENCES onemap.building (id),
    depth_m         numeric(6, 2),
    geom            geometry(Point, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, utility),
    CONSTRAINT pipe_node_building_only_service_connection
        CHECK (building_id IS NULL OR kind = 'service_connection')
);
COMMENT ON TABLE onemap.pipe_node IS '管点 — pipeline node: junction, end, service connection (接户点), source, tank, station ...';
COMMENT ON COLUMN onemap.pipe_node.building_id IS 'building served, for kind = service_connection (接户)';
CREATE INDEX IF NOT EXISTS pipe_node_building_id_idx ON onemap.pipe_node (building_id);
CREATE INDEX IF NOT EXISTS pipe_node_geom_idx ON onemap.pipe_node USING gist (geom);
CREATE OR REPLACE TRIGGER pipe_node_touch BEFORE UPDATE ON onemap.pipe_node
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.pipe_segment (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    utility         text NOT NULL
                    CHECK (utility IN ('water', 'drainage', 'gas', 'heat', 'power', 'telecom')),
    material        text,
    diameter_mm     numeric(7, 1) CHECK (diameter_mm > 0),
    install_year    smallint CHECK (install_year BETWEEN 1800 AND 2100),
    pressure_class  text
                    CHECK (pressure_class IN ('gravity', 'low', 'medium_b', 'medium_a',
                                              'sub_high_b', 'sub_high_a', 'high_b', 'high_a')),
    depth_m         numeric(6, 2),
    status          text NOT NULL DEFAULT 'in_service'
                    CHECK (status IN ('in_service', 'abandoned', 'under_repair')),
    from_node_id    bigint,
    to_node_id      bigint,
    tunnel_id       bigint REFERENCES onemap.utility_tunnel (id),
    geom            geometry(LineString, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, utility),
    FOREIGN KEY (from_node_id, utility) REFERENCES onemap.pipe_node (id, utility),
    FOREIGN KEY (to_node_id, utility) REFERENCES onemap.pipe_node (id, utility)
);
COMMENT ON TABLE onemap.pipe_segment IS
    '管段 — pipe segment between two nodes of the same utility network; '
    'geom runs from from_node to to_node (flow direction for drainage).';
COMMENT ON COLUMN onemap.pipe_segment.pressure_class IS
    '压力级制 (GB 50028 gas classes; gravity for 重力流 drainage): 低压, 中压B/A, 次高压B/A, 高压B/A';
COMMENT ON COLUMN onemap.pipe_segment.depth_m IS '埋深 — cover depth in metres';
COMMENT ON COLUMN onemap.pipe_segment.tunnel_id IS '所在管廊, if laid in a utility tunnel';
CREATE INDEX IF NOT EXISTS pipe_segment_from_node_id_idx ON onemap.pipe_segment (from_node_id);
CREATE INDEX IF NOT EXISTS pipe_segment_to_node_id_idx ON onemap.pipe_segment (to_node_id);
CREATE INDEX IF NOT EXISTS pipe_segment_tunnel_id_idx ON onemap.pipe_segment (tunnel_id);
CREATE INDEX IF NOT EXISTS pipe_segment_geom_idx ON onemap.pipe_segment USING gist (geom);
CREATE OR REPLACE TRIGGER pipe_segment_touch BEFORE UPDATE ON onemap.pipe_segment
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.valve (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    utility         text NOT NULL
                    CHECK (utility IN ('water', 'drainage', 'gas', 'heat', 'power', 'telecom')),
    kind            text
                    CHECK (kind IN ('gate', 'butterfly', 'ball', 'plug', 'globe', 'check',
                                    'pressure_reducing', 'air_release', 'drain',
                                    'emergency_shutoff', 'switch', 'other')),
    node_id         bigint,
    segment_id      bigint,
    diameter_mm     numeric(7, 1) CHECK (diameter_mm > 0),
    operable        boolean NOT NULL DEFAULT true,
    normal_state    text NOT NULL DEFAULT 'open' CHECK (normal_state IN ('open', 'closed')),
    last_inspected_at timestamptz,
    geom            geometry(Point, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (node_id, utility) REFERENCES onemap.pipe_node (id, utility),
    FOREIGN KEY (segment_id, utility) REFERENCES onemap.pipe_segment (id, utility),
    CONSTRAINT valve_at_node_or_segment CHECK (num_nonnulls(node_id, segment_id) <= 1)
);
COMMENT ON TABLE onemap.valve IS
    '阀门(开关) — valve at a node or on a segment (both NULL until snapped to the network); '
    'operable = false means it cannot be relied on when isolating an incident.';
COMMENT ON COLUMN onemap.valve.normal_state IS '常态 — state in normal operation';
CREATE INDEX IF NOT EXISTS valve_node_id_idx ON onemap.valve (node_id);
CREATE INDEX IF NOT EXISTS valve_segment_id_idx ON onemap.valve (segment_id);
CREATE INDEX IF NOT EXISTS valve_geom_idx ON onemap.valve USING gist (geom);
CREATE OR REPLACE TRIGGER valve_touch BEFORE UPDATE ON onemap.valve
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.sensor (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    kind            text NOT NULL
                    CHECK (kind IN ('pressure', 'flow', 'gas_concentration', 'level',
                                    'temperature', 'water_quality', 'leak_noise', 'vibration',
                                    'displacement', 'manhole_cover', 'other')),
    utility         text
                    CHECK (utility IN ('water', 'drainage', 'gas', 'heat', 'power', 'telecom')),
    measure_unit    text,
    segment_id      bigint REFERENCES onemap.pipe_segment (id),
    node_id         bigint REFERENCES onemap.pipe_node (id),
    tunnel_id       bigint REFERENCES onemap.utility_tunnel (id),
    status          text NOT NULL DEFAULT 'online'
                    CHECK (status IN ('online', 'offline', 'fault', 'retired')),
    last_value      double precision,
    last_reading_at timestamptz,
    geom            geometry(Point, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.sensor IS '生命线监测传感器 — lifeline sensor attached to a pipe segment, node or tunnel.';
COMMENT ON COLUMN onemap.sensor.measure_unit IS 'unit of last_value and of alarm values, e.g. MPa, m3/h, %LEL, m';
CREATE INDEX IF NOT EXISTS sensor_segment_id_idx ON onemap.sensor (segment_id);
CREATE INDEX IF NOT EXISTS sensor_node_id_idx ON onemap.sensor (node_id);
CREATE INDEX IF NOT EXISTS sensor_tunnel_id_idx ON onemap.sensor (tunnel_id);
CREATE INDEX IF NOT EXISTS sensor_geom_idx ON onemap.sensor USING gist (geom);
CREATE OR REPLACE TRIGGER sensor_touch BEFORE UPDATE ON onemap.sensor
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.sensor_alarm (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sensor_id       bigint NOT NULL REFERENCES onemap.sensor (id) ON DELETE CASCADE,
    at              timestamptz NOT NULL,
    level           text NOT NULL CHECK (level IN ('info', 'warning', 'alarm', 'critical')),
    value           double precision,
    message         text,
    cleared_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (sensor_id, at),
    CONSTRAINT sensor_alarm_cleared_after_raised CHECK (cleared_at IS NULL OR cleared_at >= at)
);
COMMENT ON TABLE onemap.sensor_alarm IS
    '监测报警 — alarm raised by a sensor; open while cleared_at is NULL. '
    'One alarm per sensor and instant, so a re-sent alarm is not stored twice.';
CREATE INDEX IF NOT EXISTS sensor_alarm_at_idx ON onemap.sensor_alarm (at);
CREATE INDEX IF NOT EXISTS sensor_alarm_open_idx ON onemap.sensor_alarm (at) WHERE cleared_at IS NULL;
