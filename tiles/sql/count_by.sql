-- One point per value of {key} (households per building, buildings per
-- compound) with the number of rows; rows without a key stay single points.
SELECT ST_AsMVTGeom(ST_Centroid(ST_Collect({geom})), {envelope}, %(extent)s, %(buffer)s, true)
           AS geom,
       min(v.{key}) AS {key},
       count(*)::int AS count
FROM {view} AS v
WHERE {geom} && {buffered}{time}
GROUP BY COALESCE(v.{key}, -v.id)
ORDER BY count(*) DESC, COALESCE(v.{key}, -v.id)
LIMIT {limit}
