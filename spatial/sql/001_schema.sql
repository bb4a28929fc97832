-- 001_schema: extensions, the application schema, shared helpers.
--
-- Applied by the migration runner in one transaction; no BEGIN/COMMIT here.
-- Every statement is re-runnable: applying this file again changes nothing.
--
-- PostGIS and pgRouting are not "trusted" extensions, so the role that applies
-- this file must be allowed to create them (superuser, or the extensions were
-- created beforehand by one).

CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS pgrouting;

CREATE SCHEMA IF NOT EXISTS onemap;

COMMENT ON SCHEMA onemap IS
    '城市运行"一张图"应用模式 — onemap application schema: city and community '
    'governance data model. All geometries are CGCS2000 (SRID 4490).';

-- Keeps updated_at truthful without trusting every writer to set it.
-- A writer that sets updated_at itself (e.g. a sync preserving the upstream
-- time) is respected: only an unchanged value is replaced.
CREATE OR REPLACE FUNCTION onemap.touch_updated_at()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION onemap.touch_updated_at() IS
    '更新时间触发器 — BEFORE UPDATE trigger setting updated_at = now() unless '
    'the statement set updated_at itself.';
