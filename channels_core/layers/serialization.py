"""Message (de)serialization: msgpack, a size limit, and optional Fernet encryption."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

import msgpack

from .errors import MessageTooLarge

MAX_MESSAGE_SIZE = 1024 * 1024


class UndecodableMessage(ValueError):
    """Bytes that are not a message of this layer: not msgpack, not a dict, too deep, unhashable keys."""


class InvalidToken(UndecodableMessage):
    """Encrypted under none of `symmetric_encryption_keys`, or tampered with."""


class Serializer:
    """Turns message dicts into bytes and back.

    Bytes and str stay distinct, tuples become lists. With
    `symmetric_encryption_keys` every payload is Fernet-encrypted: the first
    key encrypts, every key decrypts, so keys can be rotated by putting the
    new one first and dropping the old one once messages have expired.
    """

    def __init__(self, symmetric_encryption_keys: Sequence[str | bytes] | None = None) -> None:
        self._fernet = _make_fernet(symmetric_encryption_keys) if symmetric_encryption_keys else None
        if self._fernet is not None:
            from cryptography.fernet import InvalidToken as FernetInvalidToken

            self._invalid_token: type[Exception] = FernetInvalidToken

    @property
    def encrypted(self) -> bool:
        return self._fernet is not None

    def dumps(self, message: Any) -> bytes:
        if not isinstance(message, dict):
            raise TypeError(f"A message must be a dict, not {type(message).__name__}")
        try:
            data = msgpack.packb(message, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise TypeError(
                f"Message cannot be serialized ({exc}); use bytes, str, int, float, bool, None, lists and dicts"
            ) from None
        if len(data) > MAX_MESSAGE_SIZE:
            raise MessageTooLarge(
                f"Message is {len(data)} bytes serialized; the limit is {MAX_MESSAGE_SIZE}. "
                "Chunk it or send it over a '?' channel in parts."
            )
        if self._fernet is not None:
            data = self._fernet.encrypt(data)
        return data

    def loads(self, data: bytes | memoryview) -> dict:
        """The message in `data`.

        Raises `UndecodableMessage` (a ValueError) for anything else: not
        msgpack, trailing bytes, nested too deep, unhashable keys, not a
        dict; `InvalidToken` (one of those) when encrypted under none of the
        keys or tampered with. One exception for every decoder to catch
        (found by fuzzing: msgpack also raised TypeError and returned lists
        and numbers, and Fernet its own InvalidToken).
        """
        if self._fernet is not None:
            try:
                data = self._fernet.decrypt(bytes(data))
            except self._invalid_token:
                raise InvalidToken("not encrypted with any of symmetric_encryption_keys (or tampered with)") from None
        try:
            message = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except (ValueError, TypeError, OverflowError) as exc:
            raise UndecodableMessage(f"not a message ({type(exc).__name__}: {exc})") from None
        if not isinstance(message, dict):
            raise UndecodableMessage(f"not a message: a {type(message).__name__}, not a dict")
        return message


def _make_fernet(keys: Sequence[str | bytes]):
    if isinstance(keys, (str, bytes)):
        raise ValueError("symmetric_encryption_keys must be a list of keys, not a single key")
    try:
        from cryptography.fernet import Fernet, MultiFernet
    except ImportError:
        raise ImportError(
            "symmetric_encryption_keys needs the 'cryptography' package: pip install 'channels-core[crypto]'"
        ) from None
    fernets = []
    for key in keys:
        raw = key.encode("utf8") if isinstance(key, str) else bytes(key)
        fernets.append(Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest())))
    if not fernets:
        raise ValueError("symmetric_encryption_keys is empty")
    return MultiFernet(fernets)
