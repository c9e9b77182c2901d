"""Reading Kubernetes audit inputs the way Falco's k8saudit plugin does, and the YAML shorthand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import K8SAUDIT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from falcorules_ci.errors import InputError, Span
from falcorules_ci.extract.k8saudit import k8s_extractor
from falcorules_ci.sources.event import Event
from falcorules_ci.sources.k8saudit import (
    AuditInput,
    Drop,
    audit_event,
    expand_shorthand,
    looks_like_audit,
    read_audit,
    to_jsonl,
)
from falcorules_ci.sources.k8saudit_plugin import (
    LINE_LIMIT,
    format_stage_timestamp,
    parse_stage_timestamp,
)

T0 = "2024-05-01T12:00:00.5Z"
T0_NS = 1714564800_500_000_000


def ev(n: int = 1, **extra: Any) -> dict[str, Any]:
    """A minimal audit event the plugin accepts."""
    event = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": f"id-{n}", "stage": "ResponseComplete",
             "verb": "get", "stageTimestamp": T0}  # fmt: skip
    event.update(extra)
    return event


def line(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def field(name: str, event: Event, arg: str | None = None) -> Any:
    return k8s_extractor(name, arg)(event, None)


# --- JSON Lines --------------------------------------------------------------------------------


def test_jsonl_events_are_plugin_events(tmp_path: Path) -> None:
    path = write(tmp_path, "audit.jsonl", line(ev(1)) + "\n" + line(ev(2, stageTimestamp="2024-05-01T14:00:00+02:00")))
    source = read_audit(path)
    assert source.layout == "jsonl" and source.falco_readable
    first, second = source.events()
    assert (first.num, first.name, first.code, first.tid, first.direction, first.source) == (
        1, "pluginevent", 322, -1, ">", "k8s_audit",
    )  # fmt: skip
    assert first.ts == T0_NS and second.ts == 1714564800_000_000_000
    assert first.params == {} and first.payload == ev(1)
    assert first.span == Span(str(path), 1, 1) and second.span == Span(str(path), 2, 1)
    assert second.num == 2
    assert source.stats.events == 2 and source.stats.skipped == {}
    assert source.stats.bytes == path.stat().st_size


def test_arrays_and_event_lists_on_one_line(tmp_path: Path) -> None:
    event_list = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [ev(3), ev(4)]}
    text = f"[{line(ev(1))}, [{line(ev(2))}]]\n  {line(event_list)}\n"
    path = write(tmp_path, "audit.jsonl", text)
    events = read_audit(path).events()
    assert [e.payload["auditID"] for e in events] == ["id-1", "id-2", "id-3", "id-4"]
    assert [e.span.col for e in events if e.span] == [
        2,
        text.index(line(ev(2))) + 1,
        text.split("\n")[1].index(line(ev(3))) + 1,
        text.split("\n")[1].index(line(ev(4))) + 1,
    ]
    # EventList items need no kind of their own.
    items = [{k: v for k, v in ev(5).items() if k != "kind"}]
    path = write(tmp_path, "list.jsonl", line({"kind": "EventList", "items": items}))
    assert [e.payload["auditID"] for e in read_audit(path)] == ["id-5"]


def test_one_bad_element_drops_the_whole_line(tmp_path: Path) -> None:
    bad = {"kind": "Pod", "metadata": {}}
    text = f"{line(ev(1))}\n[{line(ev(2))}, {line(bad)}]\n{line(ev(3))}\n"
    path = write(tmp_path, "audit.jsonl", text)
    with pytest.raises(InputError) as caught:
        read_audit(path).events()
    assert caught.value.span == Span(str(path), 2, text.split("\n")[1].index(line(bad)) + 1)
    assert 'kind "Pod"' in str(caught.value)
    source = read_audit(path, on_error="skip")
    assert [e.payload["auditID"] for e in source] == ["id-1", "id-3"]
    assert source.stats.skipped == {Drop.NOT_AUDIT_EVENT: 1}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"kind": "EventList", "items": []}, "EventList without a non-empty 'items'"),
        ({"kind": "EventList"}, "EventList without a non-empty 'items'"),
        ({"auditID": "x", "stageTimestamp": T0}, "an object without 'kind'"),
        ({"kind": 5}, "kind 5"),
        ("an event", "a JSON string"),
        ([], None),
    ],
)
def test_unrecognised_values(tmp_path: Path, value: Any, message: str | None) -> None:
    path = write(tmp_path, "audit.jsonl", line(value) + "\n")
    source = read_audit(path, on_error="skip")
    assert source.events() == []
    if message is None:  # an empty array holds no events and is no error
        assert source.stats.skipped == {}
        return
    assert source.stats.skipped == {Drop.NOT_AUDIT_EVENT: 1}
    with pytest.raises(InputError, match=message):
        read_audit(path).events()


@pytest.mark.parametrize(
    ("event", "reason", "message"),
    [
        ({k: v for k, v in ev().items() if k != "stageTimestamp"}, Drop.NO_STAGE_TIMESTAMP, "no 'stageTimestamp'"),
        (ev(stageTimestamp=None), Drop.BAD_STAGE_TIMESTAMP, "'stageTimestamp' null"),
        (ev(stageTimestamp=1714564800), Drop.BAD_STAGE_TIMESTAMP, "RFC 3339"),
        (ev(stageTimestamp="2024-05-01 12:00:00Z"), Drop.BAD_STAGE_TIMESTAMP, "RFC 3339"),
        (ev(stageTimestamp="2024-02-30T12:00:00Z"), Drop.BAD_STAGE_TIMESTAMP, "RFC 3339"),
    ],
)
def test_events_the_plugin_drops(tmp_path: Path, event: dict[str, Any], reason: str, message: str) -> None:
    path = write(tmp_path, "audit.jsonl", line(ev(1)) + "\n\n" + line(event) + "\n")
    with pytest.raises(InputError, match=message) as caught:
        read_audit(path).events()
    assert caught.value.span == Span(str(path), 3, 1)
    assert str(caught.value).startswith(f"{path}:3:1: ")
    source = read_audit(path, on_error="skip")
    assert [e.payload["auditID"] for e in source] == ["id-1"]
    assert source.stats.skipped == {reason: 1}


def test_event_list_item_without_timestamp(tmp_path: Path) -> None:
    text = line({"kind": "EventList", "items": [ev(1), 5, {"auditID": "x"}]})
    path = write(tmp_path, "audit.jsonl", text)
    source = read_audit(path, on_error="skip")
    assert [e.payload["auditID"] for e in source] == ["id-1"]
    assert source.stats.skipped == {Drop.NO_STAGE_TIMESTAMP: 2}
    with pytest.raises(InputError, match=r"EventList item \(a JSON number\) has no 'stageTimestamp'") as caught:
        read_audit(path).events()
    assert caught.value.span == Span(str(path), 1, text.index(",5,") + 2)


def test_missing_audit_id_is_an_error_or_a_warning(tmp_path: Path) -> None:
    event = {k: v for k, v in ev().items() if k != "auditID"}
    path = write(tmp_path, "audit.jsonl", line(ev(1)) + "\n" + line(event) + "\n")
    with pytest.raises(InputError, match="no 'auditID'") as caught:
        read_audit(path).events()
    assert caught.value.span == Span(str(path), 2, 1)
    source = read_audit(path, on_error="skip")
    events = source.events()
    assert len(events) == 2  # Falco keeps it...
    assert field("ka.verb", events[1]) is None  # ...but no ka.* field has a value
    assert field("jevt.value", events[1], "/verb") == "get"
    assert [w.code for w in source.warnings] == ["K8S_AUDIT_NO_AUDIT_ID"]
    assert source.warnings[0].span == Span(str(path), 2, 1)


def test_malformed_line_in_a_large_file(tmp_path: Path) -> None:
    lines = [line(ev(n)) for n in range(1, 3001)]
    lines[1899] = '{"kind": "Event", "auditID": }'
    path = write(tmp_path, "audit.jsonl", "\n".join(lines) + "\n")
    seen: list[Event] = []
    with pytest.raises(InputError, match="malformed JSON: Expecting value") as caught:
        for event in read_audit(path):
            seen.append(event)
    assert caught.value.span == Span(str(path), 1900, 30)
    assert len(seen) == 1899  # events before the bad line were delivered, as Falco would
    source = read_audit(path, on_error="skip")
    assert len(source.events()) == 2999
    assert source.stats.skipped == {Drop.MALFORMED_JSON: 1}


@pytest.mark.parametrize("bad", ["{", "NaN", '{"a": Infinity}', "[1,]", "\ufeff{}"])
def test_json_the_plugin_cannot_parse(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path, "audit.jsonl", line(ev(1)) + "\n" + bad + "\n")
    source = read_audit(path, on_error="skip")
    assert len(source.events()) == 1
    assert source.stats.skipped == {Drop.MALFORMED_JSON: 1}


def test_line_endings_blank_and_whitespace_lines(tmp_path: Path) -> None:
    text = f"{line(ev(1))}\r\n\r\n\n   \n{line(ev(2))}"
    path = write(tmp_path, "audit.log", text)
    source = read_audit(path)
    assert [e.span.line for e in source if e.span] == [1, 5]
    assert source.stats.skipped == {Drop.WHITESPACE_LINE: 1}


def padded_event(n: int, size: int) -> str:
    """One event line of exactly ``size`` bytes (compact JSON plus blanks)."""
    base = line(ev(n))
    return base[:-1] + " " * (size - len(base)) + "}"


def test_the_64k_line_limit(tmp_path: Path) -> None:
    longest = padded_event(2, LINE_LIMIT - 1)
    path = write(tmp_path, "ok.jsonl", f"{line(ev(1))}\n{longest}\n")
    assert len(read_audit(path).events()) == 2
    too_long = padded_event(2, LINE_LIMIT)
    path = write(tmp_path, "long.jsonl", f"{line(ev(1))}\n{too_long}\n{line(ev(3))}\n\n{line(ev(4))}\n")
    seen: list[Event] = []
    with pytest.raises(InputError, match="token too long") as caught:
        for event in read_audit(path):
            seen.append(event)
    assert caught.value.span == Span(str(path), 2, 1)
    assert [e.payload["auditID"] for e in seen] == ["id-1"]
    source = read_audit(path, on_error="skip")
    assert [e.payload["auditID"] for e in source] == ["id-1"]
    assert source.stats.skipped == {Drop.LINE_TOO_LONG: 1, Drop.UNREAD_AFTER_LONG_LINE: 2}
    lifted = read_audit(path, line_limit=False)
    assert [e.payload["auditID"] for e in lifted] == ["id-1", "id-2", "id-3", "id-4"]
    # A carriage return counts towards the limit: it is only dropped once the line is read.
    path = write(tmp_path, "crlf.jsonl", padded_event(1, LINE_LIMIT - 1) + "\r\n")
    assert read_audit(path, on_error="skip").events() == []


def test_max_event_size_counts_compact_bytes(tmp_path: Path) -> None:
    compact = len(line(ev(1)).encode())
    padded = padded_event(1, compact + 500)  # blanks between tokens do not count
    utf8 = json.dumps(ev(2, data="é" * 100), separators=(",", ":"), ensure_ascii=False)  # compact + 210 bytes
    escaped = line(ev(3, data="é" * 50))  # fastjson keeps \u00e9 as written: compact + 310 bytes
    path = write(tmp_path, "audit.jsonl", f"{padded}\n{utf8}\n{escaped}\n")
    source = read_audit(path, on_error="skip", max_event_size=compact + 209)
    assert [e.payload["auditID"] for e in source] == ["id-1"]
    assert source.stats.skipped == {Drop.OVER_MAX_EVENT_SIZE: 2}
    with pytest.raises(InputError, match=rf"is {compact + 210} bytes as compact JSON, over .* {compact + 209}"):
        read_audit(path, max_event_size=compact + 209).events()
    assert [e.payload["auditID"] for e in read_audit(path, on_error="skip", max_event_size=compact + 210)] == [
        "id-1", "id-2",
    ]  # fmt: skip
    assert len(read_audit(path, max_event_size=compact + 310).events()) == 3


def test_default_max_event_size(tmp_path: Path) -> None:
    big = ev(1, data="x" * 262144)
    path = write(tmp_path, "audit.jsonl", line(big) + "\n" + line(ev(2)) + "\n")
    source = read_audit(path, on_error="skip", line_limit=False)
    assert [e.payload["auditID"] for e in source] == ["id-2"]
    assert source.stats.skipped == {Drop.OVER_MAX_EVENT_SIZE: 1}


def test_iterating_again_rereads_and_resets_stats(tmp_path: Path) -> None:
    path = write(tmp_path, "audit.jsonl", f"{line(ev(1))}\nnot json\n")
    source = read_audit(path, on_error="skip")
    assert len(source.events()) == 1 and len(source.events()) == 1
    assert source.stats.skipped == {Drop.MALFORMED_JSON: 1} and source.stats.events == 1


# --- JSON documents ----------------------------------------------------------------------------


def test_pretty_printed_documents(tmp_path: Path) -> None:
    single = write(tmp_path, "one.json", json.dumps(ev(1), indent=2))
    source = read_audit(single)
    assert source.layout == "json" and not source.falco_readable
    assert [(e.payload["auditID"], e.span) for e in source] == [("id-1", Span(str(single), 1, 1))]

    text = json.dumps([ev(1), ev(2)], indent=2)
    array = write(tmp_path, "many.json", text)
    events = read_audit(array).events()
    second_line = text[: text.index('"id-2"')].count("\n") + 1
    assert [e.span for e in events] == [Span(str(array), 2, 3), Span(str(array), second_line - 3, 3)]

    text = json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [ev(1), ev(2)]}, indent=1)
    listed = write(tmp_path, "list.json", text)
    assert [e.span.line for e in read_audit(listed) if e.span] == [5, 5 + json.dumps(ev(1), indent=1).count("\n") + 1]


def test_malformed_document_reports_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.json", '[\n  {"kind": "Event"},\n  {"kind": "Event",,}\n]\n')
    with pytest.raises(InputError, match="malformed JSON") as caught:
        read_audit(path).events()
    assert caught.value.span == Span(str(path), 3, 20)
    source = read_audit(path, on_error="skip")
    assert source.events() == [] and source.stats.skipped == {Drop.MALFORMED_JSON: 1}


def test_to_jsonl_round_trip(tmp_path: Path) -> None:
    pretty = write(tmp_path, "pretty.json", json.dumps([ev(1), ev(2, data="<é>")], indent=2))
    events = read_audit(pretty).events()
    jsonl = write(tmp_path, "out.jsonl", to_jsonl(events))
    again = read_audit(jsonl)
    assert again.layout == "jsonl"
    assert [e.payload for e in again] == [e.payload for e in events]
    assert to_jsonl([ev(1)]) == line(ev(1)) + "\n"


# --- YAML and the shorthand --------------------------------------------------------------------

SHORTHAND = """\
# two requests
- verb: create
  user: alice
  groups: [dev]
  namespace: default
  name: web
  pod:
    containers:
      - image: nginx:1.25
        privileged: true
      - {image: "docker.io/falcosecurity/falco@sha256:ab", command: "sh -c 'id -u'"}
    hostNetwork: true
    volumes: [{hostPath: /etc}, {name: data, emptyDir: {}}]
