-- Points joined into one generalised line per {key} (GPS fixes → tracks) in
-- {line_order}, with the number of points; a single point stays a point.
SELECT ST_AsMVTGeom({line_shape}, {envelope}, %(extent)s, %(buffer)s, true) AS geom,
       v.{key},
       count(*)::int AS count
FROM {view} AS v
WHERE {geom} && {buffered}{time}
GROUP BY v.{key}
ORDER BY v.{key}
LIMIT {limit}
