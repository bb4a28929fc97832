"""Titles of the collections' properties (layers/fields.yml) in queryables and schema.

Every property of every feature collection has a zh and an en title, served as
the JSON Schema ``title`` by ``lang=`` or ``Accept-Language``: a new column
without a title in layers/fields.yml fails here. So does a new coded value (a
``CHECK (col IN (...))`` of a collection's table) without a zh and an en label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from spatial.fields import FieldTitles, check_domains, field_titles
from tests import declared


def feature_collections() -> list[str]:
    return declared.feature_collections()


def test_every_property_of_every_collection_is_titled_in_zh_and_en(client: Any) -> None:
    titles = field_titles()
    collections = feature_collections()
    assert len(collections) > 30
    untitled: list[str] = []
    for collection in collections:
        shown: dict[str, dict[str, str]] = {}
        for lang in ("zh", "en"):
            r = client.get(f"/collections/{collection}/queryables",
                           params={"f": "json", "lang": lang})
            assert r.status_code == 200, (collection, r.text)
            props = r.json()["properties"]
            assert len(props) > 1, collection  # geometry and at least one column
            for name, prop in props.items():
                expected = titles.title(collection, name, lang)
                if expected is None:
                    untitled.append(f"{collection}.{name}")
                    continue
                assert prop["title"] == expected, (collection, name, lang, prop)
                shown.setdefault(name, {})[lang] = prop["title"]
        for name, by_lang in shown.items():
            assert by_lang["zh"] != by_lang["en"] or by_lang["zh"].isascii(), (collection, name)
    assert not untitled, f"no title in layers/fields.yml for {sorted(set(untitled))}"


def test_every_coded_value_is_labelled_in_zh_and_en(client: Any, conn: Any) -> None:
    """Coded columns carry their domain as ``enum`` and a label per value as ``oneOf``.

    The domain is the database's CHECK; the values stored in the published view
    (the tiny city) are inside it, so the view's column is the checked one.
    """
    titles = field_titles()
    domains = check_domains(conn)
    served = 0
    unlabelled: list[str] = []
    for collection in feature_collections():
        coded = domains.get(collection, {})
        for lang in ("zh", "en"):
            props = client.get(f"/collections/{collection}/queryables",
                               params={"f": "json", "lang": lang}).json()["properties"]
            schema = client.get(f"/collections/{collection}/schema",
                                params={"f": "json", "lang": lang}).json()["properties"]
            for name, values in coded.items():
                if name not in props:
                    continue
                labels = titles.value_titles(name, lang)
                unlabelled += [f"{collection}.{name}={v}" for v in values if v not in labels]
                for doc in (props, schema):
                    assert doc[name]["enum"] == list(values), (collection, name)
                    assert doc[name]["oneOf"] == [
                        {"const": v, "title": labels.get(v, v)} for v in values]
                served += 1
            assert set(coded) & set(props) == {
                n for n, p in props.items() if "enum" in p}, collection
        for name in set(coded) & set(props):
            stored = {r["v"] for r in conn.execute(sql.SQL(
                "SELECT DISTINCT {} AS v FROM {} WHERE {} IS NOT NULL").format(
                    sql.Identifier(name), sql.Identifier("layers", collection),
                    sql.Identifier(name)))}
            assert stored <= set(coded[name]), (collection, name, stored)
    assert not unlabelled, f"no label in layers/fields.yml values: for {unlabelled}"
    assert served > 2 * 40  # lamp status, event category, resident gender, …
    assert titles.value_titles("status", "zh")["fault"] == "故障"
    assert titles.value_titles("status", "en")["fault"] == "Fault"


def test_language_from_lang_or_accept_language(client: Any) -> None:
    """``lang=`` and ``Accept-Language`` pick the language, for queryables and schema."""
    def title(path: str, **kw: Any) -> str:
        r = client.get(path, **kw)
        assert r.status_code == 200, r.text
        assert "json" in r.headers["content-type"]
        return r.json()["properties"]["building_type"]["title"]

    q, s = "/collections/building/queryables", "/collections/building/schema"
    assert title(q, params={"lang": "zh"}) == "楼栋类型"
    assert title(q, params={"lang": "en"}) == "Building type"
    assert title(s, params={"lang": "en"}) == "Building type"
    assert title(s, params={"lang": "zh"}) == "楼栋类型"
    assert title(q, headers={"Accept-Language": "en-US,en;q=0.9"}) == "Building type"
    assert title(s, headers={"Accept-Language": "zh-CN"}) == "楼栋类型"
    assert title(q) == "楼栋类型"  # the server's default language
    # the same name means something else in another collection
    r = client.get("/collections/resident/schema", params={"lang": "zh"})
    assert r.json()["properties"]["name"]["title"] == "姓名"
    r = client.get("/collections/road/queryables", params={"lang": "zh"})
    assert r.json()["properties"]["name"]["title"] == "名称"


def test_titles_do_not_change_the_schema_otherwise(client: Any) -> None:
    r = client.get("/collections/lamp/schema", params={"lang": "en"})
    props = r.json()["properties"]
    assert props["power_w"] == {"type": "number", "title": "Power (W)"}
    assert props["geometry"]["x-ogc-role"] == "primary-geometry"
    assert client.get("/collections/nope/queryables").status_code == 404
    html = client.get("/collections/lamp/queryables", params={"f": "html"})
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]


@pytest.mark.parametrize(("data", "message"), [
    ({"fields": {"name": {"zh": "名称"}}}, "fields.name"),
    ({"fields": {"name": {"zh": "名称", "en": " "}}}, "fields.name.en"),
    ({"collections": {"resident": {"name": {"zh": "姓名", "en": None}}}},
     "collections.resident.name.en"),
    ({"fields": {}, "value": {}}, "unknown keys"),
    ({"values": {"status": {"fault": {"zh": "故障", "en": ""}}}}, "values.status.fault.en"),
    ([], "expected a mapping"),
])
def test_malformed_titles_are_refused_naming_the_entry(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        FieldTitles.from_mapping(data)


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fields.yml"
    path.write_text("fields:\n  name: {zh: 名称, en: Name}\n  name: {zh: 名字, en: Name}\n",
                    encoding="utf-8")
    with pytest.raises(ValueError, match=r"keys given twice: \['name'\]"):
        FieldTitles.from_file(path)
