"""API tokens: who may call ``confstore serve``, with which role, on which tenants.

A token is ``cst_`` followed by 43 URL-safe characters (256 random bits). It is shown once, when
it is created; the tokens file keeps only its SHA-256 digest (a fast hash is enough for a secret
of that entropy: nothing can be guessed, so nothing needs stretching). A presented token is
hashed and compared with every stored digest using ``hmac.compare_digest``, never stopping at
the first match, so the time taken does not depend on which token matched or how much of it.

The tokens file is JSON, readable by its owner only, replaced atomically on every change::

    {"format": "confstore-tokens", "format_version": 1, "cursor_key": "<hex>",
     "tokens": [{"name": "ci", "role": "write", "tenants": ["acme"],
                 "sha256": "<hex>", "created_at": "2026-01-02T03:04:05.000000+00:00"}]}

``cursor_key`` seals change-feed cursors handed to clients (see ``_cursors``), so every server
started on the same tokens file accepts the others' cursors.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .._errors import ConfigStoreError, InvalidConfigError
from .._models import format_timestamp, parse_timestamp, utc_now
from .._validation import validate_identifier

TOKENS_FILE_ENVIRONMENT_VARIABLE = "CONFSTORE_TOKENS"
DEFAULT_TOKENS_FILE = "data/config/tokens.json"
TOKEN_PREFIX = "cst_"
ALL_TENANTS = "*"
_FORMAT = "confstore-tokens"
_FORMAT_VERSION = 1


def default_tokens_path() -> Path:
    """``$CONFSTORE_TOKENS``, else ``data/config/tokens.json`` under the working directory."""
    return Path(os.environ.get(TOKENS_FILE_ENVIRONMENT_VARIABLE) or DEFAULT_TOKENS_FILE)


class Role(enum.StrEnum):
    """What a token may do; each role includes the ones before it.

    read: list and read configs, history, diffs, the change feed and watch; secrets are masked.
    write: also write, delete, roll back and export, and read secrets in clear.
    admin: also import, and attribute writes to someone else (``updated_by``).
    """

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.READ: 0, Role.WRITE: 1, Role.ADMIN: 2}


class TokenError(ConfigStoreError):
    """A token operation failed: a duplicate or unknown name, or an unreadable tokens file."""


class DuplicateTokenError(TokenError):
    """A token with that name exists already."""


class UnknownTokenError(TokenError, LookupError):
    """No token has that name."""


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A stored token: its name, role and tenants, and the digest of its secret."""

    name: str
    role: Role
    tenants: tuple[str, ...]
    sha256: str
    created_at: datetime

    @property
    def all_tenants(self) -> bool:
        return ALL_TENANTS in self.tenants

    def covers(self, tenant_id: str) -> bool:
        """True if this token may act on ``tenant_id``."""
        return self.all_tenants or tenant_id in self.tenants

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role.value,
            "tenants": list(self.tenants),
            "sha256": self.sha256,
            "created_at": format_timestamp(self.created_at),
        }

    def describe(self) -> dict[str, Any]:
        """What may be shown about the token (no digest)."""
        return {
            "name": self.name,
            "role": self.role.value,
            "tenants": list(self.tenants),
            "created_at": format_timestamp(self.created_at),
        }

    @classmethod
    def from_dict(cls, data: Any) -> AccessToken:
        if not isinstance(data, dict):
            raise ValueError("a token entry must be an object")
        digest = data["sha256"]
        if not isinstance(digest, str) or len(digest) != 64:
            raise ValueError(f"token {data.get('name')!r} has no valid sha256 digest")
        bytes.fromhex(digest)
        return cls(
            name=validate_token_name(data["name"]),
            role=Role(data["role"]),
            tenants=validate_tenants(data["tenants"]),
            sha256=digest,
            created_at=parse_timestamp(data["created_at"], "created_at"),
        )


def validate_token_name(name: object) -> str:
    """A token name is an identifier (it is recorded as ``updated_by``)."""
    return validate_identifier("token name", name)


def validate_tenants(tenants: object) -> tuple[str, ...]:
    """A non-empty list of tenant ids, or ``["*"]`` for every tenant."""
    if isinstance(tenants, str) or not isinstance(tenants, Sequence) or not tenants:
        raise InvalidConfigError(
            "a token needs at least one tenant (or '*' for all)", field="tenants"
        )
    checked = []
    for tenant in tenants:
        if tenant == ALL_TENANTS:
            return (ALL_TENANTS,)
        checked.append(validate_identifier("tenant_id", tenant))
    return tuple(dict.fromkeys(checked))


