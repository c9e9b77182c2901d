"""Event parameter decoding: libscap ``PT_*`` on-disk encodings to the Python values of
:mod:`falcorules_ci.sources.event`.

Each event code gets a tuple of :data:`ParamSpec` built once from the event table. A fixed-size
parameter whose on-disk length matches its type is one ``struct`` call; anything else goes through
the type's slower decoder. Conventions beyond the event model's table:

- ``IPV4ADDR`` is the ``u32`` read little-endian (the address bytes are in network order), like
  the scenario writer's normalized value; ``IPV6ADDR`` and ``DYN`` stay raw ``bytes``;
- ``SOCKTUPLE`` of a unix socket puts its one path in both ``src_path`` and ``dst_path``;
- a fixed-size number stored with another standard width (1, 2, 4 or 8 bytes) is read at that width;
- a value too short for its type is left out of ``params`` (like an empty one) and counted by the
  reader as ``malformed PT_x parameter``, so values always have their documented Python type.
"""

from __future__ import annotations

import mmap
import socket
import struct
from collections.abc import Callable
from typing import Any, Final

from falcorules_ci.fields.event_table import EventInfo
from falcorules_ci.sources.event import SockAddr, SockTuple

Buffer = bytes | mmap.mmap
SlowDecoder = Callable[[Buffer, int, int], Any]
# (name, size of the fixed encoding or -1, struct unpacker for that size, slow decoder, PT type)
ParamSpec = tuple[str, int, Callable[[Buffer, int], tuple[Any, ...]] | None, SlowDecoder, str]


class _Malformed:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MALFORMED"


MALFORMED: Final = _Malformed()

_SIGNED: Final[dict[str, str]] = {
    "PT_INT8": "b", "PT_INT16": "h", "PT_INT32": "i", "PT_INT64": "q", "PT_ERRNO": "q", "PT_FD": "q",
    "PT_PID": "q", "PT_FD32": "i", "PT_PID32": "i",
}  # fmt: skip
_UNSIGNED: Final[dict[str, str]] = {
    "PT_UINT8": "B", "PT_UINT16": "H", "PT_UINT32": "I", "PT_UINT64": "Q", "PT_FLAGS8": "B",
    "PT_FLAGS16": "H", "PT_FLAGS32": "I", "PT_ENUMFLAGS8": "B", "PT_ENUMFLAGS16": "H",
    "PT_ENUMFLAGS32": "I", "PT_UID": "I", "PT_GID": "I", "PT_MODE": "I", "PT_SIGSET": "I",
    "PT_SYSCALLID": "H", "PT_SIGTYPE": "B", "PT_PORT": "H", "PT_L4PROTO": "B", "PT_SOCKFAMILY": "B",
    "PT_BOOL": "I", "PT_RELTIME": "Q", "PT_ABSTIME": "Q", "PT_IPV4ADDR": "I",
}  # fmt: skip
_BY_WIDTH_SIGNED: Final = {1: "<b", 2: "<h", 4: "<i", 8: "<q"}
_BY_WIDTH_UNSIGNED: Final = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}

_U16: Final = struct.Struct("<H").unpack_from
_U64: Final = struct.Struct("<Q").unpack_from
_AF_UNIX: Final = 1
_AF_INET: Final = 2
_AF_INET6: Final = 10


def _text(raw: bytes) -> str:
    cut = raw.find(b"\0")
    if cut >= 0:
        raw = raw[:cut]
    return raw.decode("utf-8", "surrogateescape")


def _charbuf(buf: Buffer, pos: int, length: int) -> str:
    # the stored length counts the terminating NUL; libsinsp reads it as a C string
    return _text(buf[pos : pos + length])


def _bytebuf(buf: Buffer, pos: int, length: int) -> bytes:
    return bytes(buf[pos : pos + length])


def _ipv4(buf: Buffer, pos: int) -> str:
    return socket.inet_ntop(socket.AF_INET, buf[pos : pos + 4])


def _ipv6(buf: Buffer, pos: int) -> str:
    return socket.inet_ntop(socket.AF_INET6, buf[pos : pos + 16])


def _sockaddr(buf: Buffer, pos: int, length: int) -> SockAddr | _Malformed:
    family = buf[pos]
    if family == _AF_INET:
        if length < 7:
            return MALFORMED
        return SockAddr(family, _ipv4(buf, pos + 1), _U16(buf, pos + 5)[0])
    if family == _AF_INET6:
        if length < 19:
            return MALFORMED
        return SockAddr(family, _ipv6(buf, pos + 1), _U16(buf, pos + 17)[0])
    if family == _AF_UNIX:
        return SockAddr(family, path=_text(buf[pos + 1 : pos + length]))
    return SockAddr(family)


