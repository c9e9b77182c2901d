"""Right-hand literals parsed the way libsinsp's ``sinsp_filter_value_parser`` parses them.

The literal's meaning depends on the (transformed) type of the left-hand field, named here by
libsinsp's ``param_type_to_string`` spelling ("CHARBUF", "UINT32", "IPNET", ...). Integers go
through C's ``sscanf("%d%c")`` family, which is where "0x1 is not a valid number" comes from, and
keep C's wrap-around on overflow; ports accept service names; booleans only ``true``/``false``.
Errors carry libsinsp's message and no position (the caller knows the check's).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import string
from collections.abc import Callable
from typing import Final

from falcorules_ci.errors import ConditionError
from falcorules_ci.fields.registry import FieldType

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ParsedValue = int | float | bool | str | bytes | IpAddress | IpNetwork

NUMERIC_TYPES: Final = frozenset({
    "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "ERRNO", "FD", "PID",
    "SYSCALLID", "SIGTYPE", "RELTIME", "ABSTIME", "PORT", "FLAGS8", "FLAGS16", "FLAGS32", "DOUBLE",
    "MODE", "ENUMFLAGS8", "ENUMFLAGS16", "ENUMFLAGS32",
})  # fmt: skip
STRING_TYPES: Final = frozenset({"CHARBUF", "FSPATH", "FSRELPATH"})
IP_TYPES: Final = frozenset({"IPV4ADDR", "IPV4NET", "IPV6ADDR", "IPV6NET", "IPADDR", "IPNET"})
NET_TYPES: Final = frozenset({"IPNET", "IPV4NET", "IPV6NET"})


def ptype_name(field_type: FieldType) -> str:
    """libsinsp's name for a field type (``param_type_to_string``)."""
    return "DYNAMIC" if field_type is FieldType.DYN else field_type.name


class LiteralError(ConditionError):
    """A literal that does not parse for the field's type."""


def _error(message: str) -> LiteralError:
    return LiteralError(message)


# -- C integer parsing -------------------------------------------------------------------------

_C_SPACE = " \t\n\v\f\r"


def c_scan(text: str, *, signed: bool, long: bool) -> int | None:
    """``sscanf(text, "%d%c")`` (or ``%u``, ``%ld``, ``%lu``) returning exactly one conversion.

    Returns the stored value, or None when sscanf would not return 1 (no digits, or anything at
    all after them). Overflow behaves as glibc: strtol/strtoul saturate to 64 bits, then ``%d``
    and ``%u`` keep the low 32 bits.
    """
    text = text.split("\0", 1)[0]
    i, n = 0, len(text)
    while i < n and text[i] in _C_SPACE:
        i += 1
    negative = False
    if i < n and text[i] in "+-":
        negative = text[i] == "-"
        i += 1
    start = i
    while i < n and text[i] in string.digits:
        i += 1
    if i == start or i != n:
        return None
    magnitude = int(text[start:i])
    if signed:
        value = -magnitude if negative else magnitude
        value = max(-(2**63), min(2**63 - 1, value))
        return value if long else _wrap_signed(value, 32)
    if magnitude > 2**64 - 1:
        value = 2**64 - 1
    else:
        value = (2**64 - magnitude) % 2**64 if negative else magnitude
    return value if long else value % 2**32


def _wrap_signed(value: int, bits: int) -> int:
    value %= 2**bits
    return value - 2**bits if value >= 2 ** (bits - 1) else value


def _number(text: str, *, signed: bool, long: bool, bits: int) -> int:
    value = c_scan(text, signed=signed, long=long)
    if value is None:
        raise _error(f"{_c_string(text)} is not a valid number")
    return _wrap_signed(value, bits) if signed else value % 2**bits


def _c_string(text: str) -> str:
    return text.split("\0", 1)[0]


# -- per-type parsers --------------------------------------------------------------------------


