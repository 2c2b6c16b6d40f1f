"""The /v1 API as a client sees it: configs, versions, conditional requests, audit fields,
secrets per role, export and import, stats, errors, the change feed and its event stream."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from server_harness import (
    TENANT_A,
    TENANT_B,
    Api,
    config_path,
    open_api,
    read_events,
    store_snapshot,
)

from confstore import BackendUnavailableError, MemoryConfigStore
from confstore.server._openapi import openapi_document
from confstore.server._routes import ROUTES
from confstore.server._schemas import (
    ChangePage,
    ConfigDiffBody,
    ConfigEntryBody,
    ConfigHistory,
    ConfigList,
    Problem,
    Stats,
    TenantList,
)

SECRET_VALUE = {"llm_model": "gpt-4o", "api_key": "sk-live-123", "nested": {"password": "hunter2"}}


async def test_health_needs_no_token(api: Api) -> None:
    answer = await api.call("GET", "/v1/health")
    assert (answer.status, answer.body) == (200, {"healthy": True})


async def test_put_creates_then_appends_versions_with_etags(api: Api) -> None:
    root = api.token("root")
    first = await api.put(config_path(), {"n": 1}, token=root, comment="first")
    second = await api.put(config_path(), {"n": 2}, token=root)
    assert (first.status, first.headers["ETag"], first.body["version"]) == (201, '"1"', 1)
    assert (second.status, second.headers["ETag"], second.body["version"]) == (200, '"2"', 2)
    read = await api.call("GET", config_path(), token=root)
    assert read.body == second.body
    ConfigEntryBody.model_validate(read.body)
    stored = await api.store.get_config(TENANT_A, "system", "svc", "key")
    assert stored is not None
    assert stored.to_dict() == read.body


async def test_if_none_match_answers_304_for_the_current_version(api: Api) -> None:
    root = api.token("root")
    await api.put(config_path(), {"n": 1}, token=root)
    same = await api.call("GET", config_path(), token=root, headers={"If-None-Match": '"1"'})
    await api.put(config_path(), {"n": 2}, token=root)
    changed = await api.call("GET", config_path(), token=root, headers={"If-None-Match": '"1"'})
    assert (same.status, same.text, same.headers["ETag"]) == (304, "", '"1"')
    assert (changed.status, changed.body["config_value"]) == (200, {"n": 2})


async def test_if_match_makes_a_write_compare_and_set(api: Api) -> None:
    root = api.token("root")
    await api.put(config_path(), {"n": 1}, token=root)
    conflict = await api.call(
        "PUT",
        config_path(),
        token=root,
        json_body={"value": {"n": 9}},
        headers={"If-Match": '"7"'},
    )
    won = await api.call(
        "PUT", config_path(), token=root, json_body={"value": {"n": 2}}, headers={"If-Match": '"1"'}
    )
    assert conflict.status == 412
    assert conflict.body | {"message": ""} == {
        "type": "version_conflict",
        "status": 412,
        "message": "",
        "expected": 7,
        "actual": 1,
    }
    assert (won.status, won.body["version"]) == (200, 2)
    history = await api.store.get_config_history(TENANT_A, "system", "svc", "key")
    assert [entry.config_value for entry in history] == [{"n": 2}, {"n": 1}]


async def test_if_none_match_star_and_expected_version_zero_create_only(api: Api) -> None:
    root = api.token("root")
    created = await api.call(
        "PUT",
        config_path(),
        token=root,
        json_body={"value": {"n": 1}},
        headers={"If-None-Match": "*"},
    )
    again = await api.call(
        "PUT",
        config_path(),
        token=root,
        json_body={"value": {"n": 2}},
        headers={"If-None-Match": "*"},
    )
    by_body = await api.put(config_path(), {"n": 3}, token=root, expected_version=0)
    assert (created.status, again.status, by_body.status) == (201, 412, 412)
    assert (again.body["expected"], again.body["actual"]) == (0, 1)


async def test_old_versions_history_diff_and_rollback(api: Api) -> None:
    root = api.token("root")
    for number in (1, 2, 3):
        await api.put(config_path(), {"n": number, "keep": True}, token=root)
    old = await api.call("GET", config_path(), token=root, params={"version": "1"})
    history = await api.call("GET", config_path() + "/history", token=root, params={"limit": "2"})
    diff = await api.call("GET", config_path() + "/diff", token=root, params={"from": "1"})
    rollback = await api.call(
        "POST", config_path() + "/rollback", token=root, json_body={"version": 1}
    )
    assert (old.body["version"], old.body["config_value"]) == (1, {"n": 1, "keep": True})
    assert [entry["version"] for entry in history.body["history"]] == [3, 2]
    assert diff.body == {
        "from_version": 1,
        "to_version": 3,
        "changes": [{"path": "n", "old": 1, "new": 3, "kind": "changed"}],
    }
    assert (rollback.status, rollback.body["version"]) == (200, 4)
    assert rollback.body["config_value"] == {"n": 1, "keep": True}
    assert rollback.body["comment"] == "rollback to version 1"
    ConfigHistory.model_validate(history.body)
    ConfigDiffBody.model_validate(diff.body)


async def test_missing_configs_and_versions_are_404(api: Api) -> None:
    root = api.token("root")
    await api.put(config_path(), {"n": 1}, token=root)
    missing = await api.call("GET", config_path(key="other"), token=root)
    no_version = await api.call("GET", config_path(), token=root, params={"version": "5"})
    no_rollback = await api.call(
        "POST", config_path() + "/rollback", token=root, json_body={"version": 5}
    )
    assert [answer.status for answer in (missing, no_version, no_rollback)] == [404, 404, 404]
    assert {answer.body["type"] for answer in (missing, no_version, no_rollback)} == {"not_found"}


async def test_delete_writes_a_tombstone_and_purge_removes_every_version(api: Api) -> None:
    root = api.token("root")
    await api.put(config_path(), {"n": 1}, token=root)
    deleted = await api.call("DELETE", config_path(), token=root, json_body={"comment": "gone"})
    again = await api.call("DELETE", config_path(), token=root)
    read = await api.call("GET", config_path(), token=root)
    tombstone = await api.call("GET", config_path(), token=root, params={"version": "2"})
    purged = await api.call("DELETE", config_path(), token=root, params={"purge": "true"})
    assert (deleted.status, deleted.body) == (200, {"deleted": True, "purged": False})
    assert (again.status, read.status) == (404, 404)
    assert (tombstone.body["deleted"], tombstone.body["comment"]) == (True, "gone")
    assert (purged.status, purged.body["purged"]) == (200, True)
    assert await api.store.get_config_history(TENANT_A, "system", "svc", "key") == []


async def test_writes_are_recorded_under_the_token_name(api: Api) -> None:
    writer = api.token("write-a")
    root = api.token("root")
    by_writer = await api.put(config_path(), {"n": 1}, token=writer)
    same_name = await api.put(config_path(), {"n": 2}, token=writer, updated_by="write-a")
    null = await api.put(config_path(), {"n": 2}, token=writer, updated_by=None)
    admin_null = await api.put(config_path(), {"n": 2}, token=root, updated_by=None)
    assert (null.body["updated_by"], admin_null.body["updated_by"]) == ("write-a", None)
    on_behalf = await api.put(config_path(), {"n": 3}, token=root, updated_by="alice")
    admin_default = await api.put(config_path(), {"n": 4}, token=root)
    assert [a.body["updated_by"] for a in (by_writer, same_name, on_behalf, admin_default)] == [
        "write-a",
        "write-a",
        "alice",
        "root",
    ]


async def test_a_write_token_cannot_record_someone_else(api: Api) -> None:
    writer = api.token("write-a")
    before = await store_snapshot(api.store)
    answer = await api.put(config_path(), {"n": 1}, token=writer, updated_by="alice")
    delete = await api.call("DELETE", config_path(), token=writer, json_body={"updated_by": "x"})
    assert (answer.status, answer.body["type"], delete.status) == (403, "forbidden", 403)
    assert await store_snapshot(api.store) == before


async def test_secrets_are_masked_for_read_tokens_only(api: Api) -> None:
    writer = api.token("write-a")
    reader = api.token("read-a")
    await api.put(config_path(), SECRET_VALUE, token=writer)
    await api.put(config_path(), {**SECRET_VALUE, "api_key": "sk-live-456"}, token=writer)
    answers = {
        name: [
            await api.call("GET", config_path(), token=token),
            await api.call("GET", f"/v1/tenants/{TENANT_A}/configs", token=token),
            await api.call("GET", config_path() + "/history", token=token),
            await api.call("GET", config_path() + "/diff", token=token),
        ]
        for name, token in (("reader", reader), ("writer", writer))
    }
    for answer in answers["reader"]:
        assert "sk-live" not in answer.text
        assert "hunter2" not in answer.text
    masked = answers["reader"][0].body["config_value"]
    assert masked == {"llm_model": "gpt-4o", "api_key": "***", "nested": {"password": "***"}}
    assert answers["reader"][3].body["changes"] == [
        {"path": "api_key", "old": "***", "new": "***", "kind": "changed"}
    ]
    assert answers["writer"][0].body["config_value"]["api_key"] == "sk-live-456"
    assert "hunter2" in answers["writer"][1].text


async def test_typed_configs_are_validated_before_anything_is_written(api: Api) -> None:
    root = api.token("root")
    path = config_path(scope="system", service="system", key="system_config")
    before = await store_snapshot(api.store)
    bad = await api.put(path, {"vespa_port": "eighty"}, token=root)
    masked = await api.put(path, {"llm_api_key": "***"}, token=root)
    assert (bad.status, bad.body["type"]) == (422, "invalid_config")
    assert "vespa_port" in bad.body["message"]
    assert masked.status == 422
    assert await store_snapshot(api.store) == before
    good = await api.put(path, {"llm_model": "gpt-4o"}, token=root)
    assert good.status == 201
    assert good.body["config_value"]["llm_model"] == "gpt-4o"


async def test_export_then_import_into_another_tenant(api: Api) -> None:
    root = api.token("root")
    writer = api.token("write-ab")
    await api.put(config_path(), SECRET_VALUE, token=root)
    await api.put(config_path(), {"n": 2}, token=root)
    export = await api.call(
        "GET", f"/v1/tenants/{TENANT_A}/export", token=writer, params={"history": "true"}
    )
    denied = await api.call(
        "POST", f"/v1/tenants/{TENANT_B}/import", token=writer, json_body=export.body
    )
    imported = await api.call(
        "POST", f"/v1/tenants/{TENANT_B}/import", token=root, json_body=export.body
    )
    again = await api.call(
        "POST", f"/v1/tenants/{TENANT_B}/import", token=root, json_body=export.body
    )
    assert export.headers["Content-Disposition"] == f'attachment; filename="{TENANT_A}-export.json"'
    assert [entry["version"] for entry in export.body["configs"]] == [1, 2]
    assert export.body["configs"][0]["config_value"] == SECRET_VALUE  # a backup keeps secrets
    assert denied.status == 403
    assert imported.body == {"tenant_id": TENANT_B, "mode": "restore", "versions_written": 2}
    assert again.body["versions_written"] == 0
    copied = await api.store.get_config_history(TENANT_B, "system", "svc", "key")
    assert [entry.version for entry in copied] == [2, 1]


async def test_a_malformed_import_writes_nothing(api: Api) -> None:
    root = api.token("root")
    document = {"configs": [{"scope": "system", "service": "svc", "config_key": "k"}]}
    before = await store_snapshot(api.store)
    answer = await api.call(
        "POST", f"/v1/tenants/{TENANT_A}/import", token=root, json_body=document
    )
    assert (answer.status, answer.body["type"]) == (422, "import_format")
    assert await store_snapshot(api.store) == before


async def test_stats_and_tenants(api: Api) -> None:
    root = api.token("root")
    scoped = api.token("admin-a")
    await api.put(config_path(tenant=TENANT_A), {"n": 1}, token=root)
    await api.put(config_path(tenant=TENANT_B), {"n": 1}, token=root)
    stats = await api.call("GET", "/v1/stats", token=root)
    scoped_stats = await api.call("GET", "/v1/stats", token=scoped)
    tenants = await api.call("GET", "/v1/tenants", token=root)
    scoped_tenants = await api.call("GET", "/v1/tenants", token=scoped)
    assert (stats.body["total_configs"], stats.body["backend"]) == (2, "sqlite")
    assert scoped_stats.status == 403
    assert tenants.body == {"tenants": [TENANT_A, TENANT_B]}
    assert scoped_tenants.body == {"tenants": [TENANT_A]}
    Stats.model_validate(stats.body)
    TenantList.model_validate(tenants.body)


@pytest.mark.parametrize(
    ("method", "path", "headers", "data", "status", "kind"),
    [
        ("GET", "/v1/nowhere", {}, None, 404, "not_found"),
        ("POST", "/v1/tenants", {}, None, 405, "method_not_allowed"),
        (
            "PUT",
            config_path(),
            {"Content-Type": "application/json"},
            b"{not json",
            400,
            "malformed_json",
        ),
        (
            "PUT",
            config_path(),
            {"Content-Type": "application/json"},
            b'{"value": NaN}',
            400,
            "malformed_json",
        ),
        (
            "PUT",
            config_path(),
            {"Content-Type": "application/json"},
            b"\xff\xfe{}",
            400,
            "malformed_json",
        ),
        (
            "PUT",
            config_path(),
            {"Content-Type": "text/plain"},
            b'{"value": {}}',
            415,
            "unsupported_media_type",
        ),
        (
            "PUT",
            config_path(),
            {"Content-Type": "application/json"},
            b'{"value": [1]}',
            422,
            "invalid_config",
        ),
        (
            "PUT",
            config_path(),
            {"Content-Type": "application/json"},
            b'{"value": {}, "commnet": "x"}',
            422,
            "invalid_config",
        ),
        (
            "PUT",
            config_path(key="bad key"),
            {"Content-Type": "application/json"},
            b'{"value": {}}',
            400,
            "invalid_identifier",
        ),
        (
            "PUT",
            config_path(scope="nope"),
            {"Content-Type": "application/json"},
            b'{"value": {}}',
            400,
            "invalid_identifier",
        ),
        ("GET", config_path() + "?version=-1", {}, None, 400, "invalid_config"),
        ("GET", config_path(), {"If-None-Match": "abc"}, None, 400, "invalid_config"),
        ("GET", "/v1/changes?cursor=not-a-cursor", {}, None, 400, "invalid_cursor"),
    ],
)
async def test_bad_requests_get_json_errors_and_write_nothing(
    api: Api,
    method: str,
    path: str,
    headers: dict[str, str],
    data: bytes | None,
    status: int,
    kind: str,
) -> None:
    await api.put(config_path(), {"n": 1}, token=api.token("root"))
    before = await store_snapshot(api.store)
    answer = await api.call(method, path, token=api.token("root"), headers=headers, data=data)
    assert (answer.status, answer.body["type"]) == (status, kind), answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    Problem.model_validate(answer.body)
    assert await store_snapshot(api.store) == before


@pytest.mark.parametrize(
    ("method", "suffix", "body", "field"),
    [
        ("PUT", "", {"value": {"n": 2}, "expected_version": "1"}, "expected_version"),
        ("PUT", "", {"value": {"n": 2}, "expected_version": 1.0}, "expected_version"),
        ("PUT", "", {"value": {"n": 2}, "expected_version": True}, "expected_version"),
        ("PUT", "", {"value": {"n": 2}, "comment": 5}, "comment"),
        ("DELETE", "", {"purge": 1}, "purge"),
        ("DELETE", "", {"purge": "true"}, "purge"),
        ("POST", "/rollback", {"version": "1"}, "version"),
        ("POST", "/rollback", {"version": True}, "version"),
        ("POST", "/rollback", {"version": 1, "expected_version": "1"}, "expected_version"),
    ],
)
async def test_numbers_and_flags_of_another_json_type_are_refused_naming_the_field(
    api: Api, method: str, suffix: str, body: dict[str, Any], field: str
) -> None:
    """A version as a string, float or boolean, a flag as a number or string: refused, not
    coerced (pydantic's lax mode would take "1" and 1.0 as 1, and 1 as true)."""
    await api.put(config_path(), {"n": 1}, token=api.token("root"))
    before = await store_snapshot(api.store)
    answer = await api.call(method, config_path() + suffix, token=api.token("root"), json_body=body)
    assert (answer.status, answer.body["type"]) == (422, "invalid_config"), answer.text
    assert answer.body["field"] == field
    assert await store_snapshot(api.store) == before


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", config_path() + "?version=1&version=2", "version"),
        ("GET", config_path() + "/history?limit=1&limit=5", "limit"),
        ("GET", config_path() + "?mask_secrets=true&mask_secrets=false", "mask_secrets"),
        ("GET", f"/v1/tenants/{TENANT_A}/configs?scope=system&scope=agent", "scope"),
        ("GET", f"/v1/tenants/{TENANT_A}/export?history=false&history=true", "history"),
        ("DELETE", config_path() + "?purge=false&purge=true", "purge"),
        ("POST", f"/v1/prune?tenant={TENANT_A}&tenant={TENANT_B}", "tenant"),
        ("GET", f"/v1/changes?tenant={TENANT_A}&cursor=a&cursor=b", "cursor"),
    ],
)
async def test_a_query_parameter_given_twice_is_refused_and_writes_nothing(
    api: Api, method: str, path: str, field: str
) -> None:
    """Which of two values counts differs between readers (a proxy in front, the server)."""
    await api.put(config_path(), {"n": 1}, token=api.token("root"))
    await api.put(config_path(), {"n": 2}, token=api.token("root"))
    before = await store_snapshot(api.store)
    body = {"keep_last": 1} if path.startswith("/v1/prune") else None
    answer = await api.call(method, path, token=api.token("root"), json_body=body)
    assert (answer.status, answer.body["type"]) == (400, "invalid_config"), answer.text
    assert answer.body["field"] == field
    assert await store_snapshot(api.store) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", config_path(), b'{"value": {"n": 2}, "value": {"n": 3}}'),
        ("PUT", config_path(), b'{"value": {"n": 2, "limits": {"max": 1, "max": 9}}}'),
        ("POST", config_path() + "/rollback", b'{"version": 1, "version": 2}'),
        (
            "POST",
            f"/v1/tenants/{TENANT_A}/import?mode=append",
            b'{"format": "confstore-export", "format_version": 1, "configs": [{"scope": '
            b'"system", "service": "svc", "config_key": "key", "config_value": {"n": 2}, '
            b'"config_value": {"n": 3}, "version": 2, "created_at": "2026-01-01T00:00:00Z", '
            b'"updated_at": "2026-01-01T00:00:00Z"}]}',
        ),
    ],
    ids=["put-top-level", "put-in-the-value", "rollback", "import"],
)
async def test_a_key_twice_in_one_json_object_is_malformed_and_writes_nothing(
    api: Api, method: str, path: str, body: bytes
) -> None:
    """Python's parser keeps the last of two equal keys, other readers the first: such a body
    means different things to a proxy or validator in front of the server and to the server."""
    await api.put(config_path(), {"n": 1}, token=api.token("root"))
    before = await store_snapshot(api.store)
    answer = await api.call(
        method,
        path,
        token=api.token("root"),
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert (answer.status, answer.body["type"]) == (400, "malformed_json"), answer.text
    assert "appears twice" in answer.body["message"]
    assert await store_snapshot(api.store) == before


@pytest.mark.parametrize(
    "body",
    [{"keep_last": "2"}, {"keep_last": 2.0}, {"dry_run": 1}, {"older_than": True}],
)
async def test_a_prune_policy_of_lax_types_is_refused(api: Api, body: dict[str, Any]) -> None:
    for n in range(3):
        await api.put(config_path(), {"n": n}, token=api.token("root"))
    before = await store_snapshot(api.store)
    answer = await api.call(
        "POST", f"/v1/prune?tenant={TENANT_A}", token=api.token("root"), json_body=body
    )
    assert (answer.status, answer.body["type"]) == (422, "invalid_config"), answer.text
    assert answer.body["field"].split(".")[0] == next(iter(body))
    assert await store_snapshot(api.store) == before


class OutageStore(MemoryConfigStore):
    """A store whose backend is down: every read raises BackendUnavailableError."""

    async def _get_config(self, key: Any, version: int | None) -> Any:
        raise BackendUnavailableError("the backend is down (injected)")

    async def health_check(self) -> bool:
        return False


async def test_a_backend_outage_is_503(tmp_path: Path) -> None:
    async with open_api(tmp_path, store=OutageStore()) as api:
        read = await api.call("GET", config_path(), token=api.token("root"))
        health = await api.call("GET", "/v1/health")
    assert (read.status, read.body["type"]) == (503, "backend_unavailable")
    assert (health.status, health.body) == (503, {"healthy": False})


class BuggyStore(MemoryConfigStore):
    """A store with a bug: listing raises something that is not a confstore error."""

    async def _list_configs(self, tenant_id: str, scope: Any, service: Any) -> Any:
        raise RuntimeError("a bug")


async def test_an_unexpected_error_is_a_json_500(tmp_path: Path) -> None:
    async with open_api(tmp_path, store=BuggyStore()) as api:
        answer = await api.call("GET", f"/v1/tenants/{TENANT_A}/configs", token=api.token("root"))
    assert (answer.status, answer.body["type"]) == (500, "internal_error")
    assert "a bug" not in answer.text


class FailingExportStore(MemoryConfigStore):
    """Exports break off after many entries, as when the backend goes away mid-export."""

    async def _iter_configs(self, tenant_id: str, include_history: bool) -> Any:
        async for entry in super()._iter_configs(tenant_id, include_history):
            yield entry
        raise BackendUnavailableError("the backend went away (injected)")


async def test_an_export_that_fails_midway_is_cut_short_not_truncated(tmp_path: Path) -> None:
    store = FailingExportStore()
    for number in range(100):
        await store.set_config(TENANT_A, "system", "svc", f"key-{number}", {"blob": "x" * 2000})
    async with open_api(tmp_path, store=store) as api:
        headers = {"Authorization": f"Bearer {api.token('root')}"}
        async with api.session.get(
            f"{api.url}/v1/tenants/{TENANT_A}/export", headers=headers
        ) as answer:
            assert answer.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await answer.read()


async def test_openapi_describes_every_route_of_the_app(api: Api) -> None:
    answer = await api.call("GET", "/openapi.json")
    document = answer.body
    assert document == openapi_document()
    assert document["openapi"].startswith("3.")
    app = web.Application()
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served == described
    schemas = document["components"]["schemas"]
    for name in (
        "ConfigEntryBody",
        "PutConfigRequest",
        "Problem",
        "ChangeRecord",
        "ExportDocument",
    ):
        assert name in schemas
    put = document["paths"][config_path("{tenant}", "{scope}", "{service}", "{config_key}")]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PutConfigRequest"
    )


