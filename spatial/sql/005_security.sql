-- 005_security: users, roles, data scopes, API keys, login and audit logs.
--
-- Comes before the city model because grids, events and lamps reference
-- app_user. No row-level-security policies yet; data_scope is what they
-- will read.

CREATE TABLE IF NOT EXISTS onemap.app_user (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username        text NOT NULL UNIQUE
                    CHECK (username <> '' AND username = lower(username)),
    display_name    text,
    password_hash   text CHECK (password_hash LIKE '$argon2%'),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE onemap.app_user IS '用户 — application user (staff, grid worker, external system account).';
COMMENT ON COLUMN onemap.app_user.username IS '登录名 — login name, stored lower-case so "Zhang" and "zhang" cannot both exist.';
COMMENT ON COLUMN onemap.app_user.password_hash IS '密码哈希 — argon2 PHC string ($argon2id$...) only, never the password; NULL for accounts that log in by API key only.';
CREATE OR REPLACE TRIGGER app_user_touch BEFORE UPDATE ON onemap.app_user
    FOR EACH ROW EXECUTE FUNCTION onemap.touch_updated_at();

CREATE TABLE IF NOT EXISTS onemap.app_role (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    name_zh         text NOT NULL,
    description     text
);
COMMENT ON TABLE onemap.app_role IS '角色 — application role; rows are seeded here, code is the stable key.';

-- The NOT EXISTS filter keeps a re-run from drawing identity values for rows
-- that are already there; ON CONFLICT covers a concurrent insert.
INSERT INTO onemap.app_role (code, name_zh, description)
SELECT v.code, v.name_zh, v.description
FROM (VALUES
    ('district_admin',   '区级管理员',   'district administrator: all data of the district'),
    ('street_staff',     '街道工作人员', 'street-office staff: data of their street office(s)'),
    ('community_staff',  '社区工作人员', 'community staff: data of their community(ies)'),
    ('grid_worker',      '网格员',       'grid worker: data of their grid(s), reports events'),
    ('analyst',          '分析人员',     'scenario planner / city-operations analyst'),
    ('external_system',  '外部系统',     'another system calling the API (12345 hotline, city platform)'),
    ('public',           '公众',         'anonymous or citizen access to public layers only')
) AS v (code, name_zh, description)
WHERE NOT EXISTS (SELECT 1 FROM onemap.app_role r WHERE r.code = v.code)
ON CONFLICT (code) DO NOTHING;

CREATE TABLE IF NOT EXISTS onemap.user_role (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES onemap.app_user (id) ON DELETE CASCADE,
    role_id         bigint NOT NULL REFERENCES onemap.app_role (id) ON DELETE CASCADE,
    granted_at      timestamptz NOT NULL DEFAULT now(),
    granted_by      bigint REFERENCES onemap.app_user (id) ON DELETE SET NULL,
    UNIQUE (user_id, role_id)
);
COMMENT ON TABLE onemap.user_role IS '用户角色 — role granted to a user.';
CREATE INDEX IF NOT EXISTS user_role_role_id_idx ON onemap.user_role (role_id);
CREATE INDEX IF NOT EXISTS user_role_granted_by_idx ON onemap.user_role (granted_by);

-- unit_id points into district / street_office / community / grid according
-- to level; a polymorphic key cannot carry a foreign key, so row-level
-- security and the admin UI must check the unit exists.
CREATE TABLE IF NOT EXISTS onemap.data_scope (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES onemap.app_user (id) ON DELETE CASCADE,
    level           text NOT NULL
                    CHECK (level IN ('district', 'street_office', 'community', 'grid')),
    unit_id         bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, level, unit_id)
);
COMMENT ON TABLE onemap.data_scope IS
    '数据范围 — admin unit a user may see ("同一功能, 不同层级不同数据范围"); '
    'unit_id is the id of onemap.<level>.';
CREATE INDEX IF NOT EXISTS data_scope_level_unit_id_idx ON onemap.data_scope (level, unit_id);

CREATE TABLE IF NOT EXISTS onemap.api_key (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    prefix          text NOT NULL UNIQUE CHECK (length(prefix) >= 6),
    key_hash        text NOT NULL,
    user_id         bigint NOT NULL REFERENCES onemap.app_user (id) ON DELETE CASCADE,
    label           text,
    scopes          text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    revoked_at      timestamptz,
    last_used_at    timestamptz
);
COMMENT ON TABLE onemap.api_key IS
    '接口密钥 — API key for an external system or user; only the hash is stored, '
    'prefix (shown to the owner) finds the row.';
COMMENT ON COLUMN onemap.api_key.key_hash IS 'hash of the full key (e.g. sha256 hex of a high-entropy key); never the key.';
CREATE INDEX IF NOT EXISTS api_key_user_id_idx ON onemap.api_key (user_id);

-- Logs keep user_id without a foreign key: deleting or renaming a user must
-- not rewrite history (等保三级 asks for complete audit records).
CREATE TABLE IF NOT EXISTS onemap.login_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    username        text NOT NULL,
    user_id         bigint,
    success         boolean NOT NULL,
    ip              inet,
    user_agent      text,
    reason          text
);
COMMENT ON TABLE onemap.login_log IS '登录日志 — every login attempt, successful or not; searchable by time and user name.';
COMMENT ON COLUMN onemap.login_log.username IS 'name as typed; may not match any user';
COMMENT ON COLUMN onemap.login_log.user_id IS 'app_user.id if the name matched; no foreign key on purpose';
CREATE INDEX IF NOT EXISTS login_log_at_idx ON onemap.login_log (at);
CREATE INDEX IF NOT EXISTS login_log_username_at_idx ON onemap.login_log (username, at);
CREATE INDEX IF NOT EXISTS login_log_user_id_at_idx ON onemap.login_log (user_id, at);

CREATE TABLE IF NOT EXISTS onemap.audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    user_id         bigint,
    username        text,
    action          text NOT NULL CHECK (action IN ('insert', 'update', 'delete')),
    table_name      text NOT NULL,
    row_id          bigint,
    before          jsonb,
    after           jsonb
);
COMMENT ON TABLE onemap.audit_log IS '审计日志 — who changed which row, with the row before and after.';
COMMENT ON COLUMN onemap.audit_log.user_id IS 'app_user.id of the actor; no foreign key on purpose';
CREATE INDEX IF NOT EXISTS audit_log_at_idx ON onemap.audit_log (at);
CREATE INDEX IF NOT EXISTS audit_log_table_name_row_id_idx ON onemap.audit_log (table_name, row_id);
CREATE INDEX IF NOT EXISTS audit_log_user_id_at_idx ON onemap.audit_log (user_id, at);
