-- Web Mercator geometry for land use. 015_land_use.sql came after 090_mercator.sql
-- was applied on existing databases, so there onemap.land_use got no geom_3857
-- and its tiles transformed every row (fresh databases run 015 first and have it).
-- ensure_mercator is idempotent: nothing changes where the column exists.

SELECT onemap.ensure_mercator('onemap.land_use');
