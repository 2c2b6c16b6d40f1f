"""Sealed change-feed cursors: what the server hands clients instead of the store's own cursor.

A store's cursor tells where it is in the feed of every tenant (a sequence number, a timestamp),
so a client holding one could watch other tenants' write activity. The server therefore seals
it: encrypts and authenticates it with a key of the tokens file, deterministically (the same
store cursor always seals to the same text), padded to 32-byte blocks so its length says little.

The construction is SIV with HMAC-SHA256 as the PRF (encrypt-then-MAC with the MAC as the
nonce): ``iv = HMAC(k_mac, padded)[:16]``, ``ciphertext = padded XOR HMAC-CTR(k_enc, iv)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from .._errors import CursorExpiredError, InvalidConfigError

_PREFIX = "cs1."
_IV_BYTES = 16
_BLOCK = 32


class CursorSeal:
    """Seals store cursors for clients and opens the ones they send back."""

    def __init__(self, key: bytes) -> None:
        self._mac_key = hmac.new(key, b"confstore cursor mac", hashlib.sha256).digest()
        self._encryption_key = hmac.new(key, b"confstore cursor enc", hashlib.sha256).digest()

    def seal(self, cursor: str) -> str:
        data = cursor.encode("utf-8")
        if len(data) >= 1 << 16:
            raise InvalidConfigError("a change-feed cursor over 64 KiB cannot be sealed")
        padded = len(data).to_bytes(2, "big") + data
        padded += b"\0" * (-len(padded) % _BLOCK)
        iv = hmac.new(self._mac_key, padded, hashlib.sha256).digest()[:_IV_BYTES]
        sealed = iv + self._xor(iv, padded)
        return _PREFIX + base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")

    def open(self, sealed: str) -> str:
        """The store cursor inside ``sealed``.

        InvalidConfigError for text that is no sealed cursor at all; CursorExpiredError for one
        sealed with another key (the server's tokens file changed): the client starts over.
        """
        try:
            if not sealed.startswith(_PREFIX):
                raise ValueError("not a cursor of this server")
            text = sealed[len(_PREFIX) :]
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            iv, body = raw[:_IV_BYTES], raw[_IV_BYTES:]
            if len(iv) != _IV_BYTES or not body or len(body) % _BLOCK:
                raise ValueError("malformed")
        except (ValueError, binascii.Error) as exc:
            raise InvalidConfigError(
                f"not a change-feed cursor of this server: {sealed!r:.80}", field="cursor"
            ) from exc
        padded = self._xor(iv, body)
        expected = hmac.new(self._mac_key, padded, hashlib.sha256).digest()[:_IV_BYTES]
        if not hmac.compare_digest(iv, expected):
            raise CursorExpiredError(
                "the change-feed cursor was sealed with another key (the server's tokens file "
                "changed): start again from the present"
            )
        length = int.from_bytes(padded[:2], "big")
        return padded[2 : 2 + length].decode("utf-8")

    def _xor(self, iv: bytes, data: bytes) -> bytes:
        stream = bytearray()
        counter = 0
        while len(stream) < len(data):
            block = iv + counter.to_bytes(4, "big")
            stream += hmac.new(self._encryption_key, block, hashlib.sha256).digest()
            counter += 1
        return bytes(a ^ b for a, b in zip(data, stream, strict=False))
