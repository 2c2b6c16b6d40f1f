"""The public surface: what ``confstore`` exports is deliberate, so it cannot drift unnoticed."""

from __future__ import annotations

import confstore_elasticsearch
import confstore_etcd
import confstore_remote
import confstore_vespa

import confstore

EXPECTED_CONFSTORE_EXPORTS = [
    "AgentConfig",
    "AmbiguousBackendError",
    "BackendError",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "ChangeBatch",
    "ChangeKind",
    "ConfigChange",
    "ConfigChangeEvent",
    "ConfigDiff",
    "ConfigEntry",
    "ConfigKey",
    "ConfigManager",
    "ConfigResyncEvent",
    "ConfigScope",
    "ConfigStore",
    "ConfigStoreError",
    "ConfigWatch",
    "CursorExpiredError",
    "DSPyModuleType",
    "ExplainedField",
    "ExportFileReader",
    "ImportConflictError",
    "ImportFormatError",
    "InheritanceError",
    "InvalidConfigError",
    "InvalidIdentifierError",
    "IsolatedArea",
    "KeyPrune",
    "MemoryConfigStore",
    "ModuleConfig",
    "NoSuchBackendError",
    "OptimizerConfig",
    "OptimizerType",
    "PermissionDeniedError",
    "PruneResult",
    "RetentionPolicy",
    "RetentionRule",
    "RoutingConfig",
    "SQLiteConfigStore",
    "StoreCapabilities",
    "StoreOptions",
    "StoreURL",
    "SystemConfig",
    "TelemetryConfig",
    "UnsupportedOperationError",
    "VersionConflictError",
    "__version__",
    "decode_cursor",
    "default_store_url",
    "encode_cursor",
    "epoch_micros",
    "from_epoch_micros",
    "get_config_manager",
    "open_store",
    "plan_restore",
    "register_backend",
    "reset_config_manager",
    "utc_now",
]


def test_confstore_exports_exactly_the_public_names() -> None:
    assert confstore.__all__ == EXPECTED_CONFSTORE_EXPORTS


def test_all_is_sorted_and_every_name_resolves() -> None:
    for module in (
        confstore,
        confstore_vespa,
        confstore_elasticsearch,
        confstore_etcd,
        confstore_remote,
    ):
        assert module.__all__ == sorted(module.__all__)
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_public_objects_live_in_private_modules_or_public_subpackages() -> None:
    for name in confstore.__all__:
        origin = getattr(getattr(confstore, name), "__module__", "confstore")
        assert origin.startswith("confstore"), name


def test_plugins_export_their_store_classes() -> None:
    assert "VespaConfigStore" in confstore_vespa.__all__
    assert "ElasticsearchConfigStore" in confstore_elasticsearch.__all__
    assert confstore_etcd.__all__ == ["EtcdConfigStore", "__version__"]
    assert confstore_remote.__all__ == ["AccessDeniedError", "RemoteConfigStore", "__version__"]
    assert issubclass(confstore_remote.AccessDeniedError, confstore.BackendError)


def test_exceptions_form_the_documented_hierarchy() -> None:
    root = confstore.ConfigStoreError
    assert issubclass(confstore.InvalidIdentifierError, ValueError)
    assert issubclass(confstore.InvalidConfigError, ValueError)
    assert issubclass(confstore.NoSuchBackendError, LookupError)
    assert issubclass(confstore.AmbiguousBackendError, confstore.NoSuchBackendError)
    assert issubclass(confstore.BackendUnavailableError, confstore.BackendError)
    assert issubclass(confstore.BackendTimeoutError, confstore.BackendError)
    for name in (
        "VersionConflictError",
        "ImportFormatError",
        "ImportConflictError",
        "NoSuchBackendError",
        "BackendError",
    ):
        assert issubclass(getattr(confstore, name), root), name
