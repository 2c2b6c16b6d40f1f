"""The emulator's engine: indices, strict mappings, real-time documents and refreshed search state.

Pure in-memory logic with no HTTP; ``emulator.py`` puts the REST API (its docstring lists the rules)
on top of it. Every refusal is an ``EsError`` carrying the status, error type and reason that
Elasticsearch (or OpenSearch) would answer with.
"""

from __future__ import annotations

import functools
import itertools
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_TERM_BYTES = 32766
MAX_RESULT_WINDOW = 10000
DEFAULT_TRACK_TOTAL_HITS = 10000
_FIELD_TYPES = frozenset(
    {"keyword", "text", "long", "integer", "short", "double", "float", "boolean", "date", "object"}
)
_NUMERIC = frozenset({"long", "integer", "short", "double", "float"})
_SEARCH_KEYS = frozenset(
    {
        "query",
        "sort",
        "size",
        "from",
        "search_after",
        "track_total_hits",
        "aggs",
        "aggregations",
        "_source",
        "seq_no_primary_term",
        "version",
        "timeout",
    }
)


class EsError(Exception):
    """A refusal, rendered as the error envelope ``{"error": {"root_cause": [...], ...}, "status"}``."""

    def __init__(self, status: int, error_type: str, reason: str, **metadata: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.metadata = metadata

    def cause(self) -> dict[str, Any]:
        return {"type": self.error_type, "reason": self.reason, **self.metadata}

    def body(self) -> dict[str, Any]:
        return {"error": {"root_cause": [self.cause()], **self.cause()}, "status": self.status}


def parsing_error(reason: str) -> EsError:
    return EsError(400, "parsing_exception", reason, line=1, col=1)


def illegal_argument(reason: str) -> EsError:
    return EsError(400, "illegal_argument_exception", reason)


def index_not_found(name: str) -> EsError:
    return EsError(
        404,
        "index_not_found_exception",
        f"no such index [{name}]",
        **{"resource.type": "index_or_alias", "resource.id": name},
        index_uuid="_na_",
        index=name,
    )


@dataclass(frozen=True, slots=True)
class StoredDoc:
    """One document as of one operation; replaced, never changed."""

    doc_id: str
    source: dict[str, Any]
    version: int
    seq_no: int
    primary_term: int = 1


@dataclass
class Index:
    """One index with one shard: live documents (real-time GET) and the refreshed view (search)."""

    name: str
    mappings: dict[str, Any]
    flavor: str
    settings: dict[str, Any] = field(default_factory=dict)
    uuid: str = field(default_factory=lambda: uuid.uuid4().hex[:22])
    docs: dict[str, StoredDoc] = field(default_factory=dict)
    visible: dict[str, StoredDoc] = field(default_factory=dict)
    versions_of_deleted: dict[str, int] = field(default_factory=dict)
    next_seq_no: int = 0

    def __post_init__(self) -> None:
        check_mappings(self.mappings, self.flavor)

    def refresh(self) -> None:
        self.visible = dict(self.docs)

    def conflict(self, doc_id: str, reason: str) -> EsError:
        return EsError(
            409,
            "version_conflict_engine_exception",
            f"[{doc_id}]: version conflict, {reason}",
            index_uuid=self.uuid,
            shard="0",
            index=self.name,
        )

    def write(
        self,
        doc_id: str,
        source: Any,
        *,
        create: bool,
        if_seq_no: int | None = None,
        if_primary_term: int | None = None,
    ) -> tuple[StoredDoc, str]:
        """Index or create a document; returns it and ``created`` or ``updated``."""
        validate_document(self, source)
        current = self.docs.get(doc_id)
        if create and current is not None:
            raise self.conflict(
                doc_id, f"document already exists (current version [{current.version}])"
            )
        self._check_cas(doc_id, current, if_seq_no, if_primary_term)
        if current is not None:
            version = current.version + 1
        else:
            version = self.versions_of_deleted.pop(doc_id, 0) + 1
        stored = StoredDoc(doc_id, source, version, self._take_seq_no())
        self.docs[doc_id] = stored
        return stored, "created" if current is None else "updated"

    def delete(
        self, doc_id: str, *, if_seq_no: int | None = None, if_primary_term: int | None = None
    ) -> tuple[int, int, bool]:
        """Delete a document; returns (version, seq_no, found)."""
        current = self.docs.get(doc_id)
        self._check_cas(doc_id, current, if_seq_no, if_primary_term)
        seq_no = self._take_seq_no()
        if current is None:
            return self.versions_of_deleted.get(doc_id, 0) + 1, seq_no, False
        del self.docs[doc_id]
        self.versions_of_deleted[doc_id] = current.version + 1
        return current.version + 1, seq_no, True

    def search_view(self, realtime: bool) -> Mapping[str, StoredDoc]:
        return self.docs if realtime else self.visible

    def field_mapping(self, path: str) -> dict[str, Any] | None:
        properties: dict[str, Any] = self.mappings.get("properties", {})
        parts = path.split(".")
        for position, part in enumerate(parts):
            spec = properties.get(part)
            if spec is None:
                return None
            if position == len(parts) - 1:
                return dict(spec)
            properties = spec.get("properties", {})
        return None

    def _check_cas(
        self,
        doc_id: str,
        current: StoredDoc | None,
        if_seq_no: int | None,
        if_primary_term: int | None,
    ) -> None:
        if if_seq_no is None and if_primary_term is None:
            return
        if if_seq_no is None or if_primary_term is None:
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: ifSeqNo is unassigned or ifPrimaryTerm is unassigned;",
            )
        required = f"required seqNo [{if_seq_no}], primary term [{if_primary_term}]."
        if current is None:
            raise self.conflict(doc_id, f"{required} but no document was found")
        if current.seq_no != if_seq_no or current.primary_term != if_primary_term:
            raise self.conflict(
                doc_id,
                f"{required} current document has seqNo [{current.seq_no}] "
                f"and primary term [{current.primary_term}]",
            )

    def _take_seq_no(self) -> int:
        seq_no = self.next_seq_no
        self.next_seq_no += 1
        return seq_no


