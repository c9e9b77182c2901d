"""Malformed captures: truncations, bad magic and lengths, stray blocks, bad parameter lengths, and a
fuzzer over mutated real captures. Only CaptureError (with an offset) may come out, never a
traceback, a hang or an allocation sized from a corrupt length."""

from __future__ import annotations

import gzip
import random
import struct
import tempfile
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path

import pytest
from conftest import CAPTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from falcorules_ci.sources.scap import CaptureError, read_capture

SHB, MI, PL_V9, EV_V1, EV_V2, EV_V2_LARGE = 0x0A0D0D0A, 0x201, 0x215, 0x204, 0x216, 0x221
EVENT_BLOCKS = {0x204, 0x208, 0x216, 0x217, 0x221, 0x222, 0x8010ABCD}
OPENAT_X = 307


@cache
def plain(name: str) -> bytes:
    raw = (CAPTURES / name).read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


@cache
def blocks(name: str) -> tuple[tuple[int, int, int], ...]:
    """(offset, type, length) of every block of an upstream capture."""
    data, pos, out = plain(name), 0, []
    while pos < len(data):
        block_type, length = struct.unpack_from("<II", data, pos)
        out.append((pos, block_type, length))
        pos += length
    return tuple(out)


def first_event(name: str) -> int:
    return next(off for off, kind, _ in blocks(name) if kind in EVENT_BLOCKS)


def read_all(path: Path, decode: bool = True) -> int:
    """Read the header and walk (decoding, by default) every event; the number of events."""
    return sum(1 for _ in read_capture(path).events(decode=None if decode else lambda code: False, spans=decode))


def expect_error(path: Path, match: str | None = None) -> CaptureError:
    with pytest.raises(CaptureError, match=match) as info:
        read_all(path)
    err = info.value
    assert err.span is not None and err.span.offset == err.offset and err.offset >= 0
    assert str(err).startswith(f"{path}:@{err.offset}: ")
    return err


def write(directory: Path, data: bytes, name: str = "t.scap") -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def block(block_type: int, body: bytes, trailer: int | None = None) -> bytes:
    padded = body + b"\0" * (-len(body) % 4)
    length = len(padded) + 12
    return struct.pack("<II", block_type, length) + padded + struct.pack("<I", length if trailer is None else trailer)


def event_v2(params: list[bytes], *, code: int = OPENAT_X, nparams: int | None = None, event_len: int | None = None,
             block_type: int = EV_V2) -> bytes:  # fmt: skip
    lens = struct.pack(f"<{len(params)}H", *map(len, params))
    length = 26 + len(lens) + sum(map(len, params)) if event_len is None else event_len
    head = struct.pack("<QqIHI", 1, 7, length, code, len(params) if nparams is None else nparams)
    return block(block_type, struct.pack("<H", 0) + head + lens + b"".join(params))


def section_header() -> bytes:
    return block(SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 2, -1))


# --- truncation ------------------------------------------------------------------------------------


@cache
def events_only(name: str) -> bytes:
    """The capture's section header and event blocks: header blocks are optional, and leaving them
    out keeps reading a truncated copy cheap."""
    data = plain(name)
    return data[: blocks(name)[0][2]] + data[first_event(name) :]


@pytest.mark.parametrize("name", ["test_ipv6_client.scap", "sample.scap"])
def test_truncation_at_every_block_boundary(tmp_path: Path, name: str) -> None:
    data, start = plain(name), first_event(name)
    for cut in [off for off, _, _ in blocks(name)][1:]:
        if cut > start:
            break
        err = expect_error(write(tmp_path, data[:cut]), "no events in file" if cut == start else None)
        assert err.offset == cut
    short = events_only(name)
    boundaries = [off - start + blocks(name)[0][2] for off, kind, _ in blocks(name) if kind in EVENT_BLOCKS]
    for count, cut in enumerate([*boundaries[1:], len(short)], start=1):
        # libscap ends cleanly at a block boundary after the first event: just a shorter capture
        assert read_all(write(tmp_path, short[:cut]), decode=False) == count


