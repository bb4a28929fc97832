-- 070_trucks: muck trucks (渣土车) and the records the spill tracing
-- (道路遗撒问题溯源) joins: GPS tracks, electronic waybills (电子运单),
-- disposal-site entries (消纳场入场), checkpoint camera hits (卡口) and the
-- spill reports themselves.
--
-- truck_gps is partitioned by day (Beijing time). Rows for a day without a
-- partition land in truck_gps_default; onemap.ensure_truck_gps_partition(day)
-- creates the day's partition and moves such rows into it.

CREATE TABLE IF NOT EXISTS onemap.truck_company (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    name            text NOT NULL,
    contact_phone   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.truck_company IS '运输企业 — muck transport company; code is the unified social credit code (统一社会信用代码).';
CREATE OR REPLACE TRIGGER truck_company_touch BEFORE UPDATE ON onemap.truck_company
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.truck (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plate_number    text NOT NULL UNIQUE
                    CHECK (plate_number = upper(plate_number) AND plate_number !~ '\s'),
    company_id      bigint REFERENCES onemap.truck_company (id),
    device_id       text UNIQUE,
    capacity_m3     numeric(6, 2) CHECK (capacity_m3 > 0),
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'suspended', 'retired')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.truck IS '渣土车 — muck truck; plate_number is stored upper-case without spaces so camera reads match.';
COMMENT ON COLUMN onemap.truck.device_id IS '车载终端号 — GPS terminal id the tracks arrive under';
COMMENT ON COLUMN onemap.truck.capacity_m3 IS '核定载方量 — rated load volume in cubic metres (方)';
CREATE INDEX IF NOT EXISTS truck_company_id_idx ON onemap.truck (company_id);
CREATE OR REPLACE TRIGGER truck_touch BEFORE UPDATE ON onemap.truck
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

-- The identity works for rows inserted (or COPYed) through truck_gps, which
-- is the only way to write it. UNIQUE (truck_id, ts) makes re-sent fixes
-- harmless (ON CONFLICT DO NOTHING) and serves per-truck track queries.
CREATE TABLE IF NOT EXISTS onemap.truck_gps (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    truck_id        bigint NOT NULL REFERENCES onemap.truck (id),
    ts              timestamptz NOT NULL,
    geom            geometry(Point, 4490) NOT NULL,
    speed_kmh       real CHECK (speed_kmh >= 0),
    heading         real CHECK (heading >= 0 AND heading < 360),
    ignition        boolean,
    PRIMARY KEY (id, ts),
    UNIQUE (truck_id, ts)
) PARTITION BY RANGE (ts);
COMMENT ON TABLE onemap.truck_gps IS
    '渣土车轨迹 — GPS fix of a truck, partitioned by Beijing-time day (truck_gps_pYYYYMMDD, '
    'truck_gps_default for days without a partition).';
COMMENT ON COLUMN onemap.truck_gps.heading IS 'degrees clockwise from north';
CREATE TABLE IF NOT EXISTS onemap.truck_gps_default PARTITION OF onemap.truck_gps DEFAULT;
CREATE INDEX IF NOT EXISTS truck_gps_geom_idx ON onemap.truck_gps USING gist (geom);
CREATE INDEX IF NOT EXISTS truck_gps_ts_idx ON onemap.truck_gps USING brin (ts);

CREATE OR REPLACE FUNCTION onemap.ensure_truck_gps_partition(day date)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part_name text := 'truck_gps_p' || to_char(day, 'YYYYMMDD');
    lower_ts  timestamptz := day::timestamp AT TIME ZONE 'Asia/Shanghai';
    upper_ts  timestamptz := (day + 1)::timestamp AT TIME ZONE 'Asia/Shanghai';
    -- Bounds as UTC literals: the text form of a timestamptz depends on the
    -- session's DateStyle and TimeZone, which must not shift a partition.
    lower_txt text := to_char(lower_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00';
    upper_txt text := to_char(upper_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00';
    part      regclass;
BEGIN
    IF day IS NULL THEN
        RAISE EXCEPTION 'ensure_truck_gps_partition: day must not be NULL';
    END IF;
    -- Two sessions asking for the same new day must not both create it.
    PERFORM pg_advisory_xact_lock(hashtext('onemap.ensure_truck_gps_partition'));

    part := to_regclass(format('onemap.%I', part_name));
    IF part IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pg_inherits
                       WHERE inhrelid = part AND inhparent = 'onemap.truck_gps'::regclass) THEN
            RAISE EXCEPTION 'ensure_truck_gps_partition: % exists but is not a partition of onemap.truck_gps', part;
        END IF;
        RETURN part;
    END IF;

    IF EXISTS (SELECT 1 FROM onemap.truck_gps_default WHERE ts >= lower_ts AND ts < upper_ts) THEN
        -- Creating the partition directly would fail on the rows parked in
        -- the default partition: build it apart, move them, then attach.
        EXECUTE format('CREATE TABLE onemap.%I (LIKE onemap.truck_gps INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       part_name);
        EXECUTE format('WITH moved AS (DELETE FROM onemap.truck_gps_default WHERE ts >= $1 AND ts < $2 RETURNING *) '
                       'INSERT INTO onemap.%I SELECT * FROM moved', part_name)
            USING lower_ts, upper_ts;
        EXECUTE format('ALTER TABLE onemap.truck_gps ATTACH PARTITION onemap.%I FOR VALUES FROM (%L) TO (%L)',
                       part_name, lower_txt, upper_txt);
    ELSE
        EXECUTE format('CREATE TABLE onemap.%I PARTITION OF onemap.truck_gps FOR VALUES FROM (%L) TO (%L)',
                       part_name, lower_txt, upper_txt);
    END IF;
    RETURN format('onemap.%I', part_name)::regclass;
END;
$$;
COMMENT ON FUNCTION onemap.ensure_truck_gps_partition(date) IS
    'Create the truck_gps partition for one Beijing-time day if missing, moving that day''s '
    'rows out of truck_gps_default; returns the partition. Safe to call repeatedly.';

CREATE TABLE IF NOT EXISTS onemap.construction_site (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    name            text NOT NULL,
    address         text,
    builder         text,
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('planned', 'active', 'suspended', 'finished')),
    street_office_id bigint REFERENCES onemap.street_office (id),
    geom            geometry(MultiPolygon, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.construction_site IS '工地 — construction site producing muck; code is the permit number (施工许可证号).';
CREATE INDEX IF NOT EXISTS construction_site_street_office_id_idx ON onemap.construction_site (street_office_id);
CREATE INDEX IF NOT EXISTS construction_site_geom_idx ON onemap.construction_site USING gist (geom);
CREATE OR REPLACE TRIGGER construction_site_touch BEFORE UPDATE ON onemap.construction_site
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.disposal_site (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    name            text NOT NULL,
    operator        text,
    capacity_m3     numeric(12, 1) CHECK (capacity_m3 >= 0),
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('planned', 'active', 'full', 'closed')),
    geom            geometry(MultiPolygon, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.disposal_site IS '消纳场 — muck disposal site.';
CREATE INDEX IF NOT EXISTS disposal_site_geom_idx ON onemap.disposal_site USING gist (geom);
CREATE OR REPLACE TRIGGER disposal_site_touch BEFORE UPDATE ON onemap.disposal_site
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.waybill (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    truck_id        bigint NOT NULL REFERENCES onemap.truck (id),
    construction_site_id bigint REFERENCES onemap.construction_site (id),
    disposal_site_id bigint REFERENCES onemap.disposal_site (id),
    issued_at       timestamptz NOT NULL,
    valid_from      timestamptz NOT NULL,
    valid_to        timestamptz NOT NULL,
    volume_m3       numeric(8, 2) CHECK (volume_m3 >= 0),
    status          text NOT NULL DEFAULT 'issued'
                    CHECK (status IN ('issued', 'in_transit', 'completed', 'cancelled', 'expired')),
    geom            geometry(LineString, 4490),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT waybill_valid_range CHECK (valid_to > valid_from)
);
COMMENT ON TABLE onemap.waybill IS '电子运单 — electronic waybill: which truck may carry muck from which site to which disposal site, when.';
COMMENT ON COLUMN onemap.waybill.code IS '运单号 — waybill number';
COMMENT ON COLUMN onemap.waybill.geom IS '计划路线 — planned route, if the waybill has one';
CREATE INDEX IF NOT EXISTS waybill_truck_id_valid_from_idx ON onemap.waybill (truck_id, valid_from);
CREATE INDEX IF NOT EXISTS waybill_construction_site_id_idx ON onemap.waybill (construction_site_id);
CREATE INDEX IF NOT EXISTS waybill_disposal_site_id_idx ON onemap.waybill (disposal_site_id);
CREATE INDEX IF NOT EXISTS waybill_geom_idx ON onemap.waybill USING gist (geom);
CREATE OR REPLACE TRIGGER waybill_touch BEFORE UPDATE ON onemap.waybill
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.disposal_entry (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_ref    text UNIQUE,
    disposal_site_id bigint NOT NULL REFERENCES onemap.disposal_site (id),
    truck_id        bigint REFERENCES onemap.truck (id),
    plate_number    text NOT NULL,
    waybill_id      bigint REFERENCES onemap.waybill (id),
    entered_at      timestamptz NOT NULL,
    volume_m3       numeric(8, 2) CHECK (volume_m3 >= 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.disposal_entry IS
    '消纳场入场记录 — a truck entering a disposal site; plate_number as recorded, '
    'truck_id once matched to a registered truck.';
COMMENT ON COLUMN onemap.disposal_entry.external_ref IS 'record id in the disposal site system, so a re-import updates';
CREATE INDEX IF NOT EXISTS disposal_entry_disposal_site_id_entered_at_idx ON onemap.disposal_entry (disposal_site_id, entered_at);
CREATE INDEX IF NOT EXISTS disposal_entry_truck_id_entered_at_idx ON onemap.disposal_entry (truck_id, entered_at);
CREATE INDEX IF NOT EXISTS disposal_entry_waybill_id_idx ON onemap.disposal_entry (waybill_id);

CREATE TABLE IF NOT EXISTS onemap.checkpoint (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    name            text NOT NULL,
    road_id         bigint REFERENCES onemap.road (id),
    geom            geometry(Point, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.checkpoint IS '卡口 — camera checkpoint reading number plates.';
CREATE INDEX IF NOT EXISTS checkpoint_road_id_idx ON onemap.checkpoint (road_id);
CREATE INDEX IF NOT EXISTS checkpoint_geom_idx ON onemap.checkpoint USING gist (geom);
CREATE OR REPLACE TRIGGER checkpoint_touch BEFORE UPDATE ON onemap.checkpoint
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.checkpoint_hit (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    checkpoint_id   bigint NOT NULL REFERENCES onemap.checkpoint (id),
    plate_read      text NOT NULL,
    truck_id        bigint REFERENCES onemap.truck (id),
    at              timestamptz NOT NULL,
    direction       text NOT NULL DEFAULT 'unknown'
                    CHECK (direction IN ('northbound', 'southbound', 'eastbound', 'westbound',
                                         'inbound', 'outbound', 'unknown')),
    confidence      real CHECK (confidence BETWEEN 0 AND 1),
    UNIQUE (checkpoint_id, at, plate_read)
);
COMMENT ON TABLE onemap.checkpoint_hit IS
    '卡口过车记录 — a plate read by a checkpoint camera; truck_id NULL when the read '
    'matches no registered truck (misread or unregistered vehicle).';
COMMENT ON COLUMN onemap.checkpoint_hit.plate_read IS 'plate text exactly as the camera read it';
COMMENT ON COLUMN onemap.checkpoint_hit.confidence IS 'recognition confidence reported by the camera, 0..1';
CREATE INDEX IF NOT EXISTS checkpoint_hit_truck_id_at_idx ON onemap.checkpoint_hit (truck_id, at);
CREATE INDEX IF NOT EXISTS checkpoint_hit_plate_read_at_idx ON onemap.checkpoint_hit (plate_read, at);
CREATE INDEX IF NOT EXISTS checkpoint_hit_at_idx ON onemap.checkpoint_hit USING brin (at);

CREATE TABLE IF NOT EXISTS onemap.spill_report (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source          text NOT NULL
                    CHECK (source IN ('citizen', 'grid_worker', 'hotline_12345', 'patrol',
                                      'camera', 'other')),
    external_ref    text,
    event_id        bigint REFERENCES onemap.event (id),
    road_id         bigint REFERENCES onemap.road (id),
    reported_at     timestamptz NOT NULL,
    description     text,
    area_m2         numeric(9, 2) CHECK (area_m2 >= 0),
    status          text NOT NULL DEFAULT 'reported'
                    CHECK (status IN ('reported', 'assigned', 'cleaned', 'closed')),
    geom            geometry(Point, 4490) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, external_ref)
);
COMMENT ON TABLE onemap.spill_report IS
    '道路遗撒 — muck spilled on a road; the start of a spill trace (place and time -> suspect trucks).';
COMMENT ON COLUMN onemap.spill_report.event_id IS 'the 随手拍 event it came in as, if any';
CREATE INDEX IF NOT EXISTS spill_report_event_id_idx ON onemap.spill_report (event_id);
CREATE INDEX IF NOT EXISTS spill_report_road_id_idx ON onemap.spill_report (road_id);
CREATE INDEX IF NOT EXISTS spill_report_reported_at_idx ON onemap.spill_report (reported_at);
CREATE INDEX IF NOT EXISTS spill_report_geom_idx ON onemap.spill_report USING gist (geom);
CREATE OR REPLACE TRIGGER spill_report_touch BEFORE UPDATE ON onemap.spill_report
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();
