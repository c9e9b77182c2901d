"""Every enabled rule of the upstream k8saudit pack against a positive and a negative audit fixture.

Fixtures live in ``tests/k8saudit/`` as ``<rule-slug>.pos.<ext>`` (the rule fires, with the exact
message below) and ``<rule-slug>.neg.<ext>`` (the same request with one detail changed, named in
the fixture's leading comment or, for JSON Lines, in ``NEGATIVE_CHANGES``; the rule stays quiet).

Five rules are enabled but switched off by a macro the pack expects users to override (an
always-true exception or a never-true gate). Their positives run with the override the pack's
comments describe (``tests/k8saudit/overrides/``), and a separate test pins down that the pack as
shipped keeps them quiet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from conftest import K8SAUDIT

from falcorules_ci import Ruleset, load_ruleset
from falcorules_ci.engine.alerts import Alert
from falcorules_ci.engine.options import EngineOptions
from falcorules_ci.engine.replay import replay

FIXTURES = Path(__file__).resolve().parent / "k8saudit"
OVERRIDES = FIXTURES / "overrides"
OPTIONS = EngineOptions(rule_matching="all", hostname="test-host", timezone="UTC")

# The authorization reason the audit-event builder writes for an allowed request by USER.
ALICE = 'RBAC: allowed by ClusterRoleBinding "alice-binding" of ClusterRole "edit" to User "alice"'
INTERN = 'RBAC: allowed by ClusterRoleBinding "intern-bob-binding" of ClusterRole "edit" to User "intern-bob"'

# jevt.obj: the event indented by two spaces, string escapes kept as written in the input.
VERSION_EVENT_PRETTY = r"""{
  "kind": "Event",
  "apiVersion": "audit.k8s.io/v1",
  "level": "Metadata",
  "auditID": "7e2c1a58-3f0b-4d6e-9a51-2b8c4f1d0e93",
  "stage": "ResponseComplete",
  "requestURI": "/version",
  "verb": "get",
  "user": {
    "username": "bob",
    "groups": [
      "system:authenticated"
    ]
  },
  "sourceIPs": [
    "10.0.4.17"
  ],
  "userAgent": "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
  "responseStatus": {
    "metadata": {},
    "code": 200
  },
  "requestReceivedTimestamp": "2024-05-01T12:00:00.000000Z",
  "stageTimestamp": "2024-05-01T12:00:00.001234Z",
  "annotations": {
    "authorization.k8s.io/decision": "allow",
    "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding \"system:discovery\" of ClusterRole \"system:discovery\" to Group \"system:authenticated\""
  }
}"""

# What the JSON Lines negatives change (JSON has no comments).
NEGATIVE_CHANGES = {
    "all-k8s-audit-events.neg.jsonl": "stage RequestReceived instead of ResponseComplete (so no responseStatus "
    "yet, and stageTimestamp equals requestReceivedTimestamp, as the API server logs it)",
}


@dataclass(frozen=True, slots=True)
class Case:
    rule: str
    message: str
    override: str | None = None  # a rules file in tests/k8saudit/overrides/, loaded after the pack


CASES = [
    Case("Disallowed K8s User",
         "K8s Operation performed by user not in allowed list of users (user=mallory target=web-0/pods verb=get "
         "uri=/api/v1/namespaces/shop/pods/web-0 resp=200)"),
    Case("Create Disallowed Pod",
         "Pod started with container not in allowed list (user=alice pod=checkout-7f9c ns=shop "
         "images=(docker.io/library/nginx:1.25))",
         override="create-disallowed-pod.yaml"),
    Case("Create Privileged Pod",
         "Pod started with privileged container (user=alice pod=node-debugger resource=pods ns=shop "
         "images=(docker.io/library/busybox:1.36,docker.io/library/alpine:3.20) init_images=<NA> "
         "ephemeral_images=<NA>)"),
    Case("Create Sensitive Mount Pod",
         "Pod started with sensitive mount (user=alice pod=etc-reader ns=shop resource=pods "
         "images=(docker.io/library/alpine:3.20) "
         'volumes=[{"name":"host-etc","hostPath":{"path":"/etc","type":""}}])'),
    Case("Create HostNetwork Pod",
         "Pod started using host network (user=alice pod=netshoot resource=pods ns=shop "
         "images=(docker.io/nicolaka/netshoot:v0.13))"),
    Case("Create HostPid Pod",
         "Pod started using host pid namespace (user=alice pod=nsenter resource=pods ns=shop "
         "images=(docker.io/library/alpine:3.20))"),
    Case("Create HostIPC Pod",
         "Pod started using host ipc namespace (user=alice pod=shm-peek resource=pods ns=shop "
         "images=(docker.io/library/alpine:3.20))"),
    Case("Create NodePort Service",
         "NodePort Service Created (user=alice service=admin-ui resource=services ns=shop "
         'ports=([{"protocol":"TCP","port":80,"targetPort":8080,"nodePort":30080}]))'),
    Case("Create/Modify Configmap With Private Credentials",
         "K8s configmap with private credential (user=alice verb=update resource=configmaps "
         "configmap=checkout-config)"),
    Case("Anonymous Request Allowed",
         "Request by anonymous user allowed (user=system:anonymous verb=list "
         "uri=/api/v1/namespaces/kube-system/secrets?limit=500 reason=RBAC: allowed by ClusterRoleBinding "
         '"anon-read" of ClusterRole "view" to User "system:anonymous"))'),
    Case("Attach/Exec Pod",
         # ka.uri.param[command] is the first command word of kubectl's query.
         "Attach/Exec to pod (user=alice pod=web-0 resource=pods ns=shop action=exec command=sh)"),
    Case("port-forward",
         "Portforward to pod (user=alice pod=postgres-0 ns=shop action=portforward )"),
    Case("EphemeralContainers Created",
         "Ephemeral container is created in pod (user=alice pod=web-0 resource=pods ns=shop "
         "ephemeral_container_name=debugger-8xk2q ephemeral_container_image=docker.io/library/busybox:1.36)"),
    Case("Create Disallowed Namespace",
         "Disallowed namespace created (user=alice ns=crypto-lab resource=namespaces)"),
    Case("Pod Created in Kube Namespace",
         "Pod created in kube namespace (user=alice pod=kube-proxy-helper resource=pods ns=kube-system "
         "images=(docker.io/library/alpine:3.20))"),
    Case("Service Account Created in Kube Namespace",
         "Service account created in kube namespace (user=alice serviceaccount=backup-operator "
         "resource=serviceaccounts ns=kube-system)"),
    Case("System ClusterRole Modified/Deleted",
         "System ClusterRole/Role modified or deleted (user=alice role=system:aggregate-to-edit "
         "resource=clusterroles ns=<NA> action=patch)"),
    Case("Attach to cluster-admin Role",
         "Cluster Role Binding to cluster-admin role (user=alice "
         'subject=({"kind":"ServiceAccount","name":"deployer","namespace":"ci"}))'),
    Case("ClusterRole With Wildcard Created",
         "Created Role/ClusterRole with wildcard (user=alice role=read-everything resource=clusterroles "
         'rules=({"verbs":["get","list","watch"],"apiGroups":["*"],"resources":["*"]}))'),
    Case("ClusterRole With Write Privileges Created",
         "Created Role/ClusterRole with write privileges (user=alice role=deploy-editor resource=roles "
         'rules=({"verbs":["get","list","update","patch"],"apiGroups":["apps"],"resources":["deployments"]}))'),
    Case("ClusterRole With Pod Exec Created",
         "Created Role/ClusterRole with pod exec privileges (user=alice role=pod-shell resource=clusterroles "
         'rules=({"verbs":["get","create"],"apiGroups":[""],"resources":["pods","pods/exec"]}))'),
    Case("K8s Deployment Created",
         "K8s Deployment Created (user=alice deployment=checkout ns=shop resource=deployments resp=201 "
         f"decision=allow reason={ALICE})"),
    Case("K8s Deployment Deleted",
         "K8s Deployment Deleted (user=alice deployment=checkout ns=shop resource=deployments resp=200 "
         f"decision=allow reason={ALICE})"),
    Case("K8s Service Created",
         "K8s Service Created (user=alice service=checkout ns=shop resource=services resp=201 "
         f"decision=allow reason={ALICE})"),
    Case("K8s Service Deleted",
         "K8s Service Deleted (user=alice service=checkout ns=shop resource=services resp=200 "
         f"decision=allow reason={ALICE})"),
    Case("K8s ConfigMap Created",
         "K8s ConfigMap Created (user=alice configmap=checkout-flags ns=shop resource=configmaps resp=201 "
         f"decision=allow reason={ALICE})"),
    Case("K8s ConfigMap Deleted",
         "K8s ConfigMap Deleted (user=alice configmap=checkout-flags ns=shop resource=configmaps resp=200 "
         f"decision=allow reason={ALICE})"),
    Case("K8s Namespace Created",
         "K8s Namespace Created (user=alice namespace=team-payments resource=namespaces resp=201 "
         f"decision=allow reason={ALICE})"),
    Case("K8s Namespace Deleted",
         "K8s Namespace Deleted (user=alice namespace=team-payments resource=namespaces resp=200 "
         f"decision=allow reason={ALICE})"),
    Case("K8s Serviceaccount Created",
         "K8s Serviceaccount Created (user=alice serviceaccount=checkout ns=shop resource=serviceaccounts "
         f"resp=201 decision=allow reason={ALICE})"),
    Case("K8s Serviceaccount Deleted",
         "K8s Serviceaccount Deleted (user=alice serviceaccount=checkout ns=shop resource=serviceaccounts "
         f"resp=200 decision=allow reason={ALICE})"),
    Case("K8s Role Created",
         "K8s Role Created (user=alice role=pod-reader ns=shop resource=roles "
         'rules=({"verbs":["get","list"],"apiGroups":[""],"resources":["pods"]}) resp=201 '
         f"decision=allow reason={ALICE})"),
    Case("K8s Role Deleted",
         "K8s Role Deleted (user=alice role=pod-reader ns=shop resource=roles resp=200 "
         f"decision=allow reason={ALICE})"),
    Case("K8s ClusterRole Created",
         "K8s ClusterRole Created (user=alice role=node-reader resource=clusterroles "
         'rules=({"verbs":["get","list","watch"],"apiGroups":[""],"resources":["nodes"]}) resp=201 '
         f"decision=allow reason={ALICE})"),
    Case("K8s ClusterRole Deleted",
         "K8s ClusterRole Deleted (user=alice role=node-reader resource=clusterroles resp=200 "
         f"decision=allow reason={ALICE})"),
    Case("K8s RoleBinding Created",
         "K8s RoleBinding Created (user=alice binding=read-pods ns=shop resource=rolebindings "
         'subjects=({"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"bob"},'
         '{"kind":"Group","apiGroup":"rbac.authorization.k8s.io","name":"shop-devs"}) role=pod-reader resp=201 '
         f"decision=allow reason={ALICE})"),
    Case("K8s RoleBinding Deleted",
         "K8s RoleBinding Deleted (user=alice binding=read-pods ns=shop resource=rolebindings resp=200 "
         f"decision=allow reason={ALICE})"),
    Case("K8s ClusterRoleBinding Created",
         "K8s ClusterRoleBinding Created (user=alice binding=node-readers resource=clusterrolebindings "
         'subjects=({"kind":"Group","apiGroup":"rbac.authorization.k8s.io","name":"sre"}) role=node-reader '
         f"resp=201 decision=allow reason={ALICE})"),
    Case("K8s ClusterRoleBinding Deleted",
         "K8s ClusterRoleBinding Deleted (user=alice binding=node-readers resource=clusterrolebindings "
         f"resp=200 decision=allow reason={ALICE})"),
    Case("K8s Secret Created",
         "K8s Secret Created (user=alice secret=stripe-api-key ns=shop resource=secrets resp=201 "
         f"decision=allow reason={ALICE})"),
    Case("K8s Secret Deleted",
         "K8s Secret Deleted (user=alice secret=stripe-api-key ns=shop resource=secrets resp=200 "
         f"decision=allow reason={ALICE})"),
    Case("K8s Secret Get Successfully",
         "K8s Secret Get Successfully (user=intern-bob secret=db-credentials ns=shop resource=secrets resp=200 "
         f"decision=allow reason={INTERN})"),
    Case("K8s Secret Get Unsuccessfully Tried",
         # A forbidden request carries an empty reason annotation: present, so printed empty.
         "K8s Secret Get Unsuccessfully Tried (user=system:serviceaccount:shop:web secret=db-credentials ns=shop "
         "resource=secrets resp=403 decision=forbid reason=)"),
    Case("All K8s Audit Events",
         f"K8s Audit Event received (user=bob verb=get uri=/version obj={VERSION_EVENT_PRETTY})",
         override="all-k8s-audit-events.yaml"),
    Case("Full K8s Administrative Access",
         # A list has no objectRef.name: the target prints <NA>.
         "K8s Operation performed by full admin user (user=kubernetes-admin target=<NA>/nodes verb=list "
         "uri=/api/v1/nodes?limit=500 resp=200)",
         override="full-k8s-administrative-access.yaml"),
    Case("Ingress Object without TLS Certificate Created",
         # The folded output's line break becomes a space; Falco trims the trailing newline.
         "K8s Ingress Without TLS Cert Created (user=alice ingress=storefront namespace=shop resource=ingresses)"),
    Case("Untrusted Node Successfully Joined the Cluster",
         "Node not in allowed list successfully joined the cluster (user=system:node:gpu-worker-9 "
         "node=gpu-worker-9 resource=nodes)",
         override="untrusted-nodes.yaml"),
    Case("Untrusted Node Unsuccessfully Tried to Join the Cluster",
         # The double space is in the rule's output format.
         "Node not in allowed list tried unsuccessfully to join the cluster  (user=system:node:gpu-worker-9 "
         "node=gpu-worker-9 reason=Forbidden resource=nodes)",
         override="untrusted-nodes.yaml"),
]  # fmt: skip

CASES_BY_RULE = {case.rule: case for case in CASES}
GATED = [case for case in CASES if case.override is not None]


def slug(rule: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", rule.lower()).strip("-")


def fixture(rule: str, polarity: str) -> Path:
    found = sorted(FIXTURES.glob(f"{slug(rule)}.{polarity}.*"))
    assert len(found) == 1, f"expected one {polarity} fixture for {rule!r}, found {[p.name for p in found]}"
    return found[0]


@cache
def ruleset(override: str | None) -> Ruleset:
    paths = [K8SAUDIT] + ([OVERRIDES / override] if override else [])
    loaded = load_ruleset(paths)
    assert loaded.successful, [str(e) for r in loaded.results for e in r.errors]
    return loaded


def alerts_for(rule: str, path: Path, override: str | None) -> list[Alert]:
    return [alert for alert in replay(ruleset(override), [path], OPTIONS) if alert.rule == rule]


def test_every_enabled_rule_has_a_case() -> None:
    pack = ruleset(None)
    enabled = {rule.name for rule in pack.rules if rule.enabled}
    assert {rule.source for rule in pack.rules} == {"k8s_audit"}
    assert len(enabled) == 48
    assert set(CASES_BY_RULE) == enabled
    assert len(CASES) == len(CASES_BY_RULE)


def test_fixture_files_match_the_cases() -> None:
    expected = {f"{slug(case.rule)}.{polarity}" for case in CASES for polarity in ("pos", "neg")}
    found = {path.name.rsplit(".", 1)[0] for path in FIXTURES.iterdir() if path.is_file()}
    assert found == expected
    assert {case.override for case in GATED} == {path.name for path in OVERRIDES.iterdir()}


def test_negatives_say_what_they_change() -> None:
    for path in FIXTURES.glob("*.neg.*"):
        if path.suffix == ".yaml":
            first = path.read_text(encoding="utf-8").splitlines()[0]
            assert first.startswith("# Changed: "), path.name
        else:
            assert path.name in NEGATIVE_CHANGES, path.name


@pytest.mark.parametrize("case", CASES, ids=[case.rule for case in CASES])
def test_rule_fires_on_its_positive(case: Case) -> None:
    fired = alerts_for(case.rule, fixture(case.rule, "pos"), case.override)
    assert [alert.message for alert in fired] == [case.message]
    alert = fired[0]
    assert alert.source == "k8s_audit"
    assert alert.priority == ruleset(case.override).rule(case.rule).priority
    # Falco 0.44.1 prints the text line as it is (the JSON escaping of the line came later).
    assert alert.output.endswith(f": {alert.priority.label} {case.message}")


@pytest.mark.parametrize("case", CASES, ids=[case.rule for case in CASES])
def test_rule_is_quiet_on_its_negative(case: Case) -> None:
    assert alerts_for(case.rule, fixture(case.rule, "neg"), case.override) == []


@pytest.mark.parametrize("case", GATED, ids=[case.rule for case in GATED])
def test_gated_rule_is_quiet_in_the_pack_as_shipped(case: Case) -> None:
    assert alerts_for(case.rule, fixture(case.rule, "pos"), None) == []
