"""``GET .../explain``: a typed config's effective value for a tenant, field by field, with the
layer each value came from; ``?mask_secrets=true``, which masks secrets for any role; and
``/v1/schemas``, where typed configs live."""

from __future__ import annotations

from pathlib import Path

from server_harness import TENANT_A, TENANT_B, Api, config_path, open_api, store_snapshot

from confstore.server import ServerSettings
from confstore.server._schemas import ExplainBody, TypedConfigList

SYSTEM = {"scope": "system", "service": "system", "key": "system_config"}
SYSTEM_LOCATION = ("system", "system", "system_config")


def system_path(tenant: str) -> str:
    return config_path(tenant=tenant, **SYSTEM)


async def store_system_config(api: Api, tenant: str, value: dict[str, object]) -> None:
    """Stored as given: a tenant's overrides (a PUT would store the config complete)."""
    await api.store.set_config(tenant, "system", "system", "system_config", value)


def by_path(body: dict[str, object]) -> dict[str, dict[str, object]]:
    fields = body["fields"]
    assert isinstance(fields, list)
    return {field["path"]: field for field in fields}


async def test_explain_names_the_layer_and_version_of_every_field(tmp_path: Path) -> None:
    async with open_api(tmp_path, ServerSettings(base_tenant=TENANT_B)) as api:
        root = api.token("root")
        base = {"llm_model": "gpt-4o", "vespa_url": "http://vespa.internal"}
        await store_system_config(api, TENANT_B, base)
        await store_system_config(api, TENANT_A, {"llm_model": "claude-3"})
        answer = await api.call("GET", system_path(TENANT_A) + "/explain", token=root)
    assert answer.status == 200, answer.text
    ExplainBody.model_validate(answer.body)
    assert (answer.body["tenant_id"], answer.body["base_tenant"]) == (TENANT_A, TENANT_B)
    fields = by_path(answer.body)
    assert fields["llm_model"] == {
        "path": "llm_model",
        "value": "claude-3",
        "source": "tenant",
        "tenant_id": TENANT_A,
        "version": 1,
        "variable": None,
    }
    assert fields["vespa_url"]["value"] == "http://vespa.internal"
    assert (fields["vespa_url"]["source"], fields["vespa_url"]["tenant_id"]) == ("base", TENANT_B)
    assert (fields["vespa_port"]["source"], fields["vespa_port"]["version"]) == ("schema", None)


async def test_the_base_tenant_inherits_nothing(api: Api) -> None:
    await store_system_config(api, "default", {"llm_model": "gpt-4o"})
    answer = await api.call("GET", system_path("default") + "/explain", token=api.token("root"))
    assert answer.body["base_tenant"] is None
    assert by_path(answer.body)["llm_model"]["source"] == "base"


async def test_an_inherited_secret_is_masked_for_a_token_without_the_base_tenant(
    tmp_path: Path,
) -> None:
    async with open_api(tmp_path, ServerSettings(base_tenant=TENANT_B)) as api:
        root = api.token("root")
        await store_system_config(api, TENANT_B, {"llm_api_key": "sk-platform"})
        await store_system_config(api, TENANT_A, {"llm_model": "claude-3"})
        path = system_path(TENANT_A) + "/explain"
        admin = await api.call("GET", path, token=root)
        writer_a = await api.call("GET", path, token=api.token("write-a"))
        writer_ab = await api.call("GET", path, token=api.token("write-ab"))
        reader = await api.call("GET", path, token=api.token("read-ab"))
    assert by_path(admin.body)["llm_api_key"]["value"] == "sk-platform"
    assert "sk-platform" not in writer_a.text
    assert by_path(writer_a.body)["llm_api_key"]["source"] == "base"
    assert by_path(writer_a.body)["llm_api_key"]["value"] == "***"
    assert by_path(writer_ab.body)["llm_api_key"]["value"] == "sk-platform"
    assert by_path(reader.body)["llm_api_key"]["value"] == "***"


async def test_explain_of_an_untyped_config_or_nothing_stored_is_404(api: Api) -> None:
    root = api.token("root")
    await api.put(config_path(), {"n": 1}, token=root)
    untyped = await api.call("GET", config_path() + "/explain", token=root)
    agent = config_path(scope="agent", service="bot", key="agent_config")
    absent = await api.call("GET", agent + "/explain", token=root)
    assert (untyped.status, untyped.body["type"]) == (404, "not_found")
    assert "typed config" in untyped.body["message"]
    assert (absent.status, absent.body["type"]) == (404, "not_found")


