"""The Vespa emulator follows the documented /document/v1 rules, over real HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from confstore_vespa.emulator import DEFAULT_SCHEMA, VespaEmulator, bucket_of
from yarl import URL

SCHEMA_FILE = Path(__file__).parents[3] / "schemas" / "vespa" / "schemas" / "config_metadata.sd"
DOCS = "/document/v1/ns/config_metadata/docid"


class Client:
    """Raw HTTP against the emulator: (status, JSON body)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: Any = None,
    ) -> tuple[int, Any]:
        url = URL(self.base + path, encoded=True)  # sent exactly as written
        async with self.session.request(method, url, params=params, json=body) as response:
            payload = await response.json() if response.content_type == "application/json" else None
            return response.status, payload

    async def put(self, key: str, fields: dict[str, Any], **params: str) -> int:
        status, _ = await self.call("POST", f"{DOCS}/{key}", params, {"fields": fields})
        return status

    async def fields(self, key: str) -> dict[str, Any] | None:
        status, body = await self.call("GET", f"{DOCS}/{key}")
        return body["fields"] if status == 200 else None


@pytest.fixture
async def client(vespa: VespaEmulator) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(session, vespa.url)


async def test_post_is_a_put_and_get_returns_the_fields(client: Client) -> None:
    assert await client.put("k1", {"tenant_id": "a", "version": 3}) == 200
    status, body = await client.call("GET", f"{DOCS}/k1")
    assert status == 200
    assert body == {
        "pathId": f"{DOCS}/k1",
        "id": "id:ns:config_metadata::k1",
        "fields": {"tenant_id": "a", "version": 3},
    }


async def test_get_of_a_missing_document_is_404_with_path_and_id_only(client: Client) -> None:
    status, body = await client.call("GET", f"{DOCS}/nothing")
    assert status == 404
    assert body == {"pathId": f"{DOCS}/nothing", "id": "id:ns:config_metadata::nothing"}


async def test_a_put_replaces_the_whole_document(client: Client) -> None:
    await client.put("k", {"tenant_id": "a", "version": 1})
    await client.put("k", {"version": 2})
    assert await client.fields("k") == {"version": 2}


async def test_put_with_method_put_is_a_partial_update(client: Client) -> None:
    await client.put("k", {"tenant_id": "a", "version": 1})
    body = {"fields": {"version": {"assign": 5}}}
    status, _ = await client.call("PUT", f"{DOCS}/k", body=body)
    assert status == 200
    assert await client.fields("k") == {"tenant_id": "a", "version": 5}


async def test_update_of_a_missing_document_is_a_200_no_op(client: Client) -> None:
    body = {"fields": {"version": {"assign": 5}}}
    status, _ = await client.call("PUT", f"{DOCS}/k", body=body)
    assert status == 200
    assert await client.fields("k") is None


async def test_update_with_create_true_creates_the_document(client: Client) -> None:
    body = {"fields": {"version": {"increment": 2}}}
    status, _ = await client.call("PUT", f"{DOCS}/k", {"create": "true"}, body)
    assert status == 200
    assert await client.fields("k") == {"version": 2}


async def test_remove_of_a_missing_document_is_a_200_no_op(client: Client) -> None:
    status, _ = await client.call("DELETE", f"{DOCS}/nothing")
    assert status == 200


async def test_remove_deletes_the_document(client: Client) -> None:
    await client.put("k", {"version": 1})
    status, _ = await client.call("DELETE", f"{DOCS}/k")
    assert status == 200
    assert await client.fields("k") is None


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_a_condition_on_a_missing_document_fails_with_412(
    client: Client, method: str
) -> None:
    body = None if method == "DELETE" else {"fields": {}}
    status, reply = await client.call(
        method, f"{DOCS}/k", {"condition": "config_metadata.version==1"}, body
    )
    assert status == 412
    assert "message" in reply
    assert await client.fields("k") is None


async def test_a_failed_condition_writes_nothing(client: Client) -> None:
    await client.put("k", {"version": 1})
    status = await client.put("k", {"version": 9}, condition="config_metadata.version==2")
    assert status == 412
    assert await client.fields("k") == {"version": 1}


async def test_a_matching_condition_applies_the_write(client: Client) -> None:
    await client.put("k", {"version": 1})
    assert await client.put("k", {"version": 2}, condition="config_metadata.version==1") == 200
    assert await client.fields("k") == {"version": 2}


async def test_create_only_recipe_writes_when_absent_and_fails_when_present(
    client: Client,
) -> None:
    assert await client.put("k", {"version": 1}, create="true", condition="false") == 200
    assert await client.put("k", {"version": 2}, create="true", condition="false") == 412
    assert await client.fields("k") == {"version": 1}


async def test_create_true_evaluates_the_condition_when_the_document_exists(
    client: Client,
) -> None:
    await client.put("k", {"version": 1})
    condition = "config_metadata.version==1"
    assert await client.put("k", {"version": 2}, create="true", condition=condition) == 200
    assert await client.put("k", {"version": 3}, create="true", condition=condition) == 412


