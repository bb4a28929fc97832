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

-- A small water network (供水) for the pipeline-incident analysis, and one gas
-- line. The main runs along 示范路 from the waterworks (TW-S); a branch feeds
-- each compound (J1-K1, J3-K2) and a link K1-K2 closes a ring between them.
-- Valves stand at nodes (kind 'other'): VA, VB, VC, VD on the main, VN1 and VN2
-- on the branches, VK on the ring link. Each building has a service
-- connection on its compound's node; the school one on K2.
INSERT INTO onemap.pipe_node (code, utility, kind, building_id, geom)
SELECT n.code, 'water', n.kind, b.id, ST_Point(n.x, n.y, 4490)
FROM (VALUES ('TW-S', 'source', NULL, 116.456, 39.9173),
             ('TW-VA', 'other', NULL, 116.458, 39.9173),
             ('TW-J1', 'junction', NULL, 116.465, 39.9173),
             ('TW-VB', 'other', NULL, 116.467, 39.9173),
             ('TW-J2', 'junction', NULL, 116.4705, 39.9173),
             ('TW-VC', 'other', NULL, 116.4725, 39.9173),
             ('TW-J3', 'junction', NULL, 116.475, 39.9173),
             ('TW-VD', 'other', NULL, 116.477, 39.9173),
             ('TW-E', 'end', NULL, 116.480, 39.9173),
             ('TW-VN1', 'other', NULL, 116.465, 39.9195),
             ('TW-K1', 'junction', NULL, 116.465, 39.9217),
             ('TW-VK', 'other', NULL, 116.470, 39.9217),
             ('TW-K2', 'junction', NULL, 116.475, 39.9217),
             ('TW-VN2', 'other', NULL, 116.475, 39.9195),
             ('TW-SC11', 'service_connection', 'C-01-B1', 116.4635, 39.91975),
             ('TW-SC12', 'service_connection', 'C-01-B2', 116.4665, 39.91975),
             ('TW-SC13', 'service_connection', 'C-01-B3', 116.4635, 39.92375),
             ('TW-SC14', 'service_connection', 'C-01-B4', 116.4665, 39.92375),
             ('TW-SC21', 'service_connection', 'C-02-B1', 116.4735, 39.91975),
             ('TW-SC22', 'service_connection', 'C-02-B2', 116.4765, 39.91975),
             ('TW-SC23', 'service_connection', 'C-02-B3', 116.4735, 39.92375),
             ('TW-SC24', 'service_connection', 'C-02-B4', 116.4765, 39.92375),
             ('TW-SCS', 'service_connection', NULL, 116.476, 39.9278))
       AS n(code, kind, building, x, y)
LEFT JOIN onemap.building b ON b.code = n.building
ORDER BY n.code;

INSERT INTO onemap.pipe_segment (code, utility, material, diameter_mm, from_node_id, to_node_id,
                                 geom)
SELECT s.code, 'water', 'ductile_iron', s.dn, a.id, z.id, ST_MakeLine(a.geom, z.geom)
FROM (VALUES ('TW-P1', 'TW-S', 'TW-VA', 400), ('TW-P2', 'TW-VA', 'TW-J1', 400),
             ('TW-P3', 'TW-J1', 'TW-VB', 300), ('TW-P4', 'TW-VB', 'TW-J2', 300),
             ('TW-P5', 'TW-J2', 'TW-VC', 300), ('TW-P6', 'TW-VC', 'TW-J3', 300),
             ('TW-P7', 'TW-J3', 'TW-VD', 200), ('TW-P8', 'TW-VD', 'TW-E', 200),
             ('TW-B1', 'TW-J1', 'TW-VN1', 200), ('TW-B2', 'TW-VN1', 'TW-K1', 200),
             ('TW-R1', 'TW-K1', 'TW-VK', 150), ('TW-R2', 'TW-VK', 'TW-K2', 150),
             ('TW-B3', 'TW-K2', 'TW-VN2', 200), ('TW-B4', 'TW-VN2', 'TW-J3', 200),
             ('TW-S11', 'TW-K1', 'TW-SC11', 50), ('TW-S12', 'TW-K1', 'TW-SC12', 50),
             ('TW-S13', 'TW-K1', 'TW-SC13', 50), ('TW-S14', 'TW-K1', 'TW-SC14', 50),
             ('TW-S21', 'TW-K2', 'TW-SC21', 50), ('TW-S22', 'TW-K2', 'TW-SC22', 50),
             ('TW-S23', 'TW-K2', 'TW-SC23', 50), ('TW-S24', 'TW-K2', 'TW-SC24', 50),
             ('TW-SS', 'TW-K2', 'TW-SCS', 100))
       AS s(code, a_code, z_code, dn)
