"""Events per second through the embedded engine with the stable + incubating + sandbox packs.

The stream is ``falcorules_ci.sources.scenario.generate_stream`` (a busy host's syscall mix),
replayed on one core the way ``replay()`` does it: state update, then the rules indexed for the
event's type, then alert formatting for matches. Generating the stream is timed separately and
left out of the engine rate.

Usage: python benchmarks/bench_engine.py [--events N] [--profile] [--all] [--lazy]
``--lazy`` streams the events instead of materialising them first: the rate then includes
generating them, and peak RSS shows the replay's own (bounded) memory.
Target: >= 100k events/s (with rule_matching=first).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import sys
import time

from _common import INCUBATING, SANDBOX, STABLE

from falcorules_ci import load_ruleset
from falcorules_ci.engine import EngineOptions, EventStream, replay
from falcorules_ci.sources.scenario import generate_stream


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--all", action="store_true", help="rule_matching=all instead of first")
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile run")
    parser.add_argument("--lazy", action="store_true", help="generate events while replaying them")
    args = parser.parse_args()

    ruleset = load_ruleset((STABLE, INCUBATING, SANDBOX))
    if not ruleset.successful:
        raise SystemExit("rule packs failed to load")
    options = EngineOptions(rule_matching="all" if args.all else "first", hostname="bench", timezone="UTC")

    if args.lazy:
        start = time.perf_counter()
        result = replay(ruleset, [EventStream("generated", generate_stream(args.events, seed=args.seed))], options)
        alerts = sum(1 for _ in result)
        elapsed = time.perf_counter() - start
        read = sum(result.events_read.values())
        print(f"events: {read}  alerts: {alerts}  evaluated: {result.events_evaluated}")
        print(f"generate + replay: {elapsed:.2f} s  ->  {read / elapsed:,.0f} events/s")
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        return 0

    start = time.perf_counter()
    events = list(generate_stream(args.events, seed=args.seed))
    generated = time.perf_counter() - start

    def run() -> tuple[int, object]:
        alerts = 0
        result = replay(ruleset, [EventStream("generated", events)], options)
        for _ in result:
            alerts += 1
        return alerts, result

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        alerts, result = run()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return 0

    start = time.perf_counter()
    alerts, result = run()
    elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rules = len(ruleset.rules)
    print(f"rules loaded: {rules}  events: {len(events)}  alerts: {alerts}  "
          f"evaluated: {result.events_evaluated}")  # type: ignore[attr-defined]
    print(f"stream generation: {generated:.2f} s ({len(events) / generated:,.0f} events/s, not counted)")
    print(f"replay: {elapsed:.2f} s  ->  {len(events) / elapsed:,.0f} events/s (target 100,000)")
    print(f"peak RSS: {peak_kib / 1024:.0f} MiB (includes the materialised stream)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
