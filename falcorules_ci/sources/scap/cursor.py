"""Bounds-checked sequential reads inside one header block's body (not used on the event hot path)."""

from __future__ import annotations

import mmap
import struct
from typing import Final, NoReturn

from falcorules_ci.sources.scap.errors import CaptureError

_U8: Final = struct.Struct("<B")
_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")
_U64: Final = struct.Struct("<Q")
_I64: Final = struct.Struct("<q")


def c_string(raw: bytes) -> str:
    """Bytes read into a C string: cut at the first NUL, undecodable bytes kept (surrogateescape)."""
    cut = raw.find(b"\0")
    if cut >= 0:
        raw = raw[:cut]
    return raw.decode("utf-8", "surrogateescape")


def nul_list(raw: bytes) -> tuple[str, ...]:
    """A NUL-separated list (``args``, ``env``, ``cgroups``) as libsinsp splits it.

    A missing final NUL is supplied, as libscap does; empty items between two NULs are kept.
    """
    if not raw:
        return ()
    if not raw.endswith(b"\0"):
        raw += b"\0"
    return tuple(item.decode("utf-8", "surrogateescape") for item in raw.split(b"\0")[:-1])


class Cursor:
    """Reads little-endian values from ``buf[pos:stop]``; running past ``stop`` is a CaptureError.

    ``base`` is the stream offset of ``buf[0]``, so errors carry absolute offsets. ``what`` names
    the structure being read, for messages.
    """

    __slots__ = ("base", "buf", "path", "pos", "stop", "what")

    def __init__(self, buf: bytes | mmap.mmap, pos: int, stop: int, path: str, base: int, what: str) -> None:
        self.buf = buf
        self.pos = pos
        self.stop = stop
        self.path = path
        self.base = base
        self.what = what

    @property
    def offset(self) -> int:
        return self.base + self.pos

    @property
    def left(self) -> int:
        return self.stop - self.pos

    def fail(self, message: str, pos: int | None = None) -> NoReturn:
        raise CaptureError(f"{self.what}: {message}", self.path, self.base + (self.pos if pos is None else pos))

    def _need(self, n: int) -> int:
        pos = self.pos
        if self.stop - pos < n:
            self.fail(f"entry runs past the end of the block (needs {n} bytes, {self.stop - pos} left)")
        self.pos = pos + n
        return pos

    def u8(self) -> int:
        return int(_U8.unpack_from(self.buf, self._need(1))[0])

    def u16(self) -> int:
        return int(_U16.unpack_from(self.buf, self._need(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack_from(self.buf, self._need(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack_from(self.buf, self._need(8))[0])

    def i64(self) -> int:
        return int(_I64.unpack_from(self.buf, self._need(8))[0])

    def take(self, n: int) -> bytes:
        pos = self._need(n)
        return bytes(self.buf[pos : pos + n])

    def sized(self, limit: int, name: str, inclusive: bool = True) -> bytes:
        """A ``u16`` length then that many bytes; lengths over ``limit`` are refused as libscap does.

        ``inclusive``: whether a length equal to ``limit`` is still allowed (libscap's checks differ
        per block).
        """
        start = self.pos
        length = self.u16()
        if length > limit or (length == limit and not inclusive):
            self.fail(f"invalid {name} length {length} (limit {limit})", start)
        return self.take(length)

    def skip_to(self, pos: int) -> None:
        self.pos = pos
