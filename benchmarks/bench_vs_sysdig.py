"""Our capture reader and full-pack replay against Debian's sysdig 0.29.3, on one capture, in one run.

Writes a capture of at least ``--mb`` MB (default 100) with our writer from
``falcorules_ci.sources.scenario.generate_stream`` (a busy host's syscall mix), unless FILE is
given, then measures on that same file:

  - our reader, header walk: ``Capture.events(decode=lambda code: False, spans=False)``;
  - our reader, full decode: ``Capture.events()`` (every parameter, spans set);
  - our full-pack replay: ``replay()`` with stable + incubating + sandbox (rule_matching=first);
  - ``sysdig -r FILE`` (every event printed, output to /dev/null);
  - ``sysdig -r FILE FILTER`` with a typical upstream rule's filter (a capture filter: events it
    rejects are mostly not parsed) and ``sysdig -r FILE -d FILTER`` (a display filter: every event
    parsed first, as Falco does);
  - the sysdig engine's matching run: every checkable upstream rule at once (one chisel each).

and prints events/s, MB/s (file bytes) and each row's ratio to ``sysdig -r FILE`` (x = times
sysdig's throughput). Wall times; the CPU is shared with whatever else runs.

Usage: python benchmarks/bench_vs_sysdig.py [FILE] [--mb 100] [--rule NAME] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import INCUBATING, ROOT, SANDBOX, STABLE

# Run from a checkout: the package next to this folder wins over any installed copy.
sys.path.insert(0, str(ROOT))

from falcorules_ci import load_ruleset
from falcorules_ci.condition.printer import to_sysdig_filter
from falcorules_ci.engine import EngineOptions, replay
from falcorules_ci.engine.sysdig_filters import plan_rules
from falcorules_ci.engine.sysdig_runner import SysdigRunner, sysdig_binary
from falcorules_ci.fields import default_registry
from falcorules_ci.sources.records import CaptureHeader
from falcorules_ci.sources.scap import read_capture
from falcorules_ci.sources.scap.writer import write_capture
from falcorules_ci.sources.scenario import generate_stream

DEFAULT_RULE = "Read sensitive file untrusted"
SAMPLE_EVENTS = 50_000


def generate(path: Path, target_bytes: int) -> tuple[int, float]:
    """Write a generated stream of at least ``target_bytes``; return (events, seconds)."""
    start = time.perf_counter()
    sample = write_capture(CaptureHeader(), generate_stream(SAMPLE_EVENTS), path)
    per_event = sample.bytes_written / sample.events_written
    events = int(target_bytes / per_event * 1.03) + 1
    while True:
        stats = write_capture(CaptureHeader(), generate_stream(events), path)
        if stats.bytes_written >= target_bytes:
            return stats.events_written, time.perf_counter() - start
        events = int(events * target_bytes / stats.bytes_written * 1.03) + 1


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    start = time.perf_counter()
    count = fn()
    return count, time.perf_counter() - start


def walk(path: Path, decode: Callable[[int], bool] | None, spans: bool) -> int:
    return sum(1 for _ in read_capture(path).events(decode=decode, spans=spans))


def sysdig_run(args: list[str]) -> int:
    completed = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed: {completed.stderr.decode(errors='replace')[:300]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("file", nargs="?", type=Path, help="capture to measure (default: generated)")
    parser.add_argument("--mb", type=float, default=100.0, help="size of the generated capture in MB (10^6 bytes)")
    parser.add_argument("--rule", default=DEFAULT_RULE, help="upstream rule whose filter sysdig evaluates")
    parser.add_argument("--keep", action="store_true", help="keep the generated capture")
    args = parser.parse_args(argv)

    binary = sysdig_binary()
    ruleset = load_ruleset((STABLE, INCUBATING, SANDBOX))
    if not ruleset.successful:
        raise SystemExit("rule packs failed to load")
    folder: str | None = None
    if args.file is not None:
        path = args.file
    else:
        folder = tempfile.mkdtemp(prefix="bench_vs_sysdig_")
        path = Path(folder) / "generated.scap"
        events, seconds = generate(path, int(args.mb * 1e6))
        print(f"generated {events:,} events, {os.path.getsize(path) / 1e6:.1f} MB with our writer in {seconds:.1f} s")
    size_mb = os.path.getsize(path) / 1e6
    try:
        print(f"capture: {path} ({size_mb:.1f} MB); wall times on {os.cpu_count()} CPUs, shared with anything else")
        rows: list[tuple[str, int | None, float]] = []
        total, seconds = timed(lambda: walk(path, lambda code: False, False))
        rows.append(("our reader: header walk", total, seconds))
        rows.append(("our reader: full decode", *timed(lambda: walk(path, None, True))))
        options = EngineOptions(hostname="bench", timezone="UTC")
        alerts: list[int] = []

        def full_replay() -> int:
            run = replay(ruleset, [str(path)], options)
            alerts.append(sum(1 for _ in run))
            return sum(run.events_read.values())

        rows.append(("our replay: stable+incubating+sandbox", *timed(full_replay)))
        if binary is None:
            print("sysdig: not installed, no comparison")
        else:
            rule = ruleset.rule(args.rule)
            flt = to_sysdig_filter(rule.expanded)
            _, base = timed(lambda: sysdig_run([binary, "-r", str(path)]))
            rows.append(("sysdig -r FILE", None, base))
            rows.append(("sysdig -r FILE <rule filter>", None,
                         timed(lambda: sysdig_run([binary, "-r", str(path), flt]))[1]))  # fmt: skip
            rows.append(("sysdig -r FILE -d <rule filter>", None,
                         timed(lambda: sysdig_run([binary, "-r", str(path), "-d", flt]))[1]))  # fmt: skip
            plans = [p for p in plan_rules(ruleset.rules, default_registry()) if p.filter is not None]
            runner = SysdigRunner(binary)
            try:
                rows.append((f"sysdig engine match run ({len(plans)} rules)", None,
                             timed(lambda: len(runner.match_filters(path, [p.filter or "" for p in plans]).matches))[1]))  # fmt: skip
            finally:
                runner.close()
        if binary is not None:
            print(f"rule filter: {args.rule!r} ({len(flt)} characters)")
        print(f"{'':44s} {'seconds':>8s} {'k events/s':>11s} {'MB/s':>8s}   vs sysdig -r FILE")
        sysdig_rate = None
        for label, _count, secs in rows:
            if label == "sysdig -r FILE":
                sysdig_rate = total / secs
        for label, _count, secs in rows:
            rate = total / secs
            ratio = f"{rate / sysdig_rate:6.2f}x its throughput ({secs / (total / sysdig_rate):.1f}x its time)" \
                if sysdig_rate else ""  # fmt: skip
            print(f"{label:44s} {secs:8.2f} {rate / 1e3:11.1f} {size_mb / secs:8.1f}   {ratio}")
        print(f"events: {total:,}; alerts from our replay: {alerts[0] if alerts else 0}")
    finally:
        if folder is not None and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        elif folder is not None:
            print(f"kept {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
