"""The emulator's parser and evaluator for Vespa's document selection language.

It understands the subset confstore needs and that is worth checking strictly: field references
``doctype.field``, a bare ``doctype``, ``id`` / ``id.namespace`` / ``id.type`` / ``id.specific``,
``== != < <= > >=``, glob ``=`` and regex ``=~``, ``and`` / ``or`` / ``not`` (that precedence),
parentheses, single- and double-quoted strings with the documented escapes, integers, floats,
``true``, ``false`` and ``null``. Anything else raises SelectionError (the emulator answers 400):
it never matches something it did not understand.

Evaluation is three-valued like Vespa's: a comparison that makes no sense (ordering against a
missing field, mismatched types) is *invalid*; ``not invalid`` is invalid; a document matches
only when the whole expression is true.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class SelectionError(ValueError):
    """The selection is malformed or uses something this parser does not understand."""


class Truth(enum.Enum):
    TRUE = "true"
    FALSE = "false"
    INVALID = "invalid"

    @classmethod
    def of(cls, value: bool) -> Truth:
        return cls.TRUE if value else cls.FALSE


@dataclass(frozen=True, slots=True)
class DocumentView:
    """What a selection is evaluated against."""

    namespace: str
    document_type: str
    specific: str
    fields: Mapping[str, Any]

    @property
    def full_id(self) -> str:
        return f"id:{self.namespace}:{self.document_type}::{self.specific}"


Value = Callable[[DocumentView], Any]
Predicate = Callable[[DocumentView], Truth]

_MISSING = object()
_KEYWORDS = {"and", "or", "not", "true", "false", "null"}
_SIMPLE_ESCAPES = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t", "f": "\f"}
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    | (?P<op>==|!=|<=|>=|=~|<|>|=)
    | (?P<paren>[()])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, name, op, paren, string, end
    text: str
    value: Any = None


def parse_selection(text: str, schema: Mapping[str, Mapping[str, str]]) -> Predicate:
    """Compile ``text`` against ``schema`` ({document type: {field: type}}) into a predicate."""
    parser = _Parser(_tokenize(text), schema)
    predicate = parser.expression()
    parser.expect_end()
    return predicate


def matches(predicate: Predicate, document: DocumentView) -> bool:
    return predicate(document) is Truth.TRUE


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char in "\"'":
            value, position = _read_string(text, position)
            tokens.append(_Token("string", char, value))
            continue
        found = _TOKEN.match(text, position)
        if found is None:
            raise SelectionError(f"unexpected character {char!r} at {position} in {text!r}")
        position = found.end()
        kind = found.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(_Token(kind, found.group()))
    tokens.append(_Token("end", ""))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == quote:
            return "".join(out), position + 1
        if char == "\\":
            escaped, position = _read_escape(text, position + 1, quote)
            out.append(escaped)
            continue
        if not 32 <= ord(char) <= 126:
            raise SelectionError(f"unescaped character {char!r} in a string literal")
        out.append(char)
        position += 1
    raise SelectionError(f"unterminated string literal in {text!r}")


def _read_escape(text: str, position: int, quote: str) -> tuple[str, int]:
    if position >= len(text):
        raise SelectionError("a string literal ends with a lone backslash")
    char = text[position]
    if char == quote:
        return quote, position + 1
    if char in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[char], position + 1
    if char == "x":
        digits = text[position + 1 : position + 3]
        if len(digits) == 2 and all(d in "0123456789abcdefABCDEF" for d in digits):
            return chr(int(digits, 16)), position + 3
        raise SelectionError(f"bad \\x escape {text[position - 1 : position + 3]!r}")
    raise SelectionError(f"unknown escape \\{char} in a string literal")


class _Parser:
    def __init__(self, tokens: list[_Token], schema: Mapping[str, Mapping[str, str]]) -> None:
        self.tokens = tokens
        self.position = 0
        self.schema = schema

    def peek(self) -> _Token:
        return self.tokens[self.position]

    def advance(self) -> _Token:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "name" and token.text.lower() == word:
            self.position += 1
            return True
        return False

    def expect_end(self) -> None:
        token = self.peek()
        if token.kind != "end":
            raise SelectionError(f"unexpected {token.text!r} after the end of the selection")

    def expression(self) -> Predicate:
        parts = [self.conjunction()]
        while self.keyword("or"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else _any_of(parts)

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.keyword("and"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else _all_of(parts)

    def negation(self) -> Predicate:
        if self.keyword("not"):
            inner = self.negation()
            return lambda document: _negate(inner(document))
        return self.comparison()

    def comparison(self) -> Predicate:
        token = self.peek()
        if token.kind == "paren" and token.text == "(":
            self.advance()
            inner = self.expression()
            self.expect(")")
            return inner
        left, left_is_predicate = self.operand()
        operator = self.peek()
        if operator.kind != "op":
            if left_is_predicate is None:
                raise SelectionError(f"{token.text!r} is a value, not a condition")
            return left_is_predicate
        self.advance()
        right, _ = self.operand()
        return _compare(operator.text, left, right)

    def expect(self, text: str) -> None:
        token = self.advance()
        if token.text != text or token.kind in ("string", "end"):
            raise SelectionError(f"expected {text!r}, found {token.text or 'the end'!r}")

    def operand(self) -> tuple[Value, Predicate | None]:
        """A value, and the predicate it stands for when used alone (``true``, a doctype)."""
        token = self.advance()
        if token.kind == "string":
            return _constant(token.value), None
        if token.kind == "number":
            number = float(token.text) if re.search(r"[.eE]", token.text) else int(token.text)
            return _constant(number), None
        if token.kind != "name":
            raise SelectionError(f"expected a value, found {token.text or 'the end'!r}")
        word = token.text.lower()
        if word in ("true", "false"):
            truth = Truth.of(word == "true")
            return _constant(word == "true"), lambda document: truth
        if word == "null":
            return _constant(None), None
        if word in _KEYWORDS:
            raise SelectionError(f"unexpected keyword {token.text!r}")
        return self.reference(token.text)

    def reference(self, name: str) -> tuple[Value, Predicate | None]:
        head, _, rest = name.partition(".")
        if head == "id":
            return _id_part(rest), None
        if head not in self.schema:
            raise SelectionError(f"unknown document type or identifier {head!r}")
        if not rest:
            return _constant(head), lambda document: Truth.of(document.document_type == head)
        if "." in rest or rest not in self.schema[head]:
            raise SelectionError(f"document type {head!r} has no field {rest!r}")
        return _field(head, rest), None


def _constant(value: Any) -> Value:
    return lambda document: value


def _field(document_type: str, name: str) -> Value:
    def value(document: DocumentView) -> Any:
        if document.document_type != document_type:
            return _MISSING
        return document.fields.get(name)

    return value


def _id_part(part: str) -> Value:
    getters: dict[str, Callable[[DocumentView], str]] = {
        "": lambda document: document.full_id,
        "namespace": lambda document: document.namespace,
        "type": lambda document: document.document_type,
        "specific": lambda document: document.specific,
    }
    if part not in getters:
        raise SelectionError(f"id.{part} is not supported")
    return getters[part]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _comparable(left: Any, right: Any) -> bool:
    if _is_number(left) and _is_number(right):
        return True
    return type(left) is type(right) and isinstance(left, str | bool)


def _ordering_key(value: Any) -> Any:
    # Strings compare byte-wise (UTF-8), numbers numerically.
    return value.encode("utf-8") if isinstance(value, str) else value


def _compare(operator: str, left: Value, right: Value) -> Predicate:
    def predicate(document: DocumentView) -> Truth:
        a, b = left(document), right(document)
        if a is _MISSING or b is _MISSING:
            return Truth.INVALID
        if operator in ("==", "!="):
            equal = _comparable(a, b) and a == b if a is not None and b is not None else a is b
            return Truth.of(equal if operator == "==" else not equal)
        if a is None or b is None or not _comparable(a, b):
            return Truth.INVALID
        if operator in ("=", "=~"):
            if not isinstance(a, str) or not isinstance(b, str):
                return Truth.INVALID
            if operator == "=":
                return Truth.of(fnmatch.fnmatchcase(a, b))
            try:
                return Truth.of(re.search(b, a) is not None)
            except re.error:
                return Truth.INVALID
        x, y = _ordering_key(a), _ordering_key(b)
        result = {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[operator]
        return Truth.of(result)

    return predicate


def _negate(truth: Truth) -> Truth:
    if truth is Truth.INVALID:
        return truth
    return Truth.of(truth is Truth.FALSE)


def _all_of(parts: list[Predicate]) -> Predicate:
    def predicate(document: DocumentView) -> Truth:
        results = [part(document) for part in parts]
        if Truth.FALSE in results:
            return Truth.FALSE
        return Truth.INVALID if Truth.INVALID in results else Truth.TRUE

    return predicate


def _any_of(parts: list[Predicate]) -> Predicate:
    def predicate(document: DocumentView) -> Truth:
        results = [part(document) for part in parts]
        if Truth.TRUE in results:
            return Truth.TRUE
        return Truth.INVALID if Truth.INVALID in results else Truth.FALSE

    return predicate
