"""``/openapi.json``: the OpenAPI 3.1 description of the API, built from the route table and the
pydantic models of ``_schemas`` (so it cannot drift from what the handlers parse)."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from ._routes import ROUTES, Route
from ._schemas import ChangeRecord, Problem

_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "invalid input: identifier, query parameter or JSON",
    "401": "no valid token",
    "403": "the token's role or tenants do not allow this",
    "404": "no such config, version or resource",
    "413": "the body is over the limit",
    "415": "the body is not application/json",
    "422": "the body or value is not acceptable",
    "429": "too many failed authentications from this address (see Retry-After)",
    "503": "the backend does not answer",
}
# Writes that take an Idempotency-Key answer these too (a repeat's answer is the first one's).
_IDEMPOTENT_ERRORS = {
    "400": "invalid input: identifier, query parameter, JSON or Idempotency-Key "
    "(invalid_idempotency_key)",
    "409": "idempotency_key_in_use: a request with this Idempotency-Key is still running; "
    "retry after Retry-After seconds (an import may also answer import_conflict)",
    "422": "the body or value is not acceptable, or idempotency_key_reused: this "
    "Idempotency-Key was sent before with another request (nothing is written)",
}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "true on the stored answer to a repeated Idempotency-Key",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


@functools.cache
def openapi_document() -> dict[str, Any]:
    models = _models()
    _, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template=_REF
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "confstore",
            "version": __version__,
            "description": "Versioned, multi-tenant configuration over HTTP. Send "
            "Authorization: Bearer <token> (tokens: `confstore token create`).",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _models() -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"Problem": Problem, "ChangeRecord": ChangeRecord}
    for route in ROUTES:
        for model in (route.request, route.response):
            if model is not None:
                found[model.__name__] = model
    return list(found.values())


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": f"{route.method.lower()}_{route.handler.__name__.strip('_')}",
        "parameters": [_parameter(parameter) for parameter in route.parameters],
        "responses": _responses(route),
    }
    if route.role is not None:
        operation["security"] = [{"bearer": []}]
        operation["x-confstore-role"] = route.role
    if route.request is not None:
        operation["requestBody"] = {
            "required": not route.request_optional,
            "content": {"application/json": {"schema": _ref(route.request)}},
        }
    return operation


def _responses(route: Route) -> dict[str, Any]:
    if route.response is not None:
        schema: dict[str, Any] = _ref(route.response)
    else:
        schema = {
            "type": "string",
            "description": f"events; each data is a {_REF.format(model='ChangeRecord')}",
        }
    success: dict[str, Any] = {
        "description": "success",
        "content": {route.content_type: {"schema": schema}},
    }
    errors = _ERRORS
    if any(parameter.name == "Idempotency-Key" for parameter in route.parameters):
        success["headers"] = _REPLAYED
        errors = {**_ERRORS, **_IDEMPOTENT_ERRORS}
    responses: dict[str, Any] = {str(route.status): success}
    problem = {"application/json": {"schema": _ref(Problem)}}
    for status, description in sorted(errors.items()):
        if route.role is None and status in ("401", "403", "429"):
            continue
        responses[status] = {"description": description, "content": problem}
    return responses


def _parameter(parameter: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": parameter.kind}
    if parameter.repeated:
        schema = {"type": "array", "items": schema}
    return {
        "name": parameter.name,
        "in": parameter.where,
        "required": parameter.required,
        "description": parameter.description,
        "schema": schema,
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}
