"""confstore-postgres: the confstore backend for PostgreSQL 14 or later (asyncpg).

URLs ``postgresql://user:password@host:5432/database?schema=confstore&timeout=10&pool_size=10``
and the same with ``postgres://``, in libpq's forms (a unix-socket directory as ``?host=/path``,
an empty password as ``user:@host``); see ``PostgresConfigStore``. ``confstore_postgres.cluster``
starts a throwaway server for tests (``pip install confstore-postgres[server]``).
"""

from typing import TYPE_CHECKING

from confstore.hookspecs import lazy_exports

if TYPE_CHECKING:
    from ._settings import PostgresSettings as PostgresSettings
    from ._store import PostgresConfigStore as PostgresConfigStore

__version__ = "0.1.0"

__all__ = ["PostgresConfigStore", "PostgresSettings", "__version__"]

# Imported on first use: the entry point (``._plugin``) imports this package whenever a store
# of any kind is first opened in a process, and must not import this store and its drivers.
__getattr__ = lazy_exports(
    __name__,
    {
        "PostgresSettings": "._settings",
        "PostgresConfigStore": "._store",
    },
)
