"""String primitives with libsinsp's exact semantics: glob (glibc ``fnmatch`` with flags 0 or
``FNM_CASEFOLD``, C locale), ``pmatch`` path-prefix sets, ASCII-only case folding (``strcasestr``,
``tolower``), base64 decoding as the ``b64`` transformer does it, and the UTF-8 sanitising libsinsp
applies to strings it prints.

Everything that C code does on bytes is done here on the value's UTF-8 bytes (invalid bytes are
carried in ``str`` values as surrogate escapes), so multi-byte characters count as C counts them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Final

from falcorules_ci.engine.cglob import compile_glob

_ASCII_LOWER: Final = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_ASCII_UPPER: Final = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


def ascii_lower(text: str) -> str:
    """``tolower`` per byte in the C locale: only A-Z change."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def ascii_upper(text: str) -> str:
    """``toupper`` per byte in the C locale: only a-z change."""
    return text.upper() if text.isascii() else text.translate(_ASCII_UPPER)


def to_bytes(text: str) -> bytes:
    """The bytes C code sees for a value (surrogate escapes give back the original bytes)."""
    return text.encode("utf-8", "surrogateescape")


def from_bytes(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def c_string(text: str) -> str:
    """The value as a C string sees it: cut at the first NUL."""
    cut = text.find("\x00")
    return text if cut < 0 else text[:cut]


def byte_length(text: str) -> int:
    """``strnlen`` of the value: its UTF-8 length up to the first NUL."""
    text = c_string(text)
    return len(text) if text.isascii() else len(to_bytes(text))


# -- glob ----------------------------------------------------------------------------------------


def glob_match(pattern: str, value: str, casefold: bool = False) -> bool:
    return compile_glob(pattern, casefold)(value)


# -- pmatch --------------------------------------------------------------------------------------

_GLOB_CHARS: Final = re.compile(r"[?*\[]")


class _PrefixNode:
    """One level of libsinsp's path prefix map: exact components and glob components."""

    __slots__ = ("dirs", "globs")

    def __init__(self) -> None:
        # A value of None marks a search path ending here (a terminal prefix).
        self.dirs: dict[str, _PrefixNode | None] = {}
        self.globs: list[tuple[Callable[[str], bool], str, _PrefixNode | None]] = []

    def add(self, components: list[str]) -> None:
        head, rest = components[0], components[1:]
        if _GLOB_CHARS.search(head):
            for k, (matcher, text, sub) in enumerate(self.globs):
                if text == head:
                    self.globs[k] = (matcher, text, self._merge(sub, rest))
                    return
            self.globs.append((compile_glob(head), head, self._merge(None, rest, fresh=True)))
            return
        if head in self.dirs:
            self.dirs[head] = self._merge(self.dirs[head], rest)
        else:
            self.dirs[head] = self._merge(None, rest, fresh=True)

    @staticmethod
    def _merge(sub: _PrefixNode | None, rest: list[str], fresh: bool = False) -> _PrefixNode | None:
        if not rest:
            return None  # this path is a prefix of anything below: drop the subtree
        if sub is None and not fresh:
            return None  # a shorter search path already covers it
        node = sub if sub is not None else _PrefixNode()
        node.add(rest)
        return node

    def match(self, components: list[str], pos: int) -> bool:
        comp = components[pos]
        if comp in self.dirs and self._descend(self.dirs[comp], components, pos + 1):
            return True
        return any(m(comp) and self._descend(sub, components, pos + 1) for m, _, sub in self.globs)

    @staticmethod
    def _descend(sub: _PrefixNode | None, components: list[str], pos: int) -> bool:
        if pos == len(components):
            return sub is None  # /var matches the search path /var, not /var/lib
        if sub is None:
            return True  # /var/lib/x below the search path /var/lib
        return sub.match(components, pos)


def _components(path: str) -> list[str]:
    # A dummy root keeps '/' itself a non-empty component list; empty components are skipped.
    return ["root", *(c for c in path.split("/") if c)]


class PathPrefixSet:
    """``pmatch``: whether some search path is a path-component prefix of the value.

    ``/etc`` matches ``/etc`` and ``/etc/x`` but not ``/etcx``; empty components are ignored;
    components containing ``?``, ``*`` or ``[`` are matched with fnmatch.
    """

    __slots__ = ("_root",)

    def __init__(self, paths: Iterable[str]) -> None:
        self._root = _PrefixNode()
        for path in paths:
            self._root.add(_components(c_string(path)))

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and self._root.match(_components(c_string(value)), 0)


# -- base64 --------------------------------------------------------------------------------------

_B64_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE: Final = {c: k for k, c in enumerate(_B64_ALPHABET)}


def b64_decode(data: bytes) -> bytes | None:
    """Decode as libsinsp's ``b64`` transformer does; None when it rejects the input.

    Up to two trailing ``=`` are dropped; padding is never required; any other byte outside the
    alphabet, a dangling single character, or non-zero unused bits reject the input.
    """
    if not data:
        return b""
    n = len(data)
    if data[n - 1] == ord("="):
        n -= 1
        if n > 0 and data[n - 1] == ord("="):
            n -= 1
    if n == 0 or n % 4 == 1:
        return None
    bits = 0
    nbits = 0
    out = bytearray()
    for c in data[:n]:
        v = _B64_VALUE.get(c)
        if v is None:
            return None
        bits = (bits << 6) | v
        nbits += 6
        if nbits >= 8:
            nbits -= 8
            out.append((bits >> nbits) & 0xFF)
    if bits & ((1 << nbits) - 1):
        return None
    return bytes(out)


# -- sanitising printed strings ------------------------------------------------------------------

_PRINTABLE_ASCII: Final = re.compile(r"[ -~]*\Z")
_REPLACEMENT: Final = "\ufffd"


def _seq_len(data: bytes, i: int) -> int:
    """libsinsp's ``utf8_seq_len``: > 0 printable sequence length, < 0 bytes to replace."""
    c = data[i]
    n = len(data)
    if c < 0x80:
        return 1 if 0x20 <= c != 0x7F else -1
    if c < 0xC2:
        return -1
    if c < 0xE0:
        if i + 1 >= n or data[i + 1] & 0xC0 != 0x80:
            return -1
        cp = (c & 0x1F) << 6 | (data[i + 1] & 0x3F)
        return 2 if cp > 0x9F else -2
    if c < 0xF0:
        lo = 0xA0 if c == 0xE0 else 0x80
        hi = 0x9F if c == 0xED else 0xBF
        if i + 1 >= n or not lo <= data[i + 1] <= hi:
            return -1
        if i + 2 >= n or data[i + 2] & 0xC0 != 0x80:
            return -2
        cp = (c & 0x0F) << 12 | (data[i + 1] & 0x3F) << 6 | (data[i + 2] & 0x3F)
        return -3 if 0xFDD0 <= cp <= 0xFDEF or cp >= 0xFFFE else 3
    if c <= 0xF4:
        lo = 0x90 if c == 0xF0 else 0x80
        hi = 0x8F if c == 0xF4 else 0xBF
        if i + 1 >= n or not lo <= data[i + 1] <= hi:
            return -1
        if i + 2 >= n or data[i + 2] & 0xC0 != 0x80:
            return -2
        if i + 3 >= n or data[i + 3] & 0xC0 != 0x80:
            return -3
        cp = (c & 0x07) << 18 | (data[i + 1] & 0x3F) << 12 | (data[i + 2] & 0x3F) << 6 | (data[i + 3] & 0x3F)
        return -4 if cp & 0xFFFF >= 0xFFFE else 4
    return -1


def sanitize(text: str) -> str:
    """Replace what libsinsp will not print (control bytes, DEL, C1 controls, invalid UTF-8,
    non-characters) by U+FFFD, one per maximal invalid subpart, as its extractors do for output."""
    if _PRINTABLE_ASCII.match(text):
        return text
    data = to_bytes(text)
    out = bytearray()
    i = 0
    while i < len(data):
        k = _seq_len(data, i)
        if k > 0:
            out += data[i : i + k]
            i += k
        else:
            out += _REPLACEMENT.encode()
            i -= k
    return from_bytes(bytes(out))