- verb: create
  user: system:anonymous
  name: admin-binding
  binding: {role: cluster-admin, subjects: ["user:mallory", "group:evil", "serviceaccount:kube-system:default"]}
---
verb: get
user: bob
uri: /healthz
"""


def test_yaml_shorthand_file(tmp_path: Path) -> None:
    path = write(tmp_path, "fixture.yaml", SHORTHAND)
    source = read_audit(path)
    assert source.layout == "yaml"
    pod, binding, health = source.events()
    assert [e.span for e in (pod, binding, health)] == [
        Span(str(path), 2, 3), Span(str(path), 14, 3), Span(str(path), 19, 1),
    ]  # fmt: skip
    assert [e.ts for e in (pod, binding, health)] == [1714564800_000_000_000 + n * 1_000_000 for n in range(3)]
    assert field("ka.req.pod.containers.image", pod) == ["nginx:1.25", "docker.io/falcosecurity/falco@sha256:ab"]
    assert field("ka.req.pod.containers.image.repository", pod) == ["nginx", "docker.io/falcosecurity/falco"]
    assert field("ka.req.pod.containers.privileged", pod) == ["true"]
    assert field("ka.req.pod.containers.command", pod) == ["sh -c id -u"]
    assert field("ka.req.pod.host_network", pod) == "true"
    assert field("ka.req.pod.volumes.hostpath", pod) == ["/etc"]
    assert field("ka.req.pod.volumes.volume_type", pod) == ["hostPath", "emptyDir"]
    assert field("ka.target.resource", pod) == "pods" and field("ka.target.namespace", pod) == "default"
    assert field("ka.resp.name", pod) == "web" and field("ka.response.code", pod) == "201"
    assert field("ka.user.groups", pod) == ["dev"]
    assert field("ka.uri", pod) == "/api/v1/namespaces/default/pods"
    assert field("ka.auth.decision", pod) == "allow"
    assert field("jevt.value", pod, "/stage") == "ResponseComplete"

    assert field("ka.target.resource", binding) == "clusterrolebindings"
    assert field("ka.target.namespace", binding) is None
    assert field("ka.req.binding.role", binding) == "cluster-admin"
    assert field("ka.req.binding.subjects.user_names", binding) == ["mallory"]
    assert field("ka.req.binding.subjects.group_names", binding) == ["evil"]
    assert field("ka.req.binding.subjects.serviceaccount_ns_names", binding) == ["kube-system:default"]
    assert field("ka.user.groups", binding) == ["system:unauthenticated"]
    assert field("ka.uri", binding) == "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"

    assert field("ka.uri", health) == "/healthz" and field("ka.target.resource", health) is None
    assert field("ka.response.code", health) == "200"


def test_exec_shorthand_builds_the_kubectl_query() -> None:
    event = expand_shorthand(
        {"user": "eve", "namespace": "prod", "name": "db-0", "exec": {"command": ["sh", "-c", "cat /etc/shadow"],
                                                                        "container": "db", "stdin": True, "tty": True}},
        Span("f.yaml", 1, 1),
    )  # fmt: skip
    assert event["requestURI"] == (
        "/api/v1/namespaces/prod/pods/db-0/exec?command=sh&command=-c&command=cat+%2Fetc%2Fshadow"
        "&container=db&stdin=true&stdout=true&tty=true"
    )
    assert (event["verb"], event["stage"], event["responseStatus"]["code"]) == ("create", "ResponseStarted", 101)
    assert event["objectRef"]["subresource"] == "exec" and "requestObject" not in event
    as_event = Event(1, 0, -1, 322, "pluginevent", ">", payload=event)
    assert field("ka.uri.param", as_event, "command") == "sh"
    assert field("ka.uri.param", as_event, "container") == "db"
    attach = expand_shorthand({"user": "eve", "name": "p", "attach": {}}, Span("f.yaml", 1, 1))
    assert attach["requestURI"] == "/api/v1/namespaces/default/pods/p/attach?stderr=true&stdout=true"


def test_other_object_shorthands() -> None:
    where = Span("f.yaml", 1, 1)
    configmap = expand_shorthand(
        {"verb": "update", "user": "u", "name": "cfg", "configmap": {"data": {"password": "hunter2"}}}, where
    )
    assert configmap["requestObject"]["data"] == {"password": "hunter2"}
    assert configmap["requestURI"] == "/api/v1/namespaces/default/configmaps/cfg"
    role = expand_shorthand(
        {
            "verb": "create",
            "user": "u",
            "name": "r",
            "namespace": "ns",
            "rules": [{"verbs": ["*"], "resources": ["pods"]}],
        },
        where,
    )
    assert role["objectRef"] == {"resource": "roles", "namespace": "ns", "name": "r",
                                 "apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1"}  # fmt: skip
    assert role["requestObject"]["rules"] == [{"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}]
    cluster_role = expand_shorthand({"verb": "create", "user": "u", "name": "r", "rules": [{"verbs": ["get"]}]}, where)
    assert (
        cluster_role["objectRef"]["resource"] == "clusterroles"
        and cluster_role["requestObject"]["kind"] == "ClusterRole"
    )
    service = expand_shorthand(
        {"verb": "create", "user": "u", "name": "s", "service": {"type": "NodePort", "ports": [80]}}, where
    )
    assert service["requestObject"]["spec"]["type"] == "NodePort"
    assert service["requestObject"]["spec"]["ports"] == [{"protocol": "TCP", "port": 80, "targetPort": 80}]
    rolebinding = expand_shorthand(
        {"verb": "create", "user": "u", "name": "b", "namespace": "ns",
         "binding": {"role": "view", "subjects": [{"kind": "ServiceAccount", "name": "sa"}]}},
        where,
    )  # fmt: skip
    assert rolebinding["objectRef"]["resource"] == "rolebindings"
    assert rolebinding["requestObject"]["subjects"] == [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]


def test_shorthand_defaults_and_failures() -> None:
    where = Span("f.yaml", 1, 1)
    denied = expand_shorthand(
        {"verb": "get", "user": "u", "resource": "secrets", "name": "s", "decision": "forbid"}, where
    )
    assert denied["responseStatus"]["code"] == 403 and denied["responseStatus"]["reason"] == "Forbidden"
    assert denied["responseObject"]["kind"] == "Status"
    assert 'User "u" cannot get resource "secrets"' in denied["responseStatus"]["message"]
    assert denied["annotations"] == {"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""}
    metadata_only = expand_shorthand(
        {"verb": "create", "user": "u", "name": "p", "level": "Metadata", "pod": {"containers": [{"image": "x"}]}},
        where,
    )
    assert "requestObject" not in metadata_only and "responseObject" not in metadata_only
    timed = expand_shorthand({"verb": "list", "user": "u", "resource": "pods", "time": "2024-01-01T00:00:00.123456789Z"},
                             where, sequence=5)  # fmt: skip
    assert timed["stageTimestamp"] == "2024-01-01T00:00:00.123456789Z"
    assert timed["requestURI"] == "/api/v1/namespaces/default/pods?limit=500"
    later = expand_shorthand(
        {"verb": "delete", "user": "u", "resource": "namespaces", "name": "dev"}, where, sequence=5
    )
    assert later["stageTimestamp"] == "2024-05-01T12:00:00.005000Z"
    assert later["objectRef"]["namespace"] == "dev"  # the API server files a namespace under itself
    assert later["requestURI"] == "/api/v1/namespaces/dev"
    tuned = expand_shorthand(
        {"verb": "get", "user": "u", "resource": "pods", "name": "p", "impersonate": "admin",
         "override": {"annotations": {"extra": "1"}, "user": {"uid": "42"}}, "remove": ["/stageTimestamp"]},
        where,
    )  # fmt: skip
    assert tuned["impersonatedUser"] == {"username": "admin"}
    assert tuned["annotations"]["extra"] == "1" and tuned["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert tuned["user"]["uid"] == "42" and tuned["user"]["username"] == "u"
    assert "stageTimestamp" not in tuned
    # Deterministic: the same document expands to the same event.
    assert expand_shorthand({"verb": "get", "user": "u", "resource": "pods"}, where) == expand_shorthand(
        {"verb": "get", "user": "u", "resource": "pods"}, where
    )


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"verb": "get"}, "'user' is a required property"),
        ({"user": "u", "resource": "pods"}, "'verb' is a required property"),
        ({"user": "u", "verb": "get"}, "needs 'resource'"),
        ({"user": "u", "verb": "get", "resource": "pods", "colour": 1}, "unknown key 'colour'"),
        (
            {"user": "u", "verb": "create", "pod": {"containers": [{"imag": "x"}]}},
            r"at pod.containers\[0\].imag: unknown key 'imag' \(allowed: .*image",
        ),
        ({"user": "u", "verb": "create", "pod": {"hostNetwork": "yes"}}, "'yes' is not of type 'boolean'"),
        (
            {"user": "u", "verb": "create", "pod": {}, "configmap": {}},
            "'pod' and 'configmap' cannot describe one request",
        ),
        (
            {"user": "u", "verb": "create", "resource": "configmaps", "pod": {}},
            "'pod' describes pods, not 'configmaps'",
        ),
        ({"user": "u", "exec": {"command": "sh"}}, "'exec' needs the pod's 'name'"),
        ({"user": "u", "verb": "get", "resource": "pods", "time": "yesterday"}, "not an RFC 3339 timestamp"),
        ({"user": "u", "verb": "get", "resource": "pods", "remove": ["/nope"]}, "nothing to remove at '/nope'"),
        ({"user": "u", "verb": "create", "pod": {}, "request_object": {}}, "either 'pod' or 'request_object'"),
        ({"user": "u", "verb": "create", "configmap": {"data": {"n": 1}}}, "1 is not of type 'string'"),
    ],
)
def test_shorthand_errors(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        expand_shorthand(doc, Span("f.yaml", 3, 1))


def test_shorthand_errors_point_at_the_yaml_line(tmp_path: Path) -> None:
    text = "- verb: get\n  user: u\n  resource: pods\n- verb: create\n  user: u\n  pod:\n    containers:\n      - image: x\n        privileged: maybe\n"
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(InputError, match="'maybe' is not of type 'boolean'") as caught:
        read_audit(path).events()
    assert caught.value.span == Span(str(path), 9, 9)
    source = read_audit(path, on_error="skip")
    assert len(source.events()) == 1 and source.stats.skipped == {Drop.INVALID_SHORTHAND: 1}
    path = write(tmp_path, "typo.yaml", "verb: get\nuser: u\nresource: pods\nnamespce: x\n")
    with pytest.raises(InputError, match="unknown key 'namespce'") as caught:
        read_audit(path).events()
    assert caught.value.span == Span(str(path), 4, 1)


def test_literal_events_in_yaml(tmp_path: Path) -> None:
    text = (
        "kind: Event\nauditID: a1\nverb: get\nstageTimestamp: 2024-05-01T12:00:00.5Z\n"
        "requestObject: {ports: {80: http}, on: yes}\n"
        "---\nkind: EventList\nitems:\n  - {auditID: a2, stageTimestamp: '2024-05-01T12:00:01Z'}\n"
        "  - {auditID: a3}\n"
    )
    path = write(tmp_path, "events.yml", text)
    source = read_audit(path, on_error="skip")
    first, second = source.events()
    assert first.ts == T0_NS and first.payload["stageTimestamp"] == "2024-05-01T12:00:00.5Z"
    assert first.payload["requestObject"] == {"ports": {"80": "http"}, "true": True}  # JSON keys are strings
    assert second.payload["auditID"] == "a2" and second.span == Span(str(path), 9, 5)
    assert source.stats.skipped == {Drop.NO_STAGE_TIMESTAMP: 1}
    with pytest.raises(InputError) as caught:
        read_audit(path).events()
    assert caught.value.span == Span(str(path), 10, 5)


@pytest.mark.parametrize(
    ("text", "message", "where"),
    [
        ("verb: get\nuser: [unclosed\n", "malformed YAML", (3, 1)),
        ("- 1\n- 2\n", "not a Kubernetes audit Event", (1, 3)),
        ("just text\n", "must be a mapping or a list of mappings", (1, 1)),
        ("kind: Event\nauditID: !!binary aGk=\nstageTimestamp: '2024-05-01T12:00:00Z'\n", "bytes value", (2, 10)),
    ],
)
def test_yaml_errors(tmp_path: Path, text: str, message: str, where: tuple[int, int]) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(InputError, match=message) as caught:
        read_audit(path).events()
    assert caught.value.span is not None and (caught.value.span.line, caught.value.span.col) == where
    assert read_audit(path, on_error="skip").events() == []


# --- audit_event -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "uri"),
    [
        (("get", "pods", "ns", "p", None), "/api/v1/namespaces/ns/pods/p"),
        (("create", "deployments", "ns", "d", None), "/apis/apps/v1/namespaces/ns/deployments"),
        (("patch", "clusterroles", None, "admin", None), "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin"),
        (("create", "pods", "ns", "p", "ephemeralcontainers"), "/api/v1/namespaces/ns/pods/p/ephemeralcontainers"),
        (("watch", "nodes", None, None, None), "/api/v1/nodes?watch=true"),
        (("delete", "ingresses", "web", "i", None), "/apis/networking.k8s.io/v1/namespaces/web/ingresses/i"),
        (("get", "widgets", None, "w", None), "/api/v1/namespaces/default/widgets/w"),
    ],
)
def test_audit_event_request_uris(args: tuple[str, str, str | None, str | None, str | None], uri: str) -> None:
    verb, resource, namespace, name, subresource = args
    event = audit_event(verb, "u", resource, namespace=namespace, name=name, subresource=subresource)
    assert event["requestURI"] == uri
    assert event["kind"] == "Event" and event["apiVersion"] == "audit.k8s.io/v1" and event["auditID"]
    assert parse_stage_timestamp(event["stageTimestamp"]) is not None


def test_audit_event_response_objects() -> None:
    created = audit_event("create", "u", "configmaps", name="c", request_object={"kind": "ConfigMap", "data": {}})
    assert created["responseObject"]["metadata"]["name"] == "c"
    assert created["responseObject"]["metadata"]["namespace"] == "default"
    assert created["responseObject"]["metadata"]["uid"]
    generated = audit_event("create", "u", "pods", request_object={"kind": "Pod", "metadata": {"generateName": "web-"}})
    assert generated["responseObject"]["metadata"]["name"].startswith("web-")
    assert "name" not in generated["objectRef"]
    deleted = audit_event("delete", "u", "pods", name="p")
    assert deleted["responseObject"]["status"] == "Success"
    omitted = audit_event("get", "u", "pods", name="p", response_object=None)
    assert "responseObject" not in omitted
    started = audit_event("get", "u", "pods", name="p", stage="RequestReceived")
    assert "responseStatus" not in started and "responseObject" not in started
    with pytest.raises(ValueError, match="needs a resource or a non-resource uri"):
        audit_event("get", "u")


# --- detection ---------------------------------------------------------------------------------


def test_looks_like_audit(tmp_path: Path) -> None:
    assert looks_like_audit(write(tmp_path, "a.jsonl", line(ev(1)) + "\n"))
    assert looks_like_audit(write(tmp_path, "a.txt", json.dumps([ev(1)], indent=2)))
    assert looks_like_audit(write(tmp_path, "b.yaml", SHORTHAND))
    assert looks_like_audit(write(tmp_path, "c.yaml", "kind: EventList\napiVersion: audit.k8s.io/v1\nitems: []\n"))
    assert not looks_like_audit(write(tmp_path, "d.json", '{"kind": "Pod"}'))
    assert not looks_like_audit(write(tmp_path, "e.yaml", "processes: []\nevents: [{verb: x}]\n"))
    assert not looks_like_audit(write(tmp_path, "f.yaml", "- rule: x\n  condition: ka.verb=get\n"))
    assert not looks_like_audit(write(tmp_path, "g.bin", b"\x00\x01\x02"))
    assert not looks_like_audit(tmp_path / "missing.jsonl")
    if K8SAUDIT.is_file():
        assert not looks_like_audit(K8SAUDIT)


def test_read_audit_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read audit file") as caught:
        read_audit(tmp_path / "missing.jsonl")
    assert caught.value.span == Span(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match="on_error"):
        read_audit(write(tmp_path, "a.jsonl", ""), on_error="ignore")  # type: ignore[arg-type]
    empty = read_audit(tmp_path / "a.jsonl")
    assert isinstance(empty, AuditInput) and empty.events() == []


# --- properties --------------------------------------------------------------------------------

LINES = st.one_of(
    st.builds(lambda n: ("event", line(ev(n))), st.integers(0, 10**6)),
    st.just(("blank", "")),
    st.sampled_from([("bad", "{"), ("bad", "nul"), ("bad", '{"kind":'), ("bad", "[1,,]")]),
    st.just(("foreign", line({"kind": "Pod"}))),
    st.just(("late", line({k: v for k, v in ev().items() if k != "stageTimestamp"}))),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(LINES, max_size=30))
def test_skip_mode_counts_every_line(tmp_path: Path, lines: list[tuple[str, str]]) -> None:
    path = write(tmp_path, "prop.jsonl", "\n".join(text for _, text in lines) + "\n")
    source = read_audit(path, on_error="skip")
    events = source.events()
    kinds = [kind for kind, _ in lines]
    assert [e.span.line for e in events if e.span] == [i + 1 for i, k in enumerate(kinds) if k == "event"]
    expected = {
        Drop.MALFORMED_JSON: kinds.count("bad"),
        Drop.NOT_AUDIT_EVENT: kinds.count("foreign"),
        Drop.NO_STAGE_TIMESTAMP: kinds.count("late"),
    }
    assert source.stats.skipped == {k: v for k, v in expected.items() if v}
    problems = [i + 1 for i, k in enumerate(kinds) if k in ("bad", "foreign", "late")]
    if problems:
        with pytest.raises(InputError) as caught:
            read_audit(path).events()
        assert caught.value.span is not None and caught.value.span.line == problems[0]
    else:
        assert len(read_audit(path).events()) == len(events)


@given(st.integers(-62135596800 * 10**9, 253402300799 * 10**9 + 999_999_999), st.sampled_from([0, 3, 6, 9]))
def test_stage_timestamp_round_trip(ns: int, digits: int) -> None:
    text = format_stage_timestamp(ns, digits)
    parsed = parse_stage_timestamp(text)
    assert parsed is not None
    unit = 10 ** (9 - digits)
    assert parsed == ns - ns % unit
