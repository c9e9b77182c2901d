"""The Go side of k8s_audit extraction, emulated: fastjson's value lookups and serialisation as the
k8saudit and json plugins use them, and Go's ``net/url`` query parsing for ``ka.uri.param``.

A path that does not exist is :data:`MISSING` (fastjson's nil); JSON ``null`` is Python ``None``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Final

__all__ = [
    "MISSING", "NO_INDEX", "as_text", "fj_get", "get_path", "go_query", "nonempty", "strings_all_present",
    "strings_skip_missing", "walk",
]  # fmt: skip

MISSING: Final = object()  # fastjson's nil: the path does not exist (JSON null is Python None)
NO_INDEX: Final = -1

_ATOI = re.compile(r"[+-]?[0-9]+\Z", re.ASCII)


def as_text(value: Any) -> str:
    """The plugin's string form of a JSON value: raw text for strings, compact JSON otherwise."""
    if type(value) is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if type(value) is int:
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _go_atoi(key: str) -> int | None:
    """``strconv.Atoi`` on an array-index segment: optional sign, ASCII digits, int64 range."""
    if not _ATOI.match(key):
        return None
    number = int(key)
    return number if -(2**63) <= number < 2**63 else None


def fj_get(value: Any, key: str) -> Any:
    """fastjson's ``Value.Get(key)``: an object member, an array element by Atoi index, or nil."""
    if isinstance(value, dict):
        return value.get(key, MISSING)
    if isinstance(value, list):
        index = _go_atoi(key)
        if index is None or index < 0 or index >= len(value):
            return MISSING
        return value[index]
    return MISSING


def get_path(value: Any, keys: tuple[str, ...]) -> Any:
    """``Value.Get(keys...)`` for fixed, non-numeric keys: objects only, so lists never match."""
    for key in keys:
        if type(value) is dict or isinstance(value, dict):
            value = value.get(key, MISSING)
            if value is MISSING:
                return MISSING
        else:
            return MISSING
    return value


def walk(value: Any, index: int, keys: tuple[str, ...], start: int = 0) -> list[Any] | None:
    """The plugin's recursive walk: before each key, an array is either expanded (no index; a
    branch where the path ends gives one ``MISSING`` entry) or narrowed to element ``index``.
    ``None`` when the path does not exist (the plugin's "not available")."""
    for position in range(start, len(keys)):
        if isinstance(value, list):
            if index == NO_INDEX:
                found: list[Any] = []
                for element in value:
                    below = walk(element, index, keys, position)
                    if below is None:
                        found.append(MISSING)
                    else:
                        found.extend(below)
                return found
            if index >= len(value):
                return None
            value = value[index]
        key = keys[position]
        if key:
            value = fj_get(value, key)
            if value is MISSING:
                return None
    return [value]


def strings_skip_missing(values: Iterable[Any]) -> list[str]:
    return [as_text(v) for v in values if v is not MISSING]


def strings_all_present(values: list[Any]) -> list[str] | None:
    if any(v is MISSING for v in values):
        return None
    return [as_text(v) for v in values]


def nonempty(values: list[str] | None) -> list[str] | None:
    return values if values else None


# --- Go's net/url ------------------------------------------------------------------------------

_CTL = re.compile(r"[\x00-\x1f\x7f]")
_HEX = frozenset("0123456789abcdefABCDEF")


def _go_unescape(text: str, plus_is_space: bool) -> str | None:
    """``url.QueryUnescape`` (or path unescaping): ``%XX`` must be two hex digits; ``None`` on error."""
    if "%" not in text:
        return text.replace("+", " ") if plus_is_space else text
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                return None
            out.append(int(pair, 16))
            i += 3
            continue
        out += (" " if ch == "+" and plus_is_space else ch).encode("utf-8", "surrogateescape")
        i += 1
    return out.decode("utf-8", "surrogateescape")


@lru_cache(maxsize=4096)  # several rules read the same event's URI
def go_query(uri: str) -> dict[str, list[str]] | None:
    """``url.Parse(uri)`` then ``url.ParseQuery(RawQuery)``; ``None`` where Go returns an error."""
    if _CTL.search(uri):
        return None
    rest, hash_mark, fragment = uri.partition("#")
    if hash_mark and _go_unescape(fragment, False) is None:
        return None
    if rest.startswith(":"):
        return None  # "missing protocol scheme"
    scheme_end = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", rest)
    has_scheme = scheme_end is not None
    if has_scheme and scheme_end is not None:
        rest = rest[scheme_end.end() :]
    if rest.endswith("?") and rest.count("?") == 1:
        rest, raw_query = rest[:-1], ""
    else:
        rest, _, raw_query = rest.partition("?")
    if not has_scheme and not rest.startswith("/") and ":" in rest.partition("/")[0]:
        return None  # "first path segment in URL cannot contain colon"
    if not (has_scheme and not rest.startswith("/")) and _go_unescape(rest, False) is None:
        return None
    params: dict[str, list[str]] = {}
    failed = False
    for piece in raw_query.split("&"):
        if ";" in piece:
            failed = True
            continue
        if not piece:
            continue
        raw_key, _, raw_value = piece.partition("=")
        key = _go_unescape(raw_key, True)
        value = _go_unescape(raw_value, True)
        if key is None or value is None:
            failed = True
            continue
        params.setdefault(key, []).append(value)
    return None if failed else params
