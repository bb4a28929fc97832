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
       t.stream,
       t.name,
       t.operator,
       t.capacity_t_per_day,
       t.status,
       t.street_office_id,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857,
       l.load_t,
       l.measured_at AS load_measured_at,
       round(l.load_t / NULLIF(t.capacity_t_per_day, 0), 3)::double precision AS load_ratio,
       CASE WHEN l.load_t IS NULL OR NULLIF(t.capacity_t_per_day, 0) IS NULL THEN 'none'
            WHEN l.load_t / t.capacity_t_per_day >= 0.9 THEN 'near_limit'
            WHEN l.load_t / t.capacity_t_per_day >= 0.7 THEN 'high'
            ELSE 'normal' END AS load_class
FROM onemap.refuse_facility AS t
-- Today's load: the newest reading of the facility's current local (Beijing) day,
-- summed over its streams (a refuse building weighs each stream at the same time).
-- The readings are internal (130_access.sql): under security_invoker their
-- row-level security leaves these columns NULL (class 'none') for anonymous and
-- public callers, so tiles of this layer are cached per scope class
-- (tiles.yml `reads:`). Served by refuse_load_reading's (facility_id, measured_at,
-- stream) index.
LEFT JOIN LATERAL (
    SELECT sum(r.load_t) AS load_t, max(r.measured_at) AS measured_at
    FROM onemap.refuse_load_reading AS r
    WHERE r.facility_id = t.id
      AND r.measured_at = (
          SELECT n.measured_at
          FROM onemap.refuse_load_reading AS n
          WHERE n.facility_id = t.id
            AND n.measured_at >= (date_trunc('day', now() AT TIME ZONE 'Asia/Shanghai')
                                  AT TIME ZONE 'Asia/Shanghai')
            AND n.measured_at < (date_trunc('day', now() AT TIME ZONE 'Asia/Shanghai')
                                 AT TIME ZONE 'Asia/Shanghai') + interval '1 day'
          ORDER BY n.measured_at DESC
          LIMIT 1)
) AS l ON true;
COMMENT ON VIEW layers.refuse_facility IS $$环卫设施 — refuse building 垃圾楼, transfer station 转运站 or treatment plant 处理厂; geom is the entrance/representative point, footprint the site if surveyed.$$;
GRANT SELECT ON layers.refuse_facility TO onemap_api;
