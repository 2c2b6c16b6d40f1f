"""Reading an export document incrementally, in memory bounded by the largest entry.

``ExportDocumentParser`` is fed text in pieces and hands back each entry of ``configs`` as soon as
it is complete, keeping only the unparsed rest; the other top-level members (``format``,
``tenant_id``...) are collected in ``header``. ``read_export_entries`` drives it from a file.
Both accept what ``import_configs`` accepts: an export document, the original system's shape (a
mapping with ``configs`` and no ``format``) and a bare list of entries.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import IO, Any, Final, cast

from ._errors import ImportFormatError
from ._export import ParsedEntries, check_header

# Characters read from a file per step.
CHUNK_CHARACTERS: Final = 1 << 20
# No entry is longer than this as JSON text: a 1 MiB value written with \uXXXX escapes is 6 MiB.
DEFAULT_MAX_ENTRY_CHARACTERS: Final = 8 << 20

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SEPARATOR = re.compile(r"[ \t\n\r]*,")
_VALUE_STARTS = frozenset('{["-0123456789tfnNI')
_decode = json.JSONDecoder().raw_decode

# Parser states: what comes next.
_DOCUMENT = "document"  # the top-level object or list
_MEMBER = "member"  # a member name, or "}" (right after "{")
_COLON = "colon"
_VALUE = "value"  # a member's value
_AFTER_MEMBER = "after member"  # "," or "}"
_ENTRY = "entry"  # an entry, or "]" (right after "[")
_AFTER_ENTRY = "after entry"  # "," or "]"
_END = "end"


class ExportDocumentParser:
    """An incremental parser of an import document (see the module docstring).

    ``feed(text)`` returns the entries completed by ``text``; ``finish()`` says the input ended
    and returns the last ones. Anything that is not a well-formed document raises
    ImportFormatError with the character position; so does an entry longer than
    ``max_entry_characters`` (which bounds memory whatever the input).
    """

    def __init__(self, *, max_entry_characters: int = DEFAULT_MAX_ENTRY_CHARACTERS) -> None:
        self.max_entry_characters = max_entry_characters
        self.header: dict[str, Any] = {}
        self.entries_read = 0
        self.configs_seen = False
        self._buffer = ""
        self._position = 0
        self._discarded = 0  # characters dropped from the front of the buffer so far
        self._state = _DOCUMENT
        self._member = ""
        self._first = True
        self._top_is_list = False
        self._finished = False
        self._by_lines = True  # until a run of lines fails to decode (another layout)
        self._entry_start: str | None = None  # what starts an entry's line (see _line_run)
        self._lines_unread = False  # text came in since the last look for a run of lines

    @property
    def in_configs(self) -> bool:
        """True once the parser is inside the ``configs`` list (the header before it is known)."""
        return self._state in (_ENTRY, _AFTER_ENTRY)

    def feed(self, text: str) -> list[Any]:
        if self._finished:
            raise ValueError("feed() after finish()")
        self._drop_parsed()
        self._buffer += text
        self._lines_unread = True
        return self._parse()

    def _drop_parsed(self) -> None:
        """Drop the text before the position from the buffer."""
        if self._position:
            self._discarded += self._position
            self._buffer = self._buffer[self._position :]
            self._position = 0

    def finish(self) -> list[Any]:
        self._finished = True
        entries = self._parse()
        if self._state != _END:
            raise self._error("the document ends early")
        if not self.configs_seen:
            raise ImportFormatError("an import document needs a 'configs' list")
        check_header(self.header)
        return entries

    def _parse(self) -> list[Any]:
        entries: list[Any] = []
        step = {
            _DOCUMENT: self._document,
            _MEMBER: self._member_name,
            _COLON: self._colon,
            _VALUE: self._value,
            _AFTER_MEMBER: self._after_member,
            _ENTRY: self._entry,
            _AFTER_ENTRY: self._after_entry,
            _END: self._end,
        }
        while step[self._state](entries):
            pass
        return entries

    def _next_character(self) -> str | None:
        """Skip whitespace; the next character (not consumed), or None when more input is needed."""
        match = _WHITESPACE.match(self._buffer, self._position)
        assert match is not None  # it matches the empty string too
        self._position = match.end()
        if self._position < len(self._buffer):
            return self._buffer[self._position]
        return None

    def _expect(self, allowed: str) -> str | None:
        """Consume one of the ``allowed`` characters and return it; None: more input needed."""
        character = self._next_character()
        if character is None:
            if self._finished:
                raise self._error("the document ends early")
            return None
        if character not in allowed:
            wanted = " or ".join(repr(option) for option in allowed)
            raise self._error(f"expected {wanted}, found {character!r}")
        self._position += 1
        return character

    def _decoded(self) -> tuple[bool, Any]:
        """Decode the JSON value at the position: (True, value), or (False, None) when the value
        may continue past what was fed so far."""
        if self._next_character() is None:
            if self._finished:
                raise self._error("the document ends early")
            return False, None
        start = self._position
        if self._buffer[start] not in _VALUE_STARTS:
            raise self._error(f"expected a JSON value, found {self._buffer[start]!r}")
        try:
            value, end = _decode(self._buffer, start)
        except json.JSONDecodeError as exc:
            if not self._finished and len(self._buffer) - start <= self.max_entry_characters:
                return False, None
            if self._finished and (
                exc.pos >= len(self._buffer) - 1 or exc.msg.startswith("Unterminated")
            ):
                raise self._error("the document ends early", at=len(self._buffer)) from exc
            raise self._error(f"invalid JSON: {exc.msg}", at=exc.pos) from exc
        except RecursionError as exc:
            raise self._error("a value is nested too deeply") from exc
        except ValueError as exc:  # an integer of more digits than Python converts
            raise self._error(f"invalid JSON: {exc}") from exc
        if end == len(self._buffer) and not self._finished:
            return False, None  # a number may go on in the next piece
        if end - start > self.max_entry_characters:
            raise self._error(
                f"an entry is longer than {self.max_entry_characters} characters", at=start
            )
        self._position = end
        return True, value

    def _document(self, entries: list[Any]) -> bool:
        character = self._expect("{[")
        if character is None:
            return False
        self._first = True
        if character == "[":
            self._top_is_list = self.configs_seen = True
            self._state = _ENTRY
        else:
            self._state = _MEMBER
        return True

    def _member_name(self, entries: list[Any]) -> bool:
        if self._first and self._next_character() == "}":
            self._position += 1
            self._state = _END
            return True
        if self._next_character() not in (None, '"'):
            raise self._error("expected a member name in double quotes")
        done, name = self._decoded()
        if not done:
            return False
        self._member = name
        self._state = _COLON
        return True

    def _colon(self, entries: list[Any]) -> bool:
        if self._expect(":") is None:
            return False
        self._state = _VALUE
        return True

    def _value(self, entries: list[Any]) -> bool:
        if self._member == "configs":
            if self.configs_seen:
                raise self._error("'configs' appears twice")
            if self._next_character() not in (None, "["):
                raise ImportFormatError("an import document needs a 'configs' list")
            if self._expect("[") is None:
                return False
            self.configs_seen = True
            check_header(self.header)
            self._first = True
            self._state = _ENTRY
            return True
        done, value = self._decoded()
        if not done:
            return False
        self.header[self._member] = value
        self._state = _AFTER_MEMBER
        return True

    def _after_member(self, entries: list[Any]) -> bool:
        return self._after_item("}", _MEMBER, _END)

    def _entry(self, entries: list[Any]) -> bool:
        if self._first and self._next_character() == "]":
            self._position += 1
            self._first = False
            self._state = self._after_configs()
            return True
        if self._line_run(entries) or self._entry_run(entries):
            return True
        done, entry = self._decoded()
        if not done:
            return False
        entries.append(entry)
        self.entries_read += 1
        self._state = _AFTER_ENTRY
        return True

    def _line_run(self, entries: list[Any]) -> bool:
        """Decode every entry before the last line that starts an entry with one call; False if
        that text is not a run of entries each followed by a ",".

        A line break can only fall between JSON tokens (a string cannot hold one raw), and a
        line that holds the first entry's indentation and then "{" starts an entry in the
        layouts that write entries one per line (exports) or indented (``json.dump(...,
        indent=N)``, where an entry's own lines are indented deeper). So the text before the
        "," that ends the line before the last such line is whole entries, and ``[`` + that
        text + ``]`` is a list of them. Whatever the layout, a successful decode is exactly
        what the steps would read: JSON values are self-delimiting (a number ends at the ","
        after it), so a list of values parsed whole is the same values parsed one by one.
        Anything else (another layout, an error, a run longer than ``max_entry_characters``)
        is left to ``_entry_run`` and the steps, which say what is wrong. A run that fails to
        decode turns this off for the rest of the document, so a document of another layout
        costs one extra decode. It looks once per piece fed: after a run, what is left holds
        no entry start after a ",".
        """
        if not (self._by_lines and self._lines_unread):
            return False
        self._lines_unread = False
        buffer, position = self._buffer, self._position
        if self._entry_start is None:
            self._entry_start = self._entry_start_at(position)
            if self._entry_start is None:
                return False  # tried again with the next piece
        line = buffer.rfind(self._entry_start, position)
        comma = line - 2 if buffer[line - 1 : line] == "\r" else line - 1
        if line < 0 or not 0 < comma - position <= self.max_entry_characters:
            return False
        if buffer[comma] != ",":
            return False
        text = f"[{buffer[position:comma]}]"
        try:
            found, end = _decode(text)
        except (ValueError, RecursionError):
            found, end = [], 0
        if end != len(text) or not found:
            self._by_lines = False
            return False
        entries += found
        self.entries_read += len(found)
        self._first = False
        # What is left is at most an entry: a failed decode of it (the next step) counts the
        # line breaks before the failure, which must not include the megabyte just decoded.
        self._position = comma + 1
        self._drop_parsed()
        return True

    def _entry_start_at(self, position: int) -> str | None:
        """A line break, the indentation of the entry at ``position`` and its "{": the text
        that starts each entry of its layout; None if that entry is not an object alone at the
        start of its line (or its first character has not been fed yet)."""
        buffer = self._buffer
        start = cast(re.Match[str], _WHITESPACE.match(buffer, position)).end()
        line = buffer.rfind("\n", 0, start)
        indentation = buffer[line + 1 : start]
        if buffer[start : start + 1] != "{" or line < 0 or indentation.strip(" \t"):
            return None
        return f"\n{indentation}{{"

    def _entry_run(self, entries: list[Any]) -> bool:
        """Decode entries that are objects followed by a "," in one tight loop (the bulk of a
        document); False if there was none. Anything else (the last entry, one cut off by the
        end of the input, an error) is left to the steps, which say what is wrong."""
        buffer, position, count = self._buffer, self._position, 0
        skip_whitespace, separator = _WHITESPACE.match, _SEPARATOR.match
        while True:
            start = cast(re.Match[str], skip_whitespace(buffer, position)).end()
            if buffer[start : start + 1] != "{":
                break
            try:
                entry, end = _decode(buffer, start)
            except (ValueError, RecursionError):
                break
            after = separator(buffer, end)
            if after is None or end - start > self.max_entry_characters:
                break
            entries.append(entry)
            count += 1
            position = after.end()
        if count:
            self._position = position
            self.entries_read += count
            self._first = False
        return count > 0

    def _after_entry(self, entries: list[Any]) -> bool:
        return self._after_item("]", _ENTRY, self._after_configs())

    def _after_item(self, closer: str, next_item: str, after_closer: str) -> bool:
        """A "," (then ``next_item``) or ``closer`` (then ``after_closer``)."""
        character = self._expect("," + closer)
        if character is None:
            return False
        self._first = False
        self._state = next_item if character == "," else after_closer
        return True

    def _after_configs(self) -> str:
        return _END if self._top_is_list else _AFTER_MEMBER

    def _end(self, entries: list[Any]) -> bool:
        if self._next_character() is not None:
            raise self._error("unexpected text after the document")
        return False

    def _error(self, message: str, *, at: int | None = None) -> ImportFormatError:
        position = self._discarded + (self._position if at is None else at)
        return ImportFormatError(f"{message} (at character {position} of the document)")


class ExportFileReader:
    """An import document read from a text file in pieces, without blocking the event loop.

    ``await reader.read_header()`` reads until the ``configs`` list starts and returns the
    members seen before it; ``reader.entries()`` then gives the entries as raw mappings. After
    the last entry, ``reader.parser.header`` holds every top-level member. ``on_progress`` is
    called with the characters read so far after each piece, on the thread that read it.

    Each piece is read and parsed by one blocking call (``read_chunk``), which runs on a worker
    thread: for the async iteration, a thread of its own; for a store that writes on a thread
    of its own (SQLite), that thread, which then reads, checks and writes a piece in one job.
    """

    def __init__(
        self,
        file: IO[str],
        *,
        max_entry_characters: int = DEFAULT_MAX_ENTRY_CHARACTERS,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.file = file
        self.parser = ExportDocumentParser(max_entry_characters=max_entry_characters)
        self.characters_read = 0
        self._on_progress = on_progress
        self._ready: list[Any] = []
        self._ended = False

    async def read_header(self) -> dict[str, Any]:
        while not (self.parser.in_configs or self._ended):
            await asyncio.to_thread(self._read_piece)
        return dict(self.parser.header)

    def entries(self) -> ParsedEntries:
        """The entries, an async iterable that ``import_entries`` also reads a list at a time."""
        return ParsedEntries(self.read_chunk)

    async def chunks(self) -> AsyncIterator[list[Any]]:
        """The entries, a list at a time: those completed by each piece read."""
        async for chunk in self.entries().chunks():
            yield chunk

    def read_chunk(self) -> list[Any] | None:
        """Blocking: read and parse the next piece; the entries it completed (maybe none), or
        None once every entry has been returned. Raises ImportFormatError."""
        if not self._ended:
            self._read_piece()
        elif not self._ready:
            return None
        ready, self._ready = self._ready, []
        return ready

    def _read_piece(self) -> None:
        try:
            text = self.file.read(CHUNK_CHARACTERS)
        except (OSError, UnicodeDecodeError) as exc:
            raise ImportFormatError(f"cannot read the import document: {exc}") from exc
        self.characters_read += len(text)
        if text:
            self._ready += self.parser.feed(text)
        else:
            self._ready += self.parser.finish()
            self._ended = True
        if self._on_progress is not None:
            self._on_progress(self.characters_read)
