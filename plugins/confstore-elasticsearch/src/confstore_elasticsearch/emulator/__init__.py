"""An in-process Elasticsearch / OpenSearch emulator for tests and benchmarks (not imported by
the store itself).

``ElasticsearchEmulator`` serves the REST API the store uses on 127.0.0.1 following the
documented server behaviour, with fault injection and a request log; see ``_server`` for the
rules it keeps and ``_engine`` for its in-memory indices.
"""

from confstore.emulation import sequential_rounds as sequential_rounds

from ._server import ElasticsearchEmulator as ElasticsearchEmulator
from ._server import FaultKind as FaultKind
from ._server import FaultRule as FaultRule
from ._server import Flavor as Flavor
from ._server import LoggedRequest as LoggedRequest

__all__ = [
    "ElasticsearchEmulator",
    "FaultKind",
    "FaultRule",
    "Flavor",
    "LoggedRequest",
    "sequential_rounds",
]
