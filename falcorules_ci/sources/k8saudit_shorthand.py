"""The compact YAML shorthand for hand-written Kubernetes audit fixtures.

One mapping describes one API request; :func:`expand_shorthand` validates it against
``schemas/audit_event_shorthand.schema.json`` and expands it with
:func:`~falcorules_ci.sources.k8saudit_events.audit_event`::

    verb: create
    user: alice
    namespace: default
    name: web
    pod:
      containers: [{image: nginx, privileged: true}]
      hostNetwork: true
      volumes: [{hostPath: /etc}]

Object shorthands and the resource they imply: ``pod`` (pods), ``configmap`` (configmaps),
``service`` (services), ``binding`` (clusterrolebindings, or rolebindings with a namespace),
``rules`` (clusterroles, or roles with a namespace), ``exec``/``attach`` (the pods/exec and
pods/attach subresources, verb ``create``, stage ``ResponseStarted`` and code 101 unless given:
the first audit event of the connection upgrade, the one Falco's "Attach/Exec Pod" rule
matches). ``override`` deep-merges into the expanded event and ``remove`` deletes JSON pointers
from it, for fixtures that need what a real API server never writes.
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from falcorules_ci.errors import InputError, Span
from falcorules_ci.schemas import load_schema, validator
from falcorules_ci.sources.k8saudit_events import BASE_TIME_NS, audit_event
from falcorules_ci.sources.k8saudit_plugin import parse_stage_timestamp

__all__ = ["Locator", "expand_shorthand", "shorthand_schema"]

# Maps a path inside the shorthand document (keys and list indexes) to where it is written.
Locator = Callable[[Sequence[str | int]], Span | None]

_SHORTHAND_RESOURCES: Final[dict[str, tuple[str, ...]]] = {
    # shorthand key: resources it may describe, the first being the default
    "pod": ("pods",),
    "configmap": ("configmaps",),
    "service": ("services",),
    "binding": ("clusterrolebindings", "rolebindings"),
    "rules": ("clusterroles", "roles"),
    "exec": ("pods",),
    "attach": ("pods",),
}
_RBAC: Final = "rbac.authorization.k8s.io"


def shorthand_schema() -> dict[str, Any]:
    """The audit_event_shorthand JSON Schema."""
    return load_schema("audit_event_shorthand")


def _validator() -> jsonschema.protocols.Validator:
    return validator("audit_event_shorthand")


class _Where:
    """Turns document paths into spans, falling back to the document's own span."""

    def __init__(self, span: Span, locate: Locator | None) -> None:
        self.span = span
        self.locate = locate

    def __call__(self, *path: str | int) -> Span:
        if self.locate is not None:
            found = self.locate(path)
            if found is not None:
                return found
        return self.span

    def error(self, message: str, *path: str | int) -> InputError:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        return InputError(f"audit shorthand{' at ' + where if where else ''}: {message}", self(*path))


def _schema_error(error: ValidationError, where: _Where) -> InputError:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema
        allowed = set(schema.get("properties", {})) if isinstance(schema, Mapping) else set()
        extra = sorted(str(k) for k in error.instance if k not in allowed)
        if extra:
            return where.error(f"unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})", *path, extra[0])
    return where.error(error.message, *path)


