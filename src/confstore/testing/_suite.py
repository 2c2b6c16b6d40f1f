"""ConfigStoreTests: every group of the conformance suite in one base class."""

from __future__ import annotations

from ._deletes import DeletionTests
from ._exports import ExportImportTests
from ._identity import IdentityTests, ValueValidationTests
from ._listing import IsolationTests, ListingTests
from ._operations import (
    ChangeFeedTests,
    ConcurrencyTests,
    HealthTests,
    PersistenceTests,
    SharedStorageTests,
    StatsTests,
    UnreachableBackendTests,
)
from ._retention import RetentionTests
from ._versions import CompareAndSetTests, HistoryTests, VersioningTests


class ConfigStoreTests(
    IdentityTests,
    ValueValidationTests,
    VersioningTests,
    HistoryTests,
    CompareAndSetTests,
    DeletionTests,
    ListingTests,
    IsolationTests,
    ExportImportTests,
    StatsTests,
    HealthTests,
    ChangeFeedTests,
    ConcurrencyTests,
    SharedStorageTests,
    PersistenceTests,
    UnreachableBackendTests,
    RetentionTests,
):
    """The whole store contract. Subclass it as ``TestMyStore`` next to a ``config_store`` fixture."""
