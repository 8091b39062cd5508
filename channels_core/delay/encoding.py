"""Message content as JSON text (the 1.x column format) without losing bytes.

Channels 1.x stored `json.dumps(content)`, which cannot hold bytes (its
delay worker crashed on them). Bytes become `{"__bytes__": "<base64>"}`; a
dict of the content that happens to be a single tag key is wrapped in
`{"__dict__": ...}`, so every value round-trips exactly. Content without
bytes is stored as plain JSON, readable by 1.x-era code.
"""

from __future__ import annotations

import base64
import json
from typing import Any

_BYTES = "__bytes__"
_DICT = "__dict__"


def dumps(content: dict) -> str:
    """JSON text for a message dict; ValueError names what cannot be stored."""
    try:
        return json.dumps(_encode(content), ensure_ascii=False, separators=(",", ":"))
    except RecursionError:
        raise ValueError("the content is nested too deeply") from None


def loads(text: str) -> dict:
    """The message dict stored by `dumps` (or by Channels 1.x)."""
    value = _decode(json.loads(text))
    if not isinstance(value, dict):
        raise ValueError(f"stored content is a {type(value).__name__}, not a dict")
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, str) or value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {_BYTES: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"dict keys must be str, not {type(key).__name__} {key!r}")
            out[key] = _encode(item)
        if len(out) == 1 and next(iter(out)) in (_BYTES, _DICT):
            return {_DICT: out}
        return out
    if isinstance(value, (list, tuple)):
        return [_encode(item) for item in value]
    raise ValueError(f"cannot store a {type(value).__name__} value")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == _BYTES and isinstance(inner, str):
                return base64.b64decode(inner)
            if key == _DICT and isinstance(inner, dict):
                return {k: _decode(v) for k, v in inner.items()}
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value
