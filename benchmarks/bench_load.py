"""Load + compile of the full upstream stack (stable + incubating + sandbox + k8saudit).

Usage: python benchmarks/bench_load.py [--repeat N]
Target: under 0.5 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import sys

from _common import FULL_STACK, summary, timed

from falcorules_ci import LoadOptions, load_ruleset
from falcorules_ci.fields import default_registry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    default_registry()
    options = LoadOptions()

    def run() -> object:
        rs = load_ruleset(FULL_STACK, options=options)
        if not rs.successful:
            raise SystemExit("stack failed to load: " + "; ".join(str(e.diagnostic()) for r in rs.results for e in r.errors))
        return rs

    rs = load_ruleset(FULL_STACK, options=options)
    samples = timed(run, args.repeat)
    print(f"files: {len(FULL_STACK)}  rules compiled: {len(rs.rules)}  "
          f"warnings: {sum(len(r.warnings) for r in rs.results)}")
    print(f"load + compile full stack: {summary(samples)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
