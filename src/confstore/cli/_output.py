"""What the CLI shows: aligned tables for people, JSON for scripts, colour, masked secrets."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from .._models import ConfigEntry
from .._secrets import mask_secrets
from ._schemas import secret_paths_of

_COLOURS = {"red": "31", "green": "32", "yellow": "33", "bold": "1", "dim": "2"}

# Characters that make a terminal move the cursor, erase, recolour or reorder what it shows (C0
# and C1 controls, DEL, Unicode's bidirectional controls and line separators). Stored text such
# as updated_by and comment is anyone's input: shown raw, `mallory\x1b[2K\rtrusted-admin` would
# print as "trusted-admin".
_UNSAFE = (
    *range(0x20),
    *range(0x7F, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    0x2028,
    0x2029,
)
_NAMED_ESCAPES = {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}
_TEXT_ESCAPES = {
    code: _NAMED_ESCAPES.get(code, f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in _UNSAFE
}
# JSON text already escapes C0 controls inside strings, and its own layout uses newlines.
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in _UNSAFE if code >= 0x7F}


def printable(text: str) -> str:
    """``text`` with every control character escaped (``\\x1b``, ``\\n``, ``\\u202e``), safe to
    show on a terminal. JSON output (``--json``) is never escaped this way: it is exact."""
    return text.translate(_TEXT_ESCAPES)


def printable_json(data: Any, *, indent: int | None = None) -> str:
    """JSON text for people: control characters that JSON leaves raw (C1, bidirectional) escaped
    as ``\\uXXXX``, so the text is still JSON with the same meaning."""
    separators = None if indent else (", ", ": ")
    text = json.dumps(data, indent=indent, ensure_ascii=False, separators=separators)
    return text.translate(_JSON_ESCAPES)


def colour_enabled(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Columns padded to their widest cell, headers in capitals, two spaces between columns."""
    cells = [[header.upper() for header in headers]]
    cells += [[format_cell(value) for value in row] for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def format_cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return printable_json(value)
    return printable(str(value))


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def config_path(entry: ConfigEntry) -> str:
    """``scope/service/config_key``: how a config is named in human output."""
    return printable(f"{entry.scope.value}/{entry.service}/{entry.config_key}")


@dataclass
class Console:
    """Where a command's output goes, and how it is shaped (human or JSON, secrets or not)."""

    json_mode: bool = False
    show_secrets: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        """A status message for people (control characters escaped); on stderr so it never
        mixes with data on stdout."""
        print(printable(text), file=self.err, flush=True)

    def json(self, data: Any) -> None:
        self.line(self.json_text(data))

    @staticmethod
    def json_text(data: Any) -> str:
        return json.dumps(data, indent=2, ensure_ascii=False)

    @staticmethod
    def json_inline(data: Any) -> str:
        return json.dumps(data, ensure_ascii=False, separators=(", ", ": "))

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
        rows = list(rows)
        if rows:
            self.line(format_table(headers, rows))
        else:
            self.note("(nothing to show)")

    def paint(self, text: str, colour: str) -> str:
        if not colour_enabled(self.out):
            return text
        return f"\033[{_COLOURS[colour]}m{text}\033[0m"

    def entry_dict(self, entry: ConfigEntry) -> dict[str, Any]:
        """The entry's JSON form, its secrets masked unless --show-secrets."""
        data = entry.to_dict()
        if not self.show_secrets:
            data["config_value"] = mask_secrets(entry.config_value, secret_paths_of(entry))
        return data


class ProgressBar:
    """A one-line bar for a terminal, redrawn in place at most ten times a second."""

    def __init__(self, stream: TextIO, total: int, unit: str, width: int = 30) -> None:
        self.stream = stream
        self.total = max(total, 1)
        self.unit = unit
        self.width = width
        self._drawn_at = 0.0

    def update(self, done: int, detail: str = "", *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn_at < 0.1:
            return
        self._drawn_at = now
        fraction = min(done / self.total, 1.0)
        filled = round(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"\r[{bar}] {done}/{self.total} {self.unit} {fraction:4.0%} {detail}"
        self.stream.write(text + "\033[K")
        self.stream.flush()

    def finish(self, done: int, detail: str = "") -> None:
        self.update(done, detail, force=True)
        self.stream.write("\n")
        self.stream.flush()
