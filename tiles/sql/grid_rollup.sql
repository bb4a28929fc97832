-- Density cells like grid.sql, summed from a rollup table {rollup} (counts per
-- UTC hour and small cell at the cell's centre, kept by triggers, e.g.
-- spatial/sql/152_truck_gps_rollup.sql). Whole hours of the time window
-- [{t0}, {t1}] come from the rollup; the rows of the partial hours at its ends
-- come from the layer itself, so a cell's count equals a count of the rows.
-- {h0}: the first whole hour's start, {h1}: the end of the last whole hour;
-- the rows before {a1} and from {b0} on are counted one by one (two simple
-- ranges the time index serves; the second is empty when the window lies
-- within one hour).
SELECT ST_AsMVTGeom(
           ST_SetSRID(ST_MakePoint(%(minx)s + (c.i + 0.5) * c.size,
                                   %(miny)s + (c.j + 0.5) * c.size), {srid}),
           {envelope}, %(extent)s, %(buffer)s, true) AS geom,
       c.count
FROM (
    SELECT floor((ST_X(p.g) - %(minx)s) / (%(px)s * {cell}))::int AS i,
           floor((ST_Y(p.g) - %(miny)s) / (%(px)s * {cell}))::int AS j,
           %(px)s * {cell} AS size,
           sum(p.n)::int AS count
    FROM (
        SELECT {geom} AS g, v.count AS n
        FROM {rollup} AS v
        WHERE {geom} && {envelope} AND v.hour >= {h0} AND v.hour < {h1}
        UNION ALL
        SELECT {geom} AS g, 1 AS n
        FROM {view} AS v
        WHERE {geom} && {envelope} AND v.{t} >= {t0} AND v.{t} < {a1}
        UNION ALL
        SELECT {geom} AS g, 1 AS n
        FROM {view} AS v
        WHERE {geom} && {envelope} AND v.{t} >= {b0} AND v.{t} <= {t1}
    ) AS p
    GROUP BY 1, 2, 3
) AS c
WHERE c.i >= 0 AND c.j >= 0 AND c.i < 256 / {cell} AND c.j < 256 / {cell}
ORDER BY c.count DESC, c.i, c.j
LIMIT {limit}
