-- The application schema and the table that tracks applied migrations.
-- Applied before every other file; re-runnable.
CREATE SCHEMA IF NOT EXISTS onemap;

CREATE TABLE IF NOT EXISTS onemap.schema_migrations (
    name        text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE onemap.schema_migrations IS
    '已执行的数据库迁移 / SQL migrations applied to this database';
