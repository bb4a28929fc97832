-- layers/050_alleys.sql: the published views of these layers (one per collection).
-- Generated once from the tables, then kept by hand: a view chooses the
-- columns a layer publishes and masks personal fields (130_access.sql).
-- security_invoker: the base tables' row-level security applies to the reader.

DROP VIEW IF EXISTS layers.alley;
CREATE VIEW layers.alley WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.name,
       t.start_desc,
       t.end_desc,
       t.length_m,
       t.width_m,
       t.alley_type,
       t.alley_chief_name,
       CASE (SELECT onemap.personal_access()) WHEN 'full' THEN t.alley_chief_phone
            WHEN 'masked' THEN onemap.mask_digits(t.alley_chief_phone) END AS alley_chief_phone,
       t.street_office_id,
       t.community_id,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.alley AS t;
COMMENT ON VIEW layers.alley IS $$背街小巷 — back alley with its start/end description (起止点) and its alley chief.$$;
GRANT SELECT ON layers.alley TO onemap_api;

DROP VIEW IF EXISTS layers.alley_problem;
CREATE VIEW layers.alley_problem WITH (security_invoker = true) AS
SELECT t.id,
       t.source,
       t.external_ref,
       t.alley_id,
       t.snap_distance_m,
       t.reported_at,
       t.category,
       t.description,
       t.status,
       t.photo_ref,
       t.resolved_at,
       t.geom,
       t.version,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.alley_problem AS t;
COMMENT ON VIEW layers.alley_problem IS $$背街小巷问题 — problem found on a back alley: 督查检查, 环卫检查, 网格巡查, 12345 投诉, 第三方检查.$$;
GRANT SELECT ON layers.alley_problem TO onemap_api;
