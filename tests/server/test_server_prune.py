"""POST /v1/prune: retention over HTTP, for admin tokens only, reported like store.prune()."""

from __future__ import annotations

from pathlib import Path

from server_harness import TENANT_A, TENANT_B, Api, config_path, open_api

from confstore import MemoryConfigStore, StoreCapabilities
from confstore.server._schemas import PruneReport


async def write_versions(api: Api, tenant: str, count: int) -> None:
    for n in range(count):
        answer = await api.put(config_path(tenant), {"n": n}, token=api.token("root"))
        assert answer.status in (200, 201), answer.body


async def stored_versions(api: Api, tenant: str) -> list[int]:
    entries = await api.store.get_config_history(tenant, "system", "svc", "key", limit=100)
    return [entry.version for entry in entries]


async def test_prune_removes_old_versions_and_reports_them(api: Api) -> None:
    await write_versions(api, TENANT_A, 4)
    await write_versions(api, TENANT_B, 4)
    answer = await api.call(
        "POST", "/v1/prune", token=api.token("root"), json_body={"keep_last": 2}
    )
    assert answer.status == 200, answer.body
    report = PruneReport.model_validate(answer.body)
    assert (report.versions_removed, report.dry_run) == (4, False)
    assert await stored_versions(api, TENANT_A) == [4, 3]
    assert await stored_versions(api, TENANT_B) == [4, 3]


async def test_dry_run_and_overrides_go_through(api: Api) -> None:
    await write_versions(api, TENANT_A, 4)
    await write_versions(api, TENANT_B, 4)
    body = {"keep_last": 1, "tenants": {TENANT_B: {"keep_last": 3}}, "dry_run": True}
    answer = await api.call("POST", "/v1/prune", token=api.token("root"), json_body=body)
    assert answer.status == 200, answer.body
    removed = {key["tenant_id"]: key["versions"] for key in answer.body["keys"]}
    assert removed == {TENANT_A: 3, TENANT_B: 1}
    assert await stored_versions(api, TENANT_A) == [4, 3, 2, 1]


async def test_only_admin_tokens_may_prune_and_only_their_tenants(api: Api) -> None:
    await write_versions(api, TENANT_A, 3)
    for token, params in (
        ("write-a", {"tenant": TENANT_A}),
        ("reader-all", {}),
        ("admin-a", {}),
        ("admin-a", {"tenant": TENANT_B}),
    ):
        answer = await api.call(
            "POST", "/v1/prune", token=api.token(token), params=params, json_body={"keep_last": 1}
        )
        assert answer.status == 403, (token, params, answer.body)
    answer = await api.call("POST", "/v1/prune", json_body={"keep_last": 1})
    assert answer.status == 401
    own = await api.call(
        "POST",
        "/v1/prune",
        token=api.token("admin-a"),
        params={"tenant": TENANT_A},
        json_body={"keep_last": 1},
    )
    assert (own.status, own.body["versions_removed"]) == (200, 2)


async def test_bad_limits_are_refused_and_remove_nothing(api: Api) -> None:
    await write_versions(api, TENANT_A, 3)
    for body in (
        {"keep_last": 0},
        {"older_than": "soon"},
        {"keep": 2},
        {},
        {"scopes": {"nowhere": {"keep_last": 1}}},
        {"tenants": {"bad tenant": {"keep_last": 1}}},
    ):
        answer = await api.call("POST", "/v1/prune", token=api.token("root"), json_body=body)
        expected = 400 if answer.body.get("type") == "invalid_identifier" else 422
        assert answer.status == expected, (body, answer.body)
    assert await stored_versions(api, TENANT_A) == [3, 2, 1]


class StoreWithoutRetention(MemoryConfigStore):
    """A store that declares no retention, like a third-party store that never implemented it."""

    @property
    def capabilities(self) -> StoreCapabilities:
        return StoreCapabilities()


async def test_a_store_without_retention_answers_501(tmp_path: Path) -> None:
    async with open_api(tmp_path, store=StoreWithoutRetention()) as api:
        answer = await api.call(
            "POST", "/v1/prune", token=api.token("root"), json_body={"keep_last": 1}
        )
    assert (answer.status, answer.body["type"]) == (501, "unsupported")
