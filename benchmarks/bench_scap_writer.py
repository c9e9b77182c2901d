"""Capture writing speed, and big captures for the reader/replay benchmarks.

Streams ``generate_stream(N)`` (a busy host's syscall mix, with its own process spawns) into
``write_capture`` and reports, for the one run:
  - end to end: events generated and written per second, MB/s of capture written;
  - writer only: the same with the time spent generating events taken out (the stream is pulled
    in batches of 10k, and each batch's generation is timed);
  - with ``--trace``, peak memory (tracemalloc, which slows everything down a lot): it stays flat
    however many events are written.

The default 1.6 M events give a capture above 100 MB (about 70 bytes per event), big enough to
compare our reader and replay with ``sysdig -r``. Use ``--min-mb`` to insist on a size.

Usage: python benchmarks/bench_scap_writer.py OUT.scap [-n 1600000] [--compat sysdig-0.29|current]
       [--seed 0] [--min-mb 100] [--trace]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from _common import ROOT

# Run from a checkout: the package next to this folder wins over any installed copy.
sys.path.insert(0, str(ROOT))

from falcorules_ci.sources.event import Event
from falcorules_ci.sources.records import CaptureHeader, MachineInfo
from falcorules_ci.sources.scap.writer import write_capture
from falcorules_ci.sources.scap.writer_compat import COMPAT_MODES, COMPAT_SYSDIG
from falcorules_ci.sources.scenario import generate_stream

_BATCH = 10_000


class TimedStream:
    """Yields the stream's events, timing how long producing them takes (in batches)."""

    def __init__(self, events: Iterator[Event]) -> None:
        self._events = events
        self.seconds = 0.0

    def __iter__(self) -> Iterator[Event]:
        while True:
            start = time.perf_counter()
            batch = [event for _, event in zip(range(_BATCH), self._events, strict=False)]
            self.seconds += time.perf_counter() - start
            if not batch:
                return
            yield from batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="capture to write (.gz to compress)")
    parser.add_argument("-n", "--events", type=int, default=1_600_000, help="events to generate")
    parser.add_argument("--compat", choices=COMPAT_MODES, default=COMPAT_SYSDIG)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-mb", type=float, default=0.0, help="fail when the capture is smaller")
    parser.add_argument("--trace", action="store_true", help="report peak memory (tracemalloc slows Python down)")
    args = parser.parse_args(argv)

    header = CaptureHeader(machine=MachineInfo(hostname="bench-host", num_cpus=4, memory_bytes=8 << 30,
                                               max_pid=4194304))  # fmt: skip
    stream = TimedStream(generate_stream(args.events, seed=args.seed))
    if args.trace:
        tracemalloc.start()
    start = time.perf_counter()
    stats = write_capture(header, stream, args.out, compat=args.compat)
    total = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if args.trace else 0
    if args.trace:
        tracemalloc.stop()
    size_mb = stats.bytes_written / 1e6
    writer = max(total - stream.seconds, 1e-9)
    print(f"capture: {args.out} ({size_mb:.1f} MB, {stats.events_written} events, compat {stats.compat}); "
          "wall times, CPU shared with whatever else runs")  # fmt: skip
    print(f"end to end   {total:7.2f} s  {stats.events_written / total / 1e3:8.1f} k events/s  "
          f"{size_mb / total:7.1f} MB/s")  # fmt: skip
    print(f"writer only  {writer:7.2f} s  {stats.events_written / writer / 1e3:8.1f} k events/s  "
          f"{size_mb / writer:7.1f} MB/s  (generation took {stream.seconds:.2f} s)")  # fmt: skip
    if args.trace:
        print(f"peak traced memory {peak / 1e6:.1f} MB (tracing slows both parts)")
    if stats.not_for_sysdig:
        print(f"events sysdig 0.29.3 skips: {stats.not_for_sysdig}")
    if args.min_mb and size_mb < args.min_mb:
        print(f"capture is {size_mb:.1f} MB, less than --min-mb {args.min_mb}: raise -n", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
