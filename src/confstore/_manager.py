"""ConfigManager: typed configs over a ConfigStore, served from a cache kept current by its feed.

Cache rules, in short:

- A read is served from memory once the key has been read (or written) by this manager; the first
  read of a key goes to the store. A miss never turns into defaults unless the store answered
  "absent": a backend that is down raises BackendUnavailableError.
- The manager's own writes update the cache at once. A background task (one per manager, started
  on first use, cancelled by ``close()``) follows ``store.changes_since()`` every ``poll_interval``
  seconds and re-reads the cached keys other writers changed; ``watch()`` yields those changes.
- While the backend is down, values already cached keep being served (the last ones seen), and the
  poller retries; keys never read raise BackendUnavailableError.
- A cached read returns the cached model itself, sealed (see ``_sealing``): the caller may change
  it (``cfg.llm_model = ...``) and the change only detaches it from the cache. Models that cannot
  be sealed (plugin schemas not derived from ``confstore.schemas.ConfigModel``) are copied per read.
- A manager serves one event loop at a time. When its loop ends (``asyncio.run`` returns), the
  cache is dropped with the poller, and the next use starts both again in the new loop.

Layered configs (``inherit=True``, the default; the merge rules are in ``_layers``): a tenant's
slot holds its stored overrides and a link to the base tenant's slot of the same key, and its
model is the merge of schema defaults, base, overrides and environment. A change to the base
slot drops the models of the slots linked to it, so each is merged again on its next read: once
per change, never per read. A non-base slot is only cached together with its base slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import logging
import os
import random
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Final, Self, TypedDict, TypeVar, Unpack

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import BaseModel

from ._diff import ConfigDiff, diff_values, secret_paths_for
from ._errors import (
    CursorExpiredError,
    InheritanceError,
    InvalidConfigError,
    VersionConflictError,
)
from ._layering import DEFAULT_BASE_TENANT, Layering, inheritance_message
from ._layers import ExplainedField, merge_patch, same_json
from ._models import ChangeKind, ConfigChange, ConfigEntry, ConfigKey, ConfigScope
from ._registry import open_store
from ._sealing import Seal, seal
from ._secrets import refuse_masked_secrets
from ._store import ConfigStore
from ._typed import (
    TypedConfigSpec,
    dump_for_storage,
    load_from_storage,
    spec_at,
    spec_for,
)
from ._url import StoreURL, default_store_url
from ._validation import validate_scope
from .schemas import AgentConfig, RoutingConfig, SystemConfig, TelemetryConfig

ModelT = TypeVar("ModelT", bound=BaseModel)

logger = logging.getLogger("confstore.manager")

DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_UPDATE_ATTEMPTS = 64
_MAX_BACKOFF_SECONDS = 0.05
# Concurrent reads when a base write checks the tenants that inherit from it.
_CHECK_CONCURRENCY = 16

# A slot whose model must be (re)built from the stored value before it is handed out.
_UNBUILT: Final = object()
# What ``_peek`` returns for a key the cache does not hold.
NOT_CACHED: Final = object()

_TableKey = tuple[ConfigScope, str, str]


class WriteOptions(TypedDict, total=False):
    """Keyword options of every write: compare-and-set and audit fields (see ``set``)."""

    expected_version: int | None
    updated_by: str | None
    comment: str | None


class _Slot:
    """What the cache knows of one key: the stored entry (None: absent) and its built model.

    ``base`` is the slot of the base tenant's value this one inherits (None: it inherits
    nothing); ``dependents`` are the slots inheriting this one's value.
    """

    __slots__ = ("base", "dependents", "entry", "model", "seal", "spec", "stamp", "value")

    def __init__(self, spec: TypedConfigSpec, base: _Slot | None = None) -> None:
        self.spec = spec
        self.base = base
        self.dependents: list[_Slot] = []
        if base is not None:
            base.dependents.append(self)
        self.entry: ConfigEntry | None = None
        # What a read returns: the sealed model, None (absent, no defaults), or _UNBUILT.
        self.value: Any = _UNBUILT
        # A built model that could not be sealed; reads hand out copies of it.
        self.model: BaseModel | None = None
        self.seal: Seal | None = None
        # Bumped by every write through this manager, so the poller can tell it raced one.
        self.stamp = 0

    @property
    def version(self) -> int:
        return 0 if self.entry is None else self.entry.version

    def hold(self, entry: ConfigEntry | None) -> None:
        """Forget the built model and keep ``entry`` (None: the key is absent); the slots that
        inherit from this one are built again on their next read."""
        self.drop_model()
        self.entry = entry
        for dependent in self.dependents:
            dependent.drop_model()

    def drop_model(self) -> None:
        if self.seal is not None:
            self.seal.release()
            self.seal = None
        self.value = _UNBUILT
        self.model = None


@dataclass(frozen=True, slots=True, repr=False)
class ConfigChangeEvent:
    """A committed write, as ``ConfigManager.watch()`` reports it.

    ``entry`` is the version written (a tombstone for DELETE, whose ``deleted`` is True), or None
    for PURGE. Secrets in ``entry.config_value`` are in clear, as stored: do not log them.

    ``inherited_from`` is set when a write to the base tenant changed the effective config of the
    watched tenant (``watch(tenant_id=T)``): ``key`` is then T's config, and ``version`` and
    ``entry`` are the base tenant's write.
    """

    key: ConfigKey
    kind: ChangeKind
    version: int
    entry: ConfigEntry | None
    inherited_from: str | None = None

    @property
    def tenant_id(self) -> str:
        return self.key.tenant_id

    @property
    def scope(self) -> ConfigScope:
        return self.key.scope

    def __repr__(self) -> str:
        # The value is left out: it may hold secrets, and events end up in logs.
        inherited = (
            "" if self.inherited_from is None else f", inherited_from={self.inherited_from!r}"
        )
        return (
            f"ConfigChangeEvent(key='{self.key}', kind={self.kind.value!r}, "
            f"version={self.version}, deleted={self.entry is not None and self.entry.deleted}"
            f"{inherited})"
        )


@dataclass(frozen=True, slots=True)
class ConfigResyncEvent:
    """Changes were not reported to this watch: re-read whatever you follow.

    ``watch()`` yields it in place of the changes it could not deliver, then goes on with later
    ones. ``reason`` is ``"overflow"`` (the consumer fell behind by more than the watch's
    ``max_buffer`` events; ``dropped`` of them were left out) or ``"cursor_expired"`` (the store
    no longer kept the changes since the manager last looked, so which ones happened is unknown;
    ``dropped`` counts only those known). Reads through the manager return current values by
    the time it is yielded: the manager's cache was updated (or emptied) first.
    """

    reason: str
    dropped: int
    tenant_id: str | None
    scope: ConfigScope | None


WatchEvent = ConfigChangeEvent | ConfigResyncEvent

DEFAULT_WATCH_BUFFER = 1000


class ConfigWatch:
    """``async for event in manager.watch(...)``: changes by any writer, as the feed reports them.

    Every change the manager's feed reports after ``watch()`` was called is yielded, in feed order
    (so at least every write committed after that, once the manager follows the feed: the first
    iteration starts it; a write committed just before may be reported too). It ends when the
    manager closes or ``aclose()`` is called, and works as ``async with manager.watch() as w:``.
    The manager holds it weakly: one its consumer dropped (a cancelled task) is simply freed.

    At most ``max_buffer`` events wait in memory (an anyio memory object stream): a consumer that
    falls further behind gets one ``ConfigResyncEvent`` in place of the events it missed, once it
    has read those buffered before them. Memory stays bounded however slow the consumer is.
    """

    def __init__(
        self,
        manager: ConfigManager,
        tenant_id: str | None,
        scope: ConfigScope | None,
        max_buffer: int = DEFAULT_WATCH_BUFFER,
    ) -> None:
        self._manager = manager
        self.tenant_id = tenant_id
        self.scope = scope
        self.max_buffer = max_buffer
        self._send, self._receive = anyio.create_memory_object_stream[WatchEvent](max_buffer)
        # A resync owed to the consumer once it has read what is buffered: its reason and the
        # number of events left out since (None: none owed).
        self._owed: str | None = None
        self._dropped = 0
        self._closed = False
        # A watch dropped without aclose() closes its streams quietly: the manager ended it.
        weakref.finalize(self, _close_streams, self._send, self._receive)

    def matches(self, key: ConfigKey) -> bool:
        return (self.tenant_id is None or key.tenant_id == self.tenant_id) and (
            self.scope is None or key.scope == self.scope
        )

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WatchEvent:
        if not self._closed:
            await self._manager.initialize()
        try:
            try:
                return self._receive.receive_nowait()
            except anyio.WouldBlock:
                if self._owed is not None:
                    return self._take_resync()
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._receive.close()
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self._manager._forget_watch(self)
        self.end()

    def end(self) -> None:
        """No more events: the consumer reads what is buffered, then the iteration stops."""
        self._closed = True
        self._send.close()

    def deliver(self, event: ConfigChangeEvent) -> None:
        if self._owed is not None:
            self._dropped += 1
            return
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            self.resync("overflow", dropped=1)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    def resync(self, reason: str, *, dropped: int = 0) -> None:
        """Tell the consumer to re-read: at once if the buffer has room, else once it drained."""
        if self._owed is None:
            try:
                self._send.send_nowait(
                    ConfigResyncEvent(reason, dropped, self.tenant_id, self.scope)
                )
                return
            except anyio.WouldBlock:
                self._owed = reason
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
        self._dropped += dropped

    def _take_resync(self) -> ConfigResyncEvent:
        assert self._owed is not None
        event = ConfigResyncEvent(self._owed, self._dropped, self.tenant_id, self.scope)
        self._owed, self._dropped = None, 0
        return event

    async def __aenter__(self) -> Self:
        await self._manager.initialize()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def _close_streams(
    send: MemoryObjectSendStream[WatchEvent], receive: MemoryObjectReceiveStream[WatchEvent]
) -> None:
    send.close()
    receive.close()


class ConfigManager:
    """Typed, cached access to a ConfigStore; see the module docstring for the cache rules.

    ``ConfigManager(store)`` uses ``store`` (and leaves closing it to the caller);
    ``ConfigManager(url=...)`` or ``ConfigManager()`` opens the store of that URL (default:
    ``$CONFSTORE_URL``, else the SQLite default) and closes it on ``close()``. The manager
    initialises the store on first use; ``async with ConfigManager(...) as m:`` does it upfront.
    A manager belongs to one event loop at a time.

    Typed configs are layered (``inherit=True``): a tenant's effective config is the schema's
    defaults, overlaid by the config stored for ``base_tenant``, by the tenant's own stored
    overrides, and by environment overrides (``CONFSTORE_<SCOPE>__<FIELD>``, read from
    ``environ``, default ``os.environ``, once, here: a bad one raises InvalidConfigError naming
    it). ``inherit=False`` reads and stores each tenant's config complete, on its own.
    """

    def __init__(
        self,
        store: ConfigStore | None = None,
        *,
        url: str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        cache: bool = True,
        inherit: bool = True,
        base_tenant: str = DEFAULT_BASE_TENANT,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if store is not None and url is not None:
            raise InvalidConfigError("pass a store or a url, not both", field="store")
        self._layering = Layering(
            inherit=inherit,
            base_tenant=base_tenant,
            environ=os.environ if environ is None else environ,
        )
        if not isinstance(poll_interval, int | float) or not poll_interval > 0:
            raise InvalidConfigError(
                f"poll_interval must be a positive number of seconds, got {poll_interval!r}",
                field="poll_interval",
            )
        self._owns_store = store is None
        self._store = store if store is not None else open_store(url)
        self.poll_interval = float(poll_interval)
        self.cache_enabled = bool(cache)
        self._tables: dict[_TableKey, dict[str, _Slot]] = {}
        self._system_spec = spec_for(SystemConfig)
        self._system_slots = self._table(self._system_spec, "system")
        # (model, service as the caller gave it) -> its table, so a cached get skips the registry.
        self._tables_by_model: dict[tuple[type[BaseModel], str | None], dict[str, _Slot]] = {}
        # Weak: a watch its consumer dropped (a cancelled task, a `break` out of `async for`)
        # is freed instead of being fed, and copied into, for the manager's lifetime.
        self._watches: weakref.WeakSet[ConfigWatch] = weakref.WeakSet()
        self._cursor: str | None = None
        self._started = False
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start_lock: asyncio.Lock | None = None
        self._poll_lock: asyncio.Lock | None = None
        self._poller: asyncio.Task[None] | None = None
        self._follower_scope: anyio.CancelScope | None = None
        # Bumped as the poller starts and ends applying changes; a miss that raced it does not fill.
        self._epoch = 0

    @property
    def inherit(self) -> bool:
        """Whether tenants inherit the base tenant's typed configs (see the class docstring)."""
        return self._layering.inherit

    @property
    def base_tenant(self) -> str:
        """The tenant every other tenant inherits typed configs from, when ``inherit``."""
        return self._layering.base_tenant

    @property
    def store(self) -> ConfigStore:
        """The underlying store, for history, specific versions, export/import, health, stats."""
        return self._store

    async def __aenter__(self) -> Self:
        await self.initialize()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def initialize(self) -> None:
        """Initialise the store and start following its change feed; idempotent, optional."""
        loop = asyncio.get_running_loop()
        if self._started and self._loop is loop:
            return
        if self._start_lock is None or self._loop is not loop:
            self._start_lock = asyncio.Lock()
            self._poll_lock = asyncio.Lock()
            self._loop = loop
            self._started = False
        async with self._start_lock:
            if self._started:
                return
            await self._store.initialize()
            if self._cursor is None:
                self._cursor = await self._store.current_cursor()
            # The follower outlives this call (a manager may never be closed, so no task group
            # can hold it): a task of its own, cancelled through its cancel scope by close().
            self._follower_scope = anyio.CancelScope()
            self._poller = loop.create_task(
                self._follow_feed(self._follower_scope), name="confstore-manager-feed"
            )
            self._started = True

    async def close(self) -> None:
        """Stop following the feed, end every watch, empty the cache, close an owned store."""
        self._closing = True
        try:
            await self._stop_poller()
            self._forget_cache()
            self._cursor = None
            for watch in list(self._watches):
                watch.end()
            self._watches.clear()
            if self._owns_store:
                await self._store.close()
        finally:
            self._started = False
            self._closing = False

    async def refresh(self) -> None:
        """Apply every change the feed reports now, without waiting for the next poll."""
        await self.initialize()
        await self._poll_once()

    async def get_system_config(self, tenant_id: str = "default") -> SystemConfig:
        """The tenant's system config, or the defaults (with ``tenant_id``) when none is stored."""
        slot = self._system_slots.get(tenant_id)
        if slot is not None:
            value: SystemConfig = slot.value
            if value is not _UNBUILT:
                return value
        config = await self._read(self._system_spec, tenant_id, "system")
        assert isinstance(config, SystemConfig)
        return config

    async def set_system_config(
        self,
        config: SystemConfig,
        tenant_id: str | None = None,
        **options: Unpack[WriteOptions],
    ) -> ConfigEntry:
        """Store ``config`` for ``tenant_id`` (default: ``config.tenant_id``) as a new version."""
        return await self.set(_expect(config, SystemConfig), tenant_id, **options)

    async def get_agent_config(self, tenant_id: str, agent_name: str) -> AgentConfig | None:
        """The agent's config, or None when none is stored."""
        return await self.get(AgentConfig, tenant_id, agent_name)

    async def set_agent_config(
        self,
        tenant_id: str,
        agent_name: str,
        agent_config: AgentConfig,
        **options: Unpack[WriteOptions],
    ) -> ConfigEntry:
        """Store ``agent_config`` as a new version; its ``agent_name`` must be ``agent_name``."""
        if _expect(agent_config, AgentConfig).agent_name != agent_name:
            raise InvalidConfigError(
                f"agent_config.agent_name is {agent_config.agent_name!r}, not {agent_name!r}",
                field="agent_name",
            )
        return await self.set(agent_config, tenant_id, agent_name, **options)

    async def get_agent_config_history(
        self, tenant_id: str, agent_name: str, limit: int = 10
    ) -> list[ConfigEntry]:
        """Up to ``limit`` stored versions of the agent's config, newest first."""
        spec = spec_for(AgentConfig)
        await self.initialize()
        return await self._store.get_config_history(
            tenant_id, spec.scope, agent_name, spec.config_key, limit
        )

    async def get_routing_config(
        self, tenant_id: str = "default", service: str = "routing_agent"
    ) -> RoutingConfig:
        """The routing config of ``service``, or the defaults when none is stored."""
        return await self._get_with_defaults(RoutingConfig, tenant_id, service)

    async def set_routing_config(
        self,
        config: RoutingConfig,
        tenant_id: str | None = None,
        service: str = "routing_agent",
        **options: Unpack[WriteOptions],
    ) -> ConfigEntry:
        """Store a routing config for ``tenant_id`` (default: ``config.tenant_id``)."""
        return await self.set(_expect(config, RoutingConfig), tenant_id, service, **options)

    async def get_telemetry_config(
        self, tenant_id: str = "default", service: str = "telemetry"
    ) -> TelemetryConfig:
        """The telemetry config of ``service``, or the defaults when none is stored."""
        return await self._get_with_defaults(TelemetryConfig, tenant_id, service)

    async def set_telemetry_config(
        self,
        config: TelemetryConfig,
        tenant_id: str | None = None,
        service: str = "telemetry",
        **options: Unpack[WriteOptions],
    ) -> ConfigEntry:
        """Store a telemetry config for ``tenant_id`` (default: ``config.tenant_id``)."""
        return await self.set(_expect(config, TelemetryConfig), tenant_id, service, **options)

    async def get(
        self, model: type[ModelT], tenant_id: str, service: str | None = None
    ) -> ModelT | None:
        """The stored config of a registered schema; absent: its defaults, or None without any.

        ``service`` defaults to the schema's default service.
        """
        table = self._tables_by_model.get((model, service))
        if table is not None:
            slot = table.get(tenant_id)
            if slot is not None:
                value: ModelT | None = slot.value
                if value is not _UNBUILT:
                    return value
        spec = spec_for(model)
        resolved_service = spec.service_for(service)
        self._tables_by_model[(model, service)] = self._table(spec, resolved_service)
        return await self._read(spec, tenant_id, resolved_service)  # type: ignore[return-value]

    async def set(
        self,
        config: BaseModel,
        tenant_id: str | None = None,
        service: str | None = None,
        *,
        expected_version: int | None = None,
        updated_by: str | None = None,
        comment: str | None = None,
    ) -> ConfigEntry:
        """Validate ``config`` and store it as a new version; the cache sees it at once.

        ``tenant_id`` defaults to ``config.tenant_id`` (schemas that have one), ``service`` to the
        schema's default service. With ``expected_version`` the write is a compare-and-set
        (VersionConflictError). A bad value raises InvalidConfigError and nothing is written.

        With inheritance the tenant stores what differs from what it inherits, plus every field
        it already overrides (a pinned value stays pinned; ``patch`` with ``null`` unpins).
        """
        spec = spec_for(type(config))
        tenant_id = _tenant_of(spec, config, tenant_id)
        service = spec.service_for(service)
        desired = _storage_value(spec, config, tenant_id)
        if not self.inherit:
            return await self._write(
                spec,
                desired,
                tenant_id,
                service,
                expected_version=expected_version,
                updated_by=updated_by,
                comment=comment,
            )
        return await self._write_layered(
            spec,
            tenant_id,
            service,
            lambda stored: self._layering.overrides(spec, stored.value, stored.base, desired),
            expected_version=expected_version,
            updated_by=updated_by,
            comment=comment,
        )

    async def patch(
        self,
        model: type[BaseModel],
        tenant_id: str,
        changes: Mapping[str, Any],
        service: str | None = None,
        **options: Unpack[WriteOptions],
    ) -> ConfigEntry:
        """Apply the RFC 7396 JSON merge patch ``changes`` to the tenant's stored overrides.

        A key set to a value is stored as an override, even when it equals the inherited value
        (that pins it); ``null`` drops the override, so the field is inherited again; an object
        merges into a nested one. The effective config must validate (InvalidConfigError naming
        the field); on a concurrent write the patch is applied again to the newer value, unless
        ``expected_version`` is given (VersionConflictError).
        """
        spec = spec_for(model)
        if not isinstance(changes, Mapping):
            raise InvalidConfigError(
                f"a merge patch of a config is a JSON object, got {type(changes).__name__}",
                field="changes",
            )
        refuse_masked_secrets(dict(changes))
        patch = copy.deepcopy(dict(changes))
        return await self._write_layered(
            spec,
            tenant_id,
            spec.service_for(service),
            lambda stored: merge_patch(stored.value, patch),
            **options,
        )

    async def update(
        self,
        model: type[ModelT],
        tenant_id: str,
        fn: Callable[[ModelT], ModelT | Awaitable[ModelT | None] | None],
        service: str | None = None,
        *,
        default: ModelT | None = None,
        updated_by: str | None = None,
        comment: str | None = None,
        max_attempts: int = DEFAULT_UPDATE_ATTEMPTS,
    ) -> ConfigEntry:
        """Read-modify-write with compare-and-set: ``fn`` gets a private copy of the latest
        effective config (nothing stored or inherited: ``default``, else the schema's defaults)
        and returns the new one (or None after changing it in place); it may be async. On a
        concurrent write the whole cycle runs again, so ``fn`` may be called more than once.
        VersionConflictError after ``max_attempts``. With inheritance only the fields ``fn``
        changed become overrides: the others keep following the base.
        """
        spec = spec_for(model)

        async def compose(stored: _Stored) -> dict[str, Any]:
            current = self._start_of_update(spec, tenant_id, stored, default)
            outcome = fn(current)  # type: ignore[arg-type]
            if inspect.isawaitable(outcome):
                outcome = await outcome
            new = current if outcome is None else outcome
            desired = _storage_value(spec, _expect(new, spec.model), tenant_id)
            if not self.inherit:
                return desired
            return self._layering.overrides(spec, stored.value, stored.base, desired)

        return await self._write_layered(
            spec,
            tenant_id,
            spec.service_for(service),
            compose,
            updated_by=updated_by,
            comment=comment,
            max_attempts=max_attempts,
        )

    async def delete(
        self,
        model: type[BaseModel],
        tenant_id: str,
        service: str | None = None,
        *,
        purge: bool = False,
        updated_by: str | None = None,
        comment: str | None = None,
    ) -> bool:
        """Delete the tenant's stored config (a tombstone version; ``purge`` removes every
        version); True if there was one. The tenant then inherits everything again.

        Deleting the base tenant's config raises InheritanceError, deleting nothing, when a
        tenant's overrides would not validate without it.
        """
        spec = spec_for(model)
        service = spec.service_for(service)
        await self.initialize()
        if self._layering.is_base(tenant_id):
            await self._refuse_breaking_base(spec, service, None)
        deleted = await self._store.delete_config(
            tenant_id,
            spec.scope,
            service,
            spec.config_key,
            purge=purge,
            updated_by=updated_by,
            comment=comment,
        )
        slot = self._table(spec, service).get(tenant_id) if self.cache_enabled else None
        if slot is not None:
            slot.stamp += 1
            slot.hold(None)
        return deleted

    async def explain(
        self,
        model: type[BaseModel],
        tenant_id: str,
        service: str | None = None,
        *,
        show_secrets: bool = False,
    ) -> list[ExplainedField]:
        """Where each field of the tenant's effective config comes from, one record per field
        (dotted paths for fields of nested models), in schema order; [] when there is no config.

        Secrets are masked unless ``show_secrets``. Served from the cache, like ``get``.
        """
        spec = spec_for(model)
        service = spec.service_for(service)
        own, base = await self._layer_entries(spec, tenant_id, service)
        return self._layering.explain(spec, tenant_id, own, base, show_secrets=show_secrets)

    async def check(
        self, tenant_id: str | None = None
    ) -> list[tuple[ConfigKey, InvalidConfigError]]:
        """Validate the effective typed configs of ``tenant_id`` (default: every tenant with a
        stored config) and return the ones that fail, with their errors; [] when all are valid.

        Each stored typed config is built with everything it inherits and the environment; a
        tenant named explicitly is also checked for the configs it only inherits.
        """
        await self.initialize()
        tenants = [tenant_id] if tenant_id is not None else await self._store.list_tenants()
        base: dict[_Location, ConfigEntry] = {}
        if self.inherit:
            base = _typed_locations(await self._store.list_configs(self.base_tenant))
        problems = []
        for tenant in tenants:
            own = _typed_locations(await self._store.list_configs(tenant))
            inherited = base if self._layering.base_for(tenant) is not None else {}
            locations = own.keys() | (inherited.keys() if tenant_id is not None else set())
            for location in sorted(locations):
                spec = spec_at(location[0], location[2])
                assert spec is not None
                try:
                    self._layering.build(spec, tenant, own.get(location), inherited.get(location))
                except InvalidConfigError as exc:
                    problems.append((ConfigKey(tenant, *location), exc))
        return problems

    async def rollback(
        self,
        tenant_id: str,
        scope: ConfigScope | str,
        service: str,
        config_key: str,
        to_version: int,
        *,
        updated_by: str | None = None,
        comment: str | None = None,
    ) -> ConfigEntry:
        """Write a new version whose value equals version ``to_version``'s, and return it.

        InvalidConfigError when that version does not exist, is a deletion, or (for a typed
        config) would not make a valid effective config today; nothing is written then.
        """
        checked_scope = validate_scope(scope)
        await self.initialize()
        old = await self._store.get_config(
            tenant_id, checked_scope, service, config_key, to_version
        )
        if old is None or old.deleted:
            what = "does not exist" if old is None else "is a deletion"
            raise InvalidConfigError(
                f"version {to_version} of {tenant_id}/{checked_scope.value}/{service}/{config_key}"
                f" {what}; nothing to roll back to",
                field="to_version",
            )
        comment = comment if comment is not None else f"rollback to version {to_version}"
        spec = spec_at(checked_scope, config_key)
        if spec is not None:
            return await self._write_layered(
                spec,
                tenant_id,
                service,
                lambda stored: old.config_value,
                updated_by=updated_by,
                comment=comment,
            )
        return await self._store.set_config(
            tenant_id,
            checked_scope,
            service,
            config_key,
            old.config_value,
            updated_by=updated_by,
            comment=comment,
        )

    async def diff(
        self,
        tenant_id: str,
        scope: ConfigScope | str,
        service: str,
        config_key: str,
        from_version: int,
        to_version: int,
    ) -> list[ConfigDiff]:
        """Field-level changes from one stored version to another, secrets masked (the secret
        fields of a typed config and keys named like secrets, as everywhere values are shown).

        InvalidConfigError naming ``from_version`` or ``to_version`` when one does not exist.
        """
        checked_scope = validate_scope(scope)
        await self.initialize()
        values = []
        for name, version in (("from_version", from_version), ("to_version", to_version)):
            entry = await self._store.get_config(
                tenant_id, checked_scope, service, config_key, version
            )
            if entry is None:
                raise InvalidConfigError(f"{name} {version} does not exist", field=name)
            values.append(entry.config_value)
        spec = spec_at(checked_scope, config_key)
        secret_paths = frozenset() if spec is None else secret_paths_for(spec.model)
        return diff_values(values[0], values[1], secret_paths=secret_paths)

    def watch(
        self,
        tenant_id: str | None = None,
        scope: ConfigScope | str | None = None,
        *,
        max_buffer: int = DEFAULT_WATCH_BUFFER,
    ) -> ConfigWatch:
        """The changes committed from now on, by any writer, optionally for one tenant or scope.

        At most ``max_buffer`` events wait unread; past that the watch yields one
        ``ConfigResyncEvent`` in place of those it left out (see ConfigWatch).
        """
        checked_scope = None if scope is None else validate_scope(scope)
        if isinstance(max_buffer, bool) or not isinstance(max_buffer, int) or max_buffer < 1:
            raise InvalidConfigError(
                f"max_buffer must be a positive number of events, got {max_buffer!r}",
                field="max_buffer",
            )
        watch = ConfigWatch(self, tenant_id, checked_scope, max_buffer)
        self._watches.add(watch)
        return watch

    async def _get_with_defaults(self, model: type[ModelT], tenant_id: str, service: str) -> ModelT:
        config = await self.get(model, tenant_id, service)
        assert config is not None, f"{model.__name__} has defaults"
        return config

    def _peek(self, model: type[BaseModel], tenant_id: str, service: str | None = None) -> Any:
        """The cached config without I/O: the model, None (absent), or NOT_CACHED."""
        spec = spec_for(model)
        table = self._tables.get((spec.scope, spec.service_for(service), spec.config_key))
        slot = None if table is None else table.get(tenant_id)
        if slot is None:
            return NOT_CACHED
        return self._handout(slot, tenant_id)

    def _forget_watch(self, watch: ConfigWatch) -> None:
        self._watches.discard(watch)

    def _table(self, spec: TypedConfigSpec, service: str) -> dict[str, _Slot]:
        return self._tables.setdefault((spec.scope, service, spec.config_key), {})

    async def _read(self, spec: TypedConfigSpec, tenant_id: str, service: str) -> BaseModel | None:
        await self.initialize()
        base_tenant = self._layering.base_for(tenant_id)
        if not self.cache_enabled:
            own, base = await self._fetch(spec, service, tenant_id, base_tenant)
            return self._layering.build(spec, tenant_id, own, base)
        table = self._table(spec, service)
        slot = table.get(tenant_id)
        if slot is None:
            epoch = self._epoch
            base_slot = None if base_tenant is None else table.get(base_tenant)
            unread_base = base_tenant if base_slot is None else None
            own, base = await self._fetch(spec, service, tenant_id, unread_base)
            slot = table.get(tenant_id)
            if slot is None:
                if self._epoch != epoch:
                    # The poller changed the cache while we read: what we read may be older.
                    base = base if base_slot is None else base_slot.entry
                    return self._layering.build(spec, tenant_id, own, base)
                if base_tenant is not None and table.get(base_tenant) is None:
                    table[base_tenant] = _Slot(spec)
                    table[base_tenant].hold(base)
                base_slot = None if base_tenant is None else table[base_tenant]
                slot = table[tenant_id] = _Slot(spec, base_slot)
                slot.hold(own)
        config: BaseModel | None = self._handout(slot, tenant_id)
        return config

    async def _fetch(
        self, spec: TypedConfigSpec, service: str, tenant_id: str, base_tenant: str | None
    ) -> tuple[ConfigEntry | None, ConfigEntry | None]:
        """The latest stored entries of the tenant and (when named) of its base, read together."""

        async def latest(tenant: str | None) -> ConfigEntry | None:
            if tenant is None:
                return None
            return await self._store.get_config(tenant, spec.scope, service, spec.config_key)

        own, base = await asyncio.gather(latest(tenant_id), latest(base_tenant))
        return own, base

    async def _layer_entries(
        self, spec: TypedConfigSpec, tenant_id: str, service: str
    ) -> tuple[ConfigEntry | None, ConfigEntry | None]:
        """The stored layers the tenant's cached config is built from (read now if not cached)."""
        await self._read(spec, tenant_id, service)
        slot = self._table(spec, service).get(tenant_id) if self.cache_enabled else None
        if slot is None:
            return await self._fetch(spec, service, tenant_id, self._layering.base_for(tenant_id))
        return slot.entry, None if slot.base is None else slot.base.entry

    def _handout(self, slot: _Slot, tenant_id: str) -> Any:
        """What a read returns for a slot: its sealed model, built now if needed, or a copy."""
        if slot.value is not _UNBUILT:
            return slot.value
        if slot.model is not None:
            return slot.model.model_copy(deep=True)
        base = None if slot.base is None else slot.base.entry
        model = self._layering.build(slot.spec, tenant_id, slot.entry, base)
        if model is None:
            slot.value = None
            return None
        model_seal = seal(model, lambda: _detach(slot, model))
        if model_seal is None:
            slot.model = model
            return model.model_copy(deep=True)
        slot.seal = model_seal
        slot.value = model
        return model

    async def _write(
        self,
        spec: TypedConfigSpec,
        value: dict[str, Any],
        tenant_id: str,
        service: str,
        *,
        expected_version: int | None,
        updated_by: str | None,
        comment: str | None,
    ) -> ConfigEntry:
        await self.initialize()
        entry = await self._store.set_config(
            tenant_id,
            spec.scope,
            service,
            spec.config_key,
            value,
            expected_version=expected_version,
            updated_by=updated_by,
            comment=comment,
        )
        self._remember_write(spec, entry)
        return entry

    async def _write_layered(
        self,
        spec: TypedConfigSpec,
        tenant_id: str,
        service: str,
        compose: Callable[[_Stored], dict[str, Any] | Awaitable[dict[str, Any]]],
        *,
        expected_version: int | None = None,
        updated_by: str | None = None,
        comment: str | None = None,
        max_attempts: int = DEFAULT_UPDATE_ATTEMPTS,
    ) -> ConfigEntry:
        """Store what ``compose`` makes of the tenant's stored layers, checked, compare-and-set.

        On a concurrent write the layers are read and composed again (up to ``max_attempts``),
        unless the caller gave ``expected_version``.
        """
        await self.initialize()
        attempts = 1 if expected_version is not None else max(1, max_attempts)
        conflict: VersionConflictError | None = None
        for attempt in range(attempts):
            stored = await self._stored(spec, tenant_id, service)
            value = compose(stored)
            if inspect.isawaitable(value):
                value = await value
            value = await self._checked(spec, tenant_id, service, value, stored.base)
            try:
                return await self._write(
                    spec,
                    value,
                    tenant_id,
                    service,
                    expected_version=stored.version
                    if expected_version is None
                    else expected_version,
                    updated_by=updated_by,
                    comment=comment,
                )
            except VersionConflictError as exc:
                if expected_version is not None:
                    raise
                conflict = exc
                ceiling = min(_MAX_BACKOFF_SECONDS, 0.001 * 2**attempt)
                await asyncio.sleep(random.uniform(0, ceiling))
        assert conflict is not None
        raise conflict

    async def _stored(self, spec: TypedConfigSpec, tenant_id: str, service: str) -> _Stored:
        """The tenant's newest version (tombstones included) and its base's latest, read now."""

        async def base_entry() -> ConfigEntry | None:
            base_tenant = self._layering.base_for(tenant_id)
            if base_tenant is None:
                return None
            return await self._store.get_config(base_tenant, spec.scope, service, spec.config_key)

        history, base = await asyncio.gather(
            self._store.get_config_history(tenant_id, spec.scope, service, spec.config_key, 1),
            base_entry(),
        )
        latest = history[0] if history else None
        live = None if latest is None or latest.deleted else latest
        return _Stored(
            value=copy.deepcopy(live.config_value) if live is not None else {},
            version=0 if latest is None else latest.version,
            entry=live,
            base=base,
        )

    async def _checked(
        self,
        spec: TypedConfigSpec,
        tenant_id: str,
        service: str,
        value: object,
        base: ConfigEntry | None,
    ) -> dict[str, Any]:
        """``value`` as the tenant stores it (see ``Layering.stored_form``); a base value also
        must not break any tenant that inherits it."""
        stored = self._layering.stored_form(spec, tenant_id, value, base)
        if self._layering.is_base(tenant_id):
            await self._refuse_breaking_base(spec, service, stored)
        return stored

    async def _refuse_breaking_base(
        self, spec: TypedConfigSpec, service: str, value: dict[str, Any] | None
    ) -> None:
        await refuse_breaking_base(self._store, self._layering, spec, service, value)

    def _start_of_update(
        self, spec: TypedConfigSpec, tenant_id: str, stored: _Stored, default: BaseModel | None
    ) -> BaseModel:
        """A private copy of the config ``update`` starts from."""
        if stored.entry is None and stored.base is None and default is not None:
            return default.model_copy(deep=True)
        model = self._layering.build(spec, tenant_id, stored.entry, stored.base)
        if model is None:
            raise InvalidConfigError(
                f"no {spec.name} config is stored for {tenant_id} and the schema has "
                "required fields: pass default= to create one",
                field="default",
            )
        return model

    def _remember_write(self, spec: TypedConfigSpec, entry: ConfigEntry) -> None:
        if not self.cache_enabled:
            return
        table = self._table(spec, entry.service)
        slot = table.get(entry.tenant_id)
        if slot is None:
            base_tenant = self._layering.base_for(entry.tenant_id)
            base_slot = None if base_tenant is None else table.get(base_tenant)
            if base_tenant is not None and base_slot is None:
                return  # cached only with its base: the next read fetches both
            slot = table[entry.tenant_id] = _Slot(spec, base_slot)
        slot.stamp += 1
        if slot.entry is None or slot.version < entry.version:
            slot.hold(entry)

    async def _follow_feed(self, scope: anyio.CancelScope) -> None:
        """The background follower: poll the feed, then wait for the store to report a commit
        (or for ``poll_interval``), until ``scope`` is cancelled by ``close()``."""
        failing = False
        try:
            with scope:
                while True:
                    try:
                        await self._poll_once()
                    except Exception as exc:
                        if not failing:
                            logger.warning(
                                "confstore: cannot follow the change feed (%s: %s); serving "
                                "cached values and retrying every %.3gs",
                                type(exc).__name__,
                                exc,
                                self.poll_interval,
                            )
                        failing = True
                    else:
                        if failing:
                            logger.info("confstore: following the change feed again")
                        failing = False
                    await self._wait_for_changes()
        finally:
            if not self._closing:
                # The loop is shutting down under us (asyncio.run ended): without a follower the
                # cache would go stale, so drop it; the next read starts over in its own loop.
                self._forget_cache()
                self._started = False

    async def _wait_for_changes(self) -> None:
        try:
            await self._store.wait_for_changes(self._cursor, self.poll_interval)
        except Exception as exc:
            # A store that cannot wait for notifications (say, its listener connection broke)
            # is still polled: the next poll reports the outage if there is one.
            logger.debug("confstore: waiting for changes failed (%s); polling", exc)
            await anyio.sleep(self.poll_interval)

    async def _poll_once(self) -> None:
        assert self._poll_lock is not None
        async with self._poll_lock:
            while True:
                try:
                    batch = await self._store.changes_since(self._cursor)
                except CursorExpiredError:
                    await self._restart_feed()
                    return
                if batch.changes:
                    await self._apply(batch.changes)
                self._cursor = batch.cursor
                if not batch.has_more:
                    return

    async def _restart_feed(self) -> None:
        """The store no longer knows our cursor: start from its present and forget the cache.

        Logged once done (not before the await), so that whoever reads the warning can trust
        the cache has started over: reads from then on go to the store."""
        self._cursor = await self._store.current_cursor()
        self._forget_cache()
        for watch in list(self._watches):
            watch.resync("cursor_expired")
        logger.warning("confstore: change feed cursor expired; the cache started over")

    async def _apply(self, changes: tuple[ConfigChange, ...]) -> None:
        """Re-read what the changes touched, then update the cache and deliver events at once."""
        # Bumped before the re-reads as well as after: a miss whose read overlaps any part of
        # this must not fill the cache (its key may not be among the ones re-read here).
        self._epoch += 1
        stamps = {}
        for change in changes:
            slot = self._slot_of(change.key)
            if slot is not None:
                stamps[change.key] = (slot, slot.stamp)
        latest = await self._read_latest(list(stamps))
        events: list[tuple[ConfigChangeEvent, str | None]] = []
        for change in changes:
            event = await self._event_for(change, latest)
            if event is not None:
                events.append((event, None))
            events.extend(await self._inherited_events(change, latest))
        self._epoch += 1
        for key, (slot, stamp) in stamps.items():
            entry = latest[key]
            if slot.stamp == stamp or (entry is not None and entry.version > slot.version):
                slot.hold(entry)
        for event, tenant_id in events:
            self._deliver(event, tenant_id)

    async def _get_latest(self, key: ConfigKey) -> ConfigEntry | None:
        return await self._store.get_config(key.tenant_id, key.scope, key.service, key.config_key)

    async def _read_latest(self, keys: list[ConfigKey]) -> dict[ConfigKey, ConfigEntry | None]:
        """The latest entry of each key, read concurrently (at most ``_CHECK_CONCURRENCY`` at
        once: on a remote store, a batch of changes costs a few round trips, not one per key)."""
        if len(keys) <= 1:
            return {key: await self._get_latest(key) for key in keys}
        latest: dict[ConfigKey, ConfigEntry | None] = {}
        limiter = anyio.CapacityLimiter(_CHECK_CONCURRENCY)

        async def read(key: ConfigKey) -> None:
            async with limiter:
                latest[key] = await self._get_latest(key)

        error: BaseException | None = None
        try:
            async with anyio.create_task_group() as group:
                for key in keys:
                    group.start_soon(read, key)
        except BaseExceptionGroup as failed:
            error = _first_leaf(failed)
        if error is not None:
            # The first read that failed cancelled the others: its error (a confstore one)
            # leaves, not a group, raised here so that its own cause is kept.
            raise error
        return latest

    async def _event_for(
        self, change: ConfigChange, latest: dict[ConfigKey, ConfigEntry | None]
    ) -> ConfigChangeEvent | None:
        if not any(watch.matches(change.key) for watch in self._watches):
            return None
        entry = await self._entry_at(change.key, change.kind, change.version, latest)
        return ConfigChangeEvent(change.key, change.kind, change.version, entry)

    async def _entry_at(
        self,
        key: ConfigKey,
        kind: ChangeKind,
        version: int,
        latest: dict[ConfigKey, ConfigEntry | None],
    ) -> ConfigEntry | None:
        """The version a change wrote (None for a purge), from ``latest`` when it is that one."""
        if kind is ChangeKind.PURGE or version < 1:
            return None
        known = latest.get(key)
        if known is not None and known.version == version:
            return known
        return await self._store.get_config(
            key.tenant_id, key.scope, key.service, key.config_key, version
        )

    async def _inherited_events(
        self, change: ConfigChange, latest: dict[ConfigKey, ConfigEntry | None]
    ) -> list[tuple[ConfigChangeEvent, str]]:
        """A base tenant's change, as reported to the watches of single tenants it changed the
        effective config of (a purge: to all of them), each with that tenant's key."""
        key = change.key
        spec = spec_at(key.scope, key.config_key) if self._layering.is_base(key.tenant_id) else None
        tenants = sorted(
            {
                watch.tenant_id
                for watch in self._watches
                if watch.tenant_id is not None
                and watch.tenant_id != key.tenant_id
                and (watch.scope is None or watch.scope == key.scope)
            }
        )
        if spec is None or not tenants:
            return []
        new = await self._entry_at(key, change.kind, change.version, latest)
        old = await self._entry_at(key, change.kind, change.version - 1, latest)
        events = []
        for tenant in tenants:
            if change.kind is ChangeKind.PURGE or await self._base_change_shows(
                spec, replace(key, tenant_id=tenant), old, new
            ):
                event = ConfigChangeEvent(
                    replace(key, tenant_id=tenant),
                    change.kind,
                    change.version,
                    new,
                    inherited_from=key.tenant_id,
                )
                events.append((event, tenant))
        return events

    async def _base_change_shows(
        self,
        spec: TypedConfigSpec,
        key: ConfigKey,
        old: ConfigEntry | None,
        new: ConfigEntry | None,
    ) -> bool:
        """Whether the base going from ``old`` to ``new`` changes the effective config at ``key``."""
        slot = self._slot_of(key)
        own = slot.entry if slot is not None else await self._get_latest(key)

        def effective(base: ConfigEntry | None) -> dict[str, Any]:
            live = None if base is None or base.deleted else base
            return self._layering.effective_document(spec, key.tenant_id, own, live)

        return not same_json(effective(old), effective(new))

    def _deliver(self, event: ConfigChangeEvent, tenant_id: str | None = None) -> None:
        """Hand ``event`` to the watches it matches (only to ``tenant_id``'s, when given)."""
        for watch in list(self._watches):
            if watch.matches(event.key) and tenant_id in (None, watch.tenant_id):
                # Each watcher gets its own copy of the value, so one cannot change another's.
                entry = event.entry
                if entry is not None:
                    entry = replace(entry, config_value=copy.deepcopy(entry.config_value))
                watch.deliver(replace(event, entry=entry))

    def _slot_of(self, key: ConfigKey) -> _Slot | None:
        table = self._tables.get((key.scope, key.service, key.config_key))
        return None if table is None else table.get(key.tenant_id)

    def _forget_cache(self) -> None:
        # A miss that read before this must not fill the emptied cache (nor link a tenant to a
        # base slot that is gone).
        self._epoch += 1
        for table in self._tables.values():
            for slot in table.values():
                slot.drop_model()
            table.clear()

    async def _stop_poller(self) -> None:
        poller, self._poller = self._poller, None
        scope, self._follower_scope = self._follower_scope, None
        if poller is None or poller.done():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if poller.get_loop() is not running:
            # Its loop is gone or elsewhere; cancelling from here is all we can do.
            with contextlib.suppress(RuntimeError):
                poller.cancel()
            return
        assert scope is not None
        # The scope absorbs its own cancellation: the follower ends normally, and a
        # cancellation of close() itself is never mistaken for it.
        scope.cancel()
        await poller


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _detach(slot: _Slot, model: BaseModel) -> None:
    """A caller is changing ``model``, which the cache handed out: the cache lets go of it."""
    if slot.value is model:
        slot.seal = None
        slot.value = _UNBUILT


