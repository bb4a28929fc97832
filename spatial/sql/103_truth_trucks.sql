-- 103_truth_trucks: ground truth of the synthetic muck trucks — the trips the
-- trucks really made, which spill each truck caused, when devices were off,
-- which trips broke the rules, which camera reads were wrong. The spill
-- tracing (道路遗撒问题溯源) is checked against these tables.

CREATE TABLE IF NOT EXISTS truth.truck_trip (
    id                      bigint PRIMARY KEY,
    truck_id                bigint NOT NULL,
    waybill_id              bigint,
    construction_site_id    bigint NOT NULL,
    disposal_site_id        bigint NOT NULL,
    waybill_disposal_site_id bigint,
    load_start              timestamptz NOT NULL,
    depart_ts               timestamptz NOT NULL,
    entered_ts              timestamptz NOT NULL,
    arrive_ts               timestamptz NOT NULL,
    unload_end              timestamptz NOT NULL,
    volume_m3               numeric(8, 2),
    night                   boolean NOT NULL,
    entry_recorded          boolean NOT NULL,
    device_off              boolean NOT NULL,
    path                    geometry(LineString, 4490),
    CHECK (load_start <= depart_ts AND depart_ts <= entered_ts
           AND entered_ts <= arrive_ts AND arrive_ts <= unload_end)
);
COMMENT ON TABLE truth.truck_trip IS
    'a loaded haul as it happened: loaded at construction_site_id from load_start to depart_ts, '
    'entered disposal_site_id at entered_ts, unloaded arrive_ts..unload_end along path; '
    'waybill_disposal_site_id is where its waybill said it should go';
CREATE INDEX IF NOT EXISTS truck_trip_truck_id_idx ON truth.truck_trip (truck_id, depart_ts);

CREATE TABLE IF NOT EXISTS truth.spill_cause (
    spill_report_id         bigint PRIMARY KEY,
    kind                    text NOT NULL CHECK (kind IN ('caused', 'noise')),
    truck_id                bigint,
    trip_id                 bigint,
    waybill_id              bigint,
    construction_site_id    bigint,
    disposal_site_id        bigint,
    passed_at               timestamptz,
    CHECK ((kind = 'caused') = (truck_id IS NOT NULL AND trip_id IS NOT NULL
                                AND passed_at IS NOT NULL))
);
COMMENT ON TABLE truth.spill_cause IS
    'what caused each spill report: a truck on a trip that passed the spot at passed_at '
    '(kind caused), or nothing any tracked truck did (kind noise)';

CREATE TABLE IF NOT EXISTS truth.device_off (
    truck_id                bigint NOT NULL,
    from_ts                 timestamptz NOT NULL,
    to_ts                   timestamptz NOT NULL,
    PRIMARY KEY (truck_id, from_ts),
    CHECK (to_ts > from_ts)
);
COMMENT ON TABLE truth.device_off IS 'GPS terminal switched off: no fixes from from_ts to to_ts, the truck may still drive';

CREATE TABLE IF NOT EXISTS truth.unauthorised (
    truck_id                bigint NOT NULL,
    trip_id                 bigint PRIMARY KEY,
    reason                  text NOT NULL CHECK (reason IN ('no_waybill', 'wrong_disposal_site')),
    waybill_id              bigint
);
COMMENT ON TABLE truth.unauthorised IS
    'trips against the rules: without a waybill, or unloaded at a disposal site other than the waybill''s';

CREATE TABLE IF NOT EXISTS truth.checkpoint_misread (
    checkpoint_hit_id       bigint PRIMARY KEY,
    truck_id                bigint NOT NULL,
    plate_number            text NOT NULL
);
COMMENT ON TABLE truth.checkpoint_misread IS 'checkpoint camera reads with one character wrong: the truck really seen';