@pytest.mark.parametrize("name", ["test_ipv6_client.scap", "sample.scap"])
def test_truncation_inside_blocks(tmp_path: Path, name: str) -> None:
    rng = random.Random(name)
    header = [b for b in blocks(name) if b[1] not in EVENT_BLOCKS]
    fdls = [b for b in header if b[1] in (0x203, 0x218)]
    chosen = [(plain(name), b) for b in header if b not in fdls] + [(plain(name), b) for b in rng.sample(fdls, 5)]
    start, shb_length = first_event(name), blocks(name)[0][2]
    events = [(o - start + shb_length, k, n) for o, k, n in blocks(name) if k in EVENT_BLOCKS]
    chosen += [(events_only(name), b) for b in rng.sample(events, 40)]
    for data, (offset, _, length) in chosen:
        for cut in {offset + rng.randrange(1, 8), offset + 8, offset + rng.randrange(1, length), offset + length - 1}:
            err = expect_error(write(tmp_path, data[:cut]))
            assert err.offset == offset, (cut, err)


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    packed = (CAPTURES / "curl_google.scap").read_bytes()
    for cut in (len(packed) - 9, len(packed) // 2, 60):
        err = expect_error(write(tmp_path, packed[:cut]), "compressed capture is corrupt or truncated")
        assert err.offset <= len(plain("curl_google.scap"))
    broken = bytearray(packed)
    broken[len(packed) // 2] ^= 0xFF
    expect_error(write(tmp_path, bytes(broken)))


# --- section header --------------------------------------------------------------------------------


def test_not_a_capture(tmp_path: Path) -> None:
    assert expect_error(write(tmp_path, b"\x01\x02\x03"), "not a capture file").offset == 0
    assert expect_error(write(tmp_path, b"hello world, this is text\n" * 4), "not a capture file").offset == 0


def test_wrong_magic_and_byte_order(tmp_path: Path) -> None:
    data = bytearray(plain("sample.scap"))
    data[8] ^= 0x01
    assert expect_error(write(tmp_path, bytes(data)), "invalid magic number 0x1a2b3c4c").offset == 8
    swapped = bytearray(plain("sample.scap"))
    swapped[4:8] = swapped[4:8][::-1]
    swapped[8:12] = swapped[8:12][::-1]
    expect_error(write(tmp_path, bytes(swapped)), "byte-swapped")


def test_newer_major_version(tmp_path: Path) -> None:
    data = bytearray(plain("sample.scap"))
    data[12:14] = struct.pack("<H", 2)
    expect_error(write(tmp_path, bytes(data)), "format version 2.2 is newer")


def test_section_header_too_short_and_its_trailer(tmp_path: Path) -> None:
    data = plain("sample.scap")
    short = struct.pack("<II", SHB, 24) + data[8:24] + data[28:]
    expect_error(write(tmp_path, short), "less than 28")
    bad_trailer = data[:24] + struct.pack("<I", 99) + data[28:]
    capture = read_capture(write(tmp_path, bad_trailer))  # libscap never compares the SHB trailer
    assert list(capture.stats.skipped) == [
        "section header block trailer differs from its length (ignored, as libscap does)"
    ]


# --- block lengths and trailers ---------------------------------------------------------------------


def _with_length(name: str, index: int, length: int) -> tuple[bytes, int]:
    offset = blocks(name)[index][0]
    data = bytearray(plain(name))
    data[offset + 4 : offset + 8] = struct.pack("<I", length)
    return bytes(data), offset


@pytest.mark.parametrize("length", [0, 4, 11, 0xFFFFFFFF, 0x7FFFFFFF])
@pytest.mark.parametrize("which", ["machine info", "proc list", "first event", "later event"])
def test_bad_block_lengths(tmp_path: Path, length: int, which: str) -> None:
    name = "sample.scap"
    kinds = [kind for _, kind, _ in blocks(name)]
    start = kinds.index(EV_V2)
    index = {"machine info": 1, "proc list": kinds.index(PL_V9), "first event": start, "later event": start + 50}[which]
    data, offset = _with_length(name, index, length)
    assert expect_error(write(tmp_path, data)).offset == offset


@pytest.mark.parametrize("compress", [False, True])
def test_huge_lengths_allocate_nothing_big(tmp_path: Path, compress: bool) -> None:
    name = "sample.scap"
    kinds = [kind for _, kind, _ in blocks(name)]
    data, _ = _with_length(name, kinds.index(PL_V9), 0xFFFFFFF0)
    offset = blocks(name)[kinds.index(EV_V2) + 10][0]
    # a LARGE block may exceed 64 KiB: claim 200 MiB in a file of 140 KB
    large = bytearray(plain(name))
    large[offset : offset + 8] = struct.pack("<II", EV_V2_LARGE, 200 << 20)
    for payload in (data, bytes(large)):
        path = write(tmp_path, gzip.compress(payload) if compress else payload)
        tracemalloc.start()
        try:
            expect_error(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 << 20, peak


def test_header_block_trailer_mismatch(tmp_path: Path) -> None:
    offset, _, length = blocks("sample.scap")[1]
    data = bytearray(plain("sample.scap"))
    data[offset + length - 4 : offset + length] = struct.pack("<I", length + 4)
    err = expect_error(write(tmp_path, bytes(data)), "wrong block total length: header 192, trailer 196")
    assert err.offset == offset


def test_event_block_trailer_mismatch_is_counted_like_libscap_ignores_it(tmp_path: Path) -> None:
    bad = bytearray(event_v2([struct.pack("<q", 3)]))
    bad[-4:] = b"\0\0\0\0"
    capture = read_capture(write(tmp_path, section_header() + bytes(bad)))
    assert len(list(capture.events())) == 1
    assert capture.stats.skipped == {"event block trailer differs from its length (ignored, as libscap does)": 1}


def test_machine_info_of_the_wrong_size(tmp_path: Path) -> None:
    data = section_header() + block(MI, bytes(184)) + event_v2([])
    expect_error(write(tmp_path, data), "machine info body is 184 bytes; it must be 180")


def test_non_large_event_block_over_64k(tmp_path: Path) -> None:
    data = section_header() + event_v2([b"x" * 35000, b"y" * 35000], code=OPENAT_X)
    expect_error(write(tmp_path, data), "64 KiB|65536-byte limit")


# --- stray blocks ---------------------------------------------------------------------------------


def _insert(name: str, offset: int, extra: bytes) -> bytes:
    data = plain(name)
    return data[:offset] + extra + data[offset:]


def test_unknown_block_before_the_first_event_is_skipped(tmp_path: Path) -> None:
    name = "sample.scap"
    stray = block(0x7777, b"anything at all")
    for offset in (blocks(name)[1][0], first_event(name)):
        capture = read_capture(write(tmp_path, _insert(name, offset, stray)))
        assert sum(1 for _ in capture.events()) == 572
        assert capture.stats.skipped == {"unknown block type 0x7777 before the first event": 1}


def test_unknown_block_after_the_first_event_is_an_error(tmp_path: Path) -> None:
    name = "sample.scap"
    offset = blocks(name)[[k for _, k, _ in blocks(name)].index(EV_V2) + 3][0]
    err = expect_error(write(tmp_path, _insert(name, offset, block(0x7777, b"x"))), "unexpected block type 0x7777")
    assert err.offset == offset
    err = expect_error(write(tmp_path, _insert(name, offset, section_header())), "concatenated captures")
    assert err.offset == offset


def test_header_blocks_after_the_first_event_are_errors(tmp_path: Path) -> None:
    name = "sample.scap"
    mi = next(plain(name)[o : o + n] for o, k, n in blocks(name) if k == MI)
    offset = blocks(name)[-1][0]
    assert expect_error(write(tmp_path, _insert(name, offset, mi)), "unexpected block type 0x201").offset == offset


# --- event bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (event_v2([struct.pack("<q", 3)], nparams=900), "900 parameters do not fit"),
        (event_v2([struct.pack("<q", 3)], nparams=0xFFFFFFFF), "parameters do not fit"),
        (event_v2([struct.pack("<q", 3)], event_len=4000), "length 4000 is outside"),
        (event_v2([struct.pack("<q", 3)], event_len=20), "length 20 is outside"),
        (event_v2([struct.pack("<q", 3), b"/etc\0"], event_len=26 + 4 + 8 + 2), "parameter lengths exceed"),
    ],
)  # fmt: skip
def test_bad_event_bodies(tmp_path: Path, event: bytes, message: str) -> None:
    data = section_header() + event_v2([]) + event
    err = expect_error(write(tmp_path, data), message)
    assert err.offset == len(section_header() + event_v2([]))


def test_v1_event_whose_lengths_cannot_add_up(tmp_path: Path) -> None:
    # 22-byte header, lengths claiming more data than the event holds at every parameter count
    lens = struct.pack("<7H", 8, 8, 200, 4, 4, 4, 8)
    event = struct.pack("<QqIH", 1, 7, 22 + len(lens) + 3, OPENAT_X) + lens + b"abc"
    data = section_header() + block(EV_V1, struct.pack("<H", 0) + event)
    expect_error(write(tmp_path, data), "no parameter count matches")


# --- fuzzing ------------------------------------------------------------------------------------------

BASES = ("test_ipv6_client.scap", "sample.scap")


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A real capture with 1-4 mutations, each aimed at a block picked at random (so that the
    shrinker's favourite offset 0 does not dominate), and whether to gzip the result."""
    name = draw(st.sampled_from(BASES))
    data = bytearray(plain(name))
    for _ in range(draw(st.integers(1, 4))):
        offset, _, length = draw(st.sampled_from(blocks(name)))
        at = min(offset + draw(st.integers(0, length - 1)), len(data) - 1)
        kind = draw(st.sampled_from(["flip", "flip", "byte", "truncate", "splice", "delete", "length"]))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "splice":
            source = draw(st.integers(0, len(data) - 1))
            data[at:at] = data[source : source + draw(st.integers(1, 512))]
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif offset + 8 <= len(data):  # an extreme block length
            extreme = draw(st.sampled_from([0, 1, 12, 13, 0xFFFF, 0x10008, 0xFFFFFFFF]))
            data[offset + 4 : offset + 8] = struct.pack("<I", extreme)
        if len(data) < 2:
            break
    return bytes(data), draw(st.booleans())


@pytest.fixture(scope="module")
def fuzz_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="scap_fuzz_") as name:
        yield Path(name)


@settings(max_examples=120, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])  # fmt: skip
@given(mutated())
def test_mutated_captures_raise_only_capture_errors(fuzz_dir: Path, case: tuple[bytes, bool]) -> None:
    data, compress = case
    path = write(fuzz_dir, gzip.compress(data, compresslevel=1) if compress else data)
    try:
        read_all(path)
    except CaptureError as err:
        assert err.span is not None and err.span.offset == err.offset
        assert 0 <= err.offset <= len(data)