async def test_the_token_endpoint_describes_the_caller(api: Api) -> None:
    reader = api.token("read-ab")
    answer = await api.call("GET", "/v1/token", token=reader)
    assert answer.body == {"name": "read-ab", "role": "read", "tenants": [TENANT_A, TENANT_B]}


async def test_the_change_feed_pages_and_shows_only_the_tokens_tenants(api: Api) -> None:
    root = api.token("root")
    reader = api.token("read-a")
    start = (await api.call("GET", "/v1/changes/cursor", token=reader)).body["cursor"]
    for number in range(3):
        await api.put(config_path(tenant=TENANT_B, key=f"b{number}"), {"n": 1}, token=root)
        await api.put(config_path(tenant=TENANT_A, key=f"a{number}"), {"n": 1}, token=root)
    seen = []
    cursor = start
    while True:
        page = await api.call(
            "GET", "/v1/changes", token=reader, params={"cursor": cursor, "limit": "2"}
        )
        ChangePage.model_validate(page.body)
        seen += page.body["changes"]
        cursor = page.body["cursor"]
        if not page.body["has_more"]:
            break
    assert [(change["tenant_id"], change["config_key"]) for change in seen] == [
        (TENANT_A, "a0"),
        (TENANT_A, "a1"),
        (TENANT_A, "a2"),
    ]
    assert TENANT_B not in cursor
    assert "seq" not in cursor


