"""Field extraction for ``k8s_audit`` events: every ``ka.*`` field of the k8saudit plugin and the
``json.*``/``jevt.*`` fields of the json plugin, computed from the audit event dict in
``Event.payload`` the way the plugins compute them (k8saudit 0.18.0, json 0.7.4).

Every value is a string; list fields give a non-empty ``list[str]``; ``None`` means the plugin sets
no value (a missing path, a type it rejects, an empty list or an extraction error alike: libsinsp
treats a failed plugin extraction as "no value").

Conversions: a JSON string is returned as its text; anything else as compact JSON with the key
order kept (``403``, ``true``, ``null``, ``{"k":"v"}``). The plugins re-serialise with fastjson,
not Go's ``encoding/json``: nothing is HTML-escaped (``<`` stays ``<``). See "Known differences".

Plugin behaviour emulated on purpose, including its quirks:

- No ``auditID`` key in the event (any value, even ``null``, counts as present): no ``ka.*``
  field has a value. ``json.*``/``jevt.*`` fields do not check it.
- ``ka.sourceips`` reads ``requestObject.rules[*].sourceIPs`` (a bug in the plugin), not the
  event's ``sourceIPs``.
- ``ka.req.binding.subject.has_name[x]`` is always ``"true"`` (documented as ``N/A``).
- ``…image.repository`` cuts the image at the first ``:`` and then at ``@``, so
  ``registry:5000/app:1`` gives ``registry``.
- ``…eff_run_as_user`` / ``…eff_run_as_group`` read ``<list>[*].runAsUser`` (not the container's
  ``securityContext``), falling back to ``spec.runAsUser`` (not ``spec.securityContext``), then
  ``"0"``.
- ``…image``, ``…image.repository`` and ``…name`` have no value at all if any container lacks
  the key; the other per-container fields skip such containers.
- ``…command`` / ``…args`` join each container's array with spaces (an empty array gives ``""``);
  a non-array or a non-string element makes the whole field empty.
- ``…add_capabilities`` gives one element per container: the whole ``capabilities.add`` array as
  JSON text (``["NET_ADMIN","SYS_TIME"]``), not one element per capability.
- ``ka.req.service.ports`` gives a single element, the whole ``spec.ports`` array as JSON text,
  and ignores its index argument (no array is crossed before the last key).
- An index argument selects element ``i`` of *every* array crossed on the way, not only the first.
- ``ka.req.container.privileged`` is ``"true"`` if any container has ``privileged: true`` (a
  JSON boolean; the string ``"true"`` does not count), else ``"false"``; no ``containers`` key:
  no value.
- ``ka.req.volume.hostpath[p]``: ``"true"`` if some volume's ``hostPath.path`` equals ``p`` or,
  when ``p`` ends in ``*``, starts with ``p`` minus the star; else ``"false"``; no volumes key:
  no value.
- ``ka.req.pod.volumes.volume_type`` lists, for each volume object, its keys other than
  ``name`` in document order.
- ``ka.req.pod.containers.host_port``: each port's ``hostPort`` if the key exists (even ``null``),
  else its ``containerPort``.
- ``ka.target.pod.name`` is ``responseObject.metadata.name`` only when ``objectRef.resource`` is
  the string ``pods`` and ``objectRef.subresource`` is absent, empty or not a string.
- ``ka.uri.param[k]``: the first value of ``k`` in the query of ``requestURI`` as Go's
  ``net/url`` parses it; a URI or query Go rejects (control characters, bad ``%`` escapes, a
  ``;`` in the query, a colon in the first path segment) gives no value for every key.
- Binding subject name fields take subjects that have both ``kind`` and ``name``;
  ``…serviceaccount_ns_names`` also needs ``namespace`` and gives ``namespace:name``.
- ``json.value[ptr]`` / ``jevt.value[ptr]``: an RFC 6901 pointer, one leading ``/`` optional,
  ``~1`` and ``~0`` unescaped; a segment indexes an array when Go's ``strconv.Atoi`` accepts it
  (``+1`` and ``01`` included); an empty pointer gives the whole event.
- ``json.obj`` / ``jevt.obj``: the event indented with two spaces (Go's ``json.Indent``).
- ``json.rawtime`` / ``jevt.rawtime``: the event timestamp in ns as decimal text.

Known differences (the payload here is a parsed dict, not the plugin's raw bytes):

- fastjson writes strings it never decoded *verbatim*, escapes included (``\\u003c``, ``\\/``,
  ``\\u00e9`` stay as written in the input), and numbers as their original text (``1.50``,
  ``1e3``, ``-0``). Here non-string values are re-serialised from Python values: strings escape
  only ``"``, ``\\`` and control characters; integers print canonically; floats print with
  Python's ``repr``.
- With duplicate object keys fastjson finds the first, Python's ``json`` keeps the last.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from falcorules_ci.errors import ConditionError
from falcorules_ci.extract.base import Extractor
from falcorules_ci.extract.k8saudit_walk import (
    MISSING,
    NO_INDEX,
    as_text,
    fj_get,
    get_path,
    go_query,
    nonempty,
    strings_all_present,
    strings_skip_missing,
    walk,
)
from falcorules_ci.sources.event import Event

__all__ = ["JSON_FIELDS", "K8S_AUDIT_FIELDS", "k8s_extractor", "k8s_field_names"]

# --- field kinds -------------------------------------------------------------------------------

PayloadFn = Callable[[dict[str, Any]], Any]


def _audit(fn: PayloadFn) -> Extractor:
    """Wrap a payload function with the plugin's gate: audit events with an ``auditID`` key only."""

    def extract(event: Event, state: Any) -> Any:
        payload = event.payload
        if type(payload) is not dict or "auditID" not in payload:
            return None
        return fn(payload)

    return extract