def check_mappings(mappings: Mapping[str, Any], flavor: str) -> None:
    """Refuse field types this flavour does not know (flattened is ES only, flat_object OpenSearch)."""
    if not isinstance(mappings, Mapping):
        raise EsError(400, "mapper_parsing_exception", "Failed to parse mapping: not an object")
    dynamic = mappings.get("dynamic", True)
    if dynamic not in (True, False, "true", "false", "strict", "runtime"):
        raise EsError(
            400,
            "mapper_parsing_exception",
            f"Failed to parse mapping: unknown dynamic value [{dynamic}]",
        )
    for name, spec in mappings.get("properties", {}).items():
        if not isinstance(spec, Mapping):
            raise EsError(400, "mapper_parsing_exception", f"Expected map for property [{name}]")
        field_type = spec.get("type", "object" if "properties" in spec else None)
        known = _FIELD_TYPES | {"flattened" if flavor == "elasticsearch" else "flat_object"}
        if field_type not in known:
            raise EsError(
                400,
                "mapper_parsing_exception",
                f"Failed to parse mapping: No handler for type [{field_type}] declared on field [{name}]",
            )
        if field_type == "object" and "properties" in spec:
            check_mappings(spec, flavor)


def _parse_failure(index: Index, message: str) -> EsError:
    error_type = (
        "document_parsing_exception"
        if index.flavor == "elasticsearch"
        else "mapper_parsing_exception"
    )
    return EsError(400, error_type, message)


def validate_document(index: Index, source: Any) -> None:
    """Apply the mapping: strict fields, value types, the immense-term limit."""
    if not isinstance(source, dict):
        raise _parse_failure(index, "failed to parse: the document must be a JSON object")
    _validate_object(index, index.mappings, source, "_doc", index.mappings.get("dynamic", True))


def _validate_object(
    index: Index, spec: Mapping[str, Any], source: Mapping[str, Any], where: str, dynamic: Any
) -> None:
    properties = spec.get("properties", {})
    dynamic = spec.get("dynamic", dynamic)
    for name, value in source.items():
        field_spec = properties.get(name)
        if field_spec is None:
            if dynamic == "strict":
                raise EsError(
                    400,
                    "strict_dynamic_mapping_exception",
                    f"mapping set to strict, dynamic introduction of [{name}] within [{where}] is not allowed",
                )
            continue
        path = name if where == "_doc" else f"{where}.{name}"
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is not None:
                _validate_value(index, field_spec, item, path, dynamic)


