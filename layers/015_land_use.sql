-- layers/015_land_use.sql: the published views of these layers (one per collection).
-- Generated once from the tables, then kept by hand: a view chooses the
-- columns a layer publishes and masks personal fields (130_access.sql).
-- security_invoker: the base tables' row-level security applies to the reader.

DROP VIEW IF EXISTS layers.land_use;
CREATE VIEW layers.land_use WITH (security_invoker = true) AS
SELECT t.id,
       t.kind,
       t.name,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.land_use AS t;
COMMENT ON VIEW layers.land_use IS $$土地利用(水系/绿地) — land use of the base map: water 水系 (rivers, canals), green 绿地, park 公园, plaza 广场.$$;
GRANT SELECT ON layers.land_use TO onemap_api;