def _scalar_at(keys: tuple[str, ...]) -> Extractor:
    """A non-list field read from one fixed path (the plugin's ``extractFromKeys``)."""
    first, rest = keys[0], keys[1:]

    def extract(event: Event, state: Any) -> Any:
        payload = event.payload
        if type(payload) is not dict or "auditID" not in payload:
            return None
        value = payload.get(first, MISSING)
        if rest and value is not MISSING:
            value = get_path(value, rest)
        if value is MISSING:
            return None
        return value if type(value) is str else as_text(value)

    return extract


def _list_at(keys: tuple[str, ...]) -> Extractor:
    """A list field read from one fixed path that must hold an array (``extractFromKeys``)."""

    def read(payload: dict[str, Any]) -> list[str] | None:
        value = get_path(payload, keys)
        if not isinstance(value, list) or not value:
            return None
        return [as_text(v) for v in value]

    return _audit(read)


_CONTAINER_LISTS: Final = ("containers", "initContainers", "ephemeralContainers")


def _container_values(payload: dict[str, Any], group: str, index: int, *sub: str) -> list[Any] | None:
    return walk(payload, index, ("requestObject", "spec", group, *sub))


def _container_images(payload: dict[str, Any], group: str, index: int) -> list[str] | None:
    found = _container_values(payload, group, index, "image")
    return None if found is None else strings_all_present(found)


def _repository(image: str) -> str:
    return image.split(":", 1)[0].split("@", 1)[0]


def _joined_arrays(payload: dict[str, Any], group: str, index: int, key: str) -> list[str] | None:
    """``command``/``args``: each container's string array joined with spaces."""
    found = _container_values(payload, group, index, key)
    if found is None:
        return None
    joined: list[str] = []
    for value in found:
        if value is MISSING:
            continue
        if not isinstance(value, list) or any(type(part) is not str for part in value):
            return None
        joined.append(" ".join(value))
    return joined or None


def _host_ports(payload: dict[str, Any], group: str, index: int) -> list[str] | None:
    found = _container_values(payload, group, index, "ports")
    if found is None:
        return None
    ports: list[str] = []
    for value in found:
        if value is MISSING:
            continue
        if not isinstance(value, list):
            return None
        for port in value:
            host = fj_get(port, "hostPort")
            if host is not MISSING:
                ports.append(as_text(host))
                continue
            container = fj_get(port, "containerPort")
            if container is not MISSING:
                ports.append(as_text(container))
    return ports or None


def _effective_ids(payload: dict[str, Any], group: str, index: int, key: str) -> list[str] | None:
    pod_level = get_path(payload, ("requestObject", "spec", key))
    fallback = "0" if pod_level is MISSING else as_text(pod_level)
    found = _container_values(payload, group, index, key)
    if found is None:
        return None
    return [fallback if v is MISSING else as_text(v) for v in found] or None


_SECURITY_CONTEXT_KEYS: Final = {
    "privileged": ("securityContext", "privileged"),
    "allow_privilege_escalation": ("securityContext", "allowPrivilegeEscalation"),
    "read_only_fs": ("securityContext", "readOnlyRootFilesystem"),
    "run_as_user": ("securityContext", "runAsUser"),
    "run_as_group": ("securityContext", "runAsGroup"),
    "proc_mount": ("securityContext", "procMount"),
    "add_capabilities": ("securityContext", "capabilities", "add"),
}

