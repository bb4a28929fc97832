-- Real features of one layer in one tile.
-- {geom}: the geometry column the matrix set reads (v.geom_3857 or v.geom);
-- {shape}: {geom} or its simplification; {envelope}/{buffered}: the tile's
-- envelope without and with the buffer; {time}: "AND <time filter>" or nothing;
-- {props}: the published columns; {order}: the cap's order; {limit}: cap + 1.
SELECT ST_AsMVTGeom({shape}, {envelope}, %(extent)s, %(buffer)s, true) AS geom,
       v.id{props}
FROM {view} AS v
WHERE {geom} && {buffered}{time}
ORDER BY {order}
LIMIT {limit}