async def test_watch_streams_changes_and_resumes_after_the_last_event_id(api: Api) -> None:
    root = api.token("root")
    reader = api.token("read-a")
    headers = {"Authorization": f"Bearer {reader}"}
    async with api.session.get(api.url + "/v1/watch", headers=headers) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        (ready,) = await read_events(stream, 1)
        await api.put(config_path(tenant=TENANT_B), {"n": 1}, token=root)
        await api.put(config_path(key="one"), {"n": 1}, token=root)
        first = await read_events(stream, 1)
    assert ready["event"] == "ready"
    assert ready["id"]
    assert [event["event"] for event in first] == ["change"]
    assert '"config_key":"one"' in first[0]["data"]
    await api.put(config_path(key="two"), {"n": 1}, token=root)
    await api.put(config_path(tenant=TENANT_B, key="hidden"), {"n": 1}, token=root)
    await api.put(config_path(key="three"), {"n": 1}, token=root)
    resumed_headers = {**headers, "Last-Event-ID": first[0]["id"]}
    async with api.session.get(api.url + "/v1/watch", headers=resumed_headers) as stream:
        events = await read_events(stream, 3)
    keys = [event["data"] for event in events if event["event"] == "change"]
    assert ['"config_key":"two"' in keys[0], '"config_key":"three"' in keys[1]] == [True, True]
    assert all(TENANT_B not in event.get("data", "") for event in events)