def _socktuple(buf: Buffer, pos: int, length: int) -> SockTuple | _Malformed:
    family = buf[pos]
    if family == _AF_INET:
        if length < 13:
            return MALFORMED
        return SockTuple(family, _ipv4(buf, pos + 1), _U16(buf, pos + 5)[0], _ipv4(buf, pos + 7),
                         _U16(buf, pos + 11)[0])  # fmt: skip
    if family == _AF_INET6:
        if length < 37:
            return MALFORMED
        return SockTuple(family, _ipv6(buf, pos + 1), _U16(buf, pos + 17)[0], _ipv6(buf, pos + 19),
                         _U16(buf, pos + 35)[0])  # fmt: skip
    if family == _AF_UNIX:
        if length < 17:
            return MALFORMED
        path = _text(buf[pos + 17 : pos + length])
        return SockTuple(family, src_path=path, dst_path=path, unix_src=_U64(buf, pos + 1)[0],
                         unix_dst=_U64(buf, pos + 9)[0])  # fmt: skip
    return SockTuple(family)


_FD_AND_FLAGS: Final = struct.Struct("<qH")


def _fdlist(buf: Buffer, pos: int, length: int) -> tuple[tuple[int, int], ...] | _Malformed:
    if length < 2:
        return MALFORMED
    count = _U16(buf, pos)[0]
    end = pos + 2 + count * _FD_AND_FLAGS.size
    if end > pos + length:
        return MALFORMED
    return tuple(_FD_AND_FLAGS.iter_unpack(buf[pos + 2 : end]))


def _charbufarray(buf: Buffer, pos: int, length: int) -> tuple[str, ...]:
    items = bytes(buf[pos : pos + length]).split(b"\0")
    if items and not items[-1]:
        items.pop()  # the final NUL ends the last string rather than starting another
    return tuple(item.decode("utf-8", "surrogateescape") for item in items)


def _number_any_width(signed: bool) -> SlowDecoder:
    formats = _BY_WIDTH_SIGNED if signed else _BY_WIDTH_UNSIGNED

    def decode(buf: Buffer, pos: int, length: int) -> int | _Malformed:
        fmt = formats.get(length)
        if fmt is None:
            return MALFORMED
        return int(struct.unpack_from(fmt, buf, pos)[0])

    return decode


def _double(buf: Buffer, pos: int, length: int) -> float | _Malformed:
    return float(struct.unpack_from("<d", buf, pos)[0]) if length == 8 else MALFORMED


def _ipv6addr(buf: Buffer, pos: int, length: int) -> bytes | _Malformed:
    return MALFORMED if length != 16 else bytes(buf[pos : pos + 16])


_SLOW: Final[dict[str, SlowDecoder]] = {
    "PT_CHARBUF": _charbuf, "PT_FSPATH": _charbuf, "PT_FSRELPATH": _charbuf, "PT_BYTEBUF": _bytebuf,
    "PT_SOCKADDR": _sockaddr, "PT_SOCKTUPLE": _socktuple, "PT_FDLIST": _fdlist,
    "PT_CHARBUFARRAY": _charbufarray, "PT_CHARBUF_PAIR_ARRAY": _charbufarray, "PT_DYN": _bytebuf,
    "PT_DOUBLE": _double, "PT_IPV6ADDR": _ipv6addr,
}  # fmt: skip
_SIGNED_ANY: Final = _number_any_width(True)
_UNSIGNED_ANY: Final = _number_any_width(False)


def param_spec(name: str, ptype: str) -> ParamSpec:
    """How to decode one parameter of type ``ptype`` (an unknown type decodes to raw bytes)."""
    code = _SIGNED.get(ptype)
    if code is not None:
        fixed = struct.Struct("<" + code)
        return name, fixed.size, fixed.unpack_from, _SIGNED_ANY, ptype
    code = _UNSIGNED.get(ptype)
    if code is not None:
        fixed = struct.Struct("<" + code)
        return name, fixed.size, fixed.unpack_from, _UNSIGNED_ANY, ptype
    return name, -1, None, _SLOW.get(ptype, _bytebuf), ptype


def event_specs(info: EventInfo) -> tuple[ParamSpec, ...]:
    return tuple(param_spec(p.name, p.type) for p in info.params)


def decode_params(
    specs: tuple[ParamSpec, ...],
    buf: Buffer,
    pos: int,
    lens: tuple[int, ...],
    on_malformed: Callable[[str], None],
) -> dict[str, Any]:
    """The parameters whose lengths are ``lens``, values starting at ``buf[pos]``.

    Lengths beyond ``specs`` (parameters newer than our table) are not decoded; zero lengths are
    absent parameters. Lengths were validated against the event by the reader.
    """
    params: dict[str, Any] = {}
    for (name, size, unpack, slow, ptype), length in zip(specs, lens, strict=False):
        if length:
            if length == size:
                params[name] = unpack(buf, pos)[0]  # type: ignore[misc]  # size != -1 implies unpack
            else:
                value = slow(buf, pos, length)
                if value is MALFORMED:
                    on_malformed(ptype)
                else:
                    params[name] = value
        pos += length
    return params
