-- 199_spill_trace: what the spill tracing (道路遗撒溯源, scenarios/spill_trace.py)
-- needs beyond 070_trucks.sql, and the truth it is measured against.
--
-- truth.gps_gap: every stretch without fixes the generator planted in a truck's
-- track — a gap (a tunnel, a flaky terminal: 1–40 min) or a device switched off —
-- so the evaluation can tell a suspect found through a space-time prism from one
-- seen directly.

CREATE TABLE IF NOT EXISTS truth.gps_gap (
    truck_id                bigint NOT NULL,
    from_ts                 timestamptz NOT NULL,
    to_ts                   timestamptz NOT NULL,
    kind                    text NOT NULL CHECK (kind IN ('gap', 'device_off')),
    PRIMARY KEY (truck_id, from_ts, kind),
    CHECK (to_ts > from_ts)
);
COMMENT ON TABLE truth.gps_gap IS
    'a stretch of a truck''s track without fixes: gap (the terminal lost its fix or '
    'connection) or device_off (switched off; also in truth.device_off)';

-- A truck's fixes in time order (the gaps around a spill) are served by
-- truck_gps's UNIQUE (truck_id, ts) of 070_trucks.sql.

-- Loads dumped outside any disposal site (偷倒乱倒): the trip's disposal_site_id is
-- NULL and its path ends where it dumped; truth.unauthorised says why.
ALTER TABLE truth.truck_trip ALTER COLUMN disposal_site_id DROP NOT NULL;
COMMENT ON COLUMN truth.truck_trip.disposal_site_id IS
    'where it unloaded; NULL: dumped outside any disposal site, at the end of path';
ALTER TABLE truth.unauthorised DROP CONSTRAINT IF EXISTS unauthorised_reason_check;
ALTER TABLE truth.unauthorised ADD CONSTRAINT unauthorised_reason_check
    CHECK (reason IN ('no_waybill', 'wrong_disposal_site', 'dumped_outside'));

-- What a checkpoint camera's classifier saw of a muck truck's load (渣土车未密闭识别):
-- covered, uncovered, or NULL (empty, or not classified: glare, night, occlusion).
ALTER TABLE onemap.checkpoint_hit ADD COLUMN IF NOT EXISTS load_cover text;
ALTER TABLE onemap.checkpoint_hit DROP CONSTRAINT IF EXISTS checkpoint_hit_load_cover_check;
ALTER TABLE onemap.checkpoint_hit ADD CONSTRAINT checkpoint_hit_load_cover_check
    CHECK (load_cover IN ('covered', 'uncovered'));
COMMENT ON COLUMN onemap.checkpoint_hit.load_cover IS
    'the camera''s reading of the load''s cover: covered, uncovered (未密闭), NULL: not classified';
-- Whether the trip's load cover was really open (the classifier's reads are noisy).
ALTER TABLE truth.truck_trip ADD COLUMN IF NOT EXISTS uncovered boolean NOT NULL DEFAULT false;
