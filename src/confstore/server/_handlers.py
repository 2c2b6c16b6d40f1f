"""The handlers of ``/v1``: tenants, configs, versions, diffs, rollback, export, import, stats.

Every handler checks the caller's role and tenant first (``authorize``), before it validates
anything else or reads the store, so a request outside the token's tenants gets the same 403
whether or not the tenant exists.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .._diff import secret_paths_for
from .._errors import InvalidConfigError
from .._manager import refuse_breaking_base
from .._models import ConfigEntry, ConfigKey
from .._retention import RetentionPolicy
from .._secrets import mask_secrets
from .._store import ConfigStore
from .._typed import spec_at, typed_config_specs
from .._validation import check_nesting_depth, parse_count, validate_identifier, validate_key
from ..cli._schemas import field_changes, secret_paths_of, validated_value
from ._auth import IDENTITY, authorize, forbidden
from ._http import (
    STREAMING,
    ApiError,
    RequestModel,
    json_response,
    parse_json,
    query_bool,
    query_int,
    query_param,
    read_body,
    read_model,
    require_json,
    security_headers,
    write_within,
)
from ._idempotency import idempotent_write
from ._schemas import DeleteConfigRequest, PruneRequest, PutConfigRequest, RollbackRequest
from ._settings import LAYERING, SETTINGS, STORE
from ._tokens import AccessToken, Role
from ._watch import HUB

HISTORY_LIMIT_MAX = 10_000
_UNSET: Any = object()


def reveals_secrets(request: web.Request, identity: AccessToken) -> bool:
    """Whether an answer shows secrets: only to roles that read them, unless the request asks
    for them masked (``?mask_secrets=true``, as the web console does until told otherwise)."""
    return identity.role.allows(Role.WRITE) and not query_bool(request, "mask_secrets")


def entry_body(entry: ConfigEntry, reveal_secrets: bool) -> dict[str, Any]:
    """The JSON of an entry: secrets masked unless ``reveal_secrets``."""
    data = entry.to_dict()
    if not reveal_secrets:
        data["config_value"] = mask_secrets(entry.config_value, secret_paths_of(entry))
    return data


def etag(version: int) -> str:
    return f'"{version}"'


def _key(request: web.Request, role: Role) -> tuple[ConfigKey, AccessToken]:
    info = request.match_info
    identity = authorize(request, role=role, tenant_id=info["tenant"])
    return validate_key(
        info["tenant"], info["scope"], info["service"], info["config_key"]
    ), identity


async def _body(
    request: web.Request,
    model: type[RequestModel],
    limit: int | None = None,
    *,
    optional: bool = False,
) -> RequestModel:
    """The request's JSON body as ``model``; ``limit`` defaults to the small-body limit."""
    settings = request.app[SETTINGS]
    return await read_model(
        request,
        model,
        limit=settings.max_small_body_bytes if limit is None else limit,
        timeout=settings.client_timeout,
        optional=optional,
    )


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"not found: {what}")


def _etag_versions(header: str) -> list[int | None]:
    """The versions named by an If-Match / If-None-Match header; None stands for ``*``."""
    versions: list[int | None] = []
    for item in header.split(","):
        tag = item.strip().removeprefix("W/")
        version = parse_count(tag[1:-1]) if len(tag) >= 3 and tag[0] == tag[-1] == '"' else None
        if tag == "*":
            versions.append(None)
        elif version is not None:
            versions.append(version)
        else:
            raise ApiError(
                400, "invalid_config", f"not an entity tag of this API: {tag!r:.40}", field="etag"
            )
    return versions


async def _expected_version(
    request: web.Request, store: ConfigStore, key: ConfigKey, from_body: int | None
) -> int | None:
    """The compare-and-set version: If-Match, If-None-Match: * (create only), or the body's."""
    header_version: int | None = None
    if_match = request.headers.get("If-Match")
    if if_match is not None:
        versions = _etag_versions(if_match)
        if len(versions) != 1:
            raise ApiError(400, "invalid_config", "If-Match must name one version", field="etag")
        header_version = versions[0]
        if header_version is None:  # "*": whatever live version there is now
            latest = await store.get_config(*_parts(key))
            if latest is None:
                raise ApiError(412, "version_conflict", "If-Match: * but the config does not exist")
            header_version = latest.version
    elif request.headers.get("If-None-Match", "").strip() == "*":
        header_version = 0
    if header_version is not None and from_body is not None and header_version != from_body:
        raise ApiError(
            400,
            "invalid_config",
            "If-Match and expected_version name different versions",
            field="expected_version",
        )
    return header_version if header_version is not None else from_body


