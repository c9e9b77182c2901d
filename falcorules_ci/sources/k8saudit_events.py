"""Building realistic ``audit.k8s.io/v1`` Events from a few facts: who did what to which object.

:func:`audit_event` fills in what a kube-apiserver would log for the request: the request URI
derived from the resource's API group and scope, ``objectRef``, the response status, the
authorization annotations, both timestamps, a deterministic ``auditID`` and, at the
``RequestResponse`` level, a response object (the stored object with server-set metadata, a
``Status`` for deletes and failures, an empty list for lists).
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote_plus

from falcorules_ci.sources.k8saudit_plugin import format_stage_timestamp, parse_stage_timestamp

__all__ = ["BASE_TIME_NS", "RESOURCES", "ResourceInfo", "audit_event", "resource_info"]

BASE_TIME_NS: Final = 1714564800_000_000_000  # 2024-05-01T12:00:00Z, the default event time
_K8S_VERSION: Final = "v1.30.2"
_UA_SUFFIX: Final = "(linux/amd64) kubernetes/3968350"
_RBAC_GROUP: Final = "rbac.authorization.k8s.io"
_ID_NAMESPACE: Final = uuid.UUID("5f0c2a36-7c11-4b38-9d0e-6a1b8e3f4d21")
_UNSET: Final = object()


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """Where a resource lives in the API: group ("" for core), version, scope and object kind."""

    group: str
    version: str
    namespaced: bool
    kind: str

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def _table() -> dict[str, ResourceInfo]:
    rows = {
        ("", "v1", True): "pods:Pod services:Service configmaps:ConfigMap secrets:Secret "
        "serviceaccounts:ServiceAccount endpoints:Endpoints events:Event "
        "persistentvolumeclaims:PersistentVolumeClaim replicationcontrollers:ReplicationController "
        "resourcequotas:ResourceQuota limitranges:LimitRange podtemplates:PodTemplate bindings:Binding",
        ("", "v1", False): "namespaces:Namespace nodes:Node persistentvolumes:PersistentVolume "
        "componentstatuses:ComponentStatus",
        ("apps", "v1", True): "deployments:Deployment daemonsets:DaemonSet statefulsets:StatefulSet "
        "replicasets:ReplicaSet controllerrevisions:ControllerRevision",
        ("batch", "v1", True): "jobs:Job cronjobs:CronJob",
        (_RBAC_GROUP, "v1", True): "roles:Role rolebindings:RoleBinding",
        (_RBAC_GROUP, "v1", False): "clusterroles:ClusterRole clusterrolebindings:ClusterRoleBinding",
        ("networking.k8s.io", "v1", True): "ingresses:Ingress networkpolicies:NetworkPolicy",
        ("networking.k8s.io", "v1", False): "ingressclasses:IngressClass",
        ("policy", "v1", True): "poddisruptionbudgets:PodDisruptionBudget",
        ("autoscaling", "v2", True): "horizontalpodautoscalers:HorizontalPodAutoscaler",
        ("coordination.k8s.io", "v1", True): "leases:Lease",
        ("discovery.k8s.io", "v1", True): "endpointslices:EndpointSlice",
        ("storage.k8s.io", "v1", False): "storageclasses:StorageClass csidrivers:CSIDriver",
        ("apiextensions.k8s.io", "v1", False): "customresourcedefinitions:CustomResourceDefinition",
        ("admissionregistration.k8s.io", "v1", False): (
            "mutatingwebhookconfigurations:MutatingWebhookConfiguration "
            "validatingwebhookconfigurations:ValidatingWebhookConfiguration"
        ),
        ("certificates.k8s.io", "v1", False): "certificatesigningrequests:CertificateSigningRequest",
        ("scheduling.k8s.io", "v1", False): "priorityclasses:PriorityClass",
    }
    table: dict[str, ResourceInfo] = {}
    for (group, version, namespaced), entries in rows.items():
        for entry in entries.split():
            resource, kind = entry.split(":")
            table[resource] = ResourceInfo(group, version, namespaced, kind)
    return table


RESOURCES: Final[Mapping[str, ResourceInfo]] = _table()


def resource_info(
    resource: str, api_group: str | None = None, api_version: str | None = None, namespaced: bool | None = None
) -> ResourceInfo:
    """The known API facts of a resource, with explicit values winning; an unknown resource is
    taken as a core ``v1`` resource, namespaced unless told otherwise."""
    known = RESOURCES.get(resource)
    kind = known.kind if known else resource[:1].upper() + resource[1:].removesuffix("s")
    return ResourceInfo(
        group=api_group if api_group is not None else (known.group if known else ""),
        version=api_version if api_version is not None else (known.version if known else "v1"),
        namespaced=namespaced if namespaced is not None else (known.namespaced if known else True),
        kind=kind,
    )


def _default_groups(user: str) -> list[str]:
    if user == "system:anonymous":
        return ["system:unauthenticated"]
    if user.startswith("system:serviceaccount:"):
        namespace = user.split(":")[2]
        return ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
    if user.startswith("system:node:"):
        return ["system:nodes", "system:authenticated"]
    if user in ("kubernetes-admin", "admin", "minikube-user"):
        return ["system:masters", "system:authenticated"]
    return ["system:authenticated"]


def _default_user_agent(user: str) -> str:
    if user.startswith("system:node:"):
        return f"kubelet/{_K8S_VERSION} {_UA_SUFFIX}"
    if user.startswith("system:serviceaccount:kube-system:"):
        return f"kube-controller-manager/{_K8S_VERSION} {_UA_SUFFIX}/system:serviceaccount:kube-system"
    return f"kubectl/{_K8S_VERSION} {_UA_SUFFIX}"


_STATUS_REASONS: Final = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    409: "AlreadyExists", 410: "Expired", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
    503: "ServiceUnavailable", 504: "Timeout",
}  # fmt: skip


def _failure_message(
    code: int,
    reason: str,
    verb: str,
    user: str,
    resource: str | None,
    name: str | None,
    namespace: str | None,
    info: ResourceInfo | None,
) -> str:
    what = f'{resource} "{name}"' if name else (resource or "the server")
    if code == 403:
        target = f'resource "{resource}" in API group "{info.group if info else ""}"' if resource else "path"
        scope = f' in the namespace "{namespace}"' if namespace else (" at the cluster scope" if resource else "")
        return f'{what} is forbidden: User "{user}" cannot {verb} {target}{scope}'
    if code == 404:
        return f"{what} not found"
    if code == 409:
        return f"{what} already exists"
    return f"{what}: {reason}"


def _query_string(query: Mapping[str, str | Sequence[str]]) -> str:
    """``url.Values.Encode``: keys sorted, values in order, ``QueryEscape``d."""
    parts: list[str] = []
    for key in sorted(query):
        values = query[key]
        for value in [values] if isinstance(values, str) else values:
            parts.append(f"{quote_plus(key, safe='')}={quote_plus(value, safe='')}")
    return "&".join(parts)


def _request_uri(
    verb: str, resource: str, info: ResourceInfo, namespace: str | None, name: str | None, subresource: str | None
) -> str:
    base = "/api/v1" if not info.group else f"/apis/{info.group}/{info.version}"
    if namespace and info.namespaced:
        base += f"/namespaces/{namespace}"
    path = f"{base}/{resource}"
    if name and (subresource or verb not in ("create", "list", "watch", "deletecollection")):
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    if verb == "list":
        path += "?limit=500"
    elif verb == "watch":
        path += "?watch=true"
    return path


def _stable_id(*parts: Any) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, json.dumps(parts, sort_keys=True, default=str)))


def _timestamp(time: int | str | None) -> tuple[int, str]:
    if time is None:
        return BASE_TIME_NS, format_stage_timestamp(BASE_TIME_NS)
    if isinstance(time, str):
        ns = parse_stage_timestamp(time)
        if ns is None:
            raise ValueError(f"time {time!r} is not an RFC 3339 timestamp Go's time.Parse accepts")
        return ns, time
    return time, format_stage_timestamp(time, 9 if time % 1000 else 6)


def _response_object(
    verb: str,
    code: int,
    request_object: Mapping[str, Any] | None,
    info: ResourceInfo | None,
    name: str | None,
    namespace: str | None,
    uid: str,
    created: str,
    status: Mapping[str, Any],
) -> dict[str, Any] | None:
    if code >= 400:
        return {"kind": "Status", "apiVersion": "v1", **status}
    if info is None:
        return None
    meta = {"uid": uid, "resourceVersion": str(10000 + int(uid[:4], 16) % 90000), "creationTimestamp": created}
    if verb in ("create", "update", "patch") and request_object is not None:
        stored = copy.deepcopy(dict(request_object))
        metadata = dict(stored.get("metadata") or {})
        if name and "name" not in metadata:
            metadata["name"] = name
        if namespace and info.namespaced and "namespace" not in metadata:
            metadata["namespace"] = namespace
        if "name" not in metadata and "generateName" in metadata:
            metadata["name"] = f"{metadata['generateName']}{uid[-5:]}"
        stored["metadata"] = {**metadata, **{k: v for k, v in meta.items() if k not in metadata}}
        if info.kind == "Pod" and "status" not in stored:
            stored["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        return stored
    if verb == "get" and name:
        metadata = {"name": name, **({"namespace": namespace} if namespace and info.namespaced else {}), **meta}
        return {"kind": info.kind, "apiVersion": info.group_version, "metadata": metadata}
    if verb == "delete" and name:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "group": info.group, "kind": info.kind.lower() + "s", "uid": uid},
        }
    if verb == "list":
        return {
            "kind": f"{info.kind}List",
            "apiVersion": info.group_version,
            "metadata": {"resourceVersion": meta["resourceVersion"]},
            "items": [],
        }
    return None


def audit_event(
    verb: str,
    user: str,
    resource: str | None = None,
    *,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
    groups: Sequence[str] | None = None,
    request_object: Mapping[str, Any] | None = None,
    response_object: Mapping[str, Any] | object | None = _UNSET,
    response_code: int | None = None,
    response_reason: str | None = None,
    response_message: str | None = None,
    uri: str | None = None,
    query: Mapping[str, str | Sequence[str]] | None = None,
    stage: str = "ResponseComplete",
    level: str = "RequestResponse",
    time: int | str | None = None,
    audit_id: str | None = None,
    user_agent: str | None = None,
    source_ips: Sequence[str] | None = None,
    decision: str | None = None,
    auth_reason: str | None = None,
    impersonated_user: str | None = None,
    impersonated_groups: Sequence[str] | None = None,
    api_group: str | None = None,
    api_version: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A complete ``audit.k8s.io/v1`` Event dict, keys in the order kube-apiserver writes them.

    ``resource`` may be omitted for a non-resource request (then ``uri`` is required, e.g.
    ``/healthz``). ``time`` is ns since the epoch or RFC 3339 text (kept verbatim as
    ``stageTimestamp``). ``response_object`` left unset is derived from the request; ``None``
    omits it. Raises ``ValueError`` for inconsistent arguments.
    """
    if resource is None and uri is None:
        raise ValueError("an audit event needs a resource or a non-resource uri")
    if level not in ("Metadata", "Request", "RequestResponse"):
        raise ValueError(f"level {level!r} is not Metadata, Request or RequestResponse")
    info = resource_info(resource, api_group, api_version) if resource is not None else None
    if info is not None and not info.namespaced:
        namespace_in_ref = name if resource == "namespaces" and verb not in ("create", "list", "watch") else namespace
    elif info is not None:
        namespace_in_ref = namespace if namespace is not None else "default"
    else:
        namespace_in_ref = None
    ts, stage_timestamp = _timestamp(time)

    if response_code is None:
        if decision == "forbid":
            response_code = 403
        elif subresource in ("exec", "attach", "portforward"):
            response_code = 101
        else:
            response_code = 201 if verb == "create" else 200
    if decision is None:
        decision = "forbid" if response_code == 403 else "allow"
    if auth_reason is None:
        auth_reason = ""
        if decision == "allow":
            all_groups = list(groups) if groups is not None else _default_groups(user)
            auth_reason = (
                'RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" '
                'to Group "system:masters"'
                if "system:masters" in all_groups
                else f'RBAC: allowed by ClusterRoleBinding "{user}-binding" of ClusterRole "edit" to User "{user}"'
            )

    if uri is None:
        assert resource is not None and info is not None
        uri = _request_uri(verb, resource, info, namespace_in_ref, name, subresource)
    if query:
        uri += ("&" if "?" in uri else "?") + _query_string(query)

    audit_id = audit_id or _stable_id(verb, user, resource, namespace_in_ref, name, subresource, ts, stage, uri)
    status: dict[str, Any] = {"metadata": {}}
    if response_code >= 400:
        reason = response_reason or _STATUS_REASONS.get(response_code, "Unknown")
        message = response_message or _failure_message(
            response_code, reason, verb, user, resource, name, namespace_in_ref, info
        )
        details = {"name": name, "kind": resource} if name and resource else {}
        status.update({"status": "Failure", "message": message, "reason": reason})
        if details:
            status["details"] = details
    elif response_reason is not None:
        status["reason"] = response_reason
    status["code"] = response_code

    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": audit_id,
        "stage": stage,
        "requestURI": uri,
        "verb": verb,
        "user": {"username": user, "groups": list(groups) if groups is not None else _default_groups(user)},
    }
    if impersonated_user is not None:
        event["impersonatedUser"] = {"username": impersonated_user}
        if impersonated_groups is not None:
            event["impersonatedUser"]["groups"] = list(impersonated_groups)
    event["sourceIPs"] = list(source_ips) if source_ips is not None else ["172.18.0.1"]
    event["userAgent"] = user_agent if user_agent is not None else _default_user_agent(user)
    if info is not None:
        assert resource is not None
        ref: dict[str, Any] = {"resource": resource}
        if namespace_in_ref:
            ref["namespace"] = namespace_in_ref
        if name:
            ref["name"] = name
        if info.group:
            ref["apiGroup"] = info.group
        ref["apiVersion"] = info.version
        if subresource:
            ref["subresource"] = subresource
        event["objectRef"] = ref
    if stage != "RequestReceived":
        event["responseStatus"] = status
    if request_object is not None and level != "Metadata":
        event["requestObject"] = copy.deepcopy(dict(request_object))
    if response_object is _UNSET:
        response_object = None
        if level == "RequestResponse" and stage == "ResponseComplete":
            uid = _stable_id("uid", audit_id)
            created = format_stage_timestamp(ts - ts % 1_000_000_000, 0)
            response_object = _response_object(
                verb, response_code, request_object, info, name, namespace_in_ref, uid, created, status
            )
    if response_object is not None and level == "RequestResponse":
        assert isinstance(response_object, Mapping)
        event["responseObject"] = copy.deepcopy(dict(response_object))
    received = ts - (2_345_000 if stage != "RequestReceived" else 0)
    event["requestReceivedTimestamp"] = format_stage_timestamp(received)
    event["stageTimestamp"] = stage_timestamp
    event["annotations"] = {
        "authorization.k8s.io/decision": decision,
        "authorization.k8s.io/reason": auth_reason,
        **(annotations or {}),
    }
    return event
