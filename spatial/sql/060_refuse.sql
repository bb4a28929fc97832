-- 060_refuse: refuse facilities (环卫设施) and their measured load.
--
-- One table for the three kinds because the flow allocation
-- (生活垃圾流向流量调配) treats them as nodes of one network: refuse
-- buildings (垃圾楼) -> transfer stations (转运站) -> treatment plants
-- (处理厂). Which households a refuse building serves is derived by the
-- placement analysis, not stored here.

CREATE TABLE IF NOT EXISTS onemap.refuse_facility (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text UNIQUE,
    source_key      text UNIQUE,
    kind            text NOT NULL
                    CHECK (kind IN ('refuse_building', 'transfer_station', 'treatment_plant')),
    treatment       text
                    CHECK (treatment IN ('incineration', 'landfill', 'composting',
                                         'kitchen_waste', 'recycling', 'other')),
    name            text NOT NULL,
    operator        text,
    capacity_t_per_day numeric(9, 2) CHECK (capacity_t_per_day >= 0),
    status          text NOT NULL DEFAULT 'in_service'
                    CHECK (status IN ('in_service', 'planned', 'under_construction', 'closed')),
    street_office_id bigint REFERENCES onemap.street_office (id),
    geom            geometry(Point, 4490) NOT NULL,
    footprint       geometry(MultiPolygon, 4490),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT refuse_facility_treatment_if_plant CHECK (treatment IS NULL OR kind = 'treatment_plant')
);
COMMENT ON TABLE onemap.refuse_facility IS
    '环卫设施 — refuse building 垃圾楼, transfer station 转运站 or treatment plant 处理厂; '
    'geom is the entrance/representative point, footprint the site if surveyed.';
COMMENT ON COLUMN onemap.refuse_facility.capacity_t_per_day IS '设计处理能力 — design capacity in tonnes per day';
COMMENT ON COLUMN onemap.refuse_facility.treatment IS 'treatment plants only: 焚烧, 填埋, 堆肥, 厨余, 资源化';
COMMENT ON COLUMN onemap.refuse_facility.street_office_id IS '管理街道 — managing street office, where one does';
CREATE INDEX IF NOT EXISTS refuse_facility_street_office_id_idx ON onemap.refuse_facility (street_office_id);
CREATE INDEX IF NOT EXISTS refuse_facility_geom_idx ON onemap.refuse_facility USING gist (geom);
CREATE INDEX IF NOT EXISTS refuse_facility_footprint_idx ON onemap.refuse_facility USING gist (footprint);
CREATE OR REPLACE TRIGGER refuse_facility_touch BEFORE UPDATE ON onemap.refuse_facility
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.refuse_load_reading (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    facility_id     bigint NOT NULL REFERENCES onemap.refuse_facility (id) ON DELETE CASCADE,
    measured_at     timestamptz NOT NULL,
    load_t          numeric(9, 2) NOT NULL CHECK (load_t >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (facility_id, measured_at)
);
COMMENT ON TABLE onemap.refuse_load_reading IS
    '实时负荷 — load measured at a facility (weighbridge), one reading per facility and '
    'instant so a re-sent reading is not counted twice.';
COMMENT ON COLUMN onemap.refuse_load_reading.load_t IS
    'tonnes received on the local (Beijing-time) day of measured_at up to measured_at, '
    'so it compares directly with capacity_t_per_day';
CREATE INDEX IF NOT EXISTS refuse_load_reading_measured_at_idx ON onemap.refuse_load_reading (measured_at);