JOIN onemap.pipe_node a ON a.code = s.a_code
JOIN onemap.pipe_node z ON z.code = s.z_code
ORDER BY s.code;

INSERT INTO onemap.valve (code, utility, kind, node_id, geom)
SELECT n.code, 'water', 'gate', n.id, n.geom
FROM onemap.pipe_node n WHERE n.utility = 'water' AND n.kind = 'other' ORDER BY n.code;

-- A gas line (燃气, medium pressure B) from a regulator station, with one valve.
INSERT INTO onemap.pipe_node (code, utility, kind, geom) VALUES
  ('TG-R', 'gas', 'regulator_station', ST_Point(116.458, 39.9160, 4490)),
  ('TG-V', 'gas', 'other', ST_Point(116.463, 39.9160, 4490)),
  ('TG-J', 'gas', 'junction', ST_Point(116.468, 39.9160, 4490));
INSERT INTO onemap.pipe_segment (code, utility, material, diameter_mm, pressure_class,
                                 from_node_id, to_node_id, geom)
SELECT s.code, 'gas', 'steel', 160, 'medium_b', a.id, z.id, ST_MakeLine(a.geom, z.geom)
FROM (VALUES ('TG-P1', 'TG-R', 'TG-V'), ('TG-P2', 'TG-V', 'TG-J')) AS s(code, a_code, z_code)
JOIN onemap.pipe_node a ON a.code = s.a_code
JOIN onemap.pipe_node z ON z.code = s.z_code
ORDER BY s.code;
INSERT INTO onemap.valve (code, utility, kind, node_id, geom)
SELECT 'TG-V', 'gas', 'ball', id, geom FROM onemap.pipe_node WHERE code = 'TG-V';

-- A pressure sensor on the branch B2 with an open alarm, and a filling station
-- between the buildings of 和平里小区.
INSERT INTO onemap.sensor (code, kind, utility, measure_unit, segment_id, geom)
SELECT 'TS-1', 'pressure', 'water', 'MPa', s.id, ST_LineInterpolatePoint(s.geom, 0.5)
FROM onemap.pipe_segment s WHERE s.code = 'TW-B2';
INSERT INTO onemap.sensor_alarm (sensor_id, at, level, value, message)
SELECT id, '2024-06-01 08:00:00+08', 'alarm', 0.05, '压力骤降 / pressure drop'
FROM onemap.sensor WHERE code = 'TS-1';
INSERT INTO onemap.hazard_source (code, name, kind, level, geom) VALUES
  ('TH-1', '示范加油站', 'gas_station', 4, ST_Point(116.4654, 39.9200, 4490));

-- Refuse: two refuse buildings, a transfer station and a plant along 示范路, with one
-- day's 21:00 readings (the refuse-flow example routes that day).
INSERT INTO onemap.refuse_facility (code, kind, treatment, name, capacity_t_per_day,
                                    street_office_id, geom)
SELECT v.code, v.kind, v.treatment, v.name, v.cap, so.id, ST_Point(v.x, v.y, 4490)
FROM (VALUES
    ('HW-T1', 'refuse_building', NULL, '示范路垃圾楼', 5.0, 116.458, 39.9177),
    ('HW-T2', 'refuse_building', NULL, '示范路2号垃圾楼', 5.0, 116.476, 39.9177),
    ('HW-T3', 'transfer_station', NULL, '示范垃圾转运站', 10.0, 116.466, 39.9177),
    ('HW-T4', 'treatment_plant', 'incineration', '示范焚烧厂', 100.0, 116.484, 39.9177)
) AS v (code, kind, treatment, name, cap, x, y), onemap.street_office so
WHERE so.code = '110105001';

INSERT INTO onemap.refuse_load_reading (facility_id, measured_at, load_t)
SELECT f.id, timestamptz '2026-10-28 21:00+08', v.t
FROM (VALUES ('HW-T1', 3.2), ('HW-T2', 4.1), ('HW-T3', 7.3), ('HW-T4', 7.3)) AS v (code, t)
JOIN onemap.refuse_facility f ON f.code = v.code;
