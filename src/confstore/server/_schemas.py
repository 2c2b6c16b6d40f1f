"""The API's request and response bodies as pydantic models: requests are parsed with them, and
``/openapi.json`` is generated from them (responses are built as plain dicts for speed; a test
checks every response against its model)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .._models import ChangeKind, ConfigScope
from ._tokens import Role


class _Request(BaseModel):
    # Strict: a version sent as "1", 1.0 or true, or a flag sent as 1 or "yes", is refused
    # (naming the field) rather than guessed at; JSON integers stay acceptable for seconds.
    model_config = ConfigDict(extra="forbid", strict=True)


class PutConfigRequest(_Request):
    """The body of ``PUT .../configs/{scope}/{service}/{config_key}``."""

    value: dict[str, Any] = Field(description="the config value: a JSON object")
    comment: str | None = Field(default=None, description="why (kept in the history)")
    expected_version: int | None = Field(
        default=None,
        ge=0,
        description="write only if the latest version is this one (0: the key must be new); "
        "the If-Match header does the same",
    )
    updated_by: str | None = Field(
        default=None,
        description="who made the change (default: the token's name). Admin tokens may name "
        "anyone, or nobody with null; other tokens are always recorded by their own name and "
        "may only send it or null",
    )


class DeleteConfigRequest(_Request):
    """The optional body of ``DELETE .../configs/{scope}/{service}/{config_key}``."""

    comment: str | None = None
    updated_by: str | None = Field(default=None, description="as for PUT")
    purge: bool = Field(default=False, description="remove every version instead of a tombstone")


class RollbackRequest(_Request):
    """The body of ``POST .../rollback``: write version ``version``'s value as a new version."""

    version: int = Field(ge=1, description="the version to bring back")
    comment: str | None = Field(default=None, description="default: 'rollback to version N'")
    expected_version: int | None = Field(default=None, ge=0)
    updated_by: str | None = Field(default=None, description="as for PUT")


Age = float | str | None


class RetentionRuleBody(_Request):
    """What to keep of each key's history; every limit optional (see the README: Retention)."""

    keep_last: int | None = Field(
        default=None, ge=1, description="keep each key's N newest versions"
    )
    older_than: Age = Field(
        default=None,
        description="remove only versions older than this: seconds, or text like 90d, 12h, 30m",
    )
    deleted_older_than: Age = Field(
        default=None,
        description="remove every version of a deleted key whose tombstone is older than this",
    )


class PruneRequest(RetentionRuleBody):
    """A retention policy: the rule for every key, overrides for some, and dry_run."""

    tenants: dict[str, RetentionRuleBody] = Field(
        default_factory=dict, description="a tenant's rule, instead of the one above"
    )
    scopes: dict[str, RetentionRuleBody] = Field(
        default_factory=dict, description="a scope's rule (a tenant's rule comes first)"
    )
    tenant_scopes: dict[str, RetentionRuleBody] = Field(
        default_factory=dict, description='"TENANT/SCOPE": the most specific rule'
    )
    dry_run: bool = Field(default=False, description="report what would go; remove nothing")


class PrunedKey(BaseModel):
    tenant_id: str
    scope: ConfigScope
    service: str
    config_key: str
    versions: int = Field(ge=1, description="versions removed (or that would be)")
    through_version: int = Field(ge=1, description="the newest of them")
    purged: bool = Field(description="the whole key went (an old deletion)")


class PruneReport(BaseModel):
    dry_run: bool
    versions_removed: int
    keys_purged: int
    changes_removed: int = Field(description="old change-feed records removed")
    keys: list[PrunedKey]


class ConfigEntryBody(BaseModel):
    """One stored version of a config (the export format's entry). Secrets are ``***`` for
    tokens whose role does not read them."""

    tenant_id: str
    scope: ConfigScope
    service: str
    config_key: str
    config_value: dict[str, Any]
    version: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime
    updated_by: str | None
    comment: str | None
    deleted: bool


class ConfigList(BaseModel):
    configs: list[ConfigEntryBody]