def _argv(value: str | Sequence[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else list(value)


def _container_name(image: str, taken: set[str]) -> str:
    base = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0] or "container"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


_SECURITY_SHORTCUTS: Final = (
    "privileged", "allowPrivilegeEscalation", "readOnlyRootFilesystem", "runAsUser", "runAsGroup",
    "runAsNonRoot", "procMount", "capabilities",
)  # fmt: skip


def _container(spec: Mapping[str, Any], taken: set[str]) -> dict[str, Any]:
    image = spec["image"]
    name = spec.get("name") or _container_name(image, taken)
    taken.add(name)
    container: dict[str, Any] = {"name": name, "image": image}
    for key in ("command", "args"):
        if key in spec:
            container[key] = _argv(spec[key])
    if "workingDir" in spec:
        container["workingDir"] = spec["workingDir"]
    if "ports" in spec:
        container["ports"] = [
            {"containerPort": p, "protocol": "TCP"} if isinstance(p, int) else dict(p) for p in spec["ports"]
        ]
    env = spec.get("env")
    if isinstance(env, Mapping):
        container["env"] = [{"name": k, "value": str(v)} for k, v in env.items()]
    elif env is not None:
        container["env"] = list(env)
    container["resources"] = dict(spec.get("resources") or {})
    if "volumeMounts" in spec:
        container["volumeMounts"] = list(spec["volumeMounts"])
    container["terminationMessagePath"] = "/dev/termination-log"
    container["terminationMessagePolicy"] = "File"
    tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
    default_policy = "IfNotPresent" if tagged and not image.endswith(":latest") else "Always"
    container["imagePullPolicy"] = spec.get("imagePullPolicy", default_policy)
    context = dict(spec.get("securityContext") or {})
    context.update({k: spec[k] for k in _SECURITY_SHORTCUTS if k in spec})
    if context:
        container["securityContext"] = context
    for key in ("stdin", "tty"):
        if key in spec:
            container[key] = spec[key]
    return container


def _volume(spec: Mapping[str, Any], index: int) -> dict[str, Any]:
    volume: dict[str, Any] = {"name": spec.get("name", f"vol-{index}")}
    for key, value in spec.items():
        if key == "hostPath" and isinstance(value, str):
            volume[key] = {"path": value, "type": ""}
        elif key != "name":
            volume[key] = value
    return volume


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _metadata(name: str | None, namespace: str | None, kind: str, labels: Mapping[str, str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} if name else {"generateName": f"{kind.lower()}-"}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def _pod(spec: Mapping[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {}
    if "volumes" in spec:
        pod_spec["volumes"] = [_volume(v, i) for i, v in enumerate(spec["volumes"])]
    taken: set[str] = set()
    for key in ("initContainers", "containers", "ephemeralContainers"):
        if key in spec:
            pod_spec[key] = [_container(c, taken) for c in spec[key]]
    pod_spec.update({"restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst"})
    pod_spec["serviceAccountName"] = spec.get("serviceAccountName", "default")
    for key in ("nodeName", "hostNetwork", "hostPID", "hostIPC"):
        if key in spec:
            pod_spec[key] = spec[key]
    pod_spec["securityContext"] = dict(spec.get("securityContext") or {})
    pod_spec["schedulerName"] = "default-scheduler"
    _merge(pod_spec, spec.get("spec") or {})
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": pod_spec}


def _subject(spec: str | Mapping[str, Any], namespace: str | None) -> dict[str, Any]:
    if isinstance(spec, Mapping):
        kind, name = spec["kind"], spec["name"]
        explicit_namespace = spec.get("namespace")
        api_group = spec.get("apiGroup")
    else:
        prefix, _, rest = spec.partition(":")
        kinds = {"user": "User", "group": "Group", "serviceaccount": "ServiceAccount", "sa": "ServiceAccount"}
        kind = kinds.get(prefix.lower(), "") if rest else ""
        if not kind:
            kind, rest = "User", spec
        explicit_namespace = None
        if kind == "ServiceAccount":
            explicit_namespace, _, rest = rest.rpartition(":")
        name, api_group = rest, None
    if kind == "ServiceAccount":
        return {"kind": kind, "name": name, "namespace": explicit_namespace or namespace or "default"}
    return {"kind": kind, "apiGroup": api_group if api_group is not None else _RBAC, "name": name}


def _service(spec: Mapping[str, Any], meta: dict[str, Any], name: str | None) -> dict[str, Any]:
    ports = [
        {"protocol": "TCP", "port": p, "targetPort": p} if isinstance(p, int) else {"protocol": "TCP", **p}
        for p in spec.get("ports", [])
    ]
    service_spec: dict[str, Any] = {"ports": ports, "selector": dict(spec.get("selector") or {"app": name or "app"})}
    for key in ("clusterIP", "externalName"):
        if key in spec:
            service_spec[key] = spec[key]
    service_spec["type"] = spec.get("type", "ClusterIP")
    return {"kind": "Service", "apiVersion": "v1", "metadata": meta, "spec": service_spec}


def _rule(spec: Mapping[str, Any]) -> dict[str, Any]:
    rule: dict[str, Any] = {"verbs": list(spec["verbs"])}
    if "apiGroups" in spec or "resources" in spec:
        rule["apiGroups"] = list(spec.get("apiGroups", [""]))
    for key in ("resources", "resourceNames", "nonResourceURLs"):
        if key in spec:
            rule[key] = list(spec[key])
    return rule


def _stream_query(spec: Mapping[str, Any], command: list[str] | None) -> dict[str, list[str]]:
    """The query kubectl sends for exec/attach: the command words, container and stream flags."""
    query: dict[str, list[str]] = {}
    if command is not None:
        query["command"] = command
    if "container" in spec:
        query["container"] = [spec["container"]]
    if spec.get("stdin"):
        query["stdin"] = ["true"]
    query["stdout"] = ["true"]
    if spec.get("tty"):
        query["tty"] = ["true"]
    else:
        query["stderr"] = ["true"]
    return query


def _remove(event: dict[str, Any], pointer: str, where: _Where, index: int) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]
    target: Any = event
    for part in parts[:-1]:
        target = target.get(part) if isinstance(target, dict) else None
    if not isinstance(target, dict) or parts[-1] not in target:
        raise where.error(f"nothing to remove at {pointer!r} in the expanded event", "remove", index)
    del target[parts[-1]]


def expand_shorthand(
    doc: Mapping[str, Any], span: Span, *, locate: Locator | None = None, sequence: int = 0
) -> dict[str, Any]:
    """Validate one shorthand document and expand it into a full audit Event dict.

    ``span`` is where the document starts; ``locate`` (optional) gives finer positions for
    paths inside it. ``sequence`` is the document's 0-based position in its file: the default
    ``time`` is 1 ms later per earlier document. Raises :class:`InputError` with a position for
    anything the schema or the expansion rejects.
    """
    where = _Where(span, locate)
    error = best_match(_validator().iter_errors(doc))
    if error is not None:
        raise _schema_error(error, where)

    shorthands = [key for key in _SHORTHAND_RESOURCES if key in doc]
    if len(shorthands) > 1:
        raise where.error(f"{shorthands[0]!r} and {shorthands[1]!r} cannot describe one request", shorthands[1])
    shorthand = shorthands[0] if shorthands else None
    if shorthand is not None and doc.get("request_object") is not None:
        raise where.error(f"give either {shorthand!r} or 'request_object', not both", "request_object")

    namespace: str | None = doc.get("namespace")
    resource: str | None = doc.get("resource")
    subresource: str | None = doc.get("subresource")
    if shorthand is not None:
        allowed = _SHORTHAND_RESOURCES[shorthand]
        implied = allowed[-1] if len(allowed) > 1 and namespace else allowed[0]
        if resource is None:
            resource = implied
        elif resource not in allowed:
            raise where.error(f"{shorthand!r} describes {' or '.join(allowed)}, not {resource!r}", "resource")
        if shorthand in ("exec", "attach"):
            if subresource not in (None, shorthand):
                raise where.error(f"{shorthand!r} is the {shorthand} subresource, not {subresource!r}", "subresource")
            subresource = shorthand
    if resource is None and "uri" not in doc:
        raise where.error(
            "needs 'resource' (or pod/binding/configmap/rules/service/exec/attach) or a non-resource 'uri'"
        )
    verb = doc.get("verb") or ("create" if shorthand in ("exec", "attach") else None)
    if verb is None:
        raise where.error("'verb' is a required property")
    if shorthand in ("exec", "attach") and not doc.get("name"):
        raise where.error(f"{shorthand!r} needs the pod's 'name'", shorthand)

    name: str | None = doc.get("name")
    labels = doc.get("labels")
    request_object: dict[str, Any] | None = doc.get("request_object")
    query = dict(doc.get("query") or {})
    ns_for_object = namespace if namespace is not None else "default"
    if shorthand == "pod":
        request_object = _pod(doc["pod"], _metadata(name, ns_for_object, "Pod", labels))
    elif shorthand == "configmap":
        body = {k: doc["configmap"][k] for k in ("data", "binaryData", "immutable") if k in doc["configmap"]}
        request_object = {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": _metadata(name, ns_for_object, "ConfigMap", labels),
            **body,
        }
    elif shorthand == "service":
        request_object = _service(doc["service"], _metadata(name, ns_for_object, "Service", labels), name)
    elif shorthand == "binding":
        spec = doc["binding"]
        kind = "RoleBinding" if resource == "rolebindings" else "ClusterRoleBinding"
        request_object = {
            "kind": kind, "apiVersion": f"{_RBAC}/v1",
            "metadata": _metadata(name, namespace if kind == "RoleBinding" else None, kind, labels),
            "subjects": [_subject(s, namespace) for s in spec.get("subjects", [])],
            "roleRef": {"apiGroup": _RBAC, "kind": spec.get("role_kind", "ClusterRole"), "name": spec["role"]},
        }  # fmt: skip
    elif shorthand == "rules":
        kind = "Role" if resource == "roles" else "ClusterRole"
        request_object = {
            "kind": kind, "apiVersion": f"{_RBAC}/v1",
            "metadata": _metadata(name, namespace if kind == "Role" else None, kind, labels),
            "rules": [_rule(r) for r in doc["rules"]],
        }  # fmt: skip
    elif shorthand in ("exec", "attach"):
        spec = doc[shorthand]
        command = _argv(spec["command"]) if shorthand == "exec" else None
        query = {**_stream_query(spec, command), **query}

    time = doc.get("time")
    if time is not None and parse_stage_timestamp(time) is None:
        raise where.error(f"time {time!r} is not an RFC 3339 timestamp Go's time.Parse accepts", "time")
    impersonate = doc.get("impersonate")
    if isinstance(impersonate, str):
        impersonate = {"user": impersonate}
    streaming = shorthand in ("exec", "attach")
    # Absent means "derive it"; an explicit null means "omit it".
    response: dict[str, Any] = {"response_object": doc["response_object"]} if "response_object" in doc else {}
    try:
        event = audit_event(
            verb,
            doc["user"],
            resource,
            namespace=namespace,
            name=name,
            subresource=subresource,
            groups=doc.get("groups"),
            request_object=request_object,
            response_code=doc.get("code"),
            response_reason=doc.get("status_reason"),
            response_message=doc.get("status_message"),
            uri=doc.get("uri"),
            query=query or None,
            stage=doc.get("stage", "ResponseStarted" if streaming else "ResponseComplete"),
            level=doc.get("level", "RequestResponse"),
            time=time if time is not None else BASE_TIME_NS + sequence * 1_000_000,
            audit_id=doc.get("audit_id"),
            user_agent=doc.get("user_agent"),
            source_ips=doc.get("source_ips"),
            decision=doc.get("decision"),
            auth_reason=doc.get("auth_reason"),
            impersonated_user=impersonate["user"] if impersonate else None,
            impersonated_groups=impersonate.get("groups") if impersonate else None,
            api_group=doc.get("api_group"),
            api_version=doc.get("api_version"),
            annotations=doc.get("annotations"),
            **response,
        )
    except ValueError as exc:
        raise where.error(str(exc)) from None
    if "override" in doc:
        _merge(event, doc["override"])
    for index, pointer in enumerate(doc.get("remove", ())):
        _remove(event, pointer, where, index)
    return event