async def test_the_url_condition_wins_over_the_body_condition(client: Client) -> None:
    await client.put("k", {"version": 1})
    body = {"fields": {"version": 2}, "condition": "config_metadata.version==1"}
    status, _ = await client.call("POST", f"{DOCS}/k", {"condition": "false"}, body)
    assert status == 412


@pytest.mark.parametrize(
    "fields", [{"no_such_field": 1}, {"version": "three"}, {"deleted": 1}, {"tenant_id": 5}]
)
async def test_unknown_fields_and_wrong_types_are_rejected_with_400(
    client: Client, fields: dict[str, Any]
) -> None:
    assert await client.put("k", fields) == 400
    assert await client.fields("k") is None


async def test_an_update_of_an_unknown_field_is_400(client: Client) -> None:
    await client.put("k", {"version": 1})
    body = {"fields": {"nope": {"assign": 1}}}
    status, _ = await client.call("PUT", f"{DOCS}/k", body=body)
    assert status == 400


async def test_an_empty_string_is_the_same_as_an_unset_field(client: Client) -> None:
    await client.put("k", {"tenant_id": "", "version": 1})
    assert await client.fields("k") == {"version": 1}
    status, body = await client.call(
        "GET", DOCS, {"selection": "config_metadata.tenant_id==null", "stream": "true"}
    )
    assert status == 200
    assert [document["id"] for document in body["documents"]] == ["id:ns:config_metadata::k"]


@pytest.mark.parametrize(
    "selection",
    [
        "config_metadata.nope==1",
        "config_metadata.version==",
        "config_metadata.version==1 and",
        'config_metadata.tenant_id=="\\q"',
        "config_metadata.version",
        "other_type.version==1",
        "now() > 1",
        "config_metadata.version==1)",
    ],
)
async def test_a_selection_it_does_not_understand_is_400(client: Client, selection: str) -> None:
    await client.put("k", {"version": 1})
    status, body = await client.call("GET", DOCS, {"selection": selection})
    assert status == 400
    assert set(body) == {"pathId", "message"}


async def test_path_segments_are_percent_decoded_and_joined_with_slashes(client: Client) -> None:
    status, body = await client.call(
        "POST", f"{DOCS}/a%2Fb/c%3Ad%20e", body={"fields": {"version": 1}}
    )
    assert status == 200
    assert body["id"] == "id:ns:config_metadata::a/b/c:d e"


async def visit_all(client: Client, params: dict[str, str]) -> list[dict[str, Any]]:
    pages = []
    while True:
        status, body = await client.call("GET", DOCS, params)
        assert status == 200
        pages.append(body)
        if "continuation" not in body:
            return pages
        params = {**params, "continuation": body["continuation"]}


async def test_visiting_returns_every_matching_document_once(client: Client) -> None:
    for number in range(30):
        await client.put(f"k{number}", {"version": number})
    pages = await visit_all(client, {"selection": "config_metadata.version >= 10"})
    ids = [document["id"] for page in pages for document in page["documents"]]
    assert sorted(ids) == sorted(f"id:ns:config_metadata::k{n}" for n in range(10, 30))


async def test_visit_pages_hold_one_document_by_default(client: Client) -> None:
    for number in range(10):
        await client.put(f"k{number}", {"version": number})
    status, body = await client.call("GET", DOCS, {"selection": "true"})
    assert status == 200
    assert "continuation" in body
    assert 1 <= body["documentCount"] == len(body["documents"]) < 10


async def test_a_visit_page_can_be_empty_and_still_carry_a_continuation(client: Client) -> None:
    late = next(f"k{n}" for n in range(1000) if bucket_of(f"id:ns:config_metadata::k{n}") >= 8)
    await client.put(late, {"version": 1})
    pages = await visit_all(client, {"selection": "true", "wantedDocumentCount": "10"})
    assert pages[0]["documents"] == []
    assert "continuation" in pages[0]
    assert [document["id"] for page in pages for document in page["documents"]] == [
        f"id:ns:config_metadata::{late}"
    ]


@pytest.mark.parametrize("wanted", ["0", "-1", "many"])
async def test_a_bad_wanted_document_count_is_400(client: Client, wanted: str) -> None:
    status, _ = await client.call("GET", DOCS, {"wantedDocumentCount": wanted})
    assert status == 400


async def test_a_forged_continuation_is_400(client: Client) -> None:
    status, _ = await client.call("GET", DOCS, {"continuation": "not-a-token"})
    assert status == 400


async def test_delete_by_selection_needs_selection_and_cluster(client: Client) -> None:
    status, _ = await client.call("DELETE", DOCS, {"selection": "true"})
    assert status == 400
    status, _ = await client.call("DELETE", DOCS, {"cluster": "confstore"})
    assert status == 400


