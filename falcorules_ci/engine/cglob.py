"""glibc's ``fnmatch`` (flags 0 or ``FNM_CASEFOLD``, C locale), as libsinsp's ``glob``/``iglob``
operators and ``pmatch`` glob components use it, translated into Python regular expressions.

With flags 0, ``*`` and ``?`` match ``/`` and a leading ``.`` like any other byte; ``\\`` escapes;
``[...]`` is a bracket expression with ``!``/``^`` negation, ranges, ``[:class:]``,
``[=c=]`` and ``[.c.]``. Brackets follow glibc's (2.36) parsing loop byte for byte, quirks
included: an unterminated bracket is a literal ``[``, a malformed collating symbol makes the
pattern fail, and what a bracket accepts can depend on the byte under it (so a bracket may become
an alternation). Matching works on bytes, as C does in the C locale: ``?`` is one byte of a UTF-8
character. Checked against the C library's own ``fnmatch`` by the tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Final

_CHAR_CLASSES: Final[dict[bytes, frozenset[int]]] = {
    b"alnum": frozenset(b for b in range(128) if chr(b).isalnum()),
    b"alpha": frozenset(b for b in range(128) if chr(b).isalpha()),
    b"blank": frozenset(b" \t"),
    b"cntrl": frozenset([*range(32), 127]),
    b"digit": frozenset(b"0123456789"),
    b"graph": frozenset(range(33, 127)),
    b"lower": frozenset(range(ord("a"), ord("z") + 1)),
    b"print": frozenset(range(32, 127)),
    b"punct": frozenset(b for b in range(33, 127) if not chr(b).isalnum()),
    b"space": frozenset(b" \t\n\v\f\r"),
    b"upper": frozenset(range(ord("A"), ord("Z") + 1)),
    b"xdigit": frozenset(b"0123456789abcdefABCDEF"),
}
_CLASS_NAME_MAX: Final = 256  # glibc's CHAR_CLASS_MAX_LENGTH
_BACKSLASH, _OPEN, _CLOSE, _COLON, _DASH, _EQUAL, _DOT = b"\\[]:-=."

# Outcomes of a bracket expression for one string byte.
_MATCH, _NO, _UNTERMINATED, _FAIL = "match", "no", "unterminated", "fail"


def _fold(byte: int, casefold: bool) -> int:
    return byte + 32 if casefold and 65 <= byte <= 90 else byte


class _Bracket:
    """glibc's bracket loop for one string byte ``n``; ``run`` returns (outcome, index after)."""

    def __init__(self, pat: bytes, casefold: bool) -> None:
        self.pat = pat
        self.casefold = casefold

    def at(self, i: int) -> int:
        return self.pat[i] if 0 <= i < len(self.pat) else 0

    def run(self, start: int, n: int) -> tuple[str, int]:
        at, cf = self.at, self.casefold
        fn = _fold(n, cf)
        p = start
        negate = at(p) in (ord("!"), ord("^"))
        if negate:
            p += 1
        c = at(p)
        p += 1
        while True:
            normal = False
            if c == _BACKSLASH:
                if at(p) == 0:
                    return _FAIL, -1
                c = _fold(at(p), cf)
                p += 1
                normal = True
            elif c == _OPEN and at(p) == _COLON:
                startp = p
                name = bytearray()
                while True:
                    if len(name) == _CLASS_NAME_MAX:
                        return _FAIL, -1
                    p += 1
                    c = at(p)
                    if c == _COLON and at(p + 1) == _CLOSE:
                        p += 2
                        break
                    if c < ord("a") or c >= ord("z"):
                        p, c, normal = startp, _OPEN, True
                        break
                    name.append(c)
                if not normal:
                    members = _CHAR_CLASSES.get(bytes(name))
                    if members is None:
                        return _FAIL, -1
                    if n in members:
                        return self.matched(p, negate)
                    c = at(p)
                    p += 1
            elif c == 0:
                return _UNTERMINATED, start
            elif c == _OPEN and at(p) == _EQUAL:
                startp = p
                p += 1
                symbol = at(p)
                if symbol == 0 or at(p + 1) != _EQUAL or at(p + 2) != _CLOSE:
                    p, c, normal = startp, _OPEN, True
                else:
                    p += 3
                    if n == symbol:
                        return self.matched(p, negate)
                    c = at(p)
                    p += 1
            elif c == _OPEN and at(p) == _DOT:
                collated = self.collating_symbol(p)
                if collated is None:
                    return _FAIL, -1
                symbol, p = collated
                is_range = at(p) == _DASH and at(p + 1) != 0
                if not is_range and n == symbol:
                    return self.matched(p, negate)
                outcome = self.range_from(symbol, p, fn)
                if outcome is not None:
                    if outcome[0] == _MATCH:
                        return self.matched(outcome[1], negate)
                    if outcome[0] == _FAIL:
                        return outcome
                    c, p = at(outcome[1]), outcome[1] + 1
                else:
                    c = at(p)
                    p += 1
            else:
                c = _fold(c, cf)
                normal = True
            if normal:
                is_range = at(p) == _DASH and at(p + 1) not in (0, _CLOSE)
                if not is_range and c == fn:
                    return self.matched(p, negate)
                outcome = self.range_from(c, p, fn)
                if outcome is not None:
                    if outcome[0] == _MATCH:
                        return self.matched(outcome[1], negate)
                    if outcome[0] == _FAIL:
                        return outcome
                    c, p = at(outcome[1]), outcome[1] + 1
                else:
                    c = at(p)
                    p += 1
            if c == _CLOSE:
                break
        return (_MATCH if negate else _NO), p

    def range_from(self, cold: int, p: int, fn: int) -> tuple[str, int] | None:
        """A ``-`` after a member makes a range unless ``]`` follows; None when it is no range.

        Returns (match, index after the range) or (no, index after the range).
        """
        at = self.at
        if at(p) != _DASH or at(p + 1) == _CLOSE:
            return None
        p += 1
        cend = at(p)
        p += 1
        if cend == _OPEN and at(p) == _DOT:
            # The range ends with a collating symbol: one byte, taken as written.
            collated = self.collating_symbol(p)
            if collated is None:
                return _FAIL, -1
            cend, p = collated
        else:
            if cend == _BACKSLASH:
                cend = at(p)
                p += 1
            if cend == 0:
                return _FAIL, -1
            cend = _fold(cend, self.casefold)
        if cold <= fn <= cend:
            return _MATCH, p
        return _NO, p

    def collating_symbol(self, p: int) -> tuple[int, int] | None:
        """``[.x.]`` starting at the ``.`` at ``p``: (its one byte, index after it), or None when it
        is unterminated or not exactly one byte long (fnmatch then fails the whole match)."""
        at = self.at
        start = p
        length = 0
        while True:
            p += 1
            c = at(p)
            if c == _DOT and at(p + 1) == _CLOSE:
                p += 2
                break
            if c == 0:
                return None
            length += 1
        if length != 1:
            return None
        return self.pat[start + 1], p

    def matched(self, p: int, negate: bool) -> tuple[str, int]:
        """Skip the rest of a bracket that already matched, as glibc does. Since glibc 2.36
        (bug 28792) running off the end here also makes the ``[`` an ordinary character."""
        at = self.at
        while True:
            c = at(p)
            p += 1
            if c == _CLOSE:
                return (_NO if negate else _MATCH), p
            if c == 0:
                return _UNTERMINATED, -1
            if c == _BACKSLASH:
                if at(p) == 0:
                    return _UNTERMINATED, -1
                p += 1
            elif c == _OPEN and at(p) == _COLON:
                startp = p
                length = 0
                while True:
                    p += 1
                    c = at(p)
                    length += 1
                    if length == _CLASS_NAME_MAX:
                        return _FAIL, -1
                    if c == _COLON and at(p + 1) == _CLOSE:
                        break
                    if c < ord("a") or c >= ord("z"):
                        p = startp - 2
                        break
                p += 2
            elif c == _OPEN and at(p) == _EQUAL:
                p += 1
                if at(p) == 0:
                    return _FAIL, -1
                p += 1
                if at(p) != _EQUAL or at(p + 1) != _CLOSE:
                    return _FAIL, -1
                p += 2
            elif c == _OPEN and at(p) == _DOT:
                while True:
                    p += 1
                    c = at(p)
                    if c == 0:
                        return _FAIL, -1
                    if c == _DOT and at(p + 1) == _CLOSE:
                        break
                p += 2


