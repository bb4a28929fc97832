-- layers/020_events.sql: the published views of these layers (one per collection).
-- Generated once from the tables, then kept by hand: a view chooses the
-- columns a layer publishes and masks personal fields (130_access.sql).
-- security_invoker: the base tables' row-level security applies to the reader.

DROP VIEW IF EXISTS layers.event;
CREATE VIEW layers.event WITH (security_invoker = true) AS
SELECT t.id,
       t.client_uuid,
       t.external_ref,
       t.source,
       t.category,
       t.subcategory,
       t.description,
       t.address,
       t.geom,
       t.reported_at,
       t.reporter_user_id,
       CASE (SELECT onemap.personal_access()) WHEN 'full' THEN t.reporter_name
            WHEN 'masked' THEN onemap.mask_name(t.reporter_name) END AS reporter_name,
       CASE (SELECT onemap.personal_access()) WHEN 'full' THEN t.reporter_phone
            WHEN 'masked' THEN onemap.mask_digits(t.reporter_phone) END AS reporter_phone,
       t.status,
       t.street_office_id,
       t.community_id,
       t.grid_id,
       t.assignee_user_id,
       t.evaluation_score,
       t.evaluation_comment,
       t.evaluated_at,
       t.version,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.event AS t;
COMMENT ON VIEW layers.event IS $$事件(随手拍/随手上报) — report from a citizen, grid worker, the 12345 hotline or a sensor, assigned by location (属地) to street office, community and grid.$$;
GRANT SELECT ON layers.event TO onemap_api;

DROP VIEW IF EXISTS layers.event_photo;
CREATE VIEW layers.event_photo WITH (security_invoker = true) AS
SELECT t.id,
       t.event_id,
       t.phase,
       t.storage_ref,
       t.content_type,
       t.size_bytes,
       t.sha256,
       t.taken_at,
       t.geom,
       t.created_at,
       t.geom_3857
FROM onemap.event_photo AS t;
COMMENT ON VIEW layers.event_photo IS $$事件照片 — photo (or other attachment) of an event; the bytes live in object storage under storage_ref. The same file sent twice for one event is stored once.$$;
GRANT SELECT ON layers.event_photo TO onemap_api;
