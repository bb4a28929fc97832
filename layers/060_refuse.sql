-- layers/060_refuse.sql: the published views of these layers (one per collection).
-- Generated once from the tables, then kept by hand: a view chooses the
-- columns a layer publishes and masks personal fields (130_access.sql).
-- security_invoker: the base tables' row-level security applies to the reader.

DROP VIEW IF EXISTS layers.refuse_facility;
CREATE VIEW layers.refuse_facility WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.kind,
       t.treatment,
       t.name,
       t.operator,
       t.capacity_t_per_day,
       t.status,
       t.street_office_id,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.refuse_facility AS t;
COMMENT ON VIEW layers.refuse_facility IS $$环卫设施 — refuse building 垃圾楼, transfer station 转运站 or treatment plant 处理厂; geom is the entrance/representative point, footprint the site if surveyed.$$;
GRANT SELECT ON layers.refuse_facility TO onemap_api;