def _set_regex(members: Iterable[int]) -> str:
    values = sorted(set(members))
    if not values:
        return "(?!)"
    if len(values) == 256:
        return "."
    return "[" + "".join(f"\\x{v:02x}" for v in values) + "]"


class _Translator:
    def __init__(self, pat: bytes, casefold: bool) -> None:
        self.pat = pat
        self.casefold = casefold
        self.bracket = _Bracket(pat, casefold)
        self._memo: dict[int, str] = {}

    def suffix(self, i: int) -> str:
        """The regex for the pattern from index ``i`` to its end."""
        found = self._memo.get(i)
        if found is None:
            found = self._memo[i] = self._suffix(i)
        return found

    def _suffix(self, i: int) -> str:
        pat, cf = self.pat, self.casefold
        parts: list[str] = []
        while i < len(pat):
            c = pat[i]
            i += 1
            if c == ord("*"):
                if not parts or parts[-1] != ".*":
                    parts.append(".*")
            elif c == ord("?"):
                parts.append(".")
            elif c == _OPEN:
                # The byte under a bracket decides where matching goes on: group bytes by it.
                groups: dict[int, set[int]] = {}
                for n in range(256):
                    outcome, end = self.bracket.run(i, n)
                    if outcome == _MATCH:
                        groups.setdefault(end, set()).add(n)
                    elif outcome == _UNTERMINATED and n == _OPEN:
                        groups.setdefault(i, set()).add(n)  # the '[' matched as itself
                if not groups:
                    return "".join(parts) + "(?!)"
                if len(groups) == 1:
                    (end, members), = groups.items()
                    parts.append(_set_regex(members))
                    i = end
                    continue
                branches = [_set_regex(members) + self.suffix(end) for end, members in sorted(groups.items())]
                return "".join(parts) + "(?:" + "|".join(branches) + ")"
            else:
                if c == _BACKSLASH:
                    if i >= len(pat):
                        return "".join(parts) + "(?!)"  # a trailing backslash never matches
                    c = pat[i]
                    i += 1
                target = _fold(c, cf)
                parts.append(_set_regex(b for b in range(256) if _fold(b, cf) == target))
        return "".join(parts)


@lru_cache(maxsize=1024)
def glob_regex_source(pattern: bytes, casefold: bool) -> str:
    """A regex (over bytes, as ``\\xNN`` escapes) equivalent to the glob."""
    return _Translator(pattern, casefold).suffix(0)


def compile_glob(pattern: str, casefold: bool = False) -> Callable[[str], bool]:
    """A matcher ``value -> bool`` equivalent to ``fnmatch(pattern, value, flags) == 0``."""
    raw = pattern.encode("utf-8", "surrogateescape")
    source = glob_regex_source(raw, casefold)
    byte_match = re.compile(source.encode("latin-1"), re.DOTALL).fullmatch
    # For ASCII values a str regex over the same byte classes behaves identically and avoids
    # encoding every value.
    text_match = re.compile(source, re.DOTALL).fullmatch

    def match(value: str) -> bool:
        cut = value.find("\x00")
        if cut >= 0:
            value = value[:cut]
        if value.isascii():
            return text_match(value) is not None
        return byte_match(value.encode("utf-8", "surrogateescape")) is not None

    return match
