"""An in-process Vespa 8 emulator for tests and benchmarks (not imported by the store itself).

``VespaEmulator`` serves ``/document/v1`` and ``/state/v1`` on 127.0.0.1 following the documented
Vespa behaviour, with fault injection and a request log; see ``_server`` for the rules it keeps.
"""

from confstore.emulation import sequential_rounds as sequential_rounds

from ._server import DEFAULT_SCHEMA as DEFAULT_SCHEMA
from ._server import DEFAULT_VERSION as DEFAULT_VERSION
from ._server import FaultRule as FaultRule
from ._server import LoggedRequest as LoggedRequest
from ._server import VespaEmulator as VespaEmulator
from ._server import bucket_of as bucket_of

__all__ = [
    "DEFAULT_SCHEMA",
    "DEFAULT_VERSION",
    "FaultRule",
    "LoggedRequest",
    "VespaEmulator",
    "bucket_of",
    "sequential_rounds",
]
