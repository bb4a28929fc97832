"""Which data is personal (个人信息), in one place.

Every path that hands data out — the OGC API, exports, tiles — leaves these
out unless a later, scope-aware check says the caller may see them.
"""

from __future__ import annotations

#: Tables holding personal data: never published as layers or exported.
PERSONAL_TABLES = frozenset(
    {"resident", "app_user", "user_role", "api_key", "login_log", "audit_log", "data_scope"}
)

#: Columns holding personal data, in whatever table they appear.
PERSONAL_COLUMNS = frozenset(
    {
        "id_number",
        "phone",
        "birth_date",
        "birth_year",
        "gender",
        "reporter_name",
        "reporter_phone",
        "alley_chief_phone",
        "password_hash",
    }
)