def _parts(key: ConfigKey) -> tuple[str, str, str, str]:
    return key.tenant_id, key.scope.value, key.service, key.config_key


def resolve_updated_by(identity: AccessToken, given: Any) -> str | None:
    """Who a write is recorded as: the token's name, unless an admin token names someone else
    (or nobody, with null). Other tokens may send null or their own name, nothing else."""
    if identity.role.allows(Role.ADMIN):
        return identity.name if given is _UNSET else given
    if given in (_UNSET, None, identity.name):
        return identity.name
    raise forbidden(
        f"token {identity.name!r} writes as {identity.name!r}; only admin tokens may record "
        "another updated_by"
    )


def _given(model: Any, name: str) -> Any:
    return getattr(model, name) if name in model.model_fields_set else _UNSET


async def health(request: web.Request) -> web.Response:
    checker: HealthCache = request.app[HEALTH]
    healthy = await checker.check(request.app[STORE])
    return json_response({"healthy": healthy}, status=200 if healthy else 503)


@dataclass
class HealthCache:
    """The backend's health, asked at most once a second (the endpoint needs no token)."""

    seconds: float = 1.0
    _healthy: bool = False
    _checked_at: float = float("-inf")

    async def check(self, store: ConfigStore) -> bool:
        if time.monotonic() - self._checked_at >= self.seconds:
            self._healthy = await store.health_check()
            self._checked_at = time.monotonic()
        return self._healthy


HEALTH = web.AppKey("confstore_health", HealthCache)


async def token_info(request: web.Request) -> web.Response:
    identity = request[IDENTITY]
    return json_response(
        {"name": identity.name, "role": identity.role.value, "tenants": list(identity.tenants)}
    )


async def list_tenants(request: web.Request) -> web.Response:
    identity = authorize(request, role=Role.READ)
    names = await request.app[STORE].list_tenants(
        include_deleted=query_bool(request, "include_deleted")
    )
    return json_response({"tenants": [name for name in names if identity.covers(name)]})


async def list_configs(request: web.Request) -> web.Response:
    tenant_id = request.match_info["tenant"]
    identity = authorize(request, role=Role.READ, tenant_id=tenant_id)
    scope = query_param(request, "scope") or None
    service = query_param(request, "service") or None
    entries = await request.app[STORE].list_configs(tenant_id, scope, service)
    reveal = reveals_secrets(request, identity)
    return json_response({"configs": [entry_body(entry, reveal) for entry in entries]})


async def get_config(request: web.Request) -> web.Response:
    key, identity = _key(request, Role.READ)
    version = query_int(request, "version", minimum=1, default=None)
    entry = await request.app[STORE].get_config(*_parts(key), version)
    if entry is None:
        at_version = "" if version is None else f" version {version}"
        raise _not_found(f"{key}{at_version}")
    headers = {"ETag": etag(entry.version)}
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        wanted = _etag_versions(if_none_match)
        if None in wanted or entry.version in wanted:
            return web.Response(status=304, headers=headers)
    return json_response(entry_body(entry, reveals_secrets(request, identity)), headers=headers)


def _put_body_limit(request: web.Request) -> int:
    return request.app[SETTINGS].body_limit(request.app[STORE])


def _small_body_limit(request: web.Request) -> int:
    return request.app[SETTINGS].max_small_body_bytes


def _import_body_limit(request: web.Request) -> int:
    return request.app[SETTINGS].max_import_bytes


@idempotent_write(Role.WRITE, _put_body_limit)
async def put_config(request: web.Request) -> web.Response:
    key, identity = _key(request, Role.WRITE)
    store = request.app[STORE]
    body = await _body(request, PutConfigRequest, _put_body_limit(request))
    updated_by = resolve_updated_by(identity, _given(body, "updated_by"))
    value = await _value_to_store(request, key, body.value)
    expected = await _expected_version(request, store, key, body.expected_version)
    entry = await store.set_config(
        *_parts(key), value, expected_version=expected, updated_by=updated_by, comment=body.comment
    )
    request.app[HUB].poke()
    return json_response(
        entry_body(entry, reveals_secrets(request, identity)),
        status=201 if entry.version == 1 else 200,
        headers={"ETag": etag(entry.version)},
    )


