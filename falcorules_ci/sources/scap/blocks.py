"""Block framing of ``.scap`` captures: block type numbers and a window over the uncompressed bytes.

A capture is a sequence of pcapng-like blocks (``u32 type | u32 total_length | body | pad |
u32 total_length``), little-endian, optionally gzip-compressed as a whole (libscap reads through
zlib, so both work). :class:`ByteWindow` gives the parsers ``struct.unpack_from`` access to the
uncompressed bytes: a read-only ``mmap`` of a plain file (no copying, memory bounded by the OS
page cache), or a sliding buffer refilled from a gzip stream in 1 MiB chunks. Either way memory does
not grow with the file, and a block length is checked against what is actually there before any
buffer is sized from it.
"""

from __future__ import annotations

import gzip
import mmap
import os
import struct
import zlib
from typing import BinaryIO, Final

from falcorules_ci.sources.scap.errors import CaptureError

SHB_TYPE: Final = 0x0A0D0D0A
SHB_MAGIC: Final = 0x1A2B3C4D
SHB_MAGIC_SWAPPED: Final = 0x4D3C2B1A
SHB_MAJOR_SUPPORTED: Final = 1

MI_TYPES: Final = frozenset({0x201, 0x8002ABCD})
# proc list block versions; the 0x80xxABCD numbers predate libscap's first release
PL_VERSIONS: Final[dict[int, int]] = {
    0x202: 1, 0x8000ABCD: 1, 0x207: 2, 0x8013ABCD: 2, 0x209: 3, 0x8014ABCD: 3,
    0x210: 4, 0x211: 5, 0x212: 6, 0x213: 7, 0x214: 8, 0x215: 9,
}  # fmt: skip
FDL_VERSIONS: Final[dict[int, int]] = {0x203: 1, 0x8001ABCD: 1, 0x218: 2}
IL_VERSIONS: Final[dict[int, int]] = {0x205: 1, 0x8011ABCD: 1, 0x219: 2}
UL_VERSIONS: Final[dict[int, int]] = {0x206: 1, 0x8012ABCD: 1, 0x220: 2}

EV_V1: Final = 0x204
EV_V1_INT: Final = 0x8010ABCD
EVF_V1: Final = 0x208
EV_V2: Final = 0x216
EVF_V2: Final = 0x217
EV_V2_LARGE: Final = 0x221
EVF_V2_LARGE: Final = 0x222
EVENT_TYPES: Final = frozenset({EV_V1, EV_V1_INT, EVF_V1, EV_V2, EVF_V2, EV_V2_LARGE, EVF_V2_LARGE})
EVENT_LARGE_TYPES: Final = frozenset({EV_V2_LARGE, EVF_V2_LARGE})

BLOCK_OVERHEAD: Final = 12  # type, total length, trailing total length
# libscap reads a non-LARGE event block into a 64 KiB buffer and refuses longer ones
MAX_SMALL_EVENT_BODY: Final = 1 << 16
# No real block comes near this; anything longer is corruption, refused before buffering it
MAX_BLOCK_LEN: Final = 256 << 20

_CHUNK: Final = 1 << 20
_GZIP_MAGIC: Final = b"\x1f\x8b"

BLOCK_HEADER: Final = struct.Struct("<II")
U32: Final = struct.Struct("<I")


class ByteWindow:
    """The uncompressed capture bytes ``buf[0:end]`` starting at stream offset ``base``.

    Parsers keep a position ``pos`` into ``buf``; when they need more than ``end - pos`` bytes
    they call :meth:`refill`, which may move the window (returning the new position of the same
    byte). For an ``mmap`` the window already spans the whole file and never moves.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.base = 0
        self.size: int | None = None  # total uncompressed length when known up front
        self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._map: mmap.mmap | None = None
        self._gzip: gzip.GzipFile | None = None
        self.buf: bytes | mmap.mmap = b""
        self.end = 0
        try:
            if self._file.read(2) == _GZIP_MAGIC:
                self._file.seek(0)
                self._gzip = gzip.GzipFile(fileobj=self._file, mode="rb")
            else:
                self.size = os.fstat(self._file.fileno()).st_size
                if self.size:
                    self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
                    self.buf = self._map
                    self.end = self.size
        except BaseException:
            self.close()
            raise

    @property
    def compressed(self) -> bool:
        return self._gzip is not None

    def close(self) -> None:
        self.buf = b""
        self.end = 0
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._gzip is not None:
            self._gzip.close()
            self._gzip = None
        self._file.close()

    def __enter__(self) -> ByteWindow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def remaining_known(self, pos: int) -> int | None:
        """How many bytes follow ``pos`` in the whole stream, if that is known without reading."""
        return None if self.size is None else self.size - self.base - pos

    def refill(self, pos: int, need: int) -> int:
        """Try to make ``need`` bytes available from ``pos``; return the new ``pos``.

        The caller checks ``end - pos >= need`` afterwards: fewer means the stream ended.
        """
        if self._gzip is None:
            return pos
        parts: list[bytes] = [bytes(self.buf[pos : self.end])]
        have = self.end - pos
        while have < need:
            data = self._read_compressed(pos)
            if not data:
                break
            parts.append(data)
            have += len(data)
        self.base += pos
        self.buf = b"".join(parts) if len(parts) > 1 else parts[0]
        self.end = have
        return 0

    def skip_to(self, offset: int) -> int:
        """Position the window at stream ``offset`` (forward only); return the position in ``buf``."""
        pos = offset - self.base
        while self.end < pos:
            if self._gzip is None:
                return pos  # past the end of a plain file: the next read reports truncation
            consumed = self.end
            self.base += consumed
            pos -= consumed
            self.buf = self._read_compressed(0)
            self.end = len(self.buf)
            if not self.buf:
                return pos
        return pos

    def require(self, pos: int, need: int, what: str, at: int) -> int:
        """``pos`` (possibly moved) once ``need`` bytes are available there, else a truncation error.

        ``what`` names the item being read and ``at`` is the stream offset to report.
        """
        if self.end - pos >= need:
            return pos
        pos = self.refill(pos, need)
        if self.end - pos < need:
            raise CaptureError(
                f"truncated capture: {what} needs {need} bytes, only {self.end - pos} remain", self.path, at
            )
        return pos

    def _read_compressed(self, pos: int) -> bytes:
        assert self._gzip is not None
        try:
            return self._gzip.read(_CHUNK)
        except (EOFError, OSError, zlib.error) as exc:
            # gzip.BadGzipFile is an OSError; a cut-off stream raises EOFError
            raise CaptureError(
                f"compressed capture is corrupt or truncated: {exc}", self.path, self.base + self.end
            ) from None


def check_block_length(window: ByteWindow, pos: int, block_type: int, length: int) -> None:
    """Refuse a block length that is too short, implausibly long, or longer than the rest of the file."""
    at = window.base + pos
    if length < BLOCK_OVERHEAD:
        raise CaptureError(
            f"block of type 0x{block_type:x} has length {length}, less than the minimum {BLOCK_OVERHEAD}",
            window.path,
            at,
        )
    remaining = window.remaining_known(pos)
    if remaining is not None and length > remaining:
        raise CaptureError(
            f"truncated capture: block of type 0x{block_type:x} has length {length} but only {remaining} bytes remain",
            window.path,
            at,
        )
    if length > MAX_BLOCK_LEN:
        raise CaptureError(
            f"block of type 0x{block_type:x} has implausible length {length} (limit {MAX_BLOCK_LEN})",
            window.path,
            at,
        )