async def test_watch_rejects_a_tenant_outside_the_token(api: Api) -> None:
    reader = api.token("read-a")
    answer = await api.call("GET", "/v1/watch", token=reader, params={"tenant": TENANT_B})
    assert (answer.status, answer.body["type"]) == (403, "forbidden")


async def test_a_revoked_token_is_refused_and_its_stream_ends(api: Api) -> None:
    reader = api.token("read-a")
    headers = {"Authorization": f"Bearer {reader}"}
    async with api.session.get(api.url + "/v1/watch", headers=headers) as stream:
        await read_events(stream, 1)
        api.tokens.revoke("read-a")
        # The server notices the tokens file change on its own clock: only asking it tells.
        async with asyncio.timeout(10):
            while (await api.call("GET", "/v1/token", token=reader)).status != 401:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await api.put(config_path(), {"n": 1}, token=api.token("root"))
        async with asyncio.timeout(10):
            rest = await stream.content.read()
    assert b'"config_key"' not in rest


async def test_list_configs_filters_by_scope_and_service(api: Api) -> None:
    root = api.token("root")
    await api.put(config_path(scope="agent", service="bot"), {"n": 1}, token=root)
    await api.put(config_path(scope="system", service="svc"), {"n": 1}, token=root)
    answer = await api.call(
        "GET", f"/v1/tenants/{TENANT_A}/configs", token=root, params={"scope": "agent"}
    )
    ConfigList.model_validate(answer.body)
    assert [(c["scope"], c["service"]) for c in answer.body["configs"]] == [("agent", "bot")]