def _port(text: str) -> int:
    text = _c_string(text)
    if not text:
        return 0
    if all(c in string.digits for c in text):
        value = int(text)
        if value > 2**31 - 1:
            raise _error("stoi")  # std::stoi's out_of_range, which libsinsp lets through as is
        return value % 2**16
    try:
        return socket.getservbyname(text)
    except (OSError, UnicodeError):
        raise _error(f"unrecognized protocol {text}") from None


def _bool(text: str) -> bool:
    text = _c_string(text)
    if text == "true":
        return True
    if text == "false":
        return False
    raise _error(f"filter error: unrecognized boolean value {text}")


def _ipv4(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None


def _ipv6(text: str) -> ipaddress.IPv6Address | None:
    # inet_pton takes no zone index, which Python's parser would accept.
    if "%" in text:
        return None
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def _ip_address(text: str, family: str) -> IpAddress:
    text = _c_string(text)
    if family == "IPADDR":
        family = "IPV4ADDR" if "." in text else "IPV6ADDR"
    if family == "IPV4ADDR":
        v4 = _ipv4(text)
        if v4 is None:
            raise _error(f"unrecognized IPv4 address {text}")
        return v4
    v6 = _ipv6(text)
    if v6 is None:
        raise _error(f"unrecognized IPv6 address {text}")
    return v6


def _ip_network(text: str, family: str) -> IpNetwork:
    text = _c_string(text)
    if family == "IPNET":
        family = "IPV4NET" if "." in text else "IPV6NET"
    ip, slash, rest = text.partition("/")
    mask = rest.split("\n", 1)[0]
    if family == "IPV4NET":
        if not slash:
            raise _error(f"unrecognized IP network {text}")
        v4 = _ipv4(ip)
        if v4 is None:
            raise _error(f"unrecognized IP address {text}")
        bits = _number(mask, signed=False, long=False, bits=8)
        if bits > 32:
            raise _error(f"invalid netmask {mask}")
        return ipaddress.IPv4Network((v4, bits), strict=False)
    if not slash:
        raise _error(f"invalid v6 netmask: {text}")
    v6 = _ipv6(ip)
    if v6 is None:
        raise _error(f"unrecognized IPv6 address {text}")
    bits = _number(mask, signed=False, long=False, bits=8)
    if bits == 0 or bits > 128:
        raise _error(f"invalid v6 netmask {mask}")
    return ipaddress.IPv6Network((v6, bits), strict=False)


def _parser_table() -> dict[str, Callable[[str], ParsedValue]]:
    def signed(bits: int, long: bool = False) -> Callable[[str], ParsedValue]:
        return lambda text: _number(text, signed=True, long=long, bits=bits)

    def unsigned(bits: int, long: bool = False) -> Callable[[str], ParsedValue]:
        return lambda text: _number(text, signed=False, long=long, bits=bits)

    table: dict[str, Callable[[str], ParsedValue]] = {
        "INT8": signed(8), "INT16": signed(16), "INT32": signed(32),
        "INT64": signed(64, True), "FD": signed(64, True), "ERRNO": signed(64, True), "PID": signed(64, True),
        "L4PROTO": unsigned(8), "FLAGS8": unsigned(8), "UINT8": unsigned(8), "ENUMFLAGS8": unsigned(8),
        "FLAGS16": unsigned(16), "UINT16": unsigned(16), "ENUMFLAGS16": unsigned(16),
        "FLAGS32": unsigned(32), "UINT32": unsigned(32), "MODE": unsigned(32), "ENUMFLAGS32": unsigned(32),
        "UID": unsigned(32), "GID": unsigned(32),
        "UINT64": unsigned(64, True), "RELTIME": unsigned(64, True), "ABSTIME": unsigned(64, True),
        "PORT": _port, "BOOL": _bool,
        # libsinsp has never parsed floating point literals: a DOUBLE takes a 32-bit integer.
        "DOUBLE": lambda text: float(_number(text, signed=True, long=False, bits=32)),
    }  # fmt: skip
    for name in ("CHARBUF", "SOCKADDR", "SOCKTUPLE", "SOCKFAMILY", "FSPATH", "FSRELPATH"):
        table[name] = _c_string
    for name in ("IPADDR", "IPV4ADDR", "IPV6ADDR"):
        table[name] = functools.partial(_ip_address, family=name)
    for name in ("IPNET", "IPV4NET", "IPV6NET"):
        table[name] = functools.partial(_ip_network, family=name)
    return table


_PARSERS: Final = _parser_table()


def parse_value(text: str, ptype: str) -> ParsedValue:
    """A literal as a value of libsinsp type ``ptype``; raises ConditionError with libsinsp's text."""
    if ptype == "BYTEBUF":
        return text.encode("utf-8", "surrogateescape")
    parser = _PARSERS.get(ptype)
    if parser is None:
        raise _error(f"wrong parameter type {ptype}")
    return parser(text)


def unhex(text: str) -> bytes | None:
    """libsinsp's ``unhex`` for ``bcontains``/``bstartswith``: pairs of hex digits, or None."""
    if len(text) % 2 or any(c not in string.hexdigits for c in text):
        return None
    return bytes.fromhex(text)


# -- regex literals ------------------------------------------------------------------------------

_REGEX_SPECIAL = frozenset(".+*?^$()[]{}|\\\0")
_REGEX_OCCURRENCE = frozenset("+*?")


def regex_is_trivial(value: str) -> bool:
    """libsinsp's heuristic: no regex syntax beyond anchors and leading/trailing ``.*``."""
    n, i = len(value), 0
    while i < n:
        ch = value[i]
        if (i == 0 and ch == "^") or (i == n - 1 and ch == "$"):
            i += 1
            continue
        if ((i == 0 and n > 1) or i == n - 2) and ch == "." and value[i + 1] in _REGEX_OCCURRENCE:
            i += 2
            continue
        if ch in _REGEX_SPECIAL:
            return False
        i += 1
    return True


# Escapes RE2 only accepts outside its POSIX mode (Perl classes, word boundaries, \A \z, quoting,
# Unicode classes) and backreferences, which RE2 never supports.
_RE2_POSIX_BAD_ESCAPES = frozenset("dDsSwWbBAzCQEpP123456789")


def check_regex(pattern: str) -> None:
    """Reject what RE2 in POSIX mode (libsinsp's regex engine) rejects, as far as we can tell.

    Python's engine does the rest of the syntax check; RE2-only forms it trips over (stacked
    repetition such as ``a**``) are let through, since RE2 accepts them.
    """
    escaped = False
    for i, ch in enumerate(pattern):
        if escaped:
            if ch in _RE2_POSIX_BAD_ESCAPES:
                raise ConditionError(f"invalid regex pattern: invalid escape sequence: \\{ch}")
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "(" and pattern.startswith("?", i + 1):
            # (?:...), (?i) and friends are Perl extensions: `?` then repeats nothing.
            raise ConditionError("invalid regex pattern: missing argument to repetition operator: ?")
    try:
        re.compile(pattern)
    except re.error as exc:
        if exc.msg != "multiple repeat":
            raise ConditionError(f"invalid regex pattern: {_re2_wording(exc, pattern)}") from None


def _re2_wording(exc: re.error, pattern: str) -> str:
    # RE2's wording for the syntax errors both engines share.
    pos = exc.pos or 0
    if exc.msg == "unterminated character set":
        return f"missing closing ]: {pattern[pos:]}"
    if exc.msg.startswith("missing ), unterminated subpattern"):
        return f"missing ): {pattern}"
    if exc.msg == "unbalanced parenthesis":
        return f"unexpected ): {pattern}"
    if exc.msg == "nothing to repeat":
        return f"missing argument to repetition operator: {pattern[pos : pos + 1]}"
    return exc.msg


__all__ = [
    "IP_TYPES",
    "NET_TYPES",
    "NUMERIC_TYPES",
    "STRING_TYPES",
    "LiteralError",
    "ParsedValue",
    "c_scan",
    "check_regex",
    "parse_value",
    "ptype_name",
    "regex_is_trivial",
    "unhex",
]