def _validate_value(
    index: Index, spec: Mapping[str, Any], value: Any, path: str, dynamic: Any
) -> None:
    field_type = spec.get("type", "object")
    failure = _parse_failure(index, f"failed to parse field [{path}] of type [{field_type}]")
    if field_type == "keyword":
        if isinstance(value, dict | list):
            raise failure
        text = value if isinstance(value, str) else json_scalar(value)
        indexed = spec.get("index", True) or spec.get("doc_values", True)
        ignore_above = spec.get("ignore_above")
        too_long_to_index = ignore_above is not None and len(text) > ignore_above
        if indexed and not too_long_to_index and len(text.encode()) > MAX_TERM_BYTES:
            raise _parse_failure(
                index,
                f'Document contains at least one immense term in field="{path}" '
                f"(whose UTF8 encoding is longer than the max length {MAX_TERM_BYTES})",
            )
    elif field_type in _NUMERIC:
        if isinstance(value, bool) or not _is_number(value):
            raise failure
    elif field_type == "boolean":
        if value not in (True, False, "true", "false"):
            raise failure
    elif field_type == "date":
        if _date_millis(value) is None:
            raise failure
    elif field_type == "text":
        if not isinstance(value, str):
            raise failure
    elif field_type in ("flattened", "flat_object"):
        if not isinstance(value, dict):
            raise failure
    elif field_type == "object" and spec.get("enabled", True):
        if not isinstance(value, dict):
            raise _parse_failure(
                index,
                f"object mapping for [{path}] tried to parse field [{path}] as object, "
                "but found a concrete value",
            )
        _validate_object(index, spec, value, path, dynamic)


