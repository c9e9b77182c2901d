"""Event parameter encoding: the Python values of :mod:`falcorules_ci.sources.event` to libscap's
``PT_*`` on-disk bytes, and whole event blocks from them.

The inverse of :mod:`falcorules_ci.sources.scap.params`. Numbers are masked to their type's width
(so ``-1`` for a ``UID`` is written as ``0xFFFFFFFF``, as the kernel drivers do); strings get their
terminating NUL, which the stored length counts; ``IPV4ADDR`` accepts the reader's integer form or
dotted text; a ``SOCKTUPLE`` of a unix socket stores one path (``dst_path``, else ``src_path``).
A parameter that is missing (or ``None``) is written with length 0, libscap's "empty" value, which
the reader reports as absent.

:class:`EventEncoder` turns one event into one complete event block. It is compiled once per
written event code and used on the hot path of the writer, so it avoids per-event allocation
beyond the parts list.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any, Final

from falcorules_ci.fields.event_table import EventInfo
from falcorules_ci.sources.event import SockAddr, SockTuple
from falcorules_ci.sources.scap import blocks as b

Encoder = Callable[[Any], bytes]

_AF_UNIX: Final = 1
_AF_INET: Final = 2
_AF_INET6: Final = 10
# Parameter values longer than this do not fit a u16 length; drivers cut data at the snaplen anyway
MAX_SMALL_PARAM: Final = 0xFFFF

_INT_WIDTH: Final[dict[str, str]] = {
    "PT_INT8": "B", "PT_UINT8": "B", "PT_FLAGS8": "B", "PT_ENUMFLAGS8": "B", "PT_SIGTYPE": "B",
    "PT_L4PROTO": "B", "PT_SOCKFAMILY": "B",
    "PT_INT16": "H", "PT_UINT16": "H", "PT_FLAGS16": "H", "PT_ENUMFLAGS16": "H", "PT_SYSCALLID": "H",
    "PT_PORT": "H",
    "PT_INT32": "I", "PT_UINT32": "I", "PT_FLAGS32": "I", "PT_ENUMFLAGS32": "I", "PT_UID": "I", "PT_GID": "I",
    "PT_MODE": "I", "PT_BOOL": "I", "PT_SIGSET": "I", "PT_FD32": "I", "PT_PID32": "I",
    "PT_INT64": "Q", "PT_UINT64": "Q", "PT_ERRNO": "Q", "PT_FD": "Q", "PT_PID": "Q", "PT_RELTIME": "Q",
    "PT_ABSTIME": "Q",
}  # fmt: skip
_STRING_TYPES: Final = frozenset({"PT_CHARBUF", "PT_FSPATH", "PT_FSRELPATH"})

_U16: Final = struct.Struct("<H").pack
_U64X2: Final = struct.Struct("<QQ").pack
_FD_AND_FLAGS: Final = struct.Struct("<qH").pack
_DOUBLE: Final = struct.Struct("<d").pack
_PORT: Final = struct.Struct("<H").pack


def _int_encoder(code: str) -> Encoder:
    pack = struct.Struct("<" + code).pack
    mask = (1 << (8 * struct.calcsize(code))) - 1

    def encode(value: Any) -> bytes:
        return pack(value & mask)

    return encode


def _text_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"expected text, got {type(value).__name__}")


def encode_charbuf(value: Any) -> bytes:
    """A C string: the text and its terminating NUL (which the stored length includes)."""
    return _text_bytes(value) + b"\0"


def encode_bytebuf(value: Any) -> bytes:
    return _text_bytes(value)


def _ipv4(text: str) -> bytes:
    return socket.inet_aton(text or "0.0.0.0")


def _ipv6(text: str) -> bytes:
    if not text:
        return bytes(16)
    if ":" not in text:  # an IPv4 peer of an IPv6 socket, as the kernel maps it
        return bytes(10) + b"\xff\xff" + socket.inet_aton(text)
    return socket.inet_pton(socket.AF_INET6, text)


def encode_sockaddr(value: Any) -> bytes:
    if not isinstance(value, SockAddr):
        raise TypeError(f"expected SockAddr, got {type(value).__name__}")
    family = value.family & 0xFF
    if family == _AF_INET:
        return bytes((family,)) + _ipv4(value.addr) + _PORT(value.port & 0xFFFF)
    if family == _AF_INET6:
        return bytes((family,)) + _ipv6(value.addr) + _PORT(value.port & 0xFFFF)
    if family == _AF_UNIX:
        return bytes((family,)) + encode_charbuf(value.path)
    return bytes((family,))


def encode_socktuple(value: Any) -> bytes:
    if not isinstance(value, SockTuple):
        raise TypeError(f"expected SockTuple, got {type(value).__name__}")
    family = value.family & 0xFF
    if family == _AF_INET:
        return (bytes((family,)) + _ipv4(value.src_addr) + _PORT(value.src_port & 0xFFFF)
                + _ipv4(value.dst_addr) + _PORT(value.dst_port & 0xFFFF))  # fmt: skip
    if family == _AF_INET6:
        return (bytes((family,)) + _ipv6(value.src_addr) + _PORT(value.src_port & 0xFFFF)
                + _ipv6(value.dst_addr) + _PORT(value.dst_port & 0xFFFF))  # fmt: skip
    if family == _AF_UNIX:
        mask = (1 << 64) - 1
        return (bytes((family,)) + _U64X2(value.unix_src & mask, value.unix_dst & mask)
                + encode_charbuf(value.dst_path or value.src_path))  # fmt: skip
    return bytes((family,))


def encode_fdlist(value: Any) -> bytes:
    items = list(value)
    return _U16(len(items) & 0xFFFF) + b"".join(_FD_AND_FLAGS(fd, flags & 0xFFFF) for fd, flags in items)


def encode_string_list(value: Any) -> bytes:
    """``CHARBUFARRAY`` / ``CHARBUF_PAIR_ARRAY``: every item NUL-terminated."""
    if isinstance(value, str | bytes):
        raise TypeError("expected a sequence of strings")
    return b"".join(_text_bytes(item) + b"\0" for item in value)


def encode_ipv4addr(value: Any) -> bytes:
    # the reader's integer is the four network-order bytes read little-endian
    if isinstance(value, str):
        return _ipv4(value)
    return struct.pack("<I", value & 0xFFFFFFFF)


def encode_ipv6addr(value: Any) -> bytes:
    if isinstance(value, str):
        return _ipv6(value)
    raw = bytes(value)
    if len(raw) != 16:
        raise ValueError(f"an IPv6 address has 16 bytes, got {len(raw)}")
    return raw


def encode_double(value: Any) -> bytes:
    return _DOUBLE(float(value))


_OTHER: Final[dict[str, Encoder]] = {
    "PT_BYTEBUF": encode_bytebuf, "PT_SOCKADDR": encode_sockaddr, "PT_SOCKTUPLE": encode_socktuple,
    "PT_FDLIST": encode_fdlist, "PT_CHARBUFARRAY": encode_string_list, "PT_CHARBUF_PAIR_ARRAY": encode_string_list,
    "PT_DYN": encode_bytebuf, "PT_IPV4ADDR": encode_ipv4addr, "PT_IPV6ADDR": encode_ipv6addr,
    "PT_DOUBLE": encode_double,
}  # fmt: skip


def _fixed_size(ptype: str) -> int:
    width = _INT_WIDTH.get(ptype)
    if width is not None:
        return struct.calcsize(width)
    return 8 if ptype == "PT_DOUBLE" else 0


def param_encoder(ptype: str) -> Encoder:
    """How to write a value of libscap type ``ptype`` (an unknown type takes raw bytes)."""
    width = _INT_WIDTH.get(ptype)
    if width is not None:
        return _int_encoder(width)
    if ptype in _STRING_TYPES:
        return encode_charbuf
    return _OTHER.get(ptype, encode_bytebuf)


_BLOCK_AND_CPU: Final = struct.Struct("<IIH")
_BLOCK_CPU_FLAGS: Final = struct.Struct("<IIHI")
_EVENT_HEADER: Final = struct.Struct("<QQIHI")  # ts, tid, len, type, nparams (tid written unsigned)
_TRAILER: Final = struct.Struct("<I").pack
_PADDING: Final = (b"", b"\0\0\0", b"\0\0", b"\0")
_MASK64: Final = (1 << 64) - 1


class EventEncoder:
    """Writes events of one code with the first ``nparams`` parameters of its table entry.

    ``truncations`` counts parameter values cut to fit a u16 length (the caller reports them).
    """

    __slots__ = ("_lens", "code", "large_payload", "len_size", "nparams", "specs", "truncations")

    def __init__(self, info: EventInfo, nparams: int) -> None:
        self.code = info.code
        self.nparams = nparams
        self.large_payload = "EF_LARGE_PAYLOAD" in info.flags
        self.len_size = 4 if self.large_payload else 2
        # (name, encoder, size of a fixed-size value or 0, whether a cut value keeps a final NUL)
        self.specs: tuple[tuple[str, Encoder, int, bool], ...] = tuple(
            (p.name, param_encoder(p.type), _fixed_size(p.type), p.type in _STRING_TYPES) for p in info.params[:nparams]
        )
        self._lens = struct.Struct(f"<{nparams}{'I' if self.large_payload else 'H'}").pack
        self.truncations = 0

    def encode(self, ts: int, tid: int, cpu: int, flags: int, params: dict[str, Any]) -> bytes:
        """One complete event block (EV_V2 or, with ``flags``, EVF_V2; the LARGE variants when the
        event type carries large payloads or the block exceeds libscap's 64 KiB read buffer)."""
        values: list[bytes] = []
        lens: list[int] = []
        add_value = values.append
        add_len = lens.append
        get = params.get
        for name, encode, size, is_string in self.specs:
            value = get(name)
            if value is None:
                add_len(0)
            elif size:
                add_value(encode(value))
                add_len(size)
            else:
                raw = encode(value)
                length = len(raw)
                if length > MAX_SMALL_PARAM and not self.large_payload:
                    raw = raw[: MAX_SMALL_PARAM - 1] + b"\0" if is_string else raw[:MAX_SMALL_PARAM]
                    length = MAX_SMALL_PARAM
                    self.truncations += 1
                add_value(raw)
                add_len(length)
        payload = b"".join(values)
        event_len = 26 + self.nparams * self.len_size + len(payload)
        head = 14 if flags else 10  # block header, cpu id, flags
        total = (head + event_len + 4 + 3) & ~3
        large = self.large_payload or total - 8 > b.MAX_SMALL_EVENT_BODY
        if flags:
            block = _BLOCK_CPU_FLAGS.pack(b.EVF_V2_LARGE if large else b.EVF_V2, total, cpu & 0xFFFF, flags)
        else:
            block = _BLOCK_AND_CPU.pack(b.EV_V2_LARGE if large else b.EV_V2, total, cpu & 0xFFFF)
        return b"".join((
            block, _EVENT_HEADER.pack(ts & _MASK64, tid & _MASK64, event_len, self.code, self.nparams),
            self._lens(*lens), payload, _PADDING[(head + event_len) & 3], _TRAILER(total),
        ))  # fmt: skip


def frame_block(block_type: int, body: bytes | Sequence[bytes]) -> bytes:
    """A header block: type, total length, the body padded to 4 bytes, the total length again."""
    data = body if isinstance(body, bytes) else b"".join(body)
    total = (8 + len(data) + 4 + 3) & ~3
    return b"".join((struct.pack("<II", block_type, total), data, _PADDING[len(data) & 3], _TRAILER(total)))