_Location = tuple[ConfigScope, str, str]


@dataclass(frozen=True, slots=True)
class _Stored:
    """What a layered write starts from, read at once: the tenant's stored overrides (``{}``
    when none are live), its newest version (tombstones included; 0: never written), its live
    entry, and the base tenant's latest entry."""

    value: dict[str, Any]
    version: int
    entry: ConfigEntry | None
    base: ConfigEntry | None


def _typed_locations(entries: Iterable[ConfigEntry]) -> dict[_Location, ConfigEntry]:
    return {
        (entry.scope, entry.service, entry.config_key): entry
        for entry in entries
        if spec_at(entry.scope, entry.config_key) is not None
    }


async def refuse_breaking_base(
    store: ConfigStore,
    layering: Layering,
    spec: TypedConfigSpec,
    service: str,
    value: dict[str, Any] | None,
) -> None:
    """InheritanceError when ``value`` (None: deleted) as the base tenant's config would make
    a tenant's stored overrides at the same key fail validation."""
    base_tenant = layering.base_tenant
    tenants = [tenant for tenant in await store.list_tenants() if tenant != base_tenant]
    limit = asyncio.Semaphore(_CHECK_CONCURRENCY)

    async def stored_by(tenant: str) -> ConfigEntry | None:
        async with limit:
            return await store.get_config(tenant, spec.scope, service, spec.config_key)

    entries = [entry for entry in await asyncio.gather(*map(stored_by, tenants)) if entry]
    failures = layering.inheritance_failures(spec, value, entries)
    if failures:
        raise InheritanceError(inheritance_message(spec, service, failures), tenants=failures)


