"""Capture reading speed: walking event headers only, and decoding every parameter.

Without FILE, synthesizes a large plain capture in a temporary folder: the header blocks of the
upstream ``sample.scap`` followed by the event blocks of every upstream capture (v1 and v2 blocks,
decompressed), repeated until ``-n`` events. Then measures, on the same file:
  - header-only: ``Capture.events(decode=lambda code: False, spans=False)``, the replay fast path
    (every block still validated, parameter lengths summed);
  - full decoding: ``Capture.events()`` (every parameter decoded, spans set);
(both include reading the header blocks; MB/s counts uncompressed bytes)
  - ``sysdig -r FILE`` (output to /dev/null) when /usr/bin/sysdig exists, with the ratio.

Usage: python benchmarks/bench_scap_reader.py [FILE] [-n 1000000] [--repeat 1] [--keep]
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import CAPTURES, ROOT

# Run from a checkout: the package next to this folder wins over any installed copy.
sys.path.insert(0, str(ROOT))

from falcorules_ci.sources.scap import read_capture
from falcorules_ci.sources.scap.blocks import EVENT_TYPES

SYSDIG = Path("/usr/bin/sysdig")


def _plain_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def _split(data: bytes) -> tuple[bytes, list[bytes]]:
    """The header part (everything before the first event block) and the event blocks."""
    pos = 0
    header_end = -1
    events: list[bytes] = []
    while pos + 8 <= len(data):
        block_type, length = struct.unpack_from("<II", data, pos)
        if block_type in EVENT_TYPES:
            if header_end < 0:
                header_end = pos
            events.append(data[pos : pos + length])
        pos += length
    return data[:header_end], events


def synthesize(target: Path, events: int) -> int:
    """Write a capture of about ``events`` events built from the upstream captures; return the count."""
    header, _ = _split(_plain_bytes(CAPTURES / "sample.scap"))
    pool: list[bytes] = []
    for capture in sorted(CAPTURES.glob("*.scap")):
        pool += _split(_plain_bytes(capture))[1]
    chunk = b"".join(pool)
    written = 0
    with target.open("wb") as out:
        out.write(header)
        while written + len(pool) <= events:
            out.write(chunk)
            written += len(pool)
        out.write(b"".join(pool[: events - written]))
    return events


def walk(path: Path, decode: Callable[[int], bool] | None, spans: bool) -> tuple[int, float, int]:
    """Events, wall seconds (header blocks included) and uncompressed bytes of one full read."""
    start = time.perf_counter()
    capture = read_capture(path)
    count = 0
    for _ in capture.events(decode=decode, spans=spans):
        count += 1
    return count, time.perf_counter() - start, capture.stats.bytes


def run_sysdig(path: Path) -> float | None:
    if not SYSDIG.exists():
        return None
    start = time.perf_counter()
    subprocess.run([str(SYSDIG), "-r", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)  # fmt: skip
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("file", nargs="?", type=Path, help="capture to measure (default: synthesized)")
    parser.add_argument("-n", "--events", type=int, default=1_000_000, help="events to synthesize")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement (best is shown)")
    parser.add_argument("--keep", action="store_true", help="keep the synthesized capture")
    args = parser.parse_args(argv)

    folder: str | None = None
    if args.file is not None:
        path = args.file
    else:
        folder = tempfile.mkdtemp(prefix="bench_scap_")
        path = Path(folder) / "synthetic.scap"
        synthesize(path, args.events)
    size_mb = os.path.getsize(path) / 1e6
    try:
        print(f"capture: {path} ({size_mb:.1f} MB on disk); wall times, CPU shared with whatever else runs")
        rows: list[tuple[str, int, float, int]] = []
        for label, decode, spans in (("header-only walk", lambda code: False, False),
                                     ("full decoding", None, True)):  # fmt: skip
            best = min((walk(path, decode, spans) for _ in range(args.repeat)), key=lambda r: r[1])
            rows.append((label, *best))
        sysdig_s = run_sysdig(path)
        for label, count, seconds, stream_bytes in rows:
            line = f"{label:18s} {count:>9d} events  {seconds:7.2f} s  {count / seconds / 1e3:8.1f} k events/s"
            line += f"  {stream_bytes / 1e6 / seconds:7.1f} MB/s (uncompressed)"
            if sysdig_s is not None:
                line += f"  ({seconds / sysdig_s:.2f}x sysdig's time)"
            print(line)
        if sysdig_s is not None:
            print(f"{'sysdig -r FILE':18s} {'':>9s}         {sysdig_s:7.2f} s  (output to /dev/null)")
        else:
            print("sysdig: not installed, no comparison")
    finally:
        if folder is not None and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        elif folder is not None:
            print(f"kept {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
