"""Streaming reader for ``.scap`` captures: eager header records, lazily decoded events.

:func:`read_capture` reads and checks the header blocks (section header, machine, interfaces,
users, proc and fd lists) and returns a :class:`Capture`. :meth:`Capture.events` then walks the
event blocks one at a time from a fresh ``mmap`` (or gzip stream), so memory does not depend on the
file size and the events can be walked more than once.

Event blocks follow libscap's ``next_event_from_file`` (libs 48dfd53c): v1 blocks (no ``nparams``
in the header) get their parameter count inferred the way libscap does, starting from the current
table's count and going down until the lengths add up to the event length; v2 blocks are validated
(event length within the block, lengths within the event). Event codes unknown to our table are
skipped and counted, as libscap skips them. Any other block after the first event block is an
error: libscap would treat it as the start of a concatenated capture, which we do not support.

Not done here, on purpose: libscap's converter (dropping enter events, filling parameters of old
event versions from their enter event, renaming old codes). Events come out as stored, so that
the state and engine stages can follow both sysdig-era and current Falco behaviour.
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Callable, Generator, Iterator
from functools import cache
from typing import Final, NoReturn

from falcorules_ci.errors import Span
from falcorules_ci.fields.event_table import EventInfo, event_table
from falcorules_ci.sources.event import SYSCALL_SOURCE, Event
from falcorules_ci.sources.records import CaptureHeader, SourceStats
from falcorules_ci.sources.scap import blocks as b
from falcorules_ci.sources.scap.errors import CaptureError
from falcorules_ci.sources.scap.header import read_header
from falcorules_ci.sources.scap.params import Buffer, ParamSpec, decode_params, event_specs

# what follows the block header: u16 cpu, [u32 flags,] ts, tid, len, type[, nparams] (v2 only)
_V2_EVENT: Final = struct.Struct("<HQqIHI")
_V1_EVENT: Final = struct.Struct("<HQqIH")
_V2F_EVENT: Final = struct.Struct("<HIQqIHI")
_V1F_EVENT: Final = struct.Struct("<HIQqIH")
_SMALL_MAX: Final = b.MAX_SMALL_EVENT_BODY + 8  # longest non-LARGE block libscap accepts
# the smallest valid length of each event block type: block framing, cpu (and flags), event header
_MIN_LENGTH: Final[dict[int, int]] = {
    b.EV_V1: 36, b.EV_V1_INT: 36, b.EVF_V1: 40, b.EV_V2: 40, b.EVF_V2: 44, b.EV_V2_LARGE: 40,
    b.EVF_V2_LARGE: 44,
}  # fmt: skip
# v1 captures stored these two events with a length 3 bytes too long (libscap corrects it)
_V1_LENGTH_FIXUP: Final = frozenset({"PPME_NOTIFICATION_E", "PPME_INFRASTRUCTURE_EVENT_E"})
_LENS_CACHE_LIMIT: Final = 4096
# v1 inference reads at most the table's count of lengths, so this cache stays small
_V1_LENS: dict[tuple[int, int], Callable[[Buffer, int], tuple[int, ...]]] = {}

EXTRA_PARAMS: Final = "parameters beyond the event table (not decoded)"


class _EventCodes:
    """Per-code facts the event loop needs, as lists indexed by code for speed."""

    def __init__(self) -> None:
        table = event_table()
        self.limit = max(table.by_code) + 1
        self.info: list[EventInfo | None] = [table.by_code.get(code) for code in range(self.limit)]
        self.name = [i.name if i else "" for i in self.info]
        self.direction = [i.direction if i else "" for i in self.info]
        self.known = [len(i.params) if i else 0 for i in self.info]
        self.len_size = [4 if i and "EF_LARGE_PAYLOAD" in i.flags else 2 for i in self.info]
        self.v1_fixup = frozenset(code for code, i in enumerate(self.info) if i and i.enum in _V1_LENGTH_FIXUP)
        self.specs: list[tuple[ParamSpec, ...]] = [event_specs(i) if i else () for i in self.info]


class Capture:
    """A capture file: its header records, read once, and a re-startable stream of its events.

    ``stats`` counts what the last (or current) :meth:`events` walk read and skipped, plus what
    reading the header skipped. ``version`` is the section header's (major, minor) format version.
    Offsets in errors and spans are positions in the uncompressed stream.
    """

    def __init__(
        self,
        path: str,
        header: CaptureHeader,
        first_event_offset: int,
        version: tuple[int, int],
        compressed: bool,
        header_skipped: dict[str, int],
    ) -> None:
        self.path = path
        self.header = header
        self.first_event_offset = first_event_offset
        self.version = version
        self.compressed = compressed
        self._header_skipped = dict(header_skipped)
        self.stats = SourceStats(0, first_event_offset, dict(header_skipped))

    def __repr__(self) -> str:
        return f"Capture({self.path!r}, version={self.version}, processes={len(self.header.processes)})"

    def events(self, decode: Callable[[int], bool] | None = None, spans: bool = True) -> Generator[Event, None, None]:
        """Every event, in file order, numbered from 1 (``evt.num``).

        ``decode`` selects by event code which events get their parameters decoded; the others
        come with empty ``params`` (headers are always read and every block is still validated).
        ``None`` decodes all. Decoding only what rules and state need is what makes replay fast.
        ``spans=False`` leaves ``Event.span`` (the block's stream offset) unset, which is faster.
        The file is opened when iteration starts and closed when it ends; ``close()`` the generator
        to release it early.
        """
        codes = _codes()
        wanted = [decode is None or bool(decode(code)) for code in range(codes.limit)]
        # Generic events are always decoded: their ID parameter names the syscall for evt.type.
        wanted[0] = wanted[1] = True
        stats = self.stats
        stats.events = 0
        stats.bytes = self.first_event_offset
        stats.skipped = dict(self._header_skipped)
        return _walk_events(self.path, self.first_event_offset, codes, wanted, stats, spans)


@cache
def _codes() -> _EventCodes:
    return _EventCodes()


def read_capture(path: str | os.PathLike[str]) -> Capture:
    """Open a ``.scap`` (or gzip'd ``.scap``) capture and read its header blocks.

    Raises :class:`CaptureError` (an ``InputError``) with the stream offset of the problem for an
    unreadable, truncated or malformed file.
    """
    text = os.fspath(path)
    with _open_window(text) as window:
        result = read_header(window)
        compressed = window.compressed
    return Capture(text, result.header, result.first_event_offset, result.version, compressed, result.skipped)


def _open_window(path: str) -> b.ByteWindow:
    try:
        return b.ByteWindow(path)
    except OSError as exc:
        raise CaptureError(f"cannot open capture: {exc.strerror or exc}", path, 0) from None


def _walk_events(
    path: str,
    start: int,
    codes: _EventCodes,
    wanted: list[bool],
    stats: SourceStats,
    spans: bool,
) -> Generator[Event, None, None]:
    window = _open_window(path)
    try:
        yield from _event_loop(window, start, codes, wanted, stats, spans)
    finally:
        window.close()


def _event_loop(
    window: b.ByteWindow,
    start: int,
    codes: _EventCodes,
    wanted: list[bool],
    stats: SourceStats,
    spans: bool,
) -> Iterator[Event]:
    path = window.path
    block_header = b.BLOCK_HEADER.unpack_from
    u32 = b.U32.unpack_from
    v2_event = _V2_EVENT.unpack_from
    v1_event = _V1_EVENT.unpack_from
    v2f_event = _V2F_EVENT.unpack_from
    v1f_event = _V1F_EVENT.unpack_from
    ev_v2, ev_v2_large, ev_v1, ev_v1_int = b.EV_V2, b.EV_V2_LARGE, b.EV_V1, b.EV_V1_INT
    evf_v2, evf_v2_large = b.EVF_V2, b.EVF_V2_LARGE
    small_max, min_length, large_types = _SMALL_MAX, _MIN_LENGTH, b.EVENT_LARGE_TYPES
    limit, names, directions, known, len_sizes = codes.limit, codes.name, codes.direction, codes.known, codes.len_size
    specs = codes.specs
    lens_structs: dict[tuple[int, int], Callable[[Buffer, int], tuple[int, ...]]] = {}
    skip = stats.skip

    def malformed(ptype: str) -> None:
        skip(f"malformed {ptype} parameter (left out)")

    pos = window.skip_to(start)
    buf, end, base = window.buf, window.end, window.base
    num = 0
    while True:
        if end - pos >= 8:
            block_type, length = block_header(buf, pos)
            minimum = min_length.get(block_type)
            framed = (minimum is not None and minimum <= length <= end - pos
                      and (length <= small_max or block_type in large_types))  # fmt: skip
        else:
            framed = False
        if not framed:
            pos = _frame_slowly(window, pos)
            if pos < 0:
                return
            buf, end, base = window.buf, window.end, window.base
            block_type, length = block_header(buf, pos)
        # the block is now wholly in the window and long enough for its headers
        if block_type in (ev_v2, ev_v2_large):
            cpu, ts, tid, event_len, code, nparams = v2_event(buf, pos + 8)
            flags, evt = 0, pos + 10
        elif block_type in (ev_v1, ev_v1_int):
            cpu, ts, tid, event_len, code = v1_event(buf, pos + 8)
            flags, evt, nparams = 0, pos + 10, -1
        elif block_type in (evf_v2, evf_v2_large):
            cpu, flags, ts, tid, event_len, code, nparams = v2f_event(buf, pos + 8)
            evt = pos + 14
        else:  # evf_v1
            cpu, flags, ts, tid, event_len, code = v1f_event(buf, pos + 8)
            evt, nparams = pos + 14, -1
        if code >= limit or not names[code]:
            skip(f"event type {code} unknown to the event table")
            pos += length
            continue
        avail = pos + length - 4 - evt
        len_size = len_sizes[code]
        if nparams < 0:
            nparams, lens = _infer_v1_params(buf, evt, event_len, code, codes, avail, path, base + pos)
            header_size = 22
        else:
            header_size = 26
            if event_len < 26 or event_len > avail:
                raise CaptureError(
                    f"invalid event: length {event_len} is outside the {avail} bytes of its block (minimum 26)",
                    path,
                    base + pos,
                )
            lens_end = 26 + nparams * len_size
            if lens_end > event_len:
                raise CaptureError(
                    f"invalid event: {nparams} parameters do not fit in event length {event_len}",
                    path,
                    base + pos,
                )
            key = (nparams, len_size)
            unpack_lens = lens_structs.get(key)
            if unpack_lens is None:
                unpack_lens = struct.Struct(f"<{nparams}{'I' if len_size == 4 else 'H'}").unpack_from
                if len(lens_structs) < _LENS_CACHE_LIMIT:
                    lens_structs[key] = unpack_lens
            lens = unpack_lens(buf, evt + 26)
            if sum(lens) > event_len - lens_end:
                raise CaptureError(
                    f"invalid event: parameter lengths exceed event length {event_len}", path, base + pos
                )
        if u32(buf, pos + length - 4)[0] != length:
            skip("event block trailer differs from its length (ignored, as libscap does)")
        if nparams > known[code]:
            skip(EXTRA_PARAMS, nparams - known[code])
        num += 1
        stats.events = num
        stats.bytes = base + pos + length
        params = (decode_params(specs[code], buf, evt + header_size + nparams * len_size, lens, malformed)
                  if wanted[code] else {})  # fmt: skip
        name = names[code]
        if code <= 1:  # generic syscall event: evt.type is the syscall's own name
            name = generic_name(params.get("ID"), name)
        yield Event(
            num, ts, tid, code, name, directions[code], params,
            cpu, flags, SYSCALL_SOURCE, None, Span(path, offset=base + pos) if spans else None,
        )  # fmt: skip
        pos += length


def generic_name(syscall_id: object, default: str) -> str:
    """The name libsinsp gives a generic event: its ppm_sc syscall's name."""
    if isinstance(syscall_id, int):
        return event_table().syscall_name(syscall_id) or default
    return default


def _frame_slowly(window: b.ByteWindow, pos: int) -> int:
    """Bring the event block at ``pos`` wholly into the window (refilling it) and return its new
    position, or -1 at a clean end of stream; raise CaptureError for anything else."""
    path = window.path
    if window.end - pos < 8:
        pos = window.refill(pos, 8)
        if window.end == pos:
            return -1
        if window.end - pos < 8:
            raise CaptureError(
                f"truncated capture: block header needs 8 bytes, only {window.end - pos} remain",
                path,
                window.base + pos,
            )
    block_type, length = b.BLOCK_HEADER.unpack_from(window.buf, pos)
    minimum = _MIN_LENGTH.get(block_type)
    if minimum is None:
        _unexpected_block(path, window.base + pos, block_type)
    if length < minimum:
        raise CaptureError(f"event block length {length} is too short (minimum {minimum})", path, window.base + pos)
    if length > _SMALL_MAX and block_type not in b.EVENT_LARGE_TYPES:
        raise CaptureError(
            f"event block length {length} exceeds the {b.MAX_SMALL_EVENT_BODY}-byte limit of non-LARGE event blocks",
            path,
            window.base + pos,
        )
    if window.end - pos < length:
        b.check_block_length(window, pos, block_type, length)
        pos = window.require(pos, length, "event block", window.base + pos)
    return pos


def _infer_v1_params(
    buf: Buffer,
    evt: int,
    event_len: int,
    code: int,
    codes: _EventCodes,
    avail: int,
    path: str,
    at: int,
) -> tuple[int, tuple[int, ...]]:
    """The parameter count and lengths of a v1 event, whose header does not store the count.

    Like libscap: start at the table's count and go down until ``22 + lengths + values`` equals
    the event length; once the sum falls short no smaller count can match, so the event is corrupt.
    """
    if event_len < 22 or event_len > avail:
        raise CaptureError(
            f"invalid event: length {event_len} is outside the {avail} bytes of its block (minimum 22)", path, at
        )
    if code in codes.v1_fixup:
        event_len -= 3
    len_size = codes.len_size[code]
    most = min(codes.known[code], max(event_len - 22, 0) // len_size)
    key = (most, len_size)
    unpack_lens = _V1_LENS.get(key)
    if unpack_lens is None:
        unpack_lens = _V1_LENS[key] = struct.Struct(f"<{most}{'I' if len_size == 4 else 'H'}").unpack_from
    lens = unpack_lens(buf, evt + 22)
    total = 22 + most * len_size + sum(lens)
    if total == event_len:  # the usual case: the event has as many parameters as our table
        return most, lens
    if total > event_len:
        totals = list(itertools.accumulate(lens, initial=0))
        for count in range(most - 1, -1, -1):
            total = 22 + count * len_size + totals[count]
            if total == event_len:
                return count, lens[:count]
            if total < event_len:
                break
    raise CaptureError(
        f"cannot convert v1 event of type {code}: no parameter count matches event length {event_len}", path, at
    )


def _unexpected_block(path: str, at: int, block_type: int) -> NoReturn:
    if block_type == b.SHB_TYPE:
        raise CaptureError(
            "a second section header after the events: concatenated captures are not supported", path, at
        )
    raise CaptureError(f"unexpected block type 0x{block_type:x} after the first event block", path, at)
