"""Shared benchmark settings: where the upstream packs live (same setting as the tests)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = Path(os.environ.get("FALCORULES_UPSTREAM", ROOT.parent / "shared" / "upstream")).resolve()
STABLE = UPSTREAM / "falcosecurity-rules" / "falco-rules-5.1.0" / "falco_rules.yaml"
INCUBATING = UPSTREAM / "falcosecurity-rules" / "falco-incubating-rules-6.0.1" / "falco-incubating_rules.yaml"
SANDBOX = UPSTREAM / "falcosecurity-rules" / "falco-sandbox-rules-6.1.0" / "falco-sandbox_rules.yaml"
K8SAUDIT = UPSTREAM / "falcosecurity-plugins" / "k8saudit" / "k8s_audit_rules.yaml"
CAPTURES = UPSTREAM / "captures"
FULL_STACK = (STABLE, INCUBATING, SANDBOX, K8SAUDIT)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Wall seconds of each of ``repeat`` calls of ``fn`` (after one warm-up call)."""
    fn()
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:.1f} ms (min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f}, n={len(samples)})"