@idempotent_write(Role.WRITE, _small_body_limit)
async def delete_config(request: web.Request) -> web.Response:
    key, identity = _key(request, Role.WRITE)
    body = await _body(request, DeleteConfigRequest, optional=True)
    purge = body.purge or query_bool(request, "purge")
    spec = spec_at(key.scope, key.config_key)
    if spec is not None and request.app[LAYERING].is_base(key.tenant_id):
        # Deleting the base tenant's typed config must not break a tenant that inherits it.
        await refuse_breaking_base(
            request.app[STORE], request.app[LAYERING], spec, key.service, None
        )
    deleted = await request.app[STORE].delete_config(
        *_parts(key),
        purge=purge,
        updated_by=resolve_updated_by(identity, _given(body, "updated_by")),
        comment=body.comment,
    )
    if not deleted:
        raise _not_found(f"{key} (no live config to delete)")
    request.app[HUB].poke()
    return json_response({"deleted": True, "purged": purge})


async def history(request: web.Request) -> web.Response:
    key, identity = _key(request, Role.READ)
    limit = query_int(request, "limit", minimum=1, default=10)
    assert limit is not None
    entries = await request.app[STORE].get_config_history(
        *_parts(key), min(limit, HISTORY_LIMIT_MAX)
    )
    reveal = reveals_secrets(request, identity)
    return json_response({"history": [entry_body(entry, reveal) for entry in entries]})


async def diff(request: web.Request) -> web.Response:
    key, identity = _key(request, Role.READ)
    store = request.app[STORE]
    to_version = query_int(request, "to", minimum=1, default=None)
    if to_version is None:
        newest = await store.get_config_history(*_parts(key), 1)
        if not newest:
            raise _not_found(str(key))
        new = newest[0]
    else:
        new = await _version(store, key, to_version)
    from_version = query_int(request, "from", minimum=1, default=new.version - 1)
    if not from_version:
        raise _not_found(f"{key} has no version before {new.version}")
    old = await _version(store, key, from_version)
    changes = field_changes(old, new, show_secrets=reveals_secrets(request, identity))
    return json_response(
        {"from_version": old.version, "to_version": new.version, "changes": changes}
    )


async def _version(store: ConfigStore, key: ConfigKey, version: int) -> ConfigEntry:
    entry = await store.get_config(*_parts(key), version)
    if entry is None:
        raise _not_found(f"{key} version {version}")
    return entry


@idempotent_write(Role.WRITE, _small_body_limit)
async def rollback(request: web.Request) -> web.Response:
    key, identity = _key(request, Role.WRITE)
    store = request.app[STORE]
    body = await _body(request, RollbackRequest)
    updated_by = resolve_updated_by(identity, _given(body, "updated_by"))
    old = await _version(store, key, body.version)
    if old.deleted:
        raise InvalidConfigError(
            f"version {body.version} of {key} is a deletion; nothing to roll back to",
            field="version",
        )
    value = await _value_to_store(request, key, old.config_value)
    expected = await _expected_version(request, store, key, body.expected_version)
    entry = await store.set_config(
        *_parts(key),
        value,
        expected_version=expected,
        updated_by=updated_by,
        comment=body.comment if body.comment is not None else f"rollback to version {old.version}",
    )
    request.app[HUB].poke()
    return json_response(
        entry_body(entry, reveals_secrets(request, identity)),
        headers={"ETag": etag(entry.version)},
    )


async def _value_to_store(request: web.Request, key: ConfigKey, value: Any) -> Any:
    """Where a typed config lives, the tenant's overrides as the manager and the CLI store them:
    as given (in the schema's form), once the effective config they make with the base tenant's
    validates, so the tenant goes on inheriting what it does not set. Elsewhere, as given."""
    spec = spec_at(key.scope, key.config_key)
    if spec is None or not isinstance(value, dict):
        return validated_value(None, key.tenant_id, key.scope.value, key.config_key, value)
    check_nesting_depth(value)
    layering = request.app[LAYERING]
    stored = layering.stored_form(spec, key.tenant_id, value, await _base_entry(request, key))
    if layering.is_base(key.tenant_id):
        await refuse_breaking_base(request.app[STORE], layering, spec, key.service, stored)
    return stored


async def _base_entry(request: web.Request, key: ConfigKey) -> ConfigEntry | None:
    """The base tenant's latest config at ``key``'s place (None for the base tenant itself)."""
    base_tenant = request.app[LAYERING].base_for(key.tenant_id)
    if base_tenant is None:
        return None
    return await request.app[STORE].get_config(base_tenant, *_parts(key)[1:])


