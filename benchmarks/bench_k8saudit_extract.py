"""Kubernetes audit replay speed: reading JSON Lines and extracting the fields the upstream
k8saudit rules use.

Generates N audit events from the YAML shorthand (pods, configmaps, bindings, roles, services,
exec, secret reads, ...), writes them as JSON Lines, then measures
  - reading: ``read_audit`` over the file (JSON parsing plus the plugin's acceptance rules);
  - extraction: every ``ka.*``/``jevt.*`` field (with its argument) that appears in the upstream
    ``k8s_audit_rules.yaml``, once per event.

Usage: python benchmarks/bench_k8saudit_extract.py [-n 50000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _common import K8SAUDIT, ROOT, summary, timed

# Run from a checkout: the package next to this folder wins over any installed copy.
sys.path.insert(0, str(ROOT))

from falcorules_ci.errors import Span
from falcorules_ci.extract.k8saudit import k8s_extractor, k8s_field_names
from falcorules_ci.sources.k8saudit import expand_shorthand, read_audit, to_jsonl

_TOKEN = re.compile(r"\b((?:ka|jevt|json)\.[A-Za-z0-9_.]*[A-Za-z0-9_])(?:\[([^\]]*)\])?")


def rule_fields(rules_file: Path) -> tuple[list[tuple[str, str | None]], list[tuple[str, str | None]]]:
    """The distinct (field, argument) pairs of the k8saudit/json plugins that the file's
    conditions (of rules and macros) use, and those only its outputs use."""
    known = k8s_field_names()
    in_conditions: set[tuple[str, str | None]] = set()
    in_outputs: set[tuple[str, str | None]] = set()
    for item in yaml.safe_load(rules_file.read_text()) or []:
        for key, target in (("condition", in_conditions), ("output", in_outputs)):
            text = item.get(key) if isinstance(item, dict) else None
            if isinstance(text, str):
                target.update((m.group(1), m.group(2)) for m in _TOKEN.finditer(text) if m.group(1) in known)
    return sorted(in_conditions), sorted(in_outputs - in_conditions)


def templates(i: int) -> list[dict[str, Any]]:
    """A varied day of API requests; ``i`` varies names and users."""
    user = ("alice", "bob", "system:serviceaccount:ci:deployer", "kubernetes-admin", "system:anonymous")[i % 5]
    ns = ("default", "kube-system", "prod")[i % 3]
    return [
        {"verb": "create", "user": user, "namespace": ns, "name": f"web-{i}",
         "pod": {"containers": [{"image": f"nginx:1.{i % 30}", "privileged": i % 7 == 0,
                                 "ports": [80], "command": ["nginx", "-g", "daemon off;"]},
                                {"image": "docker.io/falcosecurity/falco:0.38", "runAsUser": 1000}],
                 "initContainers": [{"image": "busybox", "command": "sh -c 'sleep 1'"}],
                 "hostNetwork": i % 11 == 0, "volumes": [{"hostPath": "/etc" if i % 13 == 0 else "/data"}]}},
        {"verb": ("create", "update", "delete")[i % 3], "user": user, "namespace": ns, "name": f"cfg-{i}",
         "configmap": {"data": {"app.conf": "x=1", "password": "hunter2" if i % 9 == 0 else "none"}}},
        {"verb": "create", "user": user, "name": f"bind-{i}",
         "binding": {"role": "cluster-admin" if i % 17 == 0 else "view",
                     "subjects": [f"user:u{i}", "group:devs", "serviceaccount:ci:deployer"]}},
        {"verb": "create", "user": user, "name": f"role-{i}",
         "rules": [{"verbs": ["get", "list"], "resources": ["pods", "pods/exec" if i % 5 == 0 else "pods/log"]},
                   {"verbs": ["*"] if i % 19 == 0 else ["watch"], "resources": ["secrets"]}]},
        {"verb": "create", "user": user, "namespace": ns, "name": f"svc-{i}",
         "service": {"type": "NodePort" if i % 4 == 0 else "ClusterIP", "ports": [80, {"port": 443}]}},
        {"user": user, "namespace": ns, "name": f"web-{i}",
         "exec": {"command": ["sh", "-c", "id"], "container": "nginx", "tty": True}},
        {"verb": "get", "user": user, "namespace": ns, "resource": "secrets", "name": f"token-{i}",
         "code": 403 if i % 6 == 0 else 200},
        {"verb": "get", "user": user, "uri": "/healthz" if i % 2 else "/version"},
    ]  # fmt: skip


def generate(count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    i = 0
    while len(events) < count:
        for doc in templates(i):
            events.append(expand_shorthand(doc, Span("bench.yaml", i + 1, 1), sequence=len(events)))
            if len(events) == count:
                break
        i += 1
    return events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    payloads = generate(args.events)
    generated = time.perf_counter() - start
    print(f"generated {len(payloads)} events from the shorthand (schema-validated) in {generated:.2f} s "
          f"({len(payloads) / generated:,.0f} events/s)")  # fmt: skip

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "audit.jsonl"
        path.write_text(to_jsonl(payloads), encoding="utf-8")
        size = path.stat().st_size
        source = read_audit(path)

        def read_all() -> object:
            return sum(1 for _ in source)

        samples = timed(read_all, args.repeat)
        events = source.events()
        assert len(events) == len(payloads), (len(events), source.stats)
        best = min(samples)
        print(f"read JSONL ({size / 1e6:.1f} MB): {summary(samples)} -> {len(events) / best:,.0f} events/s, "
              f"{size / best / 1e6:.1f} MB/s")  # fmt: skip

    condition_fields, output_fields = rule_fields(K8SAUDIT)
    print(f"{K8SAUDIT.name}: {len(condition_fields)} fields in conditions, "
          f"{len(output_fields)} more only in outputs")  # fmt: skip
    per_field: list[tuple[float, str]] = []
    for label, fields in (("condition", condition_fields), ("condition + output", condition_fields + output_fields)):
        extractors = [k8s_extractor(name, arg) for name, arg in fields]

        def extract_all(extractors: list[Any] = extractors) -> object:
            hits = 0
            for event in events:
                for extractor in extractors:
                    if extractor(event, None) is not None:
                        hits += 1
            return hits

        samples = timed(extract_all, args.repeat)
        best = min(samples)
        calls = len(events) * len(extractors)
        print(f"extract every {label} field ({len(fields)}) of every event: {summary(samples)} -> "
              f"{len(events) / best:,.0f} events/s, {calls / best / 1e6:.2f} M extractions/s "
              f"({best / calls * 1e9:.0f} ns each)")  # fmt: skip

    for name, arg in condition_fields + output_fields:
        extractor = k8s_extractor(name, arg)
        begin = time.perf_counter()
        for event in events:
            extractor(event, None)
        elapsed = (time.perf_counter() - begin) / len(events) * 1e9
        per_field.append((elapsed, name if arg is None else f"{name}[{arg}]"))
    print("slowest fields (ns per event): " + ", ".join(f"{label} {ns:.0f}" for ns, label in sorted(per_field)[-5:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
