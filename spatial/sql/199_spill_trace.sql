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
