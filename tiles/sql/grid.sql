-- Density cells of {cell} pixels aligned to the tile: the number of rows whose
-- bounding-box centre falls in each cell, at the cell's centre. Only this
-- tile's own cells, so neighbouring tiles never count a row twice.
-- {by}: ", v.<column>" when the level is split by a column (one point per cell
-- and value, carrying the value), else nothing; {by_c}: the same as ", c.<column>".
SELECT ST_AsMVTGeom(
           ST_SetSRID(ST_MakePoint(%(minx)s + (c.i + 0.5) * c.size,
                                   %(miny)s + (c.j + 0.5) * c.size), {srid}),
           {envelope}, %(extent)s, %(buffer)s, true) AS geom,
       c.count{by_c}
FROM (
    SELECT floor(((ST_XMin({geom}) + ST_XMax({geom})) / 2 - %(minx)s) / (%(px)s * {cell}))::int AS i,
           floor(((ST_YMin({geom}) + ST_YMax({geom})) / 2 - %(miny)s) / (%(px)s * {cell}))::int AS j,
           %(px)s * {cell} AS size,
           count(*)::int AS count{by}
    FROM {view} AS v
    WHERE {geom} && {envelope}{time}
    GROUP BY 1, 2, 3{by}
) AS c
WHERE c.i >= 0 AND c.j >= 0 AND c.i < 256 / {cell} AND c.j < 256 / {cell}
ORDER BY c.count DESC, c.i, c.j{by_c}
LIMIT {limit}