def _storage_value(spec: TypedConfigSpec, config: BaseModel, tenant_id: str) -> dict[str, Any]:
    """The value to store: dumped with secrets, tenant set, and validated again as a whole
    (extras and in-place changes to containers were never validated)."""
    value = dump_for_storage(config)
    if spec.has_tenant_field:
        value["tenant_id"] = tenant_id
    load_from_storage(spec.model, value)
    return value


def _tenant_of(spec: TypedConfigSpec, config: BaseModel, tenant_id: str | None) -> str:
    if tenant_id is not None:
        return tenant_id
    tenant = config.__dict__.get("tenant_id") if spec.has_tenant_field else None
    if isinstance(tenant, str):
        return tenant
    raise InvalidConfigError(f"{spec.name} configs carry no tenant_id: pass it", field="tenant_id")


def _expect(config: Any, model: type[ModelT]) -> ModelT:
    if not isinstance(config, model):
        raise InvalidConfigError(
            f"expected a {model.__name__}, got {type(config).__name__}", field="config"
        )
    return config


_global_lock = threading.Lock()
_global_manager: ConfigManager | None = None
_global_source: StoreURL | ConfigStore | None = None


def get_config_manager(
    url: str | None = None, *, store: ConfigStore | None = None
) -> ConfigManager:
    """The process-wide manager, built on first call from ``store``, ``url`` or the default URL
    (``$CONFSTORE_URL``, else ``sqlite:///data/config/config.db``).

    Later calls return it. Asking for a different URL or store raises InvalidConfigError (a
    ConfigStoreError and a ValueError) instead of being silently ignored; ``reset_config_manager()``
    closes it so the next call builds a new one.
    """
    global _global_manager, _global_source
    if store is not None and url is not None:
        raise InvalidConfigError("pass a store or a url, not both", field="store")
    with _global_lock:
        if _global_manager is None:
            if store is not None:
                _global_manager, _global_source = ConfigManager(store), store
            else:
                url = default_store_url() if url is None else url
                _global_source = StoreURL.parse(url)
                _global_manager = ConfigManager(url=url)
            return _global_manager
        if store is not None and store is not _global_source:
            raise InvalidConfigError(
                "the process-wide config manager already uses another store; "
                "call reset_config_manager() first",
                field="store",
            )
        if url is not None and StoreURL.parse(url) != _global_source:
            current = (
                _global_source.render()
                if isinstance(_global_source, StoreURL)
                else f"a {type(_global_source).__name__}"
            )
            raise InvalidConfigError(
                f"the process-wide config manager already uses {current}, not "
                f"{StoreURL.parse(url).render()}; call reset_config_manager() first",
                field="url",
            )
        return _global_manager


async def reset_config_manager() -> None:
    """Close and forget the process-wide manager (tests; switching stores)."""
    global _global_manager, _global_source
    with _global_lock:
        manager, _global_manager, _global_source = _global_manager, None, None
    if manager is not None:
        await manager.close()
