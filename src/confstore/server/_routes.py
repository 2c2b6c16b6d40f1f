"""The route table: every endpoint once, used both to build the app and ``/openapi.json``."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from . import _handlers, _watch
from ._http import Handler
from ._schemas import (
    ChangePage,
    ConfigDiffBody,
    ConfigEntryBody,
    ConfigHistory,
    ConfigList,
    DeleteConfigRequest,
    DeleteResult,
    ExplainBody,
    ExportDocument,
    FeedCursor,
    Health,
    ImportResult,
    PruneReport,
    PruneRequest,
    PutConfigRequest,
    RollbackRequest,
    Stats,
    TenantList,
    TokenInfo,
    TypedConfigList,
)

CONFIG = "/v1/tenants/{tenant}/configs/{scope}/{service}/{config_key}"


@dataclass(frozen=True)
class Parameter:
    name: str
    where: str  # "path", "query" or "header"
    description: str
    kind: str = "string"
    required: bool = False
    repeated: bool = False


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    role: str | None  # None: no token needed; "any": any valid token
    response: type[BaseModel] | None
    request: type[BaseModel] | None = None
    request_optional: bool = False
    parameters: tuple[Parameter, ...] = ()
    status: int = 200
    content_type: str = "application/json"


TENANT = Parameter("tenant", "path", "tenant id", required=True)
KEY_PARAMETERS = (
    TENANT,
    Parameter("scope", "path", "system, agent, routing or telemetry", required=True),
    Parameter("service", "path", "service name", required=True),
    Parameter("config_key", "path", "config key", required=True),
)
IDEMPOTENCY_KEY = Parameter(
    "Idempotency-Key",
    "header",
    "a new random key per write (1 to 255 visible ASCII characters), sent again unchanged "
    "with each retry: a repeat of a write the server already answered gets that answer again "
    "(with Idempotent-Replayed: true) and writes nothing; the same key with another request "
    "is refused (422 idempotency_key_reused). Keys are remembered per token for an hour",
)
MASK_SECRETS = Parameter(
    "mask_secrets", "query", "true: secrets as *** even for roles that may read them", "boolean"
)
FEED_TENANT = Parameter(
    "tenant",
    "query",
    "only these tenants (repeatable; default: every tenant of the token)",
    repeated=True,
)

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/v1/health",
        _handlers.health,
        "Whether the backend answers (503 if not).",
        None,
        Health,
    ),
    Route(
        "GET",
        "/v1/token",
        _handlers.token_info,
        "The calling token: name, role, tenants.",
        "any",
        TokenInfo,
    ),
    Route(
        "GET",
        "/v1/tenants",
        _handlers.list_tenants,
        "Tenants with live configs (only those the token covers).",
        "read",
        TenantList,
        parameters=(
            Parameter(
                "include_deleted", "query", "also tenants whose configs are all deleted", "boolean"
            ),
        ),
    ),
    Route(
        "GET",
        "/v1/tenants/{tenant}/configs",
        _handlers.list_configs,
        "A tenant's live configs, ordered by scope, service, config_key.",
        "read",
        ConfigList,
        parameters=(
            TENANT,
            Parameter("scope", "query", "only this scope"),
            Parameter("service", "query", "only this service"),
            MASK_SECRETS,
        ),
    ),
    Route(
        "GET",
        CONFIG,
        _handlers.get_config,
        "A config: the latest live version, or ?version=N. ETag is the version; If-None-Match "
        "answers 304.",
        "read",
        ConfigEntryBody,
        parameters=(
            *KEY_PARAMETERS,
            Parameter("version", "query", "a specific version (deletions included)", "integer"),
            Parameter("If-None-Match", "header", '"<version>" or *: 304 when it matches'),
            MASK_SECRETS,
        ),
    ),
    Route(
        "PUT",
        CONFIG,
        _handlers.put_config,
        "Write a new version (201 for the first). If-Match makes it compare-and-set; 412 on a "
        "version conflict.",
        "write",
        ConfigEntryBody,
        request=PutConfigRequest,
        parameters=(
            *KEY_PARAMETERS,
            Parameter("If-Match", "header", '"<version>": write only if that is the latest'),
            Parameter("If-None-Match", "header", "*: write only if the key is new"),
            IDEMPOTENCY_KEY,
            MASK_SECRETS,
        ),
    ),
    Route(
        "DELETE",
        CONFIG,
        _handlers.delete_config,
        "Delete a config (a tombstone version), or ?purge=true every version; 404 if not live.",
        "write",
        DeleteResult,
        request=DeleteConfigRequest,
        request_optional=True,
        parameters=(
            *KEY_PARAMETERS,
            Parameter("purge", "query", "remove every version", "boolean"),
            IDEMPOTENCY_KEY,
        ),
    ),
    Route(
        "GET",
        CONFIG + "/history",
        _handlers.history,
        "Versions of a config, newest first, deletions included.",
        "read",
        ConfigHistory,
        parameters=(
            *KEY_PARAMETERS,
            Parameter("limit", "query", "at most this many (default 10)", "integer"),
            MASK_SECRETS,
        ),
    ),
    Route(
        "GET",
        CONFIG + "/diff",
        _handlers.diff,
        "Field-level changes between two versions (default: the last two).",
        "read",
        ConfigDiffBody,
        parameters=(
            *KEY_PARAMETERS,
            Parameter("from", "query", "default: to - 1", "integer"),
            Parameter("to", "query", "default: the newest version", "integer"),
            MASK_SECRETS,
        ),
    ),
    Route(
        "POST",
        CONFIG + "/rollback",
        _handlers.rollback,
        "Write an old version's value as the newest version.",
        "write",
        ConfigEntryBody,
        request=RollbackRequest,
        parameters=(
            *KEY_PARAMETERS,
            Parameter("If-Match", "header", "as for PUT"),
            IDEMPOTENCY_KEY,
            MASK_SECRETS,
        ),
    ),
    Route(
        "GET",
        CONFIG + "/explain",
        _handlers.explain,
        "A typed config's effective value for the tenant, field by field, with the layer each "
        "value came from (schema, base or tenant); secrets inherited from a tenant the token "
        "does not cover are masked.",
        "read",
        ExplainBody,
        parameters=(*KEY_PARAMETERS, MASK_SECRETS),
    ),
    Route(
        "GET",
        "/v1/tenants/{tenant}/export",
        _handlers.export,
        "The tenant's export document, streamed (secrets in clear: a backup).",
        "write",
        ExportDocument,
        parameters=(
            TENANT,
            Parameter("history", "query", "every version, not only the latest", "boolean"),
        ),
    ),
    Route(
        "POST",
        "/v1/tenants/{tenant}/import",
        _handlers.import_,
        "Import an export document into the tenant (validated whole; nothing written if bad).",
        "admin",
        ImportResult,
        request=ExportDocument,
        parameters=(
            TENANT,
            Parameter("mode", "query", "restore (default) or append"),
            IDEMPOTENCY_KEY,
        ),
    ),
    Route(
        "POST",
        "/v1/prune",
        _handlers.prune,
        "Retention: remove old versions by count and age (never a key's latest) and report "
        "them; without ?tenant= the token must cover every tenant.",
        "admin",
        PruneReport,
        request=PruneRequest,
        parameters=(Parameter("tenant", "query", "only this tenant"),),
    ),
    Route(
        "GET",
        "/v1/schemas",
        _handlers.schemas,
        "The typed configs: where each lives, its secret fields and its JSON Schema.",
        "read",
        TypedConfigList,
    ),
    Route(
        "GET",
        "/v1/stats",
        _handlers.stats,
        "Counts of tenants, configs and versions (tokens for every tenant only).",
        "read",
        Stats,
    ),
    Route(
        "GET",
        "/v1/changes",
        _watch.changes,
        "A page of the change feed after ?cursor= (none: from the beginning).",
        "read",
        ChangePage,
        parameters=(
            Parameter("cursor", "query", "the cursor of the previous page"),
            Parameter("limit", "query", "changes per page (default 1000)", "integer"),
            FEED_TENANT,
        ),
    ),
    Route(
        "GET",
        "/v1/changes/cursor",
        _watch.current_cursor,
        "A cursor at the present end of the change feed.",
        "read",
        FeedCursor,
    ),
    Route(
        "GET",
        "/v1/watch",
        _watch.watch,
        "Server-Sent Events: a 'ready' event, then one 'change' event (a ChangeRecord) per "
        "committed write; resume with Last-Event-ID.",
        "read",
        None,
        parameters=(
            FEED_TENANT,
            Parameter("Last-Event-ID", "header", "resume after this event id"),
        ),
        content_type="text/event-stream",
    ),
)
