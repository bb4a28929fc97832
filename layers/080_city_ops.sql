-- layers/080_city_ops.sql: the published views of these layers (one per collection).
-- Generated once from the tables, then kept by hand: a view chooses the
-- columns a layer publishes and masks personal fields (130_access.sql).
-- security_invoker: the base tables' row-level security applies to the reader.

DROP VIEW IF EXISTS layers.key_unit;
CREATE VIEW layers.key_unit WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.name,
       t.kind,
       t.address,
       t.people_count,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.key_unit AS t;
COMMENT ON VIEW layers.key_unit IS $$重点单位 — school, kindergarten, hospital, care home, government office ...; geom is the entrance/representative point, footprint the site if known.$$;
GRANT SELECT ON layers.key_unit TO onemap_api;

DROP VIEW IF EXISTS layers.hazard_source;
CREATE VIEW layers.hazard_source WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.name,
       t.kind,
       t.level,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.hazard_source AS t;
COMMENT ON VIEW layers.hazard_source IS $$危险源 — hazard source (filling station, chemical storage ...).$$;
GRANT SELECT ON layers.hazard_source TO onemap_api;

DROP VIEW IF EXISTS layers.charging_pile;
CREATE VIEW layers.charging_pile WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.operator,
       t.connector,
       t.power_kw,
       t.status,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.charging_pile AS t;
COMMENT ON VIEW layers.charging_pile IS $$充电桩 — EV charging pile.$$;
GRANT SELECT ON layers.charging_pile TO onemap_api;

DROP VIEW IF EXISTS layers.city_furniture;
CREATE VIEW layers.city_furniture WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.kind,
       t.status,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.city_furniture AS t;
COMMENT ON VIEW layers.city_furniture IS $$城市家具 — street furniture (bench, shelter, kiosk, sign, bin, toilet ...).$$;
GRANT SELECT ON layers.city_furniture TO onemap_api;

DROP VIEW IF EXISTS layers.snow_resource;
CREATE VIEW layers.snow_resource WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.name,
       t.kind,
       t.quantity,
       t.quantity_unit,
       t.street_office_id,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.snow_resource AS t;
COMMENT ON VIEW layers.snow_resource IS $$扫雪铲冰资源 — snow-removal resource: depot, plough, spreader, de-icer stock, snow dump, crew.$$;
GRANT SELECT ON layers.snow_resource TO onemap_api;