class ConfigHistory(BaseModel):
    history: list[ConfigEntryBody] = Field(description="newest first, deletions included")


class FieldChange(BaseModel):
    path: str = Field(description="dotted, list indexes as [i]")
    old: Any = None
    new: Any = None
    kind: Literal["added", "removed", "changed"]


class ConfigDiffBody(BaseModel):
    from_version: int
    to_version: int
    changes: list[FieldChange]


class ExplainedFieldBody(BaseModel):
    """One field of an effective typed config and the layer its value came from."""

    path: str = Field(description="dotted for fields of nested models")
    value: Any = Field(
        default=None, description="the effective value (secrets as *** unless shown)"
    )
    source: Literal["schema", "base", "tenant", "env"]
    tenant_id: str | None = Field(description="the tenant of the stored layer (base or tenant)")
    version: int | None = Field(description="the version of that stored layer")
    variable: str | None = Field(description="always null here: the server reads no environment")


class ExplainBody(BaseModel):
    tenant_id: str
    base_tenant: str | None = Field(description="the tenant it inherits from (null: none)")
    fields: list[ExplainedFieldBody] = Field(description="one per field, in schema order")


class TypedConfigBody(BaseModel):
    """A typed config: values stored at (any tenant, ``scope``, a service, ``config_key``) are
    validated by its schema."""

    name: str
    scope: ConfigScope
    service: str | None = Field(description="its default service (null: any, e.g. the agent)")
    config_key: str
    secret_fields: list[str] = Field(description="dotted paths of its secret fields")
    json_schema: dict[str, Any] = Field(description="the JSON Schema of its value")


class TypedConfigList(BaseModel):
    schemas: list[TypedConfigBody]


class DeleteResult(BaseModel):
    deleted: bool
    purged: bool


class TenantList(BaseModel):
    tenants: list[str] = Field(description="only the tenants the token may see")


class ExportDocument(BaseModel):
    """See schemas/export.schema.json; secrets are kept (an export is a backup)."""

    model_config = ConfigDict(extra="allow")

    format: Literal["confstore-export"]
    format_version: Literal[1]
    tenant_id: str
    include_history: bool
    exported_at: datetime
    configs: list[ConfigEntryBody]


class ImportResult(BaseModel):
    tenant_id: str
    mode: Literal["restore", "append"]
    versions_written: int


class Stats(BaseModel):
    model_config = ConfigDict(extra="allow")

    backend: str
    total_configs: int
    total_versions: int
    total_tenants: int
    configs_per_scope: dict[str, int]


class Health(BaseModel):
    healthy: bool = Field(description="the backend answers")


class TokenInfo(BaseModel):
    """The token the request was made with (never its secret)."""

    name: str
    role: Role
    tenants: list[str] = Field(description='tenant ids, or ["*"] for every tenant')


class ChangeRecord(BaseModel):
    """One committed write, as the change feed and ``/v1/watch`` report it."""

    tenant_id: str
    scope: ConfigScope
    service: str
    config_key: str
    kind: ChangeKind
    version: int = Field(ge=0, description="the version written; for a purge the last one, or 0")


class ChangePage(BaseModel):
    changes: list[ChangeRecord]
    cursor: str = Field(description="pass it back as ?cursor= to continue")
    has_more: bool = Field(description="another page is ready now")


class FeedCursor(BaseModel):
    cursor: str


class Problem(BaseModel):
    """Every error: a stable ``type``, the HTTP status, a message for people, and details."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="bad_request, unauthorized, forbidden, not_found, method_not_allowed, "
        "invalid_identifier, "
        "invalid_config, invalid_cursor, malformed_json, unsupported_media_type, "
        "payload_too_large, request_timeout, version_conflict, import_format, import_conflict, "
        "cursor_expired, too_many_requests, backend_unavailable, backend_timeout, backend_error, "
        "invalid_idempotency_key, idempotency_key_reused, idempotency_key_in_use"
    )
    status: int
    message: str
    field: str | None = None
    expected: int | None = Field(default=None, description="version_conflict: the version asked")
    actual: int | None = Field(default=None, description="version_conflict: the latest version")