def digest_of(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", errors="surrogateescape")).digest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class TokenSet:
    """The tokens of one tokens file, as loaded: look a presented token up in constant time."""

    tokens: tuple[AccessToken, ...]
    cursor_key: bytes

    def verify(self, presented: str) -> AccessToken | None:
        """The token whose secret is ``presented``, or None.

        Every stored digest is compared (``hmac.compare_digest``) whatever the outcome, so the
        time does not tell which token matched or how close a guess came.
        """
        wanted = digest_of(presented)
        found = None
        for token in self.tokens:
            if hmac.compare_digest(wanted, bytes.fromhex(token.sha256)):
                found = token
        return found

    def named(self, name: str) -> AccessToken | None:
        return next((token for token in self.tokens if token.name == name), None)


class TokenFile:
    """The tokens file: create, list and revoke tokens (the CLI), load them (the server)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> TokenSet:
        """The tokens stored now; TokenError if the file is missing or malformed."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise TokenError(
                f"no tokens file at {self.path}: create a token first "
                f"(confstore token create NAME --role ROLE --tenant TENANT --tokens {self.path})"
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenError(f"cannot read the tokens file {self.path}: {exc}") from exc
        return self._parse(text)

    def create(
        self, name: str, role: Role | str, tenants: Sequence[str]
    ) -> tuple[str, AccessToken]:
        """Store a new token and return ``(its secret, the stored token)``; the secret is not kept."""
        token_name = validate_token_name(name)
        try:
            checked_role = Role(role)
        except ValueError:
            raise InvalidConfigError(
                f"role must be one of {', '.join(Role)}, got {role!r}", field="role"
            ) from None
        checked_tenants = validate_tenants(tenants)
        secret = new_secret()
        token = AccessToken(
            name=token_name,
            role=checked_role,
            tenants=checked_tenants,
            sha256=digest_of(secret).hex(),
            created_at=utc_now(),
        )
        with self._locked() as current:
            if current.named(token_name) is not None:
                raise DuplicateTokenError(
                    f"a token named {token_name!r} exists already (revoke it first)"
                )
            self._write(TokenSet((*current.tokens, token), current.cursor_key))
        return secret, token

    def revoke(self, name: str) -> AccessToken:
        """Remove the token called ``name`` and return it; UnknownTokenError if there is none."""
        with self._locked() as current:
            token = current.named(name)
            if token is None:
                raise UnknownTokenError(f"no token named {name!r} in {self.path}")
            kept = tuple(stored for stored in current.tokens if stored.name != name)
            self._write(TokenSet(kept, current.cursor_key))
        return token

    def stored(self) -> list[AccessToken]:
        """Every stored token (none when the file does not exist yet)."""
        return list(self.load().tokens) if self.path.exists() else []

    def signature(self) -> tuple[int, int, int] | None:
        """What changes when the file is replaced: (inode, size, mtime), or None if it is gone."""
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    @contextlib.contextmanager
    def _locked(self) -> Iterator[TokenSet]:
        """The current tokens (an empty set for a new file) under an exclusive lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            if self.path.exists():
                yield self.load()
            else:
                yield TokenSet((), secrets.token_bytes(32))
        finally:
            os.close(descriptor)

    def _write(self, tokens: TokenSet) -> None:
        document = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "cursor_key": tokens.cursor_key.hex(),
            "tokens": [token.to_dict() for token in tokens.tokens],
        }
        partial = self.path.with_name(self.path.name + ".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=2)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(partial, self.path)

    def _parse(self, text: str) -> TokenSet:
        try:
            document = json.loads(text)
            if not isinstance(document, dict) or document.get("format") != _FORMAT:
                raise ValueError(f"not a confstore tokens file (format {_FORMAT!r})")
            if document.get("format_version") != _FORMAT_VERSION:
                raise ValueError(f"unsupported format_version {document.get('format_version')!r}")
            tokens = tuple(AccessToken.from_dict(entry) for entry in document["tokens"])
            cursor_key = bytes.fromhex(document["cursor_key"])
        except (ValueError, KeyError, TypeError, ConfigStoreError) as exc:
            raise TokenError(f"the tokens file {self.path} is malformed: {exc}") from exc
        if len({token.name for token in tokens}) != len(tokens):
            raise TokenError(f"the tokens file {self.path} names a token twice")
        if len(cursor_key) < 16:
            raise TokenError(f"the tokens file {self.path} has a cursor_key under 16 bytes")
        return TokenSet(tokens, cursor_key)
