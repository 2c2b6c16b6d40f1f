"""confstore-etcd: the confstore backend for etcd v3 (3.4 and later), over its JSON gateway.

URLs ``etcd+http(s)://[user:password@]host:port[,host:port...]?prefix=confstore/&timeout=5``;
see ``EtcdConfigStore`` for the options and the write protocol. ``confstore_etcd.cluster``
starts throwaway local clusters for tests.
"""

from ._store import EtcdConfigStore as EtcdConfigStore

__version__ = "0.1.0"

__all__ = ["EtcdConfigStore", "__version__"]