async def test_delete_by_selection_removes_matches_across_continuations(client: Client) -> None:
    for number in range(40):
        await client.put(f"k{number}", {"version": number % 2})
    params = {"selection": "config_metadata.version==1", "cluster": "confstore"}
    removed, requests = 0, 0
    while True:
        status, body = await client.call("DELETE", DOCS, params)
        assert status == 200
        removed += body["documentCount"]
        requests += 1
        if "continuation" not in body:
            break
        params = {**params, "continuation": body["continuation"]}
    assert removed == 20
    assert requests > 1
    remaining = await visit_all(client, {"selection": "true", "wantedDocumentCount": "100"})
    assert sum(len(page["documents"]) for page in remaining) == 20


async def test_an_unknown_cluster_is_400(client: Client) -> None:
    status, _ = await client.call("GET", DOCS, {"cluster": "elsewhere"})
    assert status == 400


async def test_an_unknown_parameter_is_400(client: Client) -> None:
    status, _ = await client.call("GET", f"{DOCS}/k", {"conditon": "true"})
    assert status == 400


async def test_an_unknown_document_type_is_400(client: Client) -> None:
    status, _ = await client.call("GET", "/document/v1/ns/nosuchtype/docid/k")
    assert status == 400


async def test_an_unknown_path_is_404_listing_the_valid_paths(client: Client) -> None:
    status, body = await client.call("GET", "/document/v2/whatever")
    assert status == 404
    assert "/document/v1/{namespace}/{documentType}/docid/" in body["message"]


async def test_a_method_that_is_not_allowed_is_405(client: Client) -> None:
    status, _ = await client.call("PATCH", f"{DOCS}/k")
    assert status == 405


async def test_health_reports_the_configured_status(vespa: VespaEmulator, client: Client) -> None:
    status, body = await client.call("GET", "/state/v1/health")
    assert (status, body["status"]["code"]) == (200, "up")
    vespa.health_status = "down"
    _, body = await client.call("GET", "/state/v1/health")
    assert body["status"]["code"] == "down"


@pytest.mark.parametrize("code", [429, 503, 504])
async def test_an_injected_status_answers_path_and_message_and_writes_nothing(
    vespa: VespaEmulator, client: Client, code: int
) -> None:
    vespa.add_fault("status", status=code, times=1)
    status, body = await client.call("POST", f"{DOCS}/k", body={"fields": {"version": 1}})
    assert status == code
    assert set(body) >= {"pathId", "message"}
    assert await client.fields("k") is None


async def test_a_connection_dropped_before_the_write_leaves_nothing(
    vespa: VespaEmulator, client: Client
) -> None:
    vespa.add_fault("drop_before", operations=["put"], times=1)
    with pytest.raises(aiohttp.ClientError):
        await client.put("k", {"version": 1})
    assert await client.fields("k") is None


async def test_a_connection_dropped_after_the_write_leaves_it_applied(
    vespa: VespaEmulator, client: Client
) -> None:
    vespa.add_fault("drop_after", operations=["put"], times=1)
    with pytest.raises(aiohttp.ClientError):
        await client.put("k", {"version": 1})
    assert await client.fields("k") == {"version": 1}


async def test_a_status_after_the_write_leaves_it_applied(
    vespa: VespaEmulator, client: Client
) -> None:
    vespa.add_fault("status_after", status=504, operations=["put"], times=1)
    assert await client.put("k", {"version": 1}) == 504
    assert await client.fields("k") == {"version": 1}


async def test_a_fault_rule_fires_only_the_given_number_of_times(
    vespa: VespaEmulator, client: Client
) -> None:
    rule = vespa.add_fault("status", status=503, times=2)
    statuses = [(await client.call("GET", f"{DOCS}/k"))[0] for _ in range(3)]
    assert statuses == [503, 503, 404]
    assert rule.fired == 2


async def test_the_request_log_keeps_raw_paths_queries_and_statuses(
    vespa: VespaEmulator, client: Client
) -> None:
    await client.call("GET", f"{DOCS}/a%3Ab", {"fieldSet": "[id]"})
    (entry,) = vespa.request_log
    assert (entry.method, entry.path, entry.query, entry.status, entry.operation) == (
        "GET",
        f"{DOCS}/a%3Ab",
        {"fieldSet": "[id]"},
        404,
        "get",
    )
    assert entry.finished >= entry.started


def test_the_emulator_schema_is_the_shipped_schema() -> None:
    text = SCHEMA_FILE.read_text()
    shipped = dict(re.findall(r"field\s+(\w+)\s+type\s+(\w+)", text))
    document_type = re.search(r"document\s+(\w+)\s*\{", text)
    assert document_type is not None
    assert {document_type.group(1): shipped} == DEFAULT_SCHEMA


async def test_a_scripted_fault_can_let_the_first_requests_through(
    vespa: VespaEmulator, client: Client
) -> None:
    vespa.add_fault("status", status=503, operations=["put"], skip=2, times=1)
    statuses = [await client.put(f"k{n}", {"version": n}) for n in range(4)]
    assert statuses == [200, 200, 503, 200]
