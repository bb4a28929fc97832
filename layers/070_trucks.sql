-- layers/070_trucks.sql: the published views of these layers (one per collection).
-- Generated once from the tables, then kept by hand: a view chooses the
-- columns a layer publishes and masks personal fields (130_access.sql).
-- security_invoker: the base tables' row-level security applies to the reader.

DROP VIEW IF EXISTS layers.truck_gps;
CREATE VIEW layers.truck_gps WITH (security_invoker = true) AS
SELECT t.id,
       t.truck_id,
       t.ts,
       t.geom,
       t.speed_kmh,
       t.heading,
       t.ignition,
       t.geom_3857
FROM onemap.truck_gps AS t;
COMMENT ON VIEW layers.truck_gps IS $$渣土车轨迹 — GPS fix of a truck, partitioned by Beijing-time day (truck_gps_pYYYYMMDD, truck_gps_default for days without a partition).$$;
GRANT SELECT ON layers.truck_gps TO onemap_api;

DROP VIEW IF EXISTS layers.waybill;
CREATE VIEW layers.waybill WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.truck_id,
       t.construction_site_id,
       t.disposal_site_id,
       t.issued_at,
       t.valid_from,
       t.valid_to,
       t.volume_m3,
       t.status,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.waybill AS t;
COMMENT ON VIEW layers.waybill IS $$电子运单 — electronic waybill: which truck may carry muck from which site to which disposal site, when.$$;
GRANT SELECT ON layers.waybill TO onemap_api;

DROP VIEW IF EXISTS layers.construction_site;
CREATE VIEW layers.construction_site WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.name,
       t.address,
       t.builder,
       t.status,
       t.street_office_id,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.construction_site AS t;
COMMENT ON VIEW layers.construction_site IS $$工地 — construction site producing muck; code is the permit number (施工许可证号).$$;
GRANT SELECT ON layers.construction_site TO onemap_api;

DROP VIEW IF EXISTS layers.disposal_site;
CREATE VIEW layers.disposal_site WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.name,
       t.operator,
       t.capacity_m3,
       t.status,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.disposal_site AS t;
COMMENT ON VIEW layers.disposal_site IS $$消纳场 — muck disposal site.$$;
GRANT SELECT ON layers.disposal_site TO onemap_api;

DROP VIEW IF EXISTS layers.checkpoint;
CREATE VIEW layers.checkpoint WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.name,
       t.road_id,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.checkpoint AS t;
COMMENT ON VIEW layers.checkpoint IS $$卡口 — camera checkpoint reading number plates.$$;
GRANT SELECT ON layers.checkpoint TO onemap_api;

DROP VIEW IF EXISTS layers.spill_report;
CREATE VIEW layers.spill_report WITH (security_invoker = true) AS
SELECT t.id,
       t.source,
       t.external_ref,
       t.event_id,
       t.road_id,
       t.reported_at,
       t.description,
       t.area_m2,
       t.status,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.spill_report AS t;
COMMENT ON VIEW layers.spill_report IS $$道路遗撒 — muck spilled on a road; the start of a spill trace (place and time -> suspect trucks).$$;
GRANT SELECT ON layers.spill_report TO onemap_api;
