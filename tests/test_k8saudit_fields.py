"""ka.* (k8saudit plugin 0.18.0) and json.*/jevt.* (json plugin 0.7.4) field extraction.

Expected values follow the plugins' extraction code, quirks included; each field is checked with
a present value, an absent path and, for list fields, an empty list.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from falcorules_ci.errors import ConditionError
from falcorules_ci.extract.k8saudit import JSON_FIELDS, K8S_AUDIT_FIELDS, k8s_extractor, k8s_field_names
from falcorules_ci.sources.event import K8S_AUDIT_SOURCE, Event

TS = 1714564800_123456789


def event(payload: Any, ts: int = TS) -> Event:
    return Event(num=1, ts=ts, tid=-1, code=322, name="pluginevent", direction=">", source=K8S_AUDIT_SOURCE,
                 payload=payload)  # fmt: skip


def get(field: str, payload: Any, arg: str | None = None) -> Any:
    return k8s_extractor(field, arg)(event(payload), None)


def with_path(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"auditID": "id-1"}
    node = payload
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return payload


# The JSON path of every single-valued field read straight from the event (plugin extract.go).
SCALAR_FIELDS = {
    "ka.auditid": ("auditID",),
    "ka.stage": ("stage",),
    "ka.auth.decision": ("annotations", "authorization.k8s.io/decision"),
    "ka.auth.reason": ("annotations", "authorization.k8s.io/reason"),
    "ka.auth.openshift.decision": ("annotations", "authentication.openshift.io/decision"),
    "ka.auth.openshift.username": ("annotations", "authentication.openshift.io/username"),
    "ka.validations.admission.policy.failure": (
        "annotations", "validation.policy.admission.k8s.io/validation_failure",
    ),
    "ka.security.pod.violations": ("annotations", "pod-security.kubernetes.io/audit-violations"),
    "ka.cluster.name": ("annotations", "cluster_name"),
    "ka.user.name": ("user", "username"),
    "ka.impuser.name": ("impersonatedUser", "username"),
    "ka.verb": ("verb",),
    "ka.uri": ("requestURI",),
    "ka.useragent": ("userAgent",),
    "ka.target.name": ("objectRef", "name"),
    "ka.target.namespace": ("objectRef", "namespace"),
    "ka.target.resource": ("objectRef", "resource"),
    "ka.target.subresource": ("objectRef", "subresource"),
    "ka.req.configmap.name": ("objectRef", "name"),
    "ka.req.configmap.obj": ("requestObject", "data"),
    "ka.req.binding.role": ("requestObject", "roleRef", "name"),
    "ka.req.pod.host_ipc": ("requestObject", "spec", "hostIPC"),
    "ka.req.pod.host_network": ("requestObject", "spec", "hostNetwork"),
    "ka.req.container.host_network": ("requestObject", "spec", "hostNetwork"),
    "ka.req.pod.host_pid": ("requestObject", "spec", "hostPID"),
    "ka.req.pod.run_as_user": ("requestObject", "spec", "securityContext", "runAsUser"),
    "ka.req.pod.run_as_group": ("requestObject", "spec", "securityContext", "runAsGroup"),
    "ka.req.pod.fs_group": ("requestObject", "spec", "securityContext", "fsGroup"),
    "ka.req.service.type": ("requestObject", "spec", "type"),
    "ka.resp.name": ("responseObject", "metadata", "name"),
    "ka.response.code": ("responseStatus", "code"),
    "ka.response.reason": ("responseStatus", "reason"),
}  # fmt: skip

LIST_FIELDS = {
    "ka.user.groups": ("user", "groups"),
    "ka.req.binding.subjects": ("requestObject", "subjects"),
    "ka.req.role.rules": ("requestObject", "rules"),
    "ka.req.pod.supplemental_groups": ("requestObject", "spec", "securityContext", "supplementalGroups"),
}


@pytest.mark.parametrize("field", sorted(SCALAR_FIELDS))
def test_scalar_field_string_number_object_and_absent(field: str) -> None:
    path = SCALAR_FIELDS[field]
    assert get(field, with_path(path, "text <&> é")) == "text <&> é"
    if field != "ka.auditid":
        assert get(field, with_path(path, 403)) == "403"
        assert get(field, with_path(path, True)) == "true"
        assert get(field, with_path(path, None)) == "null"
        assert get(field, with_path(path, 1.5)) == "1.5"
        nested = {"z": "<b>", "a": [1, False, None], "é": {}}
        assert get(field, with_path(path, nested)) == '{"z":"<b>","a":[1,false,null],"é":{}}'
        assert get(field, {"auditID": "id-1"}) is None
    # An array where an object is expected: fastjson finds no key in it.
    if len(path) > 1:
        assert get(field, with_path(path[:1], [{path[1]: "x"}])) is None


@pytest.mark.parametrize("field", sorted(LIST_FIELDS))
def test_list_field_values_empty_and_wrong_type(field: str) -> None:
    path = LIST_FIELDS[field]
    assert get(field, with_path(path, ["a", 1, {"k": "v"}, None])) == ["a", "1", '{"k":"v"}', "null"]
    assert get(field, with_path(path, [])) is None
    assert get(field, with_path(path, "a")) is None
    assert get(field, {"auditID": "id-1"}) is None


def test_no_audit_id_means_no_ka_value_but_json_fields_work() -> None:
    payload = rich_payload()
    del payload["auditID"]
    for field in sorted(K8S_AUDIT_FIELDS):
        assert get(field, payload, arg_for(field)) is None, field
    assert get("jevt.value", payload, "/stage") == "ResponseComplete"
    assert get("jevt.rawtime", payload) == str(TS)
    # A null auditID is still an auditID.
    payload["auditID"] = None
    assert get("ka.verb", payload) == "create"
    assert get("ka.auditid", payload) == "null"


def test_non_dict_payload_has_no_values() -> None:
    for field in sorted(k8s_field_names()):
        assert get(field, None, arg_for(field)) is None, field


# --- ka.uri.param ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "key", "expected"),
    [
        ("/api/v1/namespaces/ns/pods/p/exec?command=ls&command=-l&container=c", "command", "ls"),
        ("/api/v1/namespaces/ns/pods/p/exec?command=ls&container=c", "container", "c"),
        ("/x?command=", "command", ""),
        ("/x?command", "command", ""),
        ("/x?a=1", "command", None),
        ("/x", "command", None),
        ("/x?command=cat+%2Fetc%2Fshadow", "command", "cat /etc/shadow"),
        ("/x?c%6Fmmand=1", "command", "1"),
        ("/x?command=a#frag?command=b", "command", "a"),
        ("/x?&&command=a", "command", "a"),
        ("/x?command=%zz", "command", None),  # a bad escape anywhere fails the whole query
        ("/x?other=%zz&command=a", "command", None),
        ("/x?command=a;b", "command", None),  # Go rejects semicolons in queries
        ("/x?command=a&b=1;2", "command", None),
        ("/x?command=a\x01", "command", None),  # control characters fail url.Parse
        ("/%zz?command=a", "command", None),  # a bad escape in the path fails url.Parse
        ("/x?command=a#%zz", "command", None),  # and in the fragment
        ("a:b?command=x", "command", "x"),  # a scheme and an opaque part
        ("1a:b?command=x", "command", None),  # no scheme, colon in the first segment
        (":x?command=x", "command", None),  # missing protocol scheme
        ("/x?command=%E2%9C%93", "command", "✓"),
    ],
)
def test_uri_param(uri: str, key: str, expected: str | None) -> None:
    assert get("ka.uri.param", {"auditID": "i", "requestURI": uri}, key) == expected


def test_uri_param_without_uri() -> None:
    assert get("ka.uri.param", {"auditID": "i"}, "command") is None


# --- targets and bindings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ({"resource": "pods"}, "web-1"),
        ({"resource": "pods", "subresource": ""}, "web-1"),
        ({"resource": "pods", "subresource": 5}, "web-1"),  # not a string: treated as empty
        ({"resource": "pods", "subresource": "exec"}, None),
        ({"resource": "deployments"}, None),
        ({"resource": 5}, None),
        ({}, None),
    ],
)
def test_target_pod_name(ref: dict[str, Any], expected: str | None) -> None:
    payload = {"auditID": "i", "objectRef": ref, "responseObject": {"metadata": {"name": "web-1"}}}
    assert get("ka.target.pod.name", payload) == expected
    del payload["responseObject"]
    assert get("ka.target.pod.name", payload) is None


SUBJECTS = [
    {"kind": "User", "name": "u1", "apiGroup": "rbac.authorization.k8s.io"},
    {"kind": "Group", "name": "g1"},
    {"kind": "ServiceAccount", "name": "sa1", "namespace": "ns1"},
    {"kind": "ServiceAccount", "name": "sa2"},
    {"kind": "User"},
    "just a string",
    {"kind": 5, "name": "x"},
    {"kind": "User", "name": 7},
]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("ka.req.binding.subjects.user_names", ["u1", "7"]),
        ("ka.req.binding.subjects.group_names", ["g1"]),
        ("ka.req.binding.subjects.serviceaccount_names", ["sa1", "sa2"]),
        ("ka.req.binding.subjects.serviceaccount_ns_names", ["ns1:sa1"]),
    ],
)
def test_binding_subject_names(field: str, expected: list[str]) -> None:
    assert get(field, with_path(("requestObject", "subjects"), SUBJECTS)) == expected
    assert get(field, with_path(("requestObject", "subjects"), [])) is None
    assert get(field, with_path(("requestObject", "subjects"), {"kind": "User"})) is None
    assert get(field, {"auditID": "i"}) is None


def test_binding_subjects_as_json_text() -> None:
    subjects = [{"kind": "User", "name": "u1"}, {"kind": "Group", "name": "g"}]
    assert get("ka.req.binding.subjects", with_path(("requestObject", "subjects"), subjects)) == [
        '{"kind":"User","name":"u1"}',
        '{"kind":"Group","name":"g"}',
    ]


def test_has_name_is_always_true() -> None:
    assert get("ka.req.binding.subject.has_name", {"auditID": "i"}, "anyone") == "true"
    assert get("ka.req.binding.subject.has_name", {"stage": "x"}, "anyone") is None


# --- pod containers ----------------------------------------------------------------------------


def pod_payload(group: str = "containers", containers: Any = None) -> dict[str, Any]:
    if containers is None:
        containers = [
            {
                "name": "a",
                "image": "reg:5000/team/app:1.2",
                "command": ["sh", "-c"],
                "args": [],
                "runAsUser": 7,
                "securityContext": {
                    "privileged": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                    "runAsUser": 1000, "runAsGroup": 2000, "procMount": "Default",
                    "capabilities": {"add": ["NET_ADMIN", "SYS_TIME"]},
                },
                "ports": [{"containerPort": 80}, {"hostPort": 8080, "containerPort": 81}, {"name": "none"}],
            },
            {"name": "b", "image": "nginx@sha256:abc"},
        ]  # fmt: skip
    return {"auditID": "i", "requestObject": {"spec": {group: containers, "runAsUser": 42}}}


GROUPS = ["containers", "initContainers", "ephemeralContainers"]

PER_CONTAINER = {
    "name": ["a", "b"],
    "image": ["reg:5000/team/app:1.2", "nginx@sha256:abc"],
    "image.repository": ["reg", "nginx"],  # cut at the first ':' then at '@'
    "command": ["sh -c"],
    "args": [""],  # an empty array joins to ""
    "privileged": ["true"],
    "allow_privilege_escalation": ["false"],
    "read_only_fs": ["true"],
    "run_as_user": ["1000"],
    "run_as_group": ["2000"],
    "proc_mount": ["Default"],
    "add_capabilities": ['["NET_ADMIN","SYS_TIME"]'],  # one JSON text per container
    "eff_run_as_user": ["7", "42"],  # <list>[*].runAsUser, then spec.runAsUser: not securityContext
    "eff_run_as_group": ["0", "0"],  # securityContext.runAsGroup is ignored: default "0"
}


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("name", sorted(PER_CONTAINER))
def test_per_container_field(group: str, name: str) -> None:
    field = f"ka.req.pod.{group}.{name}"
    expected = PER_CONTAINER[name]
    assert get(field, pod_payload(group)) == expected
    assert get(field, pod_payload(group, containers=[])) is None
    assert get(field, {"auditID": "i", "requestObject": {"spec": {}}}) is None
    assert get(field, pod_payload("otherList")) is None


@pytest.mark.parametrize("group", GROUPS)
def test_per_container_index(group: str) -> None:
    payload = pod_payload(group)
    assert get(f"ka.req.pod.{group}.name", payload, "1") == ["b"]
    assert get(f"ka.req.pod.{group}.image", payload, "0") == ["reg:5000/team/app:1.2"]
    assert get(f"ka.req.pod.{group}.name", payload, "2") is None
    # The second container has no securityContext: with an index that is "not available".
    assert get(f"ka.req.pod.{group}.privileged", payload, "1") is None
    # Likewise a missing runAsUser: the pod-level fallback only fills gaps of a full walk.
    assert get(f"ka.req.pod.{group}.eff_run_as_user", payload, "1") is None
    assert get(f"ka.req.pod.{group}.eff_run_as_user", payload, "0") == ["7"]


@pytest.mark.parametrize("group", ["containers", "initContainers"])
def test_host_port(group: str) -> None:
    field = f"ka.req.pod.{group}.host_port"
    assert get(field, pod_payload(group)) == ["80", "8080"]
    assert get(field, pod_payload(group), "1") is None  # container b has no ports
    assert get(field, pod_payload(group, [{"image": "x", "ports": {"hostPort": 1}}])) is None
    assert get(field, pod_payload(group, [{"image": "x", "ports": [{"hostPort": None}]}])) == ["null"]
    assert get(field, pod_payload(group, [{"image": "x", "ports": []}])) is None


def test_ephemeral_containers_have_no_host_port() -> None:
    with pytest.raises(ConditionError, match="nonexistent field"):
        k8s_extractor("ka.req.pod.ephemeralContainers.host_port", None)


def test_one_container_without_image_empties_image_fields() -> None:
    payload = pod_payload(containers=[{"name": "a", "image": "nginx"}, {"name": "b"}])
    assert get("ka.req.pod.containers.image", payload) is None
    assert get("ka.req.pod.containers.image.repository", payload) is None
    assert get("ka.req.pod.containers.name", payload) == ["a", "b"]
    payload = pod_payload(containers=[{"image": "nginx"}])
    assert get("ka.req.pod.containers.name", payload) is None
    assert get("ka.req.pod.containers.privileged", payload) is None


@pytest.mark.parametrize(
    ("command", "expected"),
    [(["echo", "a b"], ["echo a b"]), ("echo", None), (["echo", 1], None), ([], [""])],
)
def test_command_shapes(command: Any, expected: list[str] | None) -> None:
    assert get("ka.req.pod.containers.command", pod_payload(containers=[{"command": command}])) == expected


def test_deprecated_first_container_fields() -> None:
    payload = pod_payload()
    assert get("ka.req.container.image", payload) == "reg:5000/team/app:1.2"
    assert get("ka.req.container.image.repository", payload) == "reg"
    assert get("ka.req.container.privileged", payload) == "true"
    assert get("ka.req.container.image", pod_payload(containers=[])) is None
    assert get("ka.req.container.privileged", pod_payload(containers=[])) == "false"
    plain = [{"image": "a", "securityContext": {"privileged": "true"}}, {"image": "b"}]
    assert get("ka.req.container.privileged", pod_payload(containers=plain)) == "false"  # a string is not true
    assert get("ka.req.container.privileged", {"auditID": "i"}) is None
    assert get("ka.req.container.image", pod_payload("initContainers")) is None


# --- roles, services, volumes ------------------------------------------------------------------

RULES = [
    {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]},
    {"verbs": ["*"], "resources": ["pods/exec"], "nonResourceURLs": ["/metrics"], "sourceIPs": ["10.0.0.1"]},
    {"verbs": "get"},
]


@pytest.mark.parametrize(
    ("field", "expected", "second"),
    [
        ("ka.req.role.rules.verbs", ["get", "list", "*"], ["*"]),
        ("ka.req.role.rules.resources", ["pods", "pods/exec"], ["pods/exec"]),
        ("ka.req.role.rules.apiGroups", [""], None),
        ("ka.req.role.rules.nonResourceURLs", ["/metrics"], ["/metrics"]),
        ("ka.sourceips", ["10.0.0.1"], ["10.0.0.1"]),  # the plugin's bug: read from the rules
    ],
)
def test_role_rule_fields(field: str, expected: list[str], second: list[str] | None) -> None:
    payload = with_path(("requestObject", "rules"), RULES)
    assert get(field, payload) == expected
    assert get(field, payload, "1") == second
    assert get(field, payload, "3") is None
    assert get(field, with_path(("requestObject", "rules"), [])) is None
    assert get(field, {"auditID": "i"}) is None


def test_sourceips_ignores_the_events_own_source_ips() -> None:
    assert get("ka.sourceips", {"auditID": "i", "sourceIPs": ["192.168.1.1"]}) is None


def test_service_ports_is_one_json_text_and_ignores_the_index() -> None:
    payload = with_path(("requestObject", "spec", "ports"), [{"port": 80}, {"port": 443, "nodePort": 30443}])
    whole = ['[{"port":80},{"port":443,"nodePort":30443}]']
    assert get("ka.req.service.ports", payload) == whole
    assert get("ka.req.service.ports", payload, "1") == whole
    assert get("ka.req.service.ports", with_path(("requestObject", "spec", "ports"), [])) == ["[]"]
    assert get("ka.req.service.ports", {"auditID": "i"}) is None


VOLUMES = [
    {"name": "a", "hostPath": {"path": "/etc", "type": ""}},
    {"name": "b", "configMap": {"name": "cm"}},
    {"name": "c", "flexVolume": {"driver": "vendor/driver"}, "extra": 1},
    {"name": "d", "hostPath": {"path": "/var/run/docker.sock"}},
    "not an object",
]


def volumes(value: Any = VOLUMES) -> dict[str, Any]:
    return with_path(("requestObject", "spec", "volumes"), value)


def test_volume_fields() -> None:
    assert get("ka.req.pod.volumes.hostpath", volumes()) == ["/etc", "/var/run/docker.sock"]
    assert get("ka.req.pod.volumes.hostpath", volumes(), "0") == ["/etc"]
    assert get("ka.req.pod.volumes.hostpath", volumes(), "1") is None
    assert get("ka.req.pod.volumes.flexvolume_driver", volumes()) == ["vendor/driver"]
    assert get("ka.req.pod.volumes.volume_type", volumes()) == [
        "hostPath",
        "configMap",
        "flexVolume",
        "extra",
        "hostPath",
    ]
    assert get("ka.req.pod.volumes.volume_type", volumes(), "2") == ["flexVolume", "extra"]
    for field in (
        "ka.req.pod.volumes.hostpath",
        "ka.req.pod.volumes.flexvolume_driver",
        "ka.req.pod.volumes.volume_type",
    ):
        assert get(field, volumes([])) is None
        assert get(field, {"auditID": "i"}) is None


@pytest.mark.parametrize(
    ("arg", "expected"),
    [("/etc", "true"), ("/var/run/*", "true"), ("/etc*", "true"), ("/var", "false"), ("/et", "false")],
)
def test_deprecated_volume_hostpath(arg: str, expected: str) -> None:
    assert get("ka.req.volume.hostpath", volumes(), arg) == expected
    assert get("ka.req.volume.hostpath", volumes([]), arg) == "false"
    assert get("ka.req.volume.hostpath", {"auditID": "i"}, arg) is None


# --- json plugin -------------------------------------------------------------------------------


def rich_payload() -> dict[str, Any]:
    payload = copy.deepcopy(pod_payload())
    payload.update(
        {
            "kind": "Event",
            "stage": "ResponseComplete",
            "verb": "create",
            "user": {"username": "alice", "groups": ["g0", "g1"]},
            "requestURI": "/api/v1/namespaces/default/pods?command=x",
            "objectRef": {"resource": "pods", "namespace": "default", "name": "p"},
            "annotations": {"a/b": "slash", "a~b": "tilde", "": "empty key"},
        }
    )
    payload["requestObject"]["rules"] = RULES
    payload["requestObject"]["subjects"] = SUBJECTS
    payload["requestObject"]["spec"]["volumes"] = VOLUMES
    return payload


@pytest.mark.parametrize("prefix", ["json", "jevt"])
@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("/stage", "ResponseComplete"),
        ("stage", "ResponseComplete"),  # the leading slash is optional
        ("/user/groups/1", "g1"),
        ("/user/groups/+1", "g1"),  # Go's Atoi accepts a sign...
        ("/user/groups/01", "g1"),  # ...and leading zeros
        ("/user/groups/2", None),
        ("/user/groups/-1", None),
        ("/user/groups/x", None),
        ("/user", '{"username":"alice","groups":["g0","g1"]}'),
        ("/annotations/a~1b", "slash"),
        ("/annotations/a~0b", "tilde"),
        ("/annotations/", "empty key"),
        ("/stage/x", None),
        ("/nope", None),
        ("/requestObject/spec/containers/0/securityContext/runAsUser", "1000"),
    ],
)
def test_json_value(prefix: str, pointer: str, expected: str | None) -> None:
    assert get(f"{prefix}.value", rich_payload(), pointer) == expected


def test_json_value_empty_pointer_is_the_whole_event() -> None:
    payload = {"auditID": "i", "b": [1, "é"], "a": None}
    assert get("json.value", payload, "") == '{"auditID":"i","b":[1,"é"],"a":null}'


@pytest.mark.parametrize("prefix", ["json", "jevt"])
def test_json_obj_and_rawtime(prefix: str) -> None:
    payload = {"auditID": "i", "empty": {}, "list": [], "nested": {"k": [1, True]}}
    assert get(f"{prefix}.obj", payload) == (
        '{\n  "auditID": "i",\n  "empty": {},\n  "list": [],\n  "nested": {\n    "k": [\n      1,\n'
        "      true\n    ]\n  }\n}"
    )
    assert get(f"{prefix}.rawtime", payload) == "1714564800123456789"
    assert json.loads(get(f"{prefix}.obj", rich_payload())) == rich_payload()


# --- arguments and coverage --------------------------------------------------------------------


def arg_for(field: str) -> str | None:
    if field in ("ka.uri.param", "ka.req.binding.subject.has_name", "json.value", "jevt.value"):
        return "command" if field == "ka.uri.param" else "/stage"
    if field == "ka.req.volume.hostpath":
        return "/etc"
    return None


@pytest.mark.parametrize(
    ("field", "arg", "message"),
    [
        ("ka.uri.param", None, "requires an argument"),
        ("jevt.value", None, "requires an argument"),
        ("ka.verb", "1", "does not allow nor require an argument"),
        ("ka.user.groups", "0", "does not allow nor require an argument"),
        ("ka.req.pod.containers.image", "01", "invalid index"),
        ("ka.req.pod.containers.image", "x", "invalid index"),
        ("ka.req.pod.containers.image", "", "invalid index"),
        ("ka.nope", None, "nonexistent field ka.nope"),
        ("evt.time", None, "nonexistent field"),
    ],
)
def test_bad_field_or_argument(field: str, arg: str | None, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        k8s_extractor(field, arg)


def test_field_names() -> None:
    names = k8s_field_names()
    assert names == K8S_AUDIT_FIELDS | JSON_FIELDS
    assert len(K8S_AUDIT_FIELDS) == 100 and len(JSON_FIELDS) == 6
    assert all(name.startswith("ka.") for name in K8S_AUDIT_FIELDS)


def test_every_registry_field_has_an_extractor_and_back() -> None:
    from falcorules_ci.fields import default_registry
    from falcorules_ci.fields.registry import ArgKind

    registry = default_registry()
    plugin_fields = {
        info.name: info for info in registry if info.source == K8S_AUDIT_SOURCE and info.plugin in ("k8saudit", "json")
    }
    assert set(plugin_fields) == k8s_field_names()
    for name, info in plugin_fields.items():
        if info.arg is ArgKind.NONE:
            k8s_extractor(name, None)
            with pytest.raises(ConditionError):
                k8s_extractor(name, "0")
        elif info.arg is ArgKind.INDEX:
            k8s_extractor(name, None)
            k8s_extractor(name, "3")
            with pytest.raises(ConditionError):
                k8s_extractor(name, "a")
        else:
            assert info.arg is ArgKind.KEY and info.arg_required, name
            k8s_extractor(name, "some key")
            with pytest.raises(ConditionError):
                k8s_extractor(name, None)


def test_extracted_values_are_strings_or_nonempty_string_lists() -> None:
    payload = rich_payload()
    for field in sorted(k8s_field_names()):
        value = get(field, payload, arg_for(field))
        assert (
            value is None
            or isinstance(value, str)
            or (isinstance(value, list) and value and all(isinstance(v, str) for v in value))
        ), field