_PER_CONTAINER_NAMES: Final = (
    "name", "image", "image.repository", "command", "args", "privileged",
    "allow_privilege_escalation", "read_only_fs", "run_as_user", "eff_run_as_user",
    "run_as_group", "eff_run_as_group", "proc_mount", "add_capabilities",
)  # fmt: skip


def _per_container(group: str, name: str, index: int) -> PayloadFn:
    """One ``ka.req.pod.<group>.<name>`` field."""
    if name == "name":

        def names(p: dict[str, Any]) -> Any:
            found = _container_values(p, group, index, "name")
            return None if found is None else nonempty(strings_all_present(found))

        return names
    if name == "image":
        return lambda p: nonempty(_container_images(p, group, index))
    if name == "image.repository":

        def repositories(p: dict[str, Any]) -> Any:
            images = _container_images(p, group, index)
            return [_repository(i) for i in images] if images else None

        return repositories
    if name in ("command", "args"):
        return lambda p: _joined_arrays(p, group, index, name)
    if name == "host_port":
        return lambda p: _host_ports(p, group, index)
    if name in ("eff_run_as_user", "eff_run_as_group"):
        key = "runAsUser" if name == "eff_run_as_user" else "runAsGroup"
        return lambda p: _effective_ids(p, group, index, key)
    sub = _SECURITY_CONTEXT_KEYS[name]

    def from_security_context(p: dict[str, Any]) -> Any:
        found = _container_values(p, group, index, *sub)
        return None if found is None else nonempty(strings_skip_missing(found))

    return from_security_context


def _first_container(read: Callable[[dict[str, Any], str, int], list[str] | None]) -> PayloadFn:
    """The deprecated ``ka.req.container.image*`` fields: the first container's value."""

    def first(p: dict[str, Any]) -> str | None:
        values = read(p, "containers", 0)
        return values[0] if values else None

    return first


def _any_privileged(p: dict[str, Any]) -> str | None:
    found = _container_values(p, "containers", NO_INDEX, "securityContext", "privileged")
    if found is None:
        return None
    return "true" if any(v is True for v in found) else "false"


def _subject_names(kind: str, with_namespace: bool) -> PayloadFn:
    def names(p: dict[str, Any]) -> list[str] | None:
        subjects = get_path(p, ("requestObject", "subjects"))
        if subjects is MISSING or not isinstance(subjects, list):
            return None
        found: list[str] = []
        for subject in subjects:
            subject_kind = fj_get(subject, "kind")
            subject_name = fj_get(subject, "name")
            if subject_kind is MISSING or subject_name is MISSING or as_text(subject_kind) != kind:
                continue
            name = as_text(subject_name)
            if with_namespace:
                namespace = fj_get(subject, "namespace")
                if namespace is MISSING:
                    continue
                name = f"{as_text(namespace)}:{name}"
            found.append(name)
        return found or None

    return names


def _rules_arrays(key: str, index: int) -> PayloadFn:
    """``requestObject.rules[*].<key>`` arrays, concatenated (also ``ka.sourceips``'s bug)."""

    def read(p: dict[str, Any]) -> list[str] | None:
        found = walk(p, index, ("requestObject", "rules", key))
        if found is None:
            return None
        joined: list[str] = []
        for value in found:
            if isinstance(value, list):
                joined.extend(as_text(v) for v in value)
        return joined or None

    return read


def _volume_strings(index: int, *keys: str) -> PayloadFn:
    def read(p: dict[str, Any]) -> list[str] | None:
        found = walk(p, index, ("requestObject", "spec", "volumes", *keys))
        return None if found is None else nonempty(strings_skip_missing(found))

    return read


def _volume_types(index: int) -> PayloadFn:
    def read(p: dict[str, Any]) -> list[str] | None:
        found = walk(p, index, ("requestObject", "spec", "volumes", ""))
        if found is None:
            return None
        return [k for v in found if isinstance(v, dict) for k in v if k != "name"] or None

    return read


def _volume_hostpath_used(arg: str) -> PayloadFn:
    prefix = arg[:-1] if arg.endswith("*") else None

    def read(p: dict[str, Any]) -> str | None:
        found = walk(p, NO_INDEX, ("requestObject", "spec", "volumes", "hostPath", "path"))
        if found is None:
            return None
        for path in strings_skip_missing(found):
            if path == arg or (prefix is not None and path.startswith(prefix)):
                return "true"
        return "false"

    return read


def _service_ports(index: int) -> PayloadFn:
    def read(p: dict[str, Any]) -> list[str] | None:
        found = walk(p, index, ("requestObject", "spec", "ports"))
        return None if found is None else nonempty(strings_skip_missing(found))

    return read


