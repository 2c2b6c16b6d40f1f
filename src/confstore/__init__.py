"""confstore: async, multi-tenant, versioned configuration with pluggable storage backends."""

from ._diff import ConfigDiff as ConfigDiff
from ._errors import AmbiguousBackendError as AmbiguousBackendError
from ._errors import BackendError as BackendError
from ._errors import BackendTimeoutError as BackendTimeoutError
from ._errors import BackendUnavailableError as BackendUnavailableError
from ._errors import ConfigStoreError as ConfigStoreError
from ._errors import CursorExpiredError as CursorExpiredError
from ._errors import ImportConflictError as ImportConflictError
from ._errors import ImportFormatError as ImportFormatError
from ._errors import InheritanceError as InheritanceError
from ._errors import InvalidConfigError as InvalidConfigError
from ._errors import InvalidIdentifierError as InvalidIdentifierError
from ._errors import NoSuchBackendError as NoSuchBackendError
from ._errors import PermissionDeniedError as PermissionDeniedError
from ._errors import UnsupportedOperationError as UnsupportedOperationError
from ._errors import VersionConflictError as VersionConflictError
from ._export import plan_restore as plan_restore
from ._export_reader import ExportFileReader as ExportFileReader
from ._layers import ExplainedField as ExplainedField
from ._manager import ConfigChangeEvent as ConfigChangeEvent
from ._manager import ConfigManager as ConfigManager
from ._manager import ConfigResyncEvent as ConfigResyncEvent
from ._manager import ConfigWatch as ConfigWatch
from ._manager import get_config_manager as get_config_manager
from ._manager import reset_config_manager as reset_config_manager
from ._models import ChangeBatch as ChangeBatch
from ._models import ChangeKind as ChangeKind
from ._models import ConfigChange as ConfigChange
from ._models import ConfigEntry as ConfigEntry
from ._models import ConfigKey as ConfigKey
from ._models import ConfigScope as ConfigScope
from ._models import decode_cursor as decode_cursor
from ._models import encode_cursor as encode_cursor
from ._models import epoch_micros as epoch_micros
from ._models import from_epoch_micros as from_epoch_micros
from ._models import utc_now as utc_now
from ._options import StoreOptions as StoreOptions
from ._registry import open_store as open_store
from ._registry import register_backend as register_backend
from ._retention import KeyPrune as KeyPrune
from ._retention import PruneResult as PruneResult
from ._retention import RetentionPolicy as RetentionPolicy
from ._retention import RetentionRule as RetentionRule
from ._store import ConfigStore as ConfigStore
from ._store import IsolatedArea as IsolatedArea
from ._store import StoreCapabilities as StoreCapabilities
from ._url import StoreURL as StoreURL
from ._url import default_store_url as default_store_url
from .backends.memory import MemoryConfigStore as MemoryConfigStore
from .backends.sqlite import SQLiteConfigStore as SQLiteConfigStore
from .schemas import AgentConfig as AgentConfig
from .schemas import DSPyModuleType as DSPyModuleType
from .schemas import ModuleConfig as ModuleConfig
from .schemas import OptimizerConfig as OptimizerConfig
from .schemas import OptimizerType as OptimizerType
from .schemas import RoutingConfig as RoutingConfig
from .schemas import SystemConfig as SystemConfig
from .schemas import TelemetryConfig as TelemetryConfig

__version__ = "0.1.0"

__all__ = [
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
