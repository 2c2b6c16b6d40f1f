"""confstore on any store with conditional writes: the document protocol, written once.

A backend on a document store (Vespa, Elasticsearch, MongoDB, DynamoDB, Redis, Firestore,
Cosmos DB...) implements the small set of primitives of ``DocumentStore`` (get a head, create a
record only if absent, compare-and-set a head, read versions, scan, delete by generation) and
subclasses ``DocumentConfigStore``, which keeps the whole ConfigStore contract on them: unique
versions for writers on any number of hosts, repair of a writer that died between its steps,
unknown outcomes resolved by reading back, purge, and the change feed. docs/writing-a-backend.md
walks through one.

``MemoryDocumentStore`` is the reference implementation of the primitives (in process memory);
``document_fields`` and ``head_from_fields``/``record_from_fields`` map heads and records to
flat documents and back; ``DEFAULT_CHANGE_WINDOW`` is the change feed's default re-scan window
(30 s; see ``_feed`` for why). ``PollBounds`` bounds the adaptive poll of ``wait_for_changes``
(``poll_min`` after a change, doubling while quiet up to ``poll_max``); ``PollBounds.from_options``
reads both from a store URL's options.
"""

from ._feed import DEFAULT_CHANGE_WINDOW as DEFAULT_CHANGE_WINDOW
from ._fields import SUMMARY_FIELDS as SUMMARY_FIELDS
from ._fields import document_fields as document_fields
from ._fields import head_from_fields as head_from_fields
from ._fields import key_from_fields as key_from_fields
from ._fields import record_from_fields as record_from_fields
from ._memory import MemoryDocumentStore as MemoryDocumentStore
from ._polling import PollBounds as PollBounds
from ._primitives import DocumentStore as DocumentStore
from ._primitives import Head as Head
from ._primitives import HeadQuery as HeadQuery
from ._primitives import Record as Record
from ._primitives import RecordKind as RecordKind
from ._primitives import WriteOutcome as WriteOutcome
from ._primitives import gather_bounded as gather_bounded
from ._protocol import DocumentConfigStore as DocumentConfigStore
from ._protocol import new_write_id as new_write_id

__all__ = [
    "DEFAULT_CHANGE_WINDOW",
    "SUMMARY_FIELDS",
    "DocumentConfigStore",
    "DocumentStore",
    "Head",
    "HeadQuery",
    "MemoryDocumentStore",
    "PollBounds",
    "Record",
    "RecordKind",
    "WriteOutcome",
    "document_fields",
    "gather_bounded",
    "head_from_fields",
    "key_from_fields",
    "new_write_id",
    "record_from_fields",
]
