-- 176_process_inputs: checks shared by the process inputs (scenarios/processes/base.py).
--
-- near_city: whether a point or polygon lies within margin_m of a district, i.e.
-- in the city a process can answer for. Distance in degrees of latitude (about
-- 111 km each): a degree of longitude is shorter here, so the margin is at least
-- margin_m, which is all "outside the city" needs. A database without districts
-- has no city boundary yet: everything is near it. Districts are public, so the
-- answer is the same for every caller.

CREATE OR REPLACE FUNCTION onemap.near_city(g geometry, margin_m double precision)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT NOT EXISTS (SELECT 1 FROM onemap.district)
        OR EXISTS (SELECT 1 FROM onemap.district d
                   WHERE ST_DWithin(d.geom, ST_SetSRID(g, 4490), margin_m / 111320.0))
$$;
COMMENT ON FUNCTION onemap.near_city(geometry, double precision) IS
    '本市范围 — whether g (EPSG:4490) lies within margin_m metres of a district';