async def test_mask_secrets_masks_every_answer_for_a_write_token(api: Api) -> None:
    writer = api.token("write-a")
    value = {"llm_model": "gpt-4o", "api_key": "sk-live-1", "nested": {"password": "hunter2"}}
    await api.put(config_path(), value, token=writer)
    await api.put(config_path(), {**value, "api_key": "sk-live-2"}, token=writer)
    masked = {"mask_secrets": "true"}
    answers = [
        await api.call("GET", config_path(), token=writer, params=masked),
        await api.call("GET", f"/v1/tenants/{TENANT_A}/configs", token=writer, params=masked),
        await api.call("GET", config_path() + "/history", token=writer, params=masked),
        await api.call("GET", config_path() + "/diff", token=writer, params=masked),
        await api.call(
            "POST",
            config_path() + "/rollback",
            token=writer,
            params=masked,
            json_body={"version": 1},
        ),
    ]
    assert [answer.status for answer in answers] == [200] * 5
    for answer in answers:
        assert "sk-live" not in answer.text
        assert "hunter2" not in answer.text
    assert answers[0].body["config_value"]["api_key"] == "***"
    revealed = await api.call("GET", config_path(), token=writer, params={"mask_secrets": "no"})
    assert revealed.body["config_value"]["api_key"] == "sk-live-1"  # the rollback wrote v1's


async def test_schemas_lists_where_typed_configs_live_and_their_secrets(api: Api) -> None:
    answer = await api.call("GET", "/v1/schemas", token=api.token("read-a"))
    assert answer.status == 200
    TypedConfigList.model_validate(answer.body)
    schemas = {schema["name"]: schema for schema in answer.body["schemas"]}
    system = schemas["system"]
    assert (system["scope"], system["service"], system["config_key"]) == SYSTEM_LOCATION
    assert system["secret_fields"] == ["llm_api_key"]
    assert "llm_model" in system["json_schema"]["properties"]
    assert schemas["agent"]["service"] is None  # an agent's service is its name
    anonymous = await api.call("GET", "/v1/schemas")
    assert anonymous.status == 401


async def test_a_put_stores_the_overrides_so_the_tenant_keeps_inheriting(tmp_path: Path) -> None:
    async with open_api(tmp_path, ServerSettings(base_tenant=TENANT_B)) as api:
        root = api.token("root")
        await api.put(system_path(TENANT_B), {"vespa_url": "http://vespa-1"}, token=root)
        written = await api.put(system_path(TENANT_A), {"llm_model": "claude-3"}, token=root)
        assert written.status == 201, written.text
        assert written.body["config_value"] == {"llm_model": "claude-3", "tenant_id": TENANT_A}
        await api.put(system_path(TENANT_B), {"vespa_url": "http://vespa-2"}, token=root)
        answer = await api.call("GET", system_path(TENANT_A) + "/explain", token=root)
        bad = await api.put(system_path(TENANT_A), {"vespa_port": "eighty"}, token=root)
        rolled_back = await api.call(
            "POST", system_path(TENANT_A) + "/rollback", token=root, json_body={"version": 1}
        )
    fields = by_path(answer.body)
    assert (fields["vespa_url"]["value"], fields["vespa_url"]["source"]) == (
        "http://vespa-2",
        "base",
    )
    assert fields["llm_model"]["source"] == "tenant"
    assert (bad.status, bad.body["field"]) == (422, "vespa_port")
    assert rolled_back.status == 200, rolled_back.text
    assert rolled_back.body["config_value"] == {"llm_model": "claude-3", "tenant_id": TENANT_A}


async def test_a_base_write_or_delete_that_would_break_a_tenant_is_refused(tmp_path: Path) -> None:
    async with open_api(tmp_path, ServerSettings(base_tenant=TENANT_B)) as api:
        root = api.token("root")
        base_path = config_path(tenant=TENANT_B, scope="agent", service="bot", key="agent_config")
        module = {"module_type": "react", "signature": "S"}
        base = {"agent_name": "bot", "module_config": module}
        first = await api.put(
            base_path, {**base, "optimizer_config": {"optimizer_type": "copro"}}, token=root
        )
        assert first.status == 201, first.text
        tenant_path = config_path(tenant=TENANT_A, scope="agent", service="bot", key="agent_config")
        overrides = await api.put(tenant_path, {"optimizer_config": {"num_trials": 3}}, token=root)
        assert overrides.status == 201, overrides.text
        before = await store_snapshot(api.store)
        breaking = await api.put(base_path, {**base, "optimizer_config": None}, token=root)
        deleting = await api.call("DELETE", base_path, token=root)
        assert await store_snapshot(api.store) == before
    for answer in (breaking, deleting):
        assert (answer.status, answer.body["type"]) == (422, "invalid_config"), answer.text
        assert f"{TENANT_A} (" in answer.body["message"]
        assert "optimizer_config.optimizer_type" in answer.body["message"]