def _target_pod_name(p: dict[str, Any]) -> str | None:
    ref = p.get("objectRef", MISSING)
    if fj_get(ref, "resource") != "pods":
        return None
    subresource = fj_get(ref, "subresource")
    if type(subresource) is str and subresource:
        return None
    name = get_path(p, ("responseObject", "metadata", "name"))
    return None if name is MISSING else as_text(name)


# --- ka.uri.param: Go's net/url ----------------------------------------------------------------


def _uri_param(key: str) -> PayloadFn:
    def read(p: dict[str, Any]) -> str | None:
        uri = p.get("requestURI", MISSING)
        if uri is MISSING:
            return None
        params = go_query(as_text(uri))
        if params is None:
            return None
        values = params.get(key)
        return values[0] if values else None

    return read


# --- json plugin -------------------------------------------------------------------------------


def _json_pointer(arg: str) -> Extractor:
    if arg == "":
        return lambda event, state: as_text(event.payload) if isinstance(event.payload, (dict, list)) else None
    segments = tuple(s.replace("~1", "/").replace("~0", "~") for s in (arg[1:] if arg[0] == "/" else arg).split("/"))

    def extract(event: Event, state: Any) -> Any:
        value = event.payload
        if not isinstance(value, (dict, list)):
            return None
        for segment in segments:
            value = fj_get(value, segment)
            if value is MISSING:
                return None
        return value if type(value) is str else as_text(value)

    return extract


def _json_obj(event: Event, state: Any) -> str | None:
    if not isinstance(event.payload, (dict, list)):
        return None
    return json.dumps(event.payload, indent=2, ensure_ascii=False)


def _json_rawtime(event: Event, state: Any) -> str | None:
    return str(event.ts) if isinstance(event.payload, (dict, list)) else None


# --- the field table ---------------------------------------------------------------------------

# How a field takes its argument: none, an optional index, or a required key.
_NONE, _INDEX, _KEY = "none", "index", "key"

_SCALAR_PATHS: Final[dict[str, tuple[str, ...]]] = {
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
    "ka.user.name": ("user", "username"),
    "ka.impuser.name": ("impersonatedUser", "username"),
    "ka.verb": ("verb",),
    "ka.uri": ("requestURI",),
    "ka.target.name": ("objectRef", "name"),
    "ka.target.namespace": ("objectRef", "namespace"),
    "ka.target.resource": ("objectRef", "resource"),
    "ka.target.subresource": ("objectRef", "subresource"),
    "ka.req.binding.role": ("requestObject", "roleRef", "name"),
    "ka.req.configmap.name": ("objectRef", "name"),
    "ka.req.configmap.obj": ("requestObject", "data"),
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
    "ka.useragent": ("userAgent",),
    "ka.cluster.name": ("annotations", "cluster_name"),
}  # fmt: skip

_LIST_PATHS: Final[dict[str, tuple[str, ...]]] = {
    "ka.user.groups": ("user", "groups"),
    "ka.req.binding.subjects": ("requestObject", "subjects"),
    "ka.req.role.rules": ("requestObject", "rules"),
    "ka.req.pod.supplemental_groups": ("requestObject", "spec", "securityContext", "supplementalGroups"),
}

# Fields built by a factory from their parsed argument (an int index, or the key text).
_Factory = Callable[[Any], PayloadFn]

_SPECIAL: Final[dict[str, tuple[str, _Factory]]] = {
    "ka.uri.param": (_KEY, _uri_param),
    "ka.target.pod.name": (_NONE, lambda _: _target_pod_name),
    "ka.req.binding.subjects.user_names": (_NONE, lambda _: _subject_names("User", False)),
    "ka.req.binding.subjects.serviceaccount_names": (
        _NONE, lambda _: _subject_names("ServiceAccount", False),
    ),
    "ka.req.binding.subjects.serviceaccount_ns_names": (
        _NONE, lambda _: _subject_names("ServiceAccount", True),
    ),
    "ka.req.binding.subjects.group_names": (_NONE, lambda _: _subject_names("Group", False)),
    "ka.req.binding.subject.has_name": (_KEY, lambda _: lambda p: "true"),
    "ka.req.container.image": (_NONE, lambda _: _first_container(_container_images)),
    "ka.req.container.image.repository": (
        _NONE,
        lambda _: _first_container(
            lambda p, group, index: [_repository(i) for i in _container_images(p, group, index) or ()]
        ),
    ),
    "ka.req.container.privileged": (_NONE, lambda _: _any_privileged),
    "ka.req.role.rules.apiGroups": (_INDEX, lambda i: _rules_arrays("apiGroups", i)),
    "ka.req.role.rules.nonResourceURLs": (_INDEX, lambda i: _rules_arrays("nonResourceURLs", i)),
    "ka.req.role.rules.verbs": (_INDEX, lambda i: _rules_arrays("verbs", i)),
    "ka.req.role.rules.resources": (_INDEX, lambda i: _rules_arrays("resources", i)),
    "ka.req.service.ports": (_INDEX, _service_ports),
    "ka.req.pod.volumes.hostpath": (_INDEX, lambda i: _volume_strings(i, "hostPath", "path")),
    "ka.req.volume.hostpath": (_KEY, _volume_hostpath_used),
    "ka.req.pod.volumes.flexvolume_driver": (_INDEX, lambda i: _volume_strings(i, "flexVolume", "driver")),
    "ka.req.pod.volumes.volume_type": (_INDEX, _volume_types),
    "ka.sourceips": (_INDEX, lambda i: _rules_arrays("sourceIPs", i)),
}  # fmt: skip


