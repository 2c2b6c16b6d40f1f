"""confstore-postgres: the confstore backend for PostgreSQL 14 or later (asyncpg).

URLs ``postgresql://user:password@host:5432/database?schema=confstore&timeout=10&pool_size=10``
and the same with ``postgres://``, in libpq's forms (a unix-socket directory as ``?host=/path``,
an empty password as ``user:@host``); see ``PostgresConfigStore``. ``confstore_postgres.cluster``
starts a throwaway server for tests (``pip install confstore-postgres[server]``).
"""

from ._settings import PostgresSettings as PostgresSettings
from ._store import PostgresConfigStore as PostgresConfigStore

__version__ = "0.1.0"

__all__ = ["PostgresConfigStore", "PostgresSettings", "__version__"]
