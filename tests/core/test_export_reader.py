"""The incremental reader of export documents: same result as json.loads, in bounded memory."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confstore import ExportFileReader, ImportFormatError
from confstore._export_reader import ExportDocumentParser


def entry(version: int, **value: Any) -> dict[str, Any]:
    return {
        "tenant_id": "acme",
        "scope": "system",
        "service": "svc",
        "config_key": "key",
        "config_value": value or {"n": version},
        "version": version,
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-01T00:00:01+00:00",
    }


DOCUMENT = {
    "format": "confstore-export",
    "format_version": 1,
    "tenant_id": "acme",
    "include_history": True,
    "exported_at": "2026-01-02T00:00:00+00:00",
    "configs": [entry(1), entry(2, text='a "quoted", \\ back, [bracketed] {x} é ☃'), entry(3)],
}


def parse_in_pieces(text: str, cuts: list[int]) -> tuple[list[Any], dict[str, Any]]:
    parser = ExportDocumentParser()
    entries: list[Any] = []
    start = 0
    for cut in sorted(cuts):
        entries += parser.feed(text[start:cut])
        start = cut
    entries += parser.feed(text[start:])
    entries += parser.finish()
    return entries, parser.header


@settings(max_examples=60, deadline=None)
@given(
    indent=st.sampled_from([None, 0, 2]),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_any_split_of_a_document_reads_as_json_loads_does(
    indent: int | None, cuts: list[int]
) -> None:
    text = json.dumps(DOCUMENT, indent=indent, ensure_ascii=False)
    entries, header = parse_in_pieces(text, [min(cut, len(text)) for cut in cuts])
    assert entries == DOCUMENT["configs"]
    assert header == {key: value for key, value in DOCUMENT.items() if key != "configs"}


def test_every_single_character_split_reads_the_same() -> None:
    text = json.dumps(DOCUMENT, indent=1)
    for cut in range(len(text) + 1):
        assert parse_in_pieces(text, [cut])[0] == DOCUMENT["configs"]


@pytest.mark.parametrize(
    "document",
    [
        [entry(1), entry(2)],
        {"configs": [entry(1)], "tenant_id": "late"},
        {"configs": []},
        [],
    ],
    ids=["bare list", "configs first", "empty configs", "empty list"],
)
def test_other_accepted_shapes(document: Any) -> None:
    entries, header = parse_in_pieces(json.dumps(document), [5])
    assert entries == (document if isinstance(document, list) else document["configs"])
    if isinstance(document, dict):
        assert header == {key: value for key, value in document.items() if key != "configs"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "ends early"),
        ('{"configs": [', "ends early"),
        ('{"configs": [{"a": 1}', "ends early"),
        ('{"configs": []} trailing', "unexpected text"),
        ('{"configs": {}}', "needs a 'configs' list"),
        ('{"tenant_id": "x"}', "needs a 'configs' list"),
        ('{"configs": [], "configs": []}', "appears twice"),
        ('{"configs": [1 2]}', "expected ',' or ']'"),
        ('{"configs": [x]}', "expected a JSON value"),
        ('{"configs": [{"a": }]}', "invalid JSON"),
        ('"just a string"', "expected '{' or '['"),
        ("{configs: []}", "member name in double quotes"),
        ('{"format": "other", "configs": []}', "unknown format"),
        ('{"format": "confstore-export", "format_version": 9, "configs": []}', "format_version"),
        ('{"configs": [' + "[" * 100_000 + "]" * 100_000 + "]}", "nested too deeply"),
    ],
)
def test_malformed_documents_raise_import_format_error(text: str, message: str) -> None:
    with pytest.raises(ImportFormatError, match=re.escape(message)):
        parse_in_pieces(text, [len(text) // 2])


def test_a_wrong_format_is_refused_before_any_entry_is_read() -> None:
    parser = ExportDocumentParser()
    with pytest.raises(ImportFormatError, match="unknown format"):
        parser.feed('{"format": "other", "configs": [')


def test_errors_give_the_position_in_the_whole_document() -> None:
    text = json.dumps({"configs": [entry(1), entry(2)]}) + " garbage"
    with pytest.raises(ImportFormatError, match=f"at character {len(text) - 7} of the document"):
        parse_in_pieces(text, [10, 100, 200])


def test_an_entry_longer_than_the_bound_raises_instead_of_growing_the_buffer() -> None:
    parser = ExportDocumentParser(max_entry_characters=1000)
    parser.feed('{"configs": [{"config_value": "' + "x" * 900)

    def feed_forever() -> None:
        while True:
            parser.feed("x" * 500)

    with pytest.raises(ImportFormatError, match="invalid JSON"):
        feed_forever()
    assert len(parser._buffer) < 2000


def test_entries_come_out_as_soon_as_they_are_complete() -> None:
    parser = ExportDocumentParser()
    text = json.dumps({"configs": [entry(1), entry(2)]})
    second_entry_starts = text.index('{"tenant_id"', 20)
    assert parser.feed(text[: second_entry_starts + 5]) == [entry(1)]
    assert parser.feed(text[second_entry_starts + 5 :]) == [entry(2)]


async def test_the_file_reader_gives_the_header_then_the_entries() -> None:
    progress: list[int] = []
    source = io.StringIO(json.dumps(DOCUMENT))
    reader = ExportFileReader(source, on_progress=progress.append)
    header = await reader.read_header()
    assert header["tenant_id"] == "acme"
    assert [item async for item in reader.entries()] == DOCUMENT["configs"]
    assert progress[-1] == len(source.getvalue())
