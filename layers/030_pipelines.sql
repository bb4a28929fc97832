-- layers/030_pipelines.sql: the published views of these layers (one per collection).
-- Generated once from the tables, then kept by hand: a view chooses the
-- columns a layer publishes and masks personal fields (130_access.sql).
-- security_invoker: the base tables' row-level security applies to the reader.

DROP VIEW IF EXISTS layers.utility_tunnel;
CREATE VIEW layers.utility_tunnel WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.name,
       t.utilities,
       t.operator,
       t.status,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.utility_tunnel AS t;
COMMENT ON VIEW layers.utility_tunnel IS $$综合管廊 — utility tunnel: centerline in geom, outline in footprint if surveyed.$$;
GRANT SELECT ON layers.utility_tunnel TO onemap_api;

DROP VIEW IF EXISTS layers.pipe_node;
CREATE VIEW layers.pipe_node WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.utility,
       t.kind,
       t.building_id,
       t.depth_m,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.pipe_node AS t;
COMMENT ON VIEW layers.pipe_node IS $$管点 — pipeline node: junction, end, service connection (接户点), source, tank, station ...$$;
GRANT SELECT ON layers.pipe_node TO onemap_api;

DROP VIEW IF EXISTS layers.pipe_segment;
CREATE VIEW layers.pipe_segment WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.utility,
       t.material,
       t.diameter_mm,
       t.install_year,
       t.pressure_class,
       t.depth_m,
       t.status,
       t.from_node_id,
       t.to_node_id,
       t.tunnel_id,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.pipe_segment AS t;
COMMENT ON VIEW layers.pipe_segment IS $$管段 — pipe segment between two nodes of the same utility network; geom runs from from_node to to_node (flow direction for drainage).$$;
GRANT SELECT ON layers.pipe_segment TO onemap_api;

DROP VIEW IF EXISTS layers.valve;
CREATE VIEW layers.valve WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.utility,
       t.kind,
       t.node_id,
       t.segment_id,
       t.diameter_mm,
       t.operable,
       t.normal_state,
       t.last_inspected_at,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.valve AS t;
COMMENT ON VIEW layers.valve IS $$阀门(开关) — valve at a node or on a segment (both NULL until snapped to the network); operable = false means it cannot be relied on when isolating an incident.$$;
GRANT SELECT ON layers.valve TO onemap_api;

DROP VIEW IF EXISTS layers.sensor;
CREATE VIEW layers.sensor WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.kind,
       t.utility,
       t.measure_unit,
       t.segment_id,
       t.node_id,
       t.tunnel_id,
       t.status,
       t.last_value,
       t.last_reading_at,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.sensor AS t;
COMMENT ON VIEW layers.sensor IS $$生命线监测传感器 — lifeline sensor attached to a pipe segment, node or tunnel.$$;
GRANT SELECT ON layers.sensor TO onemap_api;
