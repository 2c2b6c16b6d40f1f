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


def export_layout(entries: list[Any], newline: str = "\n") -> str:
    """A document laid out as ``write_export`` writes it: one entry per line."""
    header = json.dumps({"format": "confstore-export", "format_version": 1}, indent=2)
    lines = [f"    {json.dumps(item, ensure_ascii=False)}" for item in entries]
    text = header[: -len("\n}")] + ',\n  "configs": [\n' + ",\n".join(lines) + "\n  ]\n}\n"
    return text.replace("\n", newline)


def outcome(text: str, cuts: list[int], *, by_lines: bool) -> object:
    """The entries and header a parser reads from ``text`` fed in pieces, or its error."""
    parser = ExportDocumentParser()
    parser._by_lines = by_lines
    entries: list[Any] = []
    start = 0
    try:
        for cut in [*sorted(cuts), len(text)]:
            entries += parser.feed(text[start:cut])
            start = cut
        entries += parser.finish()
    except ImportFormatError as exc:
        return str(exc)
    return entries, parser.header


@settings(max_examples=150, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=30),
    cuts=st.lists(st.integers(min_value=0, max_value=6000), max_size=6),
    damage=st.none() | st.tuples(st.integers(min_value=0), st.sampled_from(list('x,{}[]"\n :0'))),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_an_export_read_a_run_of_lines_at_a_time_gives_the_same_entries_and_errors(
    count: int, cuts: list[int], damage: tuple[int, str] | None, newline: str
) -> None:
    text = export_layout([entry(version) for version in range(1, count + 1)], newline)
    if damage is not None:
        at = damage[0] % len(text)
        text = text[:at] + damage[1] + text[at + 1 :]
    cuts = [min(cut, len(text)) for cut in cuts]
    assert outcome(text, cuts, by_lines=True) == outcome(text, cuts, by_lines=False)


def test_an_export_is_decoded_a_run_of_lines_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from confstore import _export_reader

    calls: list[int] = []

    def counting_decode(text: str, start: int = 0) -> tuple[Any, int]:
        calls.append(start)
        return json.JSONDecoder().raw_decode(text, start)

    monkeypatch.setattr(_export_reader, "_decode", counting_decode)
    entries = [entry(version, note="a line\nbreak, escaped") for version in range(1, 501)]
    parser = ExportDocumentParser()
    read = parser.feed(export_layout(entries)) + parser.finish()
    assert read == entries
    assert len(calls) < 10


# Entries whose text holds what a boundary guess could trip on: nested objects at deeper
# indentation, lists of objects (at indent 0 their lines look like entries' lines), "},"
# and line breaks inside strings; and entries that are not objects.
TRICKY_ENTRIES: list[Any] = [
    entry(1),
    entry(2, nested={"a": {"b": [1, {"c": "x"}]}}, after=True),
    entry(3, items=[{"k": 1}, {"k": [{"deeper": {}}]}]),
    entry(4, text='},\n    {"version": 9},\r\n\t{', empty={}, none=None),
    7,
    "a string entry",
    [entry(5)],
    None,
    {},
]


def indented(entries: list[Any], indent: int | str | None, newline: str = "\n") -> str:
    """``entries`` as ``json.dump(document, f, indent=indent)`` writes a document."""
    document = {"format": "confstore-export", "format_version": 1, "configs": entries}
    return json.dumps(document, indent=indent, ensure_ascii=False).replace("\n", newline)


@settings(max_examples=200, deadline=None)
@given(
    entries=st.lists(st.sampled_from(TRICKY_ENTRIES), max_size=25),
    indent=st.sampled_from([0, 1, 2, 4, "\t", " \t"]),
    newline=st.sampled_from(["\n", "\r\n"]),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
    damage=st.none()
    | st.tuples(st.integers(min_value=0), st.sampled_from(list('x,{}[]"\n\r\t :0'))),
)
def test_an_indented_document_read_in_runs_gives_the_same_entries_and_errors(
    entries: list[Any],
    indent: int | str,
    newline: str,
    cuts: list[int],
    damage: tuple[int, str] | None,
) -> None:
    text = indented(entries, indent, newline)
    if damage is not None:
        at = damage[0] % len(text)
        text = text[:at] + damage[1] + text[at + 1 :]
    cuts = [cut % (len(text) + 1) for cut in cuts]
    assert outcome(text, cuts, by_lines=True) == outcome(text, cuts, by_lines=False)
    if damage is None:
        assert outcome(text, cuts, by_lines=True) == (
            entries,
            {"format": "confstore-export", "format_version": 1},
        )


@pytest.mark.parametrize("indent", [2, "\t"])
def test_an_indented_document_cut_at_every_position_reads_the_same(indent: int | str) -> None:
    text = indented(TRICKY_ENTRIES, indent, "\r\n")
    expected = outcome(text, [], by_lines=False)
    assert isinstance(expected, tuple)
    assert expected[0] == TRICKY_ENTRIES
    for cut in range(len(text) + 1):
        assert outcome(text, [cut], by_lines=True) == expected


def counted_decodes(monkeypatch: pytest.MonkeyPatch, text: str) -> tuple[list[Any], int]:
    """The entries a parser reads from ``text`` fed in pieces of 4096 characters, and how many
    ``json`` decode calls it made."""
    from confstore import _export_reader

    calls: list[int] = []

    def counting_decode(text: str, start: int = 0) -> tuple[Any, int]:
        calls.append(start)
        return json.JSONDecoder().raw_decode(text, start)

    monkeypatch.setattr(_export_reader, "_decode", counting_decode)
    parser = ExportDocumentParser()
    read: list[Any] = []
    for start in range(0, len(text), 4096):
        read += parser.feed(text[start : start + 4096])
    return read + parser.finish(), len(calls)


@pytest.mark.parametrize(
    ("indent", "newline"), [(2, "\n"), (4, "\r\n"), ("\t", "\n"), ("\t", "\r\n")]
)
def test_an_indented_document_is_decoded_a_run_of_entries_per_call(
    monkeypatch: pytest.MonkeyPatch, indent: int | str, newline: str
) -> None:
    entries = [entry(version, nested={"a": [{"b": version}]}) for version in range(1, 301)]
    text = indented(entries, indent, newline)
    read, calls = counted_decodes(monkeypatch, text)
    assert read == entries
    pieces = len(text) // 4096 + 1
    assert calls <= 3 * pieces + 10  # per piece: a run, and at most two tries at its last entry
    assert calls < len(entries) / 2


def test_a_layout_whose_lines_mislead_the_runs_is_read_entry_by_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # At indent 0 a list of objects inside a value starts lines as entries do: a run cut
    # there fails to decode once, and the rest is read entry by entry.
    entries = [entry(version, items=[{"k": 1}, {"k": 2}]) for version in range(1, 40)]
    text = indented(entries, 0)
    parser = ExportDocumentParser()
    assert parser.feed(text) + parser.finish() == entries
    assert parser._by_lines is False


def test_entries_that_start_no_line_cost_one_look_per_piece(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Read step by step: without a look per entry at the line each one starts.
    looks: list[int] = []
    entry_start_at = ExportDocumentParser._entry_start_at

    def counting(parser: ExportDocumentParser, position: int) -> str | None:
        looks.append(position)
        return entry_start_at(parser, position)

    monkeypatch.setattr(ExportDocumentParser, "_entry_start_at", counting)
    numbers = list(range(5000))
    read, _ = counted_decodes(monkeypatch, json.dumps(numbers))
    assert read == numbers
    assert len(looks) <= len(json.dumps(numbers)) // 4096 + 2
