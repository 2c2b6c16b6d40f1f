"""Idempotency-Key on the writes of /v1: a repeated key gets the first answer and writes nothing,
the same key with another request is refused, keys are per token, and what is remembered is
bounded in time and memory."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from server_harness import TENANT_A, Answer, Api, config_path, open_api, store_snapshot

from confstore import BackendUnavailableError, MemoryConfigStore
from confstore.server._http import ApiError
from confstore.server._idempotency import IdempotencyKeys, StoredAnswer
from confstore.server._openapi import openapi_document

Write = Callable[[Api, dict[str, str]], Awaitable[Answer]]


def keyed(key: str | None = None) -> dict[str, str]:
    return {"Idempotency-Key": key or uuid.uuid4().hex}


async def _put(
    api: Api,
    headers: dict[str, str],
    *,
    value: dict[str, Any] | None = None,
    token: str = "write-a",
    path: str | None = None,
) -> Answer:
    return await api.call(
        "PUT", path or config_path(), token=api.token(token),
        json_body={"value": value or {"n": 2}}, headers=headers,
    )  # fmt: skip


async def _delete(api: Api, headers: dict[str, str]) -> Answer:
    return await api.call("DELETE", config_path(), token=api.token("write-a"), headers=headers)


async def _rollback(api: Api, headers: dict[str, str]) -> Answer:
    return await api.call(
        "POST", config_path() + "/rollback", token=api.token("write-a"),
        json_body={"version": 1}, headers=headers,
    )  # fmt: skip


async def _import(api: Api, headers: dict[str, str]) -> Answer:
    first = await api.store.get_config(TENANT_A, "system", "svc", "key", 1)
    assert first is not None
    document = {"format": "confstore-export", "format_version": 1, "configs": [first.to_dict()]}
    return await api.call(
        "POST", f"/v1/tenants/{TENANT_A}/import", token=api.token("admin-a"),
        json_body=document, params={"mode": "append"}, headers=headers,
    )  # fmt: skip


WRITES: dict[str, Write] = {
    "put": _put,
    "delete": _delete,
    "rollback": _rollback,
    "import": _import,
}


async def _with_one_version(api: Api) -> None:
    first = await api.put(config_path(), {"n": 1}, token=api.token("write-a"))
    assert first.status == 201


@pytest.mark.parametrize("write", WRITES)
async def test_a_write_repeated_with_its_key_gets_the_first_answer_and_writes_once(
    api: Api, write: str
) -> None:
    await _with_one_version(api)
    headers = keyed()
    first = await WRITES[write](api, headers)
    after_first = await store_snapshot(api.store)
    repeat = await WRITES[write](api, headers)
    assert first.status < 300
    assert (repeat.status, repeat.body) == (first.status, first.body)
    assert repeat.headers.get("ETag") == first.headers.get("ETag")
    assert "Idempotent-Replayed" not in first.headers
    assert repeat.headers["Idempotent-Replayed"] == "true"
    assert await store_snapshot(api.store) == after_first


@pytest.mark.parametrize("write", WRITES)
async def test_the_same_write_with_a_new_key_is_applied_again(api: Api, write: str) -> None:
    await _with_one_version(api)
    first = await WRITES[write](api, keyed())
    second = await WRITES[write](api, keyed())
    assert "Idempotent-Replayed" not in second.headers
    # A second delete finds nothing live; the others write another version.
    expected = 404 if write == "delete" else first.status
    assert second.status == expected


async def test_a_conditional_write_repeated_after_it_applied_gets_its_success(api: Api) -> None:
    await _with_one_version(api)
    headers = {**keyed(), "If-Match": '"1"'}
    first = await _put(api, headers)
    repeat = await _put(api, headers)
    without_key = await _put(api, {"If-Match": '"1"'})
    assert (first.status, first.body["version"]) == (200, 2)
    assert (repeat.status, repeat.body["version"]) == (200, 2)
    assert (without_key.status, without_key.body["type"]) == (412, "version_conflict")


async def test_a_key_reused_for_another_request_is_refused_and_writes_nothing(api: Api) -> None:
    await _with_one_version(api)
    headers = keyed()
    await _put(api, headers)
    before = await store_snapshot(api.store)
    other_body = await _put(api, headers, value={"n": 3})
    other_key = await _put(api, headers, path=config_path(key="other"))
    other_condition = await _put(api, {**headers, "If-Match": '"2"'})
    other_method = await _delete(api, headers)
    refusals = [other_body, other_key, other_condition, other_method]
    assert [(answer.status, answer.body["type"]) for answer in refusals] == [
        (422, "idempotency_key_reused")
    ] * 4
    assert other_body.body["field"] == "idempotency_key"
    assert await store_snapshot(api.store) == before


async def test_keys_of_one_token_are_invisible_to_another(api: Api) -> None:
    headers = keyed()
    mine = await _put(api, headers)
    theirs = await _put(api, headers, token="write-ab")
    other_body = await _put(api, headers, value={"n": 9}, token="root")
    assert [answer.body["version"] for answer in (mine, theirs, other_body)] == [1, 2, 3]
    assert not any("Idempotent-Replayed" in a.headers for a in (mine, theirs, other_body))


async def test_concurrent_repeats_of_a_key_write_once_and_get_the_same_answer(api: Api) -> None:
    headers = keyed()
    answers = await asyncio.gather(*(_put(api, headers) for _ in range(8)))
    assert {(answer.status, answer.body["version"]) for answer in answers} == {(201, 1)}
    assert sum("Idempotent-Replayed" not in answer.headers for answer in answers) == 1
    history = await api.store.get_config_history(TENANT_A, "system", "svc", "key")
    assert [entry.version for entry in history] == [1]


@pytest.mark.parametrize("key", ["", "a" * 256, "has space", "caf\u00e9", "tab\there"])
async def test_a_malformed_key_is_refused_before_anything_is_written(api: Api, key: str) -> None:
    answer = await _put(api, {"Idempotency-Key": key})
    assert (answer.status, answer.body["type"]) == (400, "invalid_idempotency_key")
    assert await api.store.list_tenants(include_deleted=True) == []


async def test_a_keyed_write_outside_the_token_is_refused_before_its_body_is_read(
    api: Api,
) -> None:
    # Over the body limit: were the body read before the token's tenants were checked, 413.
    answer = await api.call(
        "PUT", config_path(tenant="tenant-b"), token=api.token("write-a"),
        data=io.BytesIO(b"x" * (4 * 1024 * 1024)), headers={**keyed(), "Content-Type": "application/json"},
    )  # fmt: skip
    assert (answer.status, answer.body["type"]) == (403, "forbidden")


class OnceDownStore(MemoryConfigStore):
    """A store whose first write fails with an outage, as a backend that was briefly down."""

    failed = False

    async def _set_config(self, key: Any, value: Any, value_json: str, **fields: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise BackendUnavailableError("the backend is down (injected)")
        return await super()._set_config(key, value, value_json, **fields)


async def test_a_failed_write_is_not_remembered_so_its_retry_runs(tmp_path: Path) -> None:
    async with open_api(tmp_path, store=OnceDownStore()) as api:
        headers = keyed()
        failed = await _put(api, headers)
        retried = await _put(api, headers)
    assert (failed.status, failed.body["type"]) == (503, "backend_unavailable")
    assert (retried.status, retried.body["version"]) == (201, 1)
    assert "Idempotent-Replayed" not in retried.headers


def test_openapi_documents_the_key_on_every_write() -> None:
    paths = openapi_document()["paths"]
    config = "/v1/tenants/{tenant}/configs/{scope}/{service}/{config_key}"
    writes = [
        paths[config]["put"],
        paths[config]["delete"],
        paths[config + "/rollback"]["post"],
        paths["/v1/tenants/{tenant}/import"]["post"],
    ]
    for operation in writes:
        headers = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
        assert "Idempotency-Key" in headers
        assert "idempotency_key_reused" in operation["responses"]["422"]["description"]
        assert "idempotency_key_in_use" in operation["responses"]["409"]["description"]
    assert "Idempotency-Key" not in str(paths[config]["get"])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _answer(size: int = 10) -> StoredAnswer:
    return StoredAnswer(200, (), b"x" * size)


async def _remember(keys: IdempotencyKeys, token: str, key: str, size: int = 10) -> None:
    record = await keys.claim(token, key, b"request", wait=1)
    assert not isinstance(record, StoredAnswer)
    keys.finish(token, key, record, _answer(size))


async def test_a_key_is_forgotten_after_its_time() -> None:
    clock = Clock()
    keys = IdempotencyKeys(ttl=60, max_keys=100, max_bytes=10_000, clock=clock)
    await _remember(keys, "token", "k")
    clock.now += 59
    assert isinstance(await keys.claim("token", "k", b"request", wait=1), StoredAnswer)
    clock.now += 2
    assert not isinstance(await keys.claim("token", "k", b"request", wait=1), StoredAnswer)


async def test_each_token_keeps_at_most_its_count_and_bytes_oldest_forgotten_first() -> None:
    keys = IdempotencyKeys(ttl=60, max_keys=3, max_bytes=10_000, clock=Clock())
    for number in range(5):
        await _remember(keys, "busy", f"k{number}")
    await _remember(keys, "quiet", "mine")
    assert len(keys) == 4  # three of "busy", whose flood did not push out "quiet"'s key
    assert isinstance(await keys.claim("quiet", "mine", b"request", wait=1), StoredAnswer)
    assert isinstance(await keys.claim("busy", "k4", b"request", wait=1), StoredAnswer)
    assert not isinstance(await keys.claim("busy", "k0", b"request", wait=1), StoredAnswer)

    by_size = IdempotencyKeys(ttl=60, max_keys=100, max_bytes=1000, clock=Clock())
    for number in range(4):
        await _remember(by_size, "token", f"k{number}", size=300)
    assert len(by_size) == 2  # two answers of 300 bytes (plus overhead) fit in 1000
    await _remember(by_size, "token", "huge", size=5000)
    assert len(by_size) == 1  # the newest answer is kept whatever its size


async def test_a_key_whose_write_failed_is_free_again() -> None:
    keys = IdempotencyKeys(ttl=60, max_keys=100, max_bytes=10_000, clock=Clock())
    record = await keys.claim("token", "k", b"request", wait=1)
    assert not isinstance(record, StoredAnswer)
    waiter = asyncio.create_task(keys.claim("token", "k", b"request", wait=10))
    await asyncio.sleep(0)  # the waiter finds the write running and waits for it
    keys.finish("token", "k", record, None)
    taken_over = await waiter
    assert not isinstance(taken_over, StoredAnswer)
    assert taken_over is not record


async def test_a_repeat_waiting_too_long_for_the_first_is_told_to_retry() -> None:
    keys = IdempotencyKeys(ttl=60, max_keys=100, max_bytes=10_000, clock=Clock())
    await keys.claim("token", "k", b"request", wait=1)
    with pytest.raises(ApiError, match="still running") as raised:
        await keys.claim("token", "k", b"request", wait=0.01)
    assert (raised.value.status, raised.value.kind) == (409, "idempotency_key_in_use")