def json_scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _is_number(value: Any) -> bool:
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _date_millis(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None
    return None


def field_values(source: Mapping[str, Any], path: str) -> list[Any]:
    """Every value at a dotted path (arrays flattened); empty when absent."""
    current: list[Any] = [source]
    for part in path.split("."):
        found: list[Any] = []
        for item in current:
            if isinstance(item, Mapping) and part in item:
                value = item[part]
                found.extend(value if isinstance(value, list) else [value])
        current = found
    return [value for value in current if value is not None]


def _normalise(spec: Mapping[str, Any] | None, value: Any) -> Any:
    """A value as the index compares it: keyword as text, numbers as numbers, dates as millis."""
    field_type = (spec or {}).get("type", "keyword")
    if field_type in _NUMERIC:
        return float(value) if isinstance(value, str) else value
    if field_type == "boolean":
        return value in (True, "true")
    if field_type == "date":
        return _date_millis(value)
    if isinstance(value, str):
        return value
    return json_scalar(value)


def _searchable(index: Index, path: str) -> dict[str, Any] | None:
    """The mapping of a field that term-level queries can match, or None (no match)."""
    spec = index.field_mapping(path)
    if spec is None:
        return None
    field_type = spec.get("type", "object")
    if field_type == "object" or spec.get("index", True) is False:
        return None
    return spec


Matcher = Callable[[StoredDoc], bool]


def compile_query(index: Index, query: Any) -> Matcher:
    """A predicate for the query DSL subset: bool, term, terms, range, prefix, exists, ids, match_all."""
    if query is None:
        return lambda doc: True
    if not isinstance(query, dict) or len(query) != 1:
        raise parsing_error("query malformed, must start with a single query name")
    ((kind, body),) = query.items()
    compilers: dict[str, Callable[[Index, Any], Matcher]] = {
        "match_all": lambda _index, _body: lambda doc: True,
        "match_none": lambda _index, _body: lambda doc: False,
        "bool": _compile_bool,
        "term": _compile_term,
        "terms": _compile_terms,
        "range": _compile_range,
        "prefix": _compile_prefix,
        "exists": _compile_exists,
        "ids": _compile_ids,
    }
    compiler = compilers.get(kind)
    if compiler is None:
        raise parsing_error(f"unknown query [{kind}]")
    if not isinstance(body, dict):
        raise parsing_error(f"[{kind}] query malformed, no start_object after query name")
    return compiler(index, body)


def _clauses(index: Index, body: Mapping[str, Any], occur: str) -> list[Matcher]:
    raw = body.get(occur, [])
    items = raw if isinstance(raw, list) else [raw]
    return [compile_query(index, item) for item in items]


def _compile_bool(index: Index, body: dict[str, Any]) -> Matcher:
    unknown = set(body) - {"must", "filter", "should", "must_not", "minimum_should_match", "boost"}
    if unknown:
        raise parsing_error(f"[bool] query does not support [{sorted(unknown)[0]}]")
    required = _clauses(index, body, "must") + _clauses(index, body, "filter")
    should = _clauses(index, body, "should")
    excluded = _clauses(index, body, "must_not")
    minimum = int(body.get("minimum_should_match", 0 if required else 1 if should else 0))

    def matches(doc: StoredDoc) -> bool:
        if not all(clause(doc) for clause in required):
            return False
        if any(clause(doc) for clause in excluded):
            return False
        return sum(1 for clause in should if clause(doc)) >= minimum

    return matches


def _single_field(kind: str, body: dict[str, Any]) -> tuple[str, Any]:
    fields = [name for name in body if name != "boost"]
    if len(fields) != 1:
        raise parsing_error(f"[{kind}] query doesn't support multiple fields")
    return fields[0], body[fields[0]]


def _compile_term(index: Index, body: dict[str, Any]) -> Matcher:
    path, spec_value = _single_field("term", body)
    value = spec_value.get("value") if isinstance(spec_value, dict) else spec_value
    spec = _searchable(index, path)
    if spec is None:
        return lambda doc: False
    wanted = _normalise(spec, value)
    return lambda doc: any(_normalise(spec, v) == wanted for v in field_values(doc.source, path))


def _compile_terms(index: Index, body: dict[str, Any]) -> Matcher:
    path, values = _single_field("terms", body)
    if not isinstance(values, list):
        raise parsing_error("[terms] query does not support a non-array value")
    spec = _searchable(index, path)
    if spec is None:
        return lambda doc: False
    wanted = {_normalise(spec, value) for value in values}
    return lambda doc: any(_normalise(spec, v) in wanted for v in field_values(doc.source, path))


def _compile_range(index: Index, body: dict[str, Any]) -> Matcher:
    path, bounds = _single_field("range", body)
    if not isinstance(bounds, dict):
        raise parsing_error("[range] query malformed, no start_object after field name")
    spec = _searchable(index, path)
    if spec is None:
        return lambda doc: False
    checks: list[Callable[[Any], bool]] = []
    for operator, bound in bounds.items():
        if operator in ("format", "boost", "time_zone"):
            continue
        limit = _normalise(spec, bound)
        tests: dict[str, Callable[[Any], bool]] = {
            "gt": functools.partial(lambda lim, v: v > lim, limit),
            "gte": functools.partial(lambda lim, v: v >= lim, limit),
            "lt": functools.partial(lambda lim, v: v < lim, limit),
            "lte": functools.partial(lambda lim, v: v <= lim, limit),
        }
        if operator not in tests:
            raise parsing_error(f"[range] query does not support [{operator}]")
        checks.append(tests[operator])
    return lambda doc: any(
        all(check(_normalise(spec, v)) for check in checks) for v in field_values(doc.source, path)
    )


def _compile_prefix(index: Index, body: dict[str, Any]) -> Matcher:
    path, spec_value = _single_field("prefix", body)
    prefix = spec_value.get("value") if isinstance(spec_value, dict) else spec_value
    if not isinstance(prefix, str):
        raise parsing_error("[prefix] query requires a string value")
    spec = _searchable(index, path)
    if spec is None:
        return lambda doc: False
    return lambda doc: any(
        str(_normalise(spec, v)).startswith(prefix) for v in field_values(doc.source, path)
    )


def _compile_exists(index: Index, body: dict[str, Any]) -> Matcher:
    path = body.get("field")
    if not isinstance(path, str):
        raise parsing_error("[exists] must be provided with a [field]")
    return lambda doc: bool(field_values(doc.source, path))


def _compile_ids(index: Index, body: dict[str, Any]) -> Matcher:
    values = body.get("values")
    if not isinstance(values, list):
        raise parsing_error("[ids] query requires [values] as an array")
    wanted = {str(value) for value in values}
    return lambda doc: doc.doc_id in wanted


@dataclass(frozen=True, slots=True)
class SortField:
    path: str
    descending: bool
    spec: dict[str, Any] | None


def parse_sort(index: Index, sort: Any) -> list[SortField]:
    """The sort array: field names or ``{field: "asc"|"desc"|{"order": ...}}``; refuses what ES refuses."""
    items = sort if isinstance(sort, list) else [sort]
    fields = []
    for item in items:
        if isinstance(item, str):
            path, order = item, "desc" if item == "_score" else "asc"
        elif isinstance(item, dict) and len(item) == 1:
            ((path, how),) = item.items()
            order = how.get("order", "asc") if isinstance(how, dict) else how
        else:
            raise parsing_error("malformed sort format")
        if order not in ("asc", "desc"):
            raise illegal_argument(f"Unknown SortOrder [{order}]")
        fields.append(SortField(path, order == "desc", _sortable(index, path)))
    return fields


def _sortable(index: Index, path: str) -> dict[str, Any] | None:
    if path in ("_doc", "_score"):
        return None
    if path == "_id":
        raise illegal_argument(
            "Fielddata access on the _id field is disallowed, "
            "you can re-enable it by updating the dynamic cluster setting: indices.id_field_data.enabled"
        )
    spec = index.field_mapping(path)
    if spec is None:
        raise EsError(
            400, "query_shard_exception", f"No mapping found for [{path}] in order to sort on"
        )
    field_type = spec.get("type", "object")
    if field_type in ("text", "object", "flattened", "flat_object") or not spec.get(
        "doc_values", True
    ):
        raise illegal_argument(
            f"Can't load fielddata on [{path}] because fielddata is unsupported on fields of "
            f"type [{field_type}]. Use a field with doc values instead."
        )
    return spec


def sort_values(doc: StoredDoc, order: int, fields: list[SortField]) -> list[Any]:
    values: list[Any] = []
    for sort_field in fields:
        if sort_field.path == "_doc":
            values.append(order)
        elif sort_field.path == "_score":
            values.append(1.0)
        else:
            found = [
                _normalise(sort_field.spec, v) for v in field_values(doc.source, sort_field.path)
            ]
            if not found:
                values.append(None)
            else:
                chosen = max(found) if sort_field.descending else min(found)
                field_type = (sort_field.spec or {}).get("type")
                values.append(int(chosen) if field_type == "boolean" else chosen)
    return values


def compare_sort(fields: list[SortField], left: list[Any], right: list[Any]) -> int:
    """Compare two sort-value arrays; missing values sort last in either direction."""
    for sort_field, a, b in zip(fields, left, right, strict=True):
        if a == b:
            continue
        if a is None:
            return 1
        if b is None:
            return -1
        try:
            less = a < b
        except TypeError as exc:
            raise illegal_argument(
                f"search_after value [{b}] does not fit field [{sort_field.path}]"
            ) from exc
        result = -1 if less else 1
        return -result if sort_field.descending else result
    return 0


def run_search(index: Index, body: Mapping[str, Any]) -> dict[str, Any]:
    """A search over the refreshed view: query, sort, search_after, paging, totals, aggregations."""
    unknown = set(body) - _SEARCH_KEYS
    if unknown:
        raise parsing_error(f"Unknown key for a START_OBJECT in [{sorted(unknown)[0]}].")
    matcher = compile_query(index, body.get("query"))
    size = _int_param(body.get("size", 10), "size")
    start = _int_param(body.get("from", 0), "from", minimum=-1)
    if start + size > MAX_RESULT_WINDOW:
        raise illegal_argument(
            f"Result window is too large, from + size must be less than or equal to: "
            f"[{MAX_RESULT_WINDOW}] but was [{start + size}]."
        )
    matched = [
        (position, doc) for position, doc in enumerate(index.visible.values()) if matcher(doc)
    ]
    sort = body.get("sort")
    fields = parse_sort(index, sort) if sort is not None else []
    keyed = [(sort_values(doc, position, fields), doc) for position, doc in matched]
    if fields:

        def by_sort_values(
            left: tuple[list[Any], StoredDoc], right: tuple[list[Any], StoredDoc]
        ) -> int:
            return compare_sort(fields, left[0], right[0])

        keyed.sort(key=functools.cmp_to_key(by_sort_values))
    search_after = body.get("search_after")
    if search_after is not None:
        if not fields:
            raise illegal_argument("[search_after] requires a [sort]")
        if not isinstance(search_after, list) or len(search_after) != len(fields):
            raise illegal_argument(
                "search_after has "
                f"{len(search_after) if isinstance(search_after, list) else 0} value(s) "
                f"but sort has {len(fields)}."
            )
        if start > 0:
            raise illegal_argument("[from] parameter must be set to 0 when [search_after] is used")
        keyed = [item for item in keyed if compare_sort(fields, item[0], search_after) > 0]
    page = keyed[max(start, 0) : max(start, 0) + size]
    hits = [_hit(index, doc, values if fields else None, body) for values, doc in page]
    result: dict[str, Any] = {
        "took": 1,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"max_score": None if fields else (1.0 if hits else None), "hits": hits},
    }
    total = _total(len(matched), body.get("track_total_hits", DEFAULT_TRACK_TOTAL_HITS))
    if total is not None:
        result["hits"]["total"] = total
    aggs = body.get("aggs", body.get("aggregations"))
    if aggs is not None:
        result["aggregations"] = run_aggregations(index, aggs, [doc for _, doc in matched])
    return result