def _per_container_table() -> dict[str, tuple[str, str]]:
    table: dict[str, tuple[str, str]] = {}
    for group in _CONTAINER_LISTS:
        names = _PER_CONTAINER_NAMES + (("host_port",) if group != "ephemeralContainers" else ())
        for name in names:
            table[f"ka.req.pod.{group}.{name}"] = (group, name)
    return table


_PER_CONTAINER: Final = _per_container_table()

K8S_AUDIT_FIELDS: Final[frozenset[str]] = frozenset({*_SCALAR_PATHS, *_LIST_PATHS, *_SPECIAL, *_PER_CONTAINER})
JSON_FIELDS: Final[frozenset[str]] = frozenset(
    {"json.value", "json.obj", "json.rawtime", "jevt.value", "jevt.obj", "jevt.rawtime"}
)


def k8s_field_names() -> frozenset[str]:
    """Every ``k8s_audit`` field name this module can extract (k8saudit and json plugins)."""
    return K8S_AUDIT_FIELDS | JSON_FIELDS


def _arg_form(field_name: str) -> str:
    if field_name in _PER_CONTAINER:
        return _INDEX
    if field_name in _SPECIAL:
        return _SPECIAL[field_name][0]
    if field_name in ("json.value", "jevt.value"):
        return _KEY
    return _NONE


def _parse_arg(field_name: str, form: str, arg: str | None) -> int | str | None:
    """Check the argument the way libsinsp's plugin filtercheck does; an index becomes an int."""
    if arg is None:
        if form == _KEY:
            raise ConditionError(f"filter '{field_name}': {field_name} requires an argument but none provided")
        return NO_INDEX if form == _INDEX else None
    if form == _NONE:
        raise ConditionError(
            f"filter '{field_name}[{arg}]': {field_name} does not allow nor require an argument "
            f"but one is provided: {arg}"
        )
    if form == _KEY:
        return arg
    if not arg or not arg.isascii() or not arg.isdigit() or (len(arg) > 1 and arg[0] == "0"):
        raise ConditionError(f"filter '{field_name}[{arg}]': {field_name} has an invalid index argument: {arg}")
    index = int(arg)
    # Go converts the uint64 index to int: values past int64 wrap negative and select nothing.
    return index if index < 2**63 else 2**63


def k8s_extractor(field_name: str, arg: str | None) -> Extractor:
    """The extractor for a ``ka.*``, ``json.*`` or ``jevt.*`` field with its bracket argument.

    ``arg`` is the text between the brackets (``command`` for ``ka.uri.param[command]``,
    ``2`` for an index) or ``None``. Raises :class:`ConditionError` for an unknown field or an
    argument the field does not accept.
    """
    form = _arg_form(field_name)
    if field_name not in K8S_AUDIT_FIELDS and field_name not in JSON_FIELDS:
        raise ConditionError(f"filter_check called with nonexistent field {field_name}")
    parsed = _parse_arg(field_name, form, arg)
    if field_name in _SCALAR_PATHS:
        return _scalar_at(_SCALAR_PATHS[field_name])
    if field_name in _LIST_PATHS:
        return _list_at(_LIST_PATHS[field_name])
    if field_name in _PER_CONTAINER:
        group, name = _PER_CONTAINER[field_name]
        assert isinstance(parsed, int)
        return _audit(_per_container(group, name, parsed))
    if field_name in _SPECIAL:
        return _audit(_SPECIAL[field_name][1](parsed))
    if field_name in ("json.value", "jevt.value"):
        assert isinstance(parsed, str)
        return _json_pointer(parsed)
    if field_name in ("json.obj", "jevt.obj"):
        return _json_obj
    return _json_rawtime
