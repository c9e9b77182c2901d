"""The condition language's tokens as libsinsp 0.25 lexes them, and its string escapes.

Token patterns follow libsinsp's RE2 POSIX regexes (``filter/parser.cpp``), written with
possessive quantifiers so that every token lexes in linear time on hostile input. The
``lexes_as_*`` predicates tell the printer which literals can be written back unquoted.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from falcorules_ci.errors import ConditionError

MAX_DEPTH = 1000

# RE2's POSIX [[:space:]] (\t\n\v\f\r and space) and the parser's own blanks differ: \v and
# \f are spaces but not blanks, \b is a blank but not a space.
BLANKS = re.compile(r"[ \t\b\r\n]*")
# Possessive quantifiers keep every token linear-time on hostile input.
NOT_BLANK = re.compile(r"not[\t\n\v\f\r ]++")
IDENTIFIER = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*+")
FIELD_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*+(?:\.[a-zA-Z][a-zA-Z0-9_]*+)++")
FIELD_ARG_BARE = re.compile(r"[^\[\]\"'\t\n\v\f\r ]++")
HEX_NUM = re.compile(r"0[xX][0-9a-fA-F]++")
NUMBER = re.compile(r"[+\-]?[0-9]++(?:\.[0-9]*+)?(?:[eE][+\-][0-9]++)?")
BARE_STR = re.compile(r"[^()\"'\t\n\v\f\r =,]++")

UNARY_OPERATORS = ("exists",)
NUMERIC_OPERATORS = ("<=", "<", ">=", ">")
# A trailing space marks operators that must be followed by a blank, as in libsinsp.
STRING_OPERATORS = (
    "==", "=", "!=", "glob ", "iglob ", "contains ", "icontains ", "bcontains ", "startswith ",
    "bstartswith ", "endswith ", "regex ",
)  # fmt: skip
MODIFIER_OPERATORS = ("oneof ", "anyof ", "allof ")
LIST_OPERATORS = ("intersects", "in", "pmatch")
TRANSFORMER_NAMES = ("tolower", "toupper", "b64", "basename", "len", "join", "concat", "getopt")
TRANSFORMER_TOKENS = tuple(name + "(" for name in TRANSFORMER_NAMES)
TRANSFORMER_INITIALS = frozenset(name[0] for name in TRANSFORMER_NAMES)
BLANK_CHARS = frozenset(" \t\b\r\n")


def _quoted_names(names: tuple[str, ...]) -> str:
    return ", ".join(f"'{name.strip()}'" for name in names)


ALL_OPERATORS = _quoted_names(UNARY_OPERATORS + NUMERIC_OPERATORS + STRING_OPERATORS + LIST_OPERATORS)
ALL_TRANSFORMERS = _quoted_names(("val", *TRANSFORMER_NAMES))


class _RecursionHeadroom:
    """Raise Python's recursion limit above the parser's depth guard while any parse runs.

    The parser mirrors libsinsp's recursive functions one to one, so a condition at the depth
    limit needs about MAX_DEPTH Python frames on top of the caller's. The previous limit is put
    back when the last concurrent parse finishes.
    """

    _NEEDED = 4 * MAX_DEPTH

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._restore: int | None = None

    def __enter__(self) -> None:
        with self._lock:
            if self._active == 0:
                current = sys.getrecursionlimit()
                if current < self._NEEDED:
                    sys.setrecursionlimit(self._NEEDED)
                    self._restore = current
            self._active += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._restore is not None:
                sys.setrecursionlimit(self._restore)
                self._restore = None


recursion_headroom = _RecursionHeadroom()


@contextmanager
def deep_nesting_guard() -> Iterator[None]:
    """Run an AST walk with recursion headroom; too deep a tree becomes a ConditionError.

    Macro substitution can nest ASTs far deeper than one parse allows; Falco's C++ walks them on
    its native stack, so only an absurd depth fails here, and never with a bare RecursionError.
    """
    with recursion_headroom:
        try:
            yield
        except RecursionError:
            raise ConditionError("condition nested too deeply to process", 0) from None


def unescape_quoted(token: str) -> str:
    """libsinsp's ``unescape_str`` on a quoted token including its delimiters."""
    if "\\" not in token:
        return token[1:-1]
    out: list[str] = []
    delimiter = token[0]
    escaped = False
    for ch in token[1:-1]:
        if not escaped:
            if ch == "\\":
                escaped = True
            else:
                out.append(ch)
            continue
        escaped = False
        if ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif ch == '"':
            if delimiter != ch:
                raise EscapeError("invalid \\\" escape in '-quoted string")
            out.append(ch)
        elif ch == "'":
            if delimiter != ch:
                raise EscapeError("invalid \\' escape in \"-quoted string")
            out.append(ch)
        else:
            raise EscapeError("unsupported string escape sequence: \\" + ch)
    return "".join(out)


# "\ " giving a backslash is a compatibility quirk libsinsp keeps for old rules.
_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", " ": "\\", "\\": "\\", "/": "/"}


class EscapeError(Exception):
    """An invalid escape inside a quoted string; the parser turns it into a ConditionError."""


def _is_c_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def lexes_as_bare_string(value: str) -> bool:
    """Whether ``value`` reads back as one bare string token (``[^()"'\\s=,]+``)."""
    match = BARE_STR.match(value)
    return match is not None and match.end() == len(value)


def lexes_as_identifier(value: str) -> bool:
    match = IDENTIFIER.match(value)
    return match is not None and match.end() == len(value)


def lexes_as_field_name(value: str) -> bool:
    match = FIELD_NAME.match(value)
    return match is not None and match.end() == len(value)


def lexes_as_field_arg(value: str) -> bool:
    match = FIELD_ARG_BARE.match(value)
    return match is not None and match.end() == len(value)


def lexes_as_number(value: str) -> bool:
    """Whether ``value`` reads back whole as libsinsp's number token (hex is tried first)."""
    match = HEX_NUM.match(value) or NUMBER.match(value)
    return match is not None and match.end() == len(value)


def bool_keyword_at(text: str, pos: int) -> bool:
    """libsinsp's ``bool_keyword_follows``: ``and``/``or``/``not`` not followed by a letter or digit."""
    for keyword in ("and", "or", "not"):
        if text.startswith(keyword, pos):
            after = pos + len(keyword)
            if after == len(text) or not _is_c_alnum(text[after]):
                return True
    return False


def is_bool_keyword_start(value: str) -> bool:
    """Whether a token starting with ``value`` would be taken for ``and``/``or``/``not``."""
    return bool_keyword_at(value, 0)


__all__ = [
    "ALL_OPERATORS",
    "ALL_TRANSFORMERS",
    "BARE_STR",
    "BLANKS",
    "BLANK_CHARS",
    "FIELD_ARG_BARE",
    "FIELD_NAME",
    "HEX_NUM",
    "IDENTIFIER",
    "LIST_OPERATORS",
    "MAX_DEPTH",
    "MODIFIER_OPERATORS",
    "NOT_BLANK",
    "NUMBER",
    "NUMERIC_OPERATORS",
    "STRING_OPERATORS",
    "TRANSFORMER_INITIALS",
    "TRANSFORMER_NAMES",
    "TRANSFORMER_TOKENS",
    "UNARY_OPERATORS",
    "EscapeError",
    "bool_keyword_at",
    "deep_nesting_guard",
    "is_bool_keyword_start",
    "lexes_as_bare_string",
    "lexes_as_field_arg",
    "lexes_as_field_name",
    "lexes_as_identifier",
    "lexes_as_number",
    "recursion_headroom",
    "unescape_quoted",
]
