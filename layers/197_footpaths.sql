-- layers/197_footpaths.sql: the published views of the compound gates, footpaths
-- and planned refuse-building sites (spatial/sql/197_footpaths.sql).
-- security_invoker: the base tables' row-level security applies to the reader.

DROP VIEW IF EXISTS layers.compound_gate;
CREATE VIEW layers.compound_gate WITH (security_invoker = true) AS
SELECT t.id,
       t.compound_id,
       t.name,
       t.kind,
       t.is_open,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.compound_gate AS t;
COMMENT ON VIEW layers.compound_gate IS $$小区出入口 — a gate in a compound's fence; is_open false: closed (walks avoid it)$$;
GRANT SELECT ON layers.compound_gate TO onemap_api;

DROP VIEW IF EXISTS layers.footpath;
CREATE VIEW layers.footpath WITH (security_invoker = true) AS
SELECT t.id,
       t.compound_id,
       t.kind,
       t.building_id,
       t.length_m,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.footpath AS t;
COMMENT ON VIEW layers.footpath IS $$步行道 — compound walkways (path), door paths (door) and gate paths to the road (gate_path)$$;
GRANT SELECT ON layers.footpath TO onemap_api;

DROP VIEW IF EXISTS layers.refuse_candidate_site;
CREATE VIEW layers.refuse_candidate_site WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.name,
       t.land,
       t.capacity_t_per_day,
       t.status,
       t.note,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.refuse_candidate_site AS t;
COMMENT ON VIEW layers.refuse_candidate_site IS $$垃圾楼备选点位 — a planned site where a refuse building could be built, with the capacity it could have$$;
GRANT SELECT ON layers.refuse_candidate_site TO onemap_api;
