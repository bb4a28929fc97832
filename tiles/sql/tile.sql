-- One tile: every layer of the set in one statement. {ctes}: one
-- "lN AS (SELECT *, row_number() OVER () AS _n FROM (<layer query>) q)" per
-- layer; {columns}: per layer its MVT (rows up to the cap) and its row count
-- (cap + 1 when truncated).
WITH {ctes}
SELECT {columns}
