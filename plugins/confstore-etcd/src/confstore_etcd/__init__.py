"""confstore-etcd: the confstore backend for etcd v3 (3.4 and later), over its JSON gateway.

URLs ``etcd+http(s)://[user:password@]host:port[,host:port...]?prefix=confstore/&timeout=5``;
see ``EtcdConfigStore`` for the options and the write protocol. ``confstore_etcd.cluster``
starts throwaway local clusters for tests.
"""

from typing import TYPE_CHECKING

from confstore.hookspecs import lazy_exports

if TYPE_CHECKING:
    from ._store import EtcdConfigStore as EtcdConfigStore

__version__ = "0.1.0"

__all__ = ["EtcdConfigStore", "__version__"]

# Imported on first use: the entry point (``._plugin``) imports this package whenever a store
# of any kind is first opened in a process, and must not import this store and its drivers.
__getattr__ = lazy_exports(
    __name__,
    {
        "EtcdConfigStore": "._store",
    },
)
