-- layers/040_roads_lighting.sql: the published views of these layers (one per collection).
-- Generated once from the tables, then kept by hand: a view chooses the
-- columns a layer publishes and masks personal fields (130_access.sql).
-- security_invoker: the base tables' row-level security applies to the reader.

DROP VIEW IF EXISTS layers.road;
CREATE VIEW layers.road WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.name,
       t.road_class,
       t.width_m,
       t.lanes,
       t.oneway,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.road AS t;
COMMENT ON VIEW layers.road IS $$道路 — road centerline segment; several rows may share a name.$$;
GRANT SELECT ON layers.road TO onemap_api;

DROP VIEW IF EXISTS layers.lamp;
CREATE VIEW layers.lamp WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.height_m,
       t.luminaire_type,
       t.power_w,
       t.circuit_id,
       t.road_id,
       t.status,
       t.last_report_at,
       t.geom,
       t.version,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.lamp AS t;
COMMENT ON VIEW layers.lamp IS $$路灯(灯杆) — street lamp pole; code is the pole number (灯杆编号).$$;
GRANT SELECT ON layers.lamp TO onemap_api;

DROP VIEW IF EXISTS layers.distribution_box;
CREATE VIEW layers.distribution_box WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.name,
       t.status,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.distribution_box AS t;
COMMENT ON VIEW layers.distribution_box IS $$路灯配电箱 — street-lighting distribution box feeding lamp circuits.$$;
GRANT SELECT ON layers.distribution_box TO onemap_api;

DROP VIEW IF EXISTS layers.road_lighting_segment;
CREATE VIEW layers.road_lighting_segment WITH (security_invoker = true) AS
SELECT t.id,
       t.road_id,
       t.from_fraction,
       t.to_fraction,
       t.state,
       t.reason,
       t.length_m,
       t.geom,
       t.computed_at,
       t.geom_3857
FROM onemap.road_lighting_segment AS t;
COMMENT ON VIEW layers.road_lighting_segment IS $$道路亮灯状态 — derived by the unlit-roads analysis (无灯路治理): a stretch of a road, from_fraction..to_fraction along road.geom, lit or unlit and why. Rebuilt, not edited.$$;
GRANT SELECT ON layers.road_lighting_segment TO onemap_api;
