"""The emulator keeps the Elasticsearch/OpenSearch rules its docstring lists, over HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from confstore_elasticsearch.emulator import ElasticsearchEmulator, FaultKind, Flavor

from confstore import BackendTimeoutError
from confstore.http import HttpClient, HttpResponse, RetryPolicy

NO_RETRY = RetryPolicy(attempts=1)
STRICT = {
    "mappings": {
        "dynamic": "strict",
        "properties": {"name": {"type": "keyword"}, "n": {"type": "long"}},
    }
}


@pytest.fixture
async def client(es_emulator: ElasticsearchEmulator) -> AsyncIterator[HttpClient]:
    async with HttpClient(es_emulator.url, retry=NO_RETRY, timeout=5.0) as http:
        yield http


async def call(
    client: HttpClient, method: str, path: str, body: Any = None, **params: str
) -> HttpResponse:
    return await client.request(method, path, json_body=body, params=params or None)


async def make_index(client: HttpClient, name: str = "things") -> None:
    assert (await call(client, "PUT", name, STRICT)).status == 200


def error_type(response: HttpResponse) -> str:
    return str(response.json()["error"]["type"])


async def test_every_answer_names_the_product_in_elasticsearch_mode(client: HttpClient) -> None:
    response = await call(client, "GET", "/")
    assert response.headers.get("X-Elastic-Product") == "Elasticsearch"
    assert response.json()["version"]["build_flavor"] == "default"


@pytest.mark.parametrize("es_flavor", ["opensearch"])
async def test_opensearch_mode_has_no_product_header_and_names_its_distribution(
    client: HttpClient,
) -> None:
    response = await call(client, "GET", "/")
    assert "X-Elastic-Product" not in response.headers
    assert response.json()["version"]["distribution"] == "opensearch"


async def test_creating_an_existing_index_is_a_400_resource_already_exists(
    client: HttpClient,
) -> None:
    await make_index(client)
    again = await call(client, "PUT", "things", STRICT)
    assert again.status == 400
    assert error_type(again) == "resource_already_exists_exception"
    assert again.json()["error"]["root_cause"][0]["type"] == "resource_already_exists_exception"


async def test_index_exists_check_is_200_or_404(client: HttpClient) -> None:
    assert (await call(client, "HEAD", "things")).status == 404
    await make_index(client)
    assert (await call(client, "HEAD", "things")).status == 200


async def test_strict_mapping_refuses_an_unknown_field(client: HttpClient) -> None:
    await make_index(client)
    response = await call(client, "PUT", "things/_doc/1", {"name": "a", "extra": 1})
    assert response.status == 400
    assert error_type(response) == "strict_dynamic_mapping_exception"


@pytest.mark.parametrize(
    ("es_flavor", "unknown_type"), [("elasticsearch", "flat_object"), ("opensearch", "flattened")]
)
async def test_each_flavour_refuses_the_other_flavours_json_field_type(
    client: HttpClient, unknown_type: str
) -> None:
    body = {"mappings": {"properties": {"payload": {"type": unknown_type}}}}
    response = await call(client, "PUT", "things", body)
    assert response.status == 400
    assert error_type(response) == "mapper_parsing_exception"


async def test_a_keyword_over_the_term_limit_fails_the_document(client: HttpClient) -> None:
    await make_index(client)
    response = await call(client, "PUT", "things/_doc/1", {"name": "x" * 32767})
    assert response.status == 400
    assert "immense term" in response.json()["error"]["reason"]


async def test_create_is_201_then_409_version_conflict(client: HttpClient) -> None:
    await make_index(client)
    first = await call(client, "PUT", "things/_create/1", {"name": "a"})
    second = await call(client, "POST", "things/_create/1", {"name": "b"})
    assert first.status == 201
    assert first.json()["result"] == "created"
    assert second.status == 409
    assert error_type(second) == "version_conflict_engine_exception"
    assert "document already exists" in second.json()["error"]["reason"]


async def test_indexing_an_existing_document_is_200_updated(client: HttpClient) -> None:
    await make_index(client)
    await call(client, "PUT", "things/_doc/1", {"name": "a"})
    response = await call(client, "PUT", "things/_doc/1", {"name": "b"})
    assert response.status == 200
    assert response.json()["result"] == "updated"
    assert response.json()["_version"] == 2


async def test_compare_and_set_with_a_stale_seq_no_is_a_409(client: HttpClient) -> None:
    await make_index(client)
    created = (await call(client, "PUT", "things/_doc/1", {"name": "a"})).json()
    await call(client, "PUT", "things/_doc/1", {"name": "b"})
    stale = await call(
        client,
        "PUT",
        "things/_doc/1",
        {"name": "c"},
        if_seq_no=str(created["_seq_no"]),
        if_primary_term=str(created["_primary_term"]),
    )
    assert stale.status == 409
    assert "required seqNo" in stale.json()["error"]["reason"]


async def test_create_with_compare_and_set_is_a_400(client: HttpClient) -> None:
    await make_index(client)
    response = await call(
        client,
        "PUT",
        "things/_doc/1",
        {"name": "a"},
        op_type="create",
        if_seq_no="0",
        if_primary_term="1",
    )
    assert response.status == 400
    assert error_type(response) == "action_request_validation_exception"


async def test_get_of_a_missing_document_is_404_found_false(client: HttpClient) -> None:
    await make_index(client)
    response = await call(client, "GET", "things/_doc/nope")
    assert response.status == 404
    assert response.json() == {"_index": "things", "_id": "nope", "found": False}


async def test_get_in_a_missing_index_is_404_index_not_found(client: HttpClient) -> None:
    response = await call(client, "GET", "nothing/_doc/1")
    assert response.status == 404
    assert error_type(response) == "index_not_found_exception"


async def test_delete_of_a_missing_document_is_404_not_found(client: HttpClient) -> None:
    await make_index(client)
    response = await call(client, "DELETE", "things/_doc/nope")
    assert response.status == 404
    assert response.json()["result"] == "not_found"


async def test_get_is_real_time_but_search_sees_only_refreshed_data(client: HttpClient) -> None:
    await make_index(client)
    await call(client, "PUT", "things/_doc/1", {"name": "a"})
    assert (await call(client, "GET", "things/_doc/1")).json()["found"] is True
    search = await call(client, "POST", "things/_search", {"query": {"match_all": {}}})
    assert search.json()["hits"]["total"]["value"] == 0
    assert (await call(client, "POST", "things/_refresh")).status == 200
    search = await call(client, "POST", "things/_search", {"query": {"match_all": {}}})
    assert search.json()["hits"]["total"]["value"] == 1


async def test_refresh_true_on_a_write_makes_it_searchable(client: HttpClient) -> None:
    await make_index(client)
    await call(client, "PUT", "things/_doc/1", {"name": "a"}, refresh="true")
    count = await call(client, "POST", "things/_count", {"query": {"term": {"name": "a"}}})
    assert count.json()["count"] == 1


async def test_count_and_delete_by_query_see_only_refreshed_data(client: HttpClient) -> None:
    await make_index(client)
    await call(client, "PUT", "things/_doc/1", {"name": "a"}, refresh="true")
    await call(client, "PUT", "things/_doc/2", {"name": "a"})
    query = {"query": {"term": {"name": "a"}}}
    assert (await call(client, "POST", "things/_count", query)).json()["count"] == 1
    deleted = await call(client, "POST", "things/_delete_by_query", query, refresh="true")
    assert deleted.json()["deleted"] == 1
    assert (await call(client, "GET", "things/_doc/2")).json()["found"] is True


async def test_an_unknown_query_type_is_a_400_parsing_exception(client: HttpClient) -> None:
    await make_index(client)
    response = await call(client, "POST", "things/_search", {"query": {"fuzzy": {"name": "a"}}})
    assert response.status == 400
    assert error_type(response) == "parsing_exception"


async def test_sorting_on_id_is_refused(client: HttpClient) -> None:
    await make_index(client)
    response = await call(client, "POST", "things/_search", {"sort": [{"_id": "asc"}]})
    assert response.status == 400


async def test_search_after_pages_through_every_hit_once(client: HttpClient) -> None:
    await make_index(client)
    for number in range(7):
        await call(client, "PUT", f"things/_doc/{number}", {"name": f"n{number % 3}", "n": number})
    await call(client, "POST", "things/_refresh")
    seen: list[int] = []
    after = None
    while True:
        body: dict[str, Any] = {"sort": [{"name": "desc"}, {"n": "asc"}], "size": 3}
        if after is not None:
            body["search_after"] = after
        hits = (await call(client, "POST", "things/_search", body)).json()["hits"]["hits"]
        if not hits:
            break
        seen.extend(hit["_source"]["n"] for hit in hits)
        after = hits[-1]["sort"]
    assert seen == [2, 5, 1, 4, 0, 3, 6]


async def test_track_total_hits_false_leaves_the_total_out(client: HttpClient) -> None:
    await make_index(client)
    response = await call(client, "POST", "things/_search", {"track_total_hits": False})
    assert "total" not in response.json()["hits"]


async def test_terms_and_composite_aggregations_count_exactly(client: HttpClient) -> None:
    await make_index(client)
    for number, name in enumerate(["a", "b", "a", "c", "a"]):
        await call(client, "PUT", f"things/_doc/{number}", {"name": name})
    await call(client, "POST", "things/_refresh")
    body = {
        "size": 0,
        "aggs": {
            "top": {"terms": {"field": "name", "size": 2}},
            "all": {"composite": {"size": 2, "sources": [{"name": {"terms": {"field": "name"}}}]}},
        },
    }
    aggs = (await call(client, "POST", "things/_search", body)).json()["aggregations"]
    assert aggs["top"]["buckets"] == [{"key": "a", "doc_count": 3}, {"key": "b", "doc_count": 1}]
    assert aggs["top"]["sum_other_doc_count"] == 1
    assert aggs["all"]["after_key"] == {"name": "b"}


async def test_bulk_without_a_trailing_newline_is_a_400(client: HttpClient) -> None:
    await make_index(client)
    payload = (
        json.dumps({"create": {"_index": "things", "_id": "1"}}) + "\n" + json.dumps({"name": "a"})
    )
    response = await client.request(
        "POST", "_bulk", data=payload, content_type="application/x-ndjson"
    )
    assert response.status == 400
    assert "terminated by a newline" in response.json()["error"]["reason"]


async def test_bulk_answers_200_with_a_status_per_item(client: HttpClient) -> None:
    await make_index(client)
    await call(client, "PUT", "things/_doc/1", {"name": "a"})
    lines = [
        {"create": {"_index": "things", "_id": "1"}},
        {"name": "b"},
        {"create": {"_index": "things", "_id": "2"}},
        {"name": "c"},
        {"delete": {"_index": "things", "_id": "nope"}},
    ]
    payload = "".join(json.dumps(line) + "\n" for line in lines)
    response = await client.request(
        "POST", "_bulk", data=payload, content_type="application/x-ndjson"
    )
    assert response.status == 200
    items = response.json()["items"]
    assert [next(iter(item.values()))["status"] for item in items] == [409, 201, 404]
    assert response.json()["errors"] is True


async def test_a_body_with_an_unsupported_content_type_is_a_406(client: HttpClient) -> None:
    await make_index(client)
    response = await client.request(
        "PUT", "things/_doc/1", data=b'{"name": "a"}', content_type="text/plain"
    )
    assert response.status == 406
    assert response.json()["error"] == "Content-Type header [text/plain] is not supported"


@pytest.mark.parametrize(
    ("es_flavor", "rejection"),
    [
        ("elasticsearch", "es_rejected_execution_exception"),
        ("opensearch", "rejected_execution_exception"),
    ],
)
async def test_an_injected_429_names_the_flavours_rejection_type(
    client: HttpClient, es_emulator: ElasticsearchEmulator, es_flavor: Flavor, rejection: str
) -> None:
    es_emulator.inject(status=429)
    response = await call(client, "GET", "/")
    assert response.status == 429
    assert error_type(response) == rejection


@pytest.mark.parametrize(("fault", "applied"), [("drop_before", False), ("drop_after", True)])
async def test_a_dropped_connection_applies_the_request_only_when_dropped_after(
    client: HttpClient, es_emulator: ElasticsearchEmulator, fault: FaultKind, applied: bool
) -> None:
    await make_index(client)
    es_emulator.inject(fault, method="POST")
    with pytest.raises(BackendTimeoutError):
        await call(client, "POST", "things/_create/1", {"name": "a"})
    assert (await call(client, "GET", "things/_doc/1")).json()["found"] is applied


async def test_the_request_log_keeps_paths_percent_encoded(
    client: HttpClient, es_emulator: ElasticsearchEmulator
) -> None:
    await make_index(client)
    await call(client, "PUT", "things/_doc/a%2Fb", {"name": "a"})
    assert es_emulator.requests[-1].path == "/things/_doc/a%2Fb"
    assert (await call(client, "GET", "things/_doc/a%2Fb")).json()["_id"] == "a/b"


async def test_the_periodic_refresh_makes_writes_searchable_when_switched_on() -> None:
    async with (
        ElasticsearchEmulator(refresh_interval=0.01) as emulator,
        HttpClient(emulator.url, retry=NO_RETRY) as http,
    ):
        await make_index(http)
        await call(http, "PUT", "things/_doc/1", {"name": "a"})
        await emulator.next_periodic_refresh()
        assert (await call(http, "POST", "things/_count", {})).json()["count"] == 1


async def test_track_total_hits_counts_up_to_ten_thousand_by_default(client: HttpClient) -> None:
    await make_index(client)
    lines = "".join(
        json.dumps({"index": {"_index": "things", "_id": str(number)}}) + "\n" + '{"n": 1}\n'
        for number in range(10_001)
    )
    await client.request(
        "POST", "_bulk", data=lines, content_type="application/x-ndjson", params={"refresh": "true"}
    )
    default = (await call(client, "POST", "things/_search", {"size": 0})).json()["hits"]["total"]
    exact = (
        await call(client, "POST", "things/_search", {"size": 0, "track_total_hits": True})
    ).json()
    assert default == {"value": 10_000, "relation": "gte"}
    assert exact["hits"]["total"] == {"value": 10_001, "relation": "eq"}


async def test_refresh_wait_for_makes_a_write_searchable(client: HttpClient) -> None:
    await make_index(client)
    await call(client, "PUT", "things/_doc/1", {"name": "a"}, refresh="wait_for")
    assert (await call(client, "POST", "things/_count", {})).json()["count"] == 1


async def test_mget_is_real_time_and_marks_missing_documents(client: HttpClient) -> None:
    await make_index(client)
    await call(client, "PUT", "things/_doc/1", {"name": "a"})
    docs = (await call(client, "POST", "things/_mget", {"ids": ["1", "2"]})).json()["docs"]
    assert docs[0]["found"] is True
    assert docs[0]["_source"] == {"name": "a"}
    assert docs[1] == {"_index": "things", "_id": "2", "found": False}
