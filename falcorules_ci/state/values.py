"""Reading event parameters the way libsinsp's parsers do.

Sources decode BYTEBUF parameters that hold string lists (``args``, ``env``, ``cgroups``) either
to raw ``bytes`` (``-c\\0id\\0``) or, when they know better, to a tuple of strings; both forms
are accepted here.
"""

from __future__ import annotations

from typing import Any


def as_strings(value: Any) -> tuple[str, ...]:
    """A NUL-separated string list (one trailing NUL dropped), or a decoded sequence."""
    if value is None:
        return ()
    if isinstance(value, tuple | list):
        return tuple(str(v) for v in value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if raw.endswith(b"\0"):
            raw = raw[:-1]
        if not raw:
            return ()
        return tuple(part.decode("utf-8", "surrogateescape") for part in raw.split(b"\0"))
    if isinstance(value, str):
        text = value[:-1] if value.endswith("\0") else value
        return tuple(text.split("\0")) if text else ()
    return ()


def as_int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) else default


def as_text(value: Any, default: str = "") -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    return default


def u32(value: int) -> int:
    return value & 0xFFFFFFFF