def _int_param(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise illegal_argument(f"[{name}] parameter cannot be negative, found [{value}]")
    return value


def _total(count: int, track: Any) -> dict[str, Any] | None:
    if track is False:
        return None
    if track is True:
        return {"value": count, "relation": "eq"}
    limit = int(track)
    if count > limit:
        return {"value": limit, "relation": "gte"}
    return {"value": count, "relation": "eq"}


def _hit(
    index: Index, doc: StoredDoc, values: list[Any] | None, body: Mapping[str, Any]
) -> dict[str, Any]:
    hit: dict[str, Any] = {
        "_index": index.name,
        "_id": doc.doc_id,
        "_score": None if values else 1.0,
    }
    if body.get("version"):
        hit["_version"] = doc.version
    if body.get("seq_no_primary_term"):
        hit["_seq_no"] = doc.seq_no
        hit["_primary_term"] = doc.primary_term
    if body.get("_source", True) is not False:
        hit["_source"] = doc.source
    if values is not None:
        hit["sort"] = values
    return hit


def run_aggregations(index: Index, aggs: Any, docs: list[StoredDoc]) -> dict[str, Any]:
    """terms, composite (terms sources), cardinality (exact here), min, max, value_count."""
    if not isinstance(aggs, dict):
        raise parsing_error("Expected [START_OBJECT] under [aggregations]")
    results = {}
    for name, definition in aggs.items():
        kinds = [key for key in definition if key not in ("meta",)]
        if len(kinds) != 1:
            raise parsing_error(f"Expected exactly one aggregation type for [{name}]")
        kind = kinds[0]
        handlers: dict[str, Callable[[Index, dict[str, Any], list[StoredDoc]], dict[str, Any]]] = {
            "terms": _terms_aggregation,
            "composite": _composite_aggregation,
            "cardinality": _cardinality_aggregation,
            "min": functools.partial(_metric_aggregation, min),
            "max": functools.partial(_metric_aggregation, max),
            "value_count": _value_count_aggregation,
        }
        handler = handlers.get(kind)
        if handler is None:
            raise EsError(
                400, "x_content_parse_exception", f"Unknown aggregation type [{kind}] for [{name}]"
            )
        results[name] = handler(index, definition[kind], docs)
    return results


def _aggregatable(index: Index, definition: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    path = definition.get("field")
    if not isinstance(path, str):
        raise illegal_argument("Required [field]")
    spec = _sortable(index, path)
    return path, spec or {}


def _bucket_key(spec: Mapping[str, Any], value: Any) -> Any:
    normalised = _normalise(spec, value)
    if spec.get("type") == "boolean":
        return 1 if normalised else 0
    return normalised


def _doc_keys(spec: Mapping[str, Any], doc: StoredDoc, path: str) -> set[Any]:
    return {_bucket_key(spec, value) for value in field_values(doc.source, path)}


def _terms_aggregation(
    index: Index, definition: dict[str, Any], docs: list[StoredDoc]
) -> dict[str, Any]:
    path, spec = _aggregatable(index, definition)
    size = int(definition.get("size", 10))
    counts: dict[Any, int] = {}
    for doc in docs:
        for key in _doc_keys(spec, doc, path):
            counts[key] = counts.get(key, 0) + 1
    order = definition.get("order", {"_count": "desc"})
    if order in ({"_key": "asc"}, {"_key": "desc"}):
        ranked = sorted(counts.items(), reverse=order["_key"] == "desc")
    else:
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = ranked[:size]
    return {
        "doc_count_error_upper_bound": 0,
        "sum_other_doc_count": sum(count for _, count in ranked[size:]),
        "buckets": [_bucket(spec, key, count) for key, count in kept],
    }


def _bucket(spec: Mapping[str, Any], key: Any, count: int) -> dict[str, Any]:
    bucket: dict[str, Any] = {"key": key, "doc_count": count}
    if spec.get("type") == "boolean":
        bucket["key_as_string"] = "true" if key else "false"
    return bucket


def _composite_aggregation(
    index: Index, definition: dict[str, Any], docs: list[StoredDoc]
) -> dict[str, Any]:
    sources = definition.get("sources")
    if not isinstance(sources, list) or not sources:
        raise illegal_argument("Composite [sources] cannot be null or empty")
    names_and_fields = []
    for source in sources:
        ((name, spec_body),) = source.items()
        if set(spec_body) != {"terms"}:
            raise illegal_argument(f"composite source [{name}] must be a terms source here")
        path, spec = _aggregatable(index, spec_body["terms"])
        names_and_fields.append((name, path, spec))
    counts: dict[tuple[Any, ...], int] = {}
    for doc in docs:
        per_source = [sorted(_doc_keys(spec, doc, path)) for _, path, spec in names_and_fields]
        for combination in itertools.product(*per_source):
            counts[combination] = counts.get(combination, 0) + 1
    ordered = sorted(counts.items())
    after = definition.get("after")
    if after is not None:
        after_tuple = tuple(after.get(name) for name, _, _ in names_and_fields)
        ordered = [item for item in ordered if item[0] > after_tuple]
    page = ordered[: int(definition.get("size", 10))]
    names = [name for name, _, _ in names_and_fields]
    buckets = [
        {"key": dict(zip(names, key, strict=True)), "doc_count": count} for key, count in page
    ]
    result: dict[str, Any] = {"buckets": buckets}
    if buckets:
        result["after_key"] = buckets[-1]["key"]
    return result


def _cardinality_aggregation(
    index: Index, definition: dict[str, Any], docs: list[StoredDoc]
) -> dict[str, Any]:
    path, spec = _aggregatable(index, definition)
    keys: set[Any] = set()
    for doc in docs:
        keys |= _doc_keys(spec, doc, path)
    return {"value": len(keys)}


def _metric_aggregation(
    pick: Callable[[Iterable[Any]], Any],
    index: Index,
    definition: dict[str, Any],
    docs: list[StoredDoc],
) -> dict[str, Any]:
    path, spec = _aggregatable(index, definition)
    values = [key for doc in docs for key in _doc_keys(spec, doc, path)]
    return {"value": float(pick(values)) if values else None}


def _value_count_aggregation(
    index: Index, definition: dict[str, Any], docs: list[StoredDoc]
) -> dict[str, Any]:
    path, _ = _aggregatable(index, definition)
    return {"value": sum(len(field_values(doc.source, path)) for doc in docs)}


def count(index: Index, body: Mapping[str, Any]) -> int:
    unknown = set(body) - {"query"}
    if unknown:
        raise parsing_error(f"request does not support [{sorted(unknown)[0]}]")
    matcher = compile_query(index, body.get("query"))
    return sum(1 for doc in index.visible.values() if matcher(doc))


def iter_matches(index: Index, query: Any) -> Iterator[StoredDoc]:
    """Refreshed documents matching ``query`` (delete-by-query's snapshot)."""
    matcher = compile_query(index, query)
    return iter([doc for doc in index.visible.values() if matcher(doc)])