async def explain(request: web.Request) -> web.Response:
    """The tenant's effective typed config, field by field, with the layer each value came from.

    It includes what the tenant inherits from the base tenant: that is part of its effective
    config. A secret is shown only to a role that reads secrets and covers the tenant the
    secret's value came from.
    """
    key, identity = _key(request, Role.READ)
    spec = spec_at(key.scope, key.config_key)
    if spec is None:
        raise _not_found(
            f"a typed config at {key.scope.value}/.../{key.config_key} (only typed configs "
            "have an effective value)"
        )
    layering = request.app[LAYERING]
    base_tenant = layering.base_for(key.tenant_id)
    own = await request.app[STORE].get_config(*_parts(key))
    base = await _base_entry(request, key)
    fields = layering.explain(spec, key.tenant_id, own, base, show_secrets=False)
    if not fields:
        raise _not_found(f"{key} (nothing stored or inherited)")
    if reveals_secrets(request, identity):
        revealed = layering.explain(spec, key.tenant_id, own, base, show_secrets=True)
        fields = [
            shown if shown.tenant_id is None or identity.covers(shown.tenant_id) else masked
            for shown, masked in zip(revealed, fields, strict=True)
        ]
    return json_response(
        {
            "tenant_id": key.tenant_id,
            "base_tenant": base_tenant,
            "fields": [field.to_dict() for field in fields],
        }
    )


async def export(request: web.Request) -> web.StreamResponse:
    """The export document, streamed; it keeps secrets (a backup), so it needs the write role."""
    tenant_id = request.match_info["tenant"]
    authorize(request, role=Role.WRITE, tenant_id=tenant_id)
    validate_identifier("tenant_id", tenant_id)
    include_history = query_bool(request, "history")
    chunks = request.app[STORE].export_chunks(tenant_id, include_history=include_history)
    first = await anext(chunks)  # the store answered: from here on the status is 200
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{tenant_id}-export.json"',
        }
    )
    security_headers(response)
    await response.prepare(request)
    request[STREAMING] = True
    timeout = request.app[SETTINGS].client_timeout
    await write_within(request, response, first.encode(), timeout)
    async for chunk in chunks:
        await write_within(request, response, chunk.encode(), timeout)
    await response.write_eof()
    return response


@idempotent_write(Role.ADMIN, _import_body_limit)
async def import_(request: web.Request) -> web.Response:
    tenant_id = request.match_info["tenant"]
    authorize(request, role=Role.ADMIN, tenant_id=tenant_id)
    validate_identifier("tenant_id", tenant_id)
    mode = query_param(request, "mode") or "restore"
    if mode not in ("restore", "append"):
        raise ApiError(400, "invalid_config", "?mode= must be restore or append", field="mode")
    body = await read_body(
        request, _import_body_limit(request), request.app[SETTINGS].client_timeout
    )
    require_json(request)
    # Parsed on a worker thread: parse_json's duplicate-key hook is Python code, run for every
    # object, so the thread gives up the GIL often and the loop keeps answering (a 37 MB
    # document held it for up to 2.4 s on the loop). The document's checks still run here.
    document = await asyncio.to_thread(parse_json, body)
    written = await request.app[STORE].import_configs(
        tenant_id, document, mode="append" if mode == "append" else "restore"
    )
    if written:
        request.app[HUB].poke()
    return json_response({"tenant_id": tenant_id, "mode": mode, "versions_written": written})


async def schemas(request: web.Request) -> web.Response:
    """The typed configs this server knows: where each lives and which fields are secrets."""
    authorize(request, role=Role.READ)
    specs = sorted(typed_config_specs().values(), key=lambda spec: spec.name)
    return json_response(
        {
            "schemas": [
                {
                    "name": spec.name,
                    "scope": spec.scope.value,
                    "service": spec.default_service,
                    "config_key": spec.config_key,
                    "secret_fields": sorted(secret_paths_for(spec.model)),
                    "json_schema": spec.model.model_json_schema(),
                }
                for spec in specs
            ]
        }
    )


async def stats(request: web.Request) -> web.Response:
    """Counts over every tenant, so only tokens for every tenant ('*') may see them."""
    authorize(request, role=Role.READ, all_tenants=True)
    return json_response(await request.app[STORE].get_stats())


async def prune(request: web.Request) -> web.Response:
    """Retention: admin only, for one tenant (?tenant=) or, with a token for every tenant, all."""
    tenant_id = query_param(request, "tenant")
    authorize(request, role=Role.ADMIN, tenant_id=tenant_id, all_tenants=tenant_id is None)
    if tenant_id is not None:
        validate_identifier("tenant_id", tenant_id)
    body = await _body(request, PruneRequest)
    policy = RetentionPolicy.from_dict(body.model_dump(exclude={"dry_run"}, exclude_none=True))
    result = await request.app[STORE].prune(
        tenant_id=tenant_id, dry_run=body.dry_run, policy=policy
    )
    if result.keys_purged and not result.dry_run:
        request.app[HUB].poke()
    return json_response(result.to_dict())
