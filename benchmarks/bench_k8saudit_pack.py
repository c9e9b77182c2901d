"""Audit events per second through the whole upstream k8saudit pack with the embedded engine.

Generates N audit events (default 50k) as JSON Lines with the mix a small cluster's API server
logs: kubelet lease renewals and status patches, controllers and the scheduler, CoreDNS lists,
health probes, the admin's kubectl, a CI deployer, and a few percent of human requests the pack
reports (exec into a pod, secret reads, a privileged pod, a cluster-admin binding, ...). Most
events match no rule. Then it measures, on one core:
  - read only: ``read_audit`` over the file (JSON parsing plus the k8saudit plugin's checks);
  - the pack: ``replay()`` over the same file with every enabled k8saudit rule
    (``rule_matching=all``), each alert rendered as Falco's JSON line.
Generating the file is not timed.

Usage: python benchmarks/bench_k8saudit_pack.py [--events N] [--seed S] [--repeat R] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import K8SAUDIT, ROOT, summary, timed

# Run from a checkout: the package next to this folder wins over any installed copy.
sys.path.insert(0, str(ROOT))

from falcorules_ci import load_ruleset
from falcorules_ci.engine import EngineOptions, replay
from falcorules_ci.errors import Span
from falcorules_ci.sources.k8saudit import expand_shorthand, read_audit
from falcorules_ci.sources.k8saudit_events import BASE_TIME_NS
from falcorules_ci.sources.k8saudit_plugin import format_stage_timestamp

NODES = [f"ip-10-0-{n // 8}-{10 + n % 8}.ec2.internal" for n in range(24)]
CONTROLLERS = ("replicaset-controller", "deployment-controller", "endpointslice-controller",
               "job-controller", "statefulset-controller")  # fmt: skip


def _quiet_traffic(node: str, k: int) -> list[tuple[int, dict[str, Any]]]:
    """(weight, shorthand) pairs of requests no enabled rule of the pack reports."""
    kubelet = f"system:node:{node}"
    controller = f"system:serviceaccount:kube-system:{CONTROLLERS[k % len(CONTROLLERS)]}"
    return [
        (30, {"verb": "update", "user": kubelet, "resource": "leases", "api_group": "coordination.k8s.io",
              "namespace": "kube-node-lease", "name": node, "level": "Metadata"}),
        (6, {"verb": "get", "user": kubelet, "resource": "nodes", "name": node, "level": "Metadata"}),
        (6, {"verb": "patch", "user": kubelet, "resource": "nodes", "name": node, "subresource": "status",
             "level": "Request", "request_object": {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}}),
        (10, {"verb": "update", "user": kubelet, "resource": "leases",
              "api_group": "coordination.k8s.io", "namespace": "kube-node-lease", "name": node,
              "level": "Metadata", "stage": "RequestReceived"}),
        (15, {"verb": "update", "user": controller, "resource": "replicasets", "namespace": "shop",
              "name": f"web-{k % 7}-6d4cf56db6", "subresource": "status", "level": "Metadata"}),
        (5, {"verb": "create", "user": "system:kube-scheduler", "resource": "pods", "namespace": "shop",
             "name": f"web-{k % 7}-6d4cf56db6-{k:05x}", "subresource": "binding", "level": "Metadata"}),
        (6, {"verb": "update", "user": "system:kube-controller-manager", "resource": "leases",
             "api_group": "coordination.k8s.io", "namespace": "kube-system", "name": "kube-controller-manager",
             "level": "Metadata"}),
        (8, {"verb": "list", "user": "system:serviceaccount:kube-system:coredns", "resource": "endpointslices",
             "level": "Metadata"}),
        (5, {"verb": "get", "user": "system:anonymous", "uri": ("/healthz", "/readyz", "/livez")[k % 3],
             "level": "Metadata", "user_agent": "kube-probe/1.30"}),
        (4, {"verb": ("get", "list")[k % 2], "user": "kubernetes-admin", "resource": "pods", "namespace": "shop",
             **({"name": f"web-{k % 7}-6d4cf56db6-{k:05x}"} if k % 2 == 0 else {})}),
        (2, {"verb": "patch", "user": "system:serviceaccount:ci:deployer", "resource": "deployments",
             "namespace": "shop", "name": f"web-{k % 7}", "level": "Request",
             "request_object": {"spec": {"template": {"metadata": {"annotations": {"rev": str(k)}}}}}}),
    ]  # fmt: skip


def _reported_traffic(k: int) -> list[tuple[int, dict[str, Any]]]:
    """(weight, shorthand) pairs of requests that rules of the pack report."""
    return [
        (1, {"user": "alice", "namespace": "shop", "name": f"web-{k % 7}-6d4cf56db6-{k:05x}",
             "exec": {"command": ["sh", "-c", "id"], "container": "web", "stdin": True, "tty": True}}),
        (1, {"verb": "get", "user": "alice", "resource": "secrets", "namespace": "shop", "name": "db-credentials"}),
        (1, {"verb": "create", "user": "alice", "namespace": "shop", "name": f"debug-{k}",
             "pod": {"containers": [{"image": "docker.io/library/busybox:1.36", "privileged": True}],
                     "hostPID": True, "volumes": [{"hostPath": "/etc"}]}}),
        (1, {"verb": "create", "user": "system:serviceaccount:ci:deployer", "resource": "configmaps",
             "namespace": "shop", "name": f"web-config-{k}", "configmap": {"data": {"LOG_LEVEL": "info"}}}),
        (1, {"verb": "create", "user": "alice", "name": f"admins-{k}",
             "binding": {"role": "cluster-admin", "subjects": [f"user:contractor-{k}"]}}),
    ]  # fmt: skip


def _pool(seed: int) -> tuple[list[dict[str, Any]], list[int]]:
    """A few hundred distinct expanded events and their weights."""
    events: list[dict[str, Any]] = []
    weights: list[int] = []
    rng = random.Random(seed)
    for k, node in enumerate(NODES * 4):
        pairs = _quiet_traffic(node, k) + (_reported_traffic(k) if k % 2 == 0 else [])
        for weight, doc in pairs:
            events.append(expand_shorthand(doc, Span("bench", k + 1, 1), sequence=rng.randrange(1000)))
            weights.append(weight)
    return events, weights


def generate_lines(count: int, seed: int = 0) -> Iterator[str]:
    """``count`` JSON Lines: events drawn from the pool, each with its own auditID and time."""
    pool, weights = _pool(seed)
    rng = random.Random(seed)
    picks = rng.choices(range(len(pool)), weights=weights, k=count)
    ns = BASE_TIME_NS
    for i, pick in enumerate(picks):
        ns += rng.randrange(200_000, 2_000_000)
        event = dict(pool[pick])
        event["auditID"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        event["requestReceivedTimestamp"] = format_stage_timestamp(ns - 1_500_000 if i else ns)
        event["stageTimestamp"] = format_stage_timestamp(ns)
        yield json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--events", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile run of the pack")
    args = parser.parse_args()

    ruleset = load_ruleset([K8SAUDIT])
    if not ruleset.successful:
        raise SystemExit("the k8saudit pack failed to load")
    enabled = sum(1 for rule in ruleset.rules if rule.enabled)
    options = EngineOptions(rule_matching="all", json_output=True, hostname="bench", timezone="UTC")

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "audit.jsonl"
        start = time.perf_counter()
        with open(path, "w", encoding="utf-8") as handle:
            for line in generate_lines(args.events, args.seed):
                handle.write(line + "\n")
        generated = time.perf_counter() - start
        size = path.stat().st_size
        print(f"{K8SAUDIT.name}: {enabled} rules enabled; {args.events:,} events, {size / 1e6:.1f} MB of JSON Lines "
              f"(generated in {generated:.2f} s, not counted)")  # fmt: skip

        def read_only() -> int:
            return sum(1 for _ in read_audit(path))

        samples = timed(read_only, args.repeat)
        print(f"read only:              {summary(samples)} -> {args.events / min(samples):,.0f} events/s")

        last: dict[str, Any] = {}

        def whole_pack() -> int:
            run = replay(ruleset, [path], options)
            rendered = 0
            flagged: set[int] = set()
            for alert in run:
                rendered += len(alert.to_json())
                flagged.add(alert.event_num)
            last["run"], last["flagged"] = run, flagged
            return rendered

        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            whole_pack()
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            return 0

        samples = timed(whole_pack, args.repeat)
        run = last["run"]
        read = sum(run.events_read.values())
        assert read == args.events, (read, run.skipped)
        by_rule: Counter[str] = run.alerts_by_rule
        alerts = sum(by_rule.values())
        print(f"read + rules + alerts:  {summary(samples)} -> {args.events / min(samples):,.0f} events/s "
              f"(best run)")  # fmt: skip
        flagged = len(last["flagged"])
        print(
            f"events matching no rule: {1 - flagged / args.events:.1%}; alerts: {alerts:,} from {len(by_rule)} "
            "rules; top: " + ", ".join(f"{rule} {count:,}" for rule, count in by_rule.most_common(4))
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
