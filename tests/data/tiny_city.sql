-- A tiny hand-made city (one community in Chaoyang, Beijing) whose counts the
-- API tests know by heart. Synthetic: no real person is here.
-- Loaded by the `demo_db` test fixture; tests/api assert its known answers.

INSERT INTO onemap.district (code, name, geom) VALUES
  ('110105', '朝阳区(演示)', ST_Multi(ST_MakeEnvelope(116.40, 39.88, 116.54, 39.98, 4490)));

INSERT INTO onemap.street_office (code, name, district_id, geom)
SELECT '110105001', '示范街道', id, ST_Multi(ST_MakeEnvelope(116.45, 39.91, 116.49, 39.94, 4490))
FROM onemap.district WHERE code = '110105';

INSERT INTO onemap.community (code, name, street_office_id, geom)
SELECT '110105001001', '示范社区', id, ST_Multi(ST_MakeEnvelope(116.46, 39.915, 116.48, 39.93, 4490))
FROM onemap.street_office WHERE code = '110105001';

INSERT INTO onemap.grid (code, name, community_id, level, geom)
SELECT g.code, g.name, c.id, 1, ST_Multi(ST_MakeEnvelope(g.x0, 39.915, g.x1, 39.93, 4490))
FROM onemap.community c,
     (VALUES ('110105001001-01', '第一网格', 116.46, 116.47),
             ('110105001001-02', '第二网格', 116.47, 116.48)) AS g(code, name, x0, x1)
WHERE c.code = '110105001001';

INSERT INTO onemap.compound (code, name, address, grid_id, geom)
SELECT c.code, c.name, c.address, g.id,
       ST_Multi(ST_MakeEnvelope(c.x0, 39.918, c.x0 + 0.007, 39.927, 4490))
FROM (VALUES ('C-01', '和平里小区', '示范路 1 号', '110105001001-01', 116.4615),
             ('C-02', '幸福家园', '示范路 9 号', '110105001001-02', 116.4715))
       AS c(code, name, address, grid_code, x0)
JOIN onemap.grid g ON g.code = c.grid_code;

INSERT INTO onemap.building (code, name, address, building_type, floors, year_built, compound_id,
                             grid_id, geom)
SELECT c.code || '-B' || b.n, b.n || '号楼', c.address || ' ' || b.n || '号楼',
       CASE WHEN b.n <= 2 THEN 'walk_up' ELSE 'tower' END,
       CASE WHEN b.n <= 2 THEN 6 ELSE 24 END, 1990 + b.n * 5, c.id, c.grid_id,
       ST_Multi(ST_MakeEnvelope(ST_XMin(c.geom) + 0.001 + (b.n - 1) % 2 * 0.003,
                                ST_YMin(c.geom) + 0.001 + (b.n - 1) / 2 * 0.004,
                                ST_XMin(c.geom) + 0.003 + (b.n - 1) % 2 * 0.003,
                                ST_YMin(c.geom) + 0.0025 + (b.n - 1) / 2 * 0.004, 4490))
FROM onemap.compound c, generate_series(1, 4) AS b(n);

INSERT INTO onemap.unit (building_id, number, geom)
SELECT b.id, u.n::text, ST_PointOnSurface(b.geom)
FROM onemap.building b, generate_series(1, 2) AS u(n);

INSERT INTO onemap.household (building_id, unit_id, room_no, floor, area_m2, occupancy, geom)
SELECT u.building_id, u.id,
       split_part(b.name, '号', 1) || '-' || u.number || '-' || f.f || lpad(r.r::text, 2, '0'),
       f.f, 60 + r.r * 15, CASE WHEN (f.f * 2 + r.r) % 5 = 0 THEN 'vacant' ELSE 'owner' END,
       ST_PointOnSurface(b.geom)
FROM onemap.unit u JOIN onemap.building b ON b.id = u.building_id,
     generate_series(1, 3) AS f(f), generate_series(1, 2) AS r(r);

INSERT INTO onemap.resident (household_id, name, birth_year, gender, tags, synthetic)
SELECT h.id, '演示居民' || h.id, 1940 + (h.id * 7) % 70,
       CASE WHEN h.id % 2 = 0 THEN 'female' ELSE 'male' END,
       CASE WHEN h.id % 11 = 0 THEN ARRAY['elderly_alone'] ELSE ARRAY[]::text[] END, true
FROM onemap.household h WHERE h.occupancy <> 'vacant';

INSERT INTO onemap.road (name, road_class, width_m, lanes, geom) VALUES
  ('示范路', 'secondary', 24, 4, ST_MakeLine(ST_Point(116.455, 39.9175, 4490), ST_Point(116.485, 39.9175, 4490))),
  ('和平巷', 'branch', 9, 2, ST_MakeLine(ST_Point(116.4705, 39.912, 4490), ST_Point(116.4705, 39.933, 4490)));

INSERT INTO onemap.lamp (code, height_m, luminaire_type, power_w, road_id, status, geom)
SELECT 'L-' || lpad(i::text, 3, '0'), 10, 'led', 120, r.id,
       CASE WHEN i % 9 = 0 THEN 'fault' ELSE 'working' END,
       ST_LineInterpolatePoint(r.geom, i / 30.0)
FROM onemap.road r, generate_series(1, 29) AS i WHERE r.name = '示范路';

INSERT INTO onemap.event (source, category, description, geom, status, community_id, grid_id)
SELECT 'grid_worker', 'city_appearance', '楼道堆放杂物 / clutter in a stairwell',
       ST_Point(116.465, 39.922, 4490), 'reported', g.community_id, g.id
FROM onemap.grid g WHERE g.code = '110105001001-01';

INSERT INTO onemap.key_unit (name, kind, address, geom) VALUES
  ('示范小学', 'school', '示范路 20 号', ST_Point(116.476, 39.928, 4490));
