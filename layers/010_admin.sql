-- layers/010_admin.sql: the published views of these layers (one per collection).
-- Generated once from the tables, then kept by hand: a view chooses the
-- columns a layer publishes and masks personal fields (130_access.sql).
-- security_invoker: the base tables' row-level security applies to the reader.

DROP VIEW IF EXISTS layers.district;
CREATE VIEW layers.district WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.name,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.district AS t;
COMMENT ON VIEW layers.district IS $$区 — district; code is the 6-digit administrative division code.$$;
GRANT SELECT ON layers.district TO onemap_api;

DROP VIEW IF EXISTS layers.street_office;
CREATE VIEW layers.street_office WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.name,
       t.district_id,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.street_office AS t;
COMMENT ON VIEW layers.street_office IS $$街道(乡镇) — street office; code is the 9-digit division code.$$;
GRANT SELECT ON layers.street_office TO onemap_api;

DROP VIEW IF EXISTS layers.community;
CREATE VIEW layers.community WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.name,
       t.street_office_id,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.community AS t;
COMMENT ON VIEW layers.community IS $$社区(村) — community; code is the 12-digit statistical division code.$$;
GRANT SELECT ON layers.community TO onemap_api;

DROP VIEW IF EXISTS layers.grid;
CREATE VIEW layers.grid WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.name,
       t.community_id,
       t.parent_id,
       t.level,
       t.worker_user_id,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.grid AS t;
COMMENT ON VIEW layers.grid IS $$网格 — management grid within a community; multi-level through parent_id (1 = top level).$$;
GRANT SELECT ON layers.grid TO onemap_api;

DROP VIEW IF EXISTS layers.compound;
CREATE VIEW layers.compound WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.name,
       t.address,
       t.property_manager,
       t.grid_id,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.compound AS t;
COMMENT ON VIEW layers.compound IS $$小区(院落) — residential compound; grid_id may be NULL until assigned by location.$$;
GRANT SELECT ON layers.compound TO onemap_api;

DROP VIEW IF EXISTS layers.building;
CREATE VIEW layers.building WITH (security_invoker = true) AS
SELECT t.id,
       t.code,
       t.source_key,
       t.name,
       t.address,
       t.building_type,
       t.floors,
       t.basement_floors,
       t.year_built,
       t.compound_id,
       t.grid_id,
       t.geom,
       t.version,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.building AS t;
COMMENT ON VIEW layers.building IS $$楼栋 — building with its footprint; compound_id is NULL for buildings outside a compound (street-side, public).$$;
GRANT SELECT ON layers.building TO onemap_api;

DROP VIEW IF EXISTS layers.unit;
CREATE VIEW layers.unit WITH (security_invoker = true) AS
SELECT t.id,
       t.source_key,
       t.building_id,
       t.number,
       t.geom,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.unit AS t;
COMMENT ON VIEW layers.unit IS $$单元 — stairwell/entrance unit of a building; geom NULL means use the building.$$;
GRANT SELECT ON layers.unit TO onemap_api;

DROP VIEW IF EXISTS layers.household;
CREATE VIEW layers.household WITH (security_invoker = true) AS
SELECT t.id,
       t.source_key,
       t.building_id,
       t.unit_id,
       t.room_no,
       t.floor,
       t.area_m2,
       t.occupancy,
       t.geom,
       t.version,
       t.created_at,
       t.updated_at,
       t.geom_3857
FROM onemap.household AS t;
COMMENT ON VIEW layers.household IS $$户室 — dwelling (room) in a building, e.g. room_no '3-2-501' (楼-单元-室).$$;
GRANT SELECT ON layers.household TO onemap_api;
-- Residents (居民台账) are published at their household's point, with the
-- building and grid they live in, so a grid worker can list and map them.
-- Identity and contact fields: staff in scope see them, analysts see masks
-- (张*三, 138****5678), external systems and the public see NULL — and the
-- base table's policy gives those two no rows at all.
DROP VIEW IF EXISTS layers.resident;
CREATE VIEW layers.resident WITH (security_invoker = true) AS
SELECT t.id,
       t.household_id,
       h.building_id,
       b.grid_id,
       h.room_no,
       CASE (SELECT onemap.personal_access()) WHEN 'full' THEN t.name
            WHEN 'masked' THEN onemap.mask_name(t.name) END AS name,
       CASE (SELECT onemap.personal_access()) WHEN 'full' THEN t.id_number
            WHEN 'masked' THEN onemap.mask_digits(t.id_number) END AS id_number,
       CASE (SELECT onemap.personal_access()) WHEN 'full' THEN t.phone
            WHEN 'masked' THEN onemap.mask_digits(t.phone) END AS phone,
       CASE (SELECT onemap.personal_access()) WHEN 'full' THEN t.birth_date END AS birth_date,
       t.birth_year,
       t.gender,
       t.tags,
       t.synthetic,
       t.version,
       t.created_at,
       t.updated_at,
       h.geom,
       h.geom_3857
FROM onemap.resident AS t
JOIN onemap.household AS h ON h.id = t.household_id
JOIN onemap.building AS b ON b.id = h.building_id;
COMMENT ON VIEW layers.resident IS $$居民 — residents at their household's location; personal fields by role (130_access.sql).$$;
GRANT SELECT ON layers.resident TO onemap_api;
