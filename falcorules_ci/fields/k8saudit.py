"""Fields of the ``k8s_audit`` source: libsinsp's generic event fields, the k8saudit plugin
(0.18.0, ``ka.*``) and the json plugin (0.7.4, ``json.*`` and the ``jevt.*`` aliases).

For a plugin source Falco's filter-check list holds only the generic event class, added because
the source's plugin produces events, followed by the loaded extraction plugins in load order
(``falco:userspace/falco/app/actions/init_inspectors.cpp``). Every plugin field here is a string:
``ka.response.code startswith 2`` is a string test. The multi-valued fields take an optional
``[N]`` index (digits, no leading zero) picking one element.
"""

from __future__ import annotations

from falcorules_ci.fields._declare import FieldClass, Row
from falcorules_ci.fields._declare import Flag as F
from falcorules_ci.fields.registry import FieldType as T
from falcorules_ci.fields.syscall import GENERIC_EVENT_FIELDS

K8S_AUDIT = "k8s_audit"
K8SAUDIT_PLUGIN = "k8saudit"
JSON_PLUGIN = "json"

S = T.CHARBUF
_LIST = F.LIST
_LIST_INDEXED = F.LIST | F.ARG_INDEX
_REQUIRED_KEY = F.ARG_KEY | F.ARG_REQUIRED


def _pod_container_fields(list_name: str, with_host_port: bool) -> tuple[Row, ...]:
    """The per-container fields the plugin declares for each container list of a pod spec."""
    prefix = f"ka.req.pod.{list_name}."
    what = f"every entry of the pod's {list_name}"
    rows: list[Row] = [
        (prefix + "name", S, _LIST_INDEXED, f"Name of {what}."),
        (prefix + "image", S, _LIST_INDEXED, f"Image of {what}."),
        (prefix + "image.repository", S, _LIST_INDEXED, f"Image of {what}, cut before the first ':' or '@'."),
        (prefix + "command", S, _LIST_INDEXED, f"Command of {what}, words joined by spaces."),
        (prefix + "args", S, _LIST_INDEXED, f"Arguments of {what}, joined by spaces."),
        (prefix + "privileged", S, _LIST_INDEXED, f"securityContext.privileged of {what}."),
        (prefix + "allow_privilege_escalation", S, _LIST_INDEXED, f"allowPrivilegeEscalation of {what}."),
        (prefix + "read_only_fs", S, _LIST_INDEXED, f"securityContext.readOnlyRootFilesystem of {what}."),
        (prefix + "run_as_user", S, _LIST_INDEXED, f"securityContext.runAsUser of {what}."),
        (prefix + "eff_run_as_user", S, _LIST_INDEXED, f"Effective starting uid of {what} (pod default, else 0)."),
        (prefix + "run_as_group", S, _LIST_INDEXED, f"securityContext.runAsGroup of {what}."),
        (prefix + "eff_run_as_group", S, _LIST_INDEXED, f"Effective starting gid of {what} (pod default, else 0)."),
        (prefix + "proc_mount", S, _LIST_INDEXED, f"securityContext.procMount of {what}."),
        (prefix + "add_capabilities", S, _LIST_INDEXED, f"Capabilities added by the securityContext of {what}."),
    ]
    if with_host_port:
        rows.append((prefix + "host_port", S, _LIST_INDEXED, f"hostPort (else containerPort) of the ports of {what}."))
    return tuple(rows)


# fmt: off
K8SAUDIT_FIELDS: tuple[Row, ...] = (
    ("ka.auditid", S, F.NONE, "Unique id of the audit event."),
    ("ka.stage", S, F.NONE, "Stage of the request: RequestReceived, ResponseComplete, ..."),
    ("ka.auth.decision", S, F.NONE, "Authorization decision annotation (allow, forbid)."),
    ("ka.auth.reason", S, F.NONE, "Authorization reason annotation."),
    ("ka.auth.openshift.decision", S, F.NONE, "OpenShift authentication decision annotation."),
    ("ka.validations.admission.policy.failure", S, F.NONE, "Failure reported by a validating admission policy."),
    ("ka.security.pod.violations", S, F.NONE, "Pod security violations reported for the request."),
    ("ka.auth.openshift.username", S, F.NONE, "User name of an OpenShift authentication."),
    ("ka.user.name", S, F.NONE, "Name of the user who made the request."),
    ("ka.user.groups", S, _LIST, "Groups of the user who made the request."),
    ("ka.impuser.name", S, F.NONE, "Name of the impersonated user."),
    ("ka.verb", S, F.NONE, "Action of the request: get, create, delete, ..."),
    ("ka.uri", S, F.NONE, "Request URI as the client sent it."),
    ("ka.uri.param", S, _REQUIRED_KEY, "First value of one query parameter of the URI: ka.uri.param[NAME]."),
    ("ka.target.name", S, F.NONE, "Name of the target object."),
    ("ka.target.namespace", S, F.NONE, "Namespace of the target object."),
    ("ka.target.resource", S, F.NONE, "Resource type of the target object: pods, secrets, ..."),
    ("ka.target.subresource", S, F.NONE, "Subresource of the target: exec, attach, ..."),
    ("ka.target.pod.name", S, F.NONE, "Name of the target pod (pod requests without a subresource)."),
    ("ka.req.binding.subjects", S, _LIST, "Subjects of a role binding in the request, each as JSON text."),
    ("ka.req.binding.subjects.user_names", S, _LIST, "User names among the subjects of a role binding."),
    ("ka.req.binding.subjects.serviceaccount_names", S, _LIST, "Service account names among a binding's subjects."),
    ("ka.req.binding.subjects.serviceaccount_ns_names", S, _LIST, "Service accounts of a binding's subjects as ns:name."),
    ("ka.req.binding.subjects.group_names", S, _LIST, "Group names among the subjects of a role binding."),
    ("ka.req.binding.role", S, F.NONE, "Role referenced by a role binding in the request."),
    ("ka.req.binding.subject.has_name", S, _REQUIRED_KEY, "Deprecated; kept so old rules load, its value means nothing."),
    ("ka.req.configmap.name", S, F.NONE, "Name of the configmap in the request."),
    ("ka.req.configmap.obj", S, F.NONE, "Data of the configmap in the request, as JSON text."),
    *_pod_container_fields("containers", with_host_port=True),
    ("ka.req.container.image", S, F.NONE, "Deprecated: image of the pod's first container."),
    ("ka.req.container.image.repository", S, F.NONE, "Deprecated: image repository of the pod's first container."),
    ("ka.req.pod.host_ipc", S, F.NONE, "hostIPC setting of the pod in the request."),
    ("ka.req.pod.host_network", S, F.NONE, "hostNetwork setting of the pod in the request."),
    ("ka.req.container.host_network", S, F.NONE, "Deprecated alias of ka.req.pod.host_network."),
    ("ka.req.pod.host_pid", S, F.NONE, "hostPID setting of the pod in the request."),
    ("ka.req.container.privileged", S, F.NONE, "Deprecated: 'true' if any container of the pod is privileged."),
    ("ka.req.pod.run_as_user", S, F.NONE, "runAsUser of the pod's security context."),
    ("ka.req.pod.run_as_group", S, F.NONE, "runAsGroup of the pod's security context."),
    ("ka.req.role.rules", S, _LIST, "Rules of a role or cluster role in the request, each as JSON text."),
    ("ka.req.role.rules.apiGroups", S, _LIST_INDEXED, "API groups of all the rules of a role."),
    ("ka.req.role.rules.nonResourceURLs", S, _LIST_INDEXED, "Non-resource URLs of all the rules of a role."),
    ("ka.req.role.rules.verbs", S, _LIST_INDEXED, "Verbs of all the rules of a role."),
    ("ka.req.role.rules.resources", S, _LIST_INDEXED, "Resources of all the rules of a role."),
    ("ka.req.pod.fs_group", S, F.NONE, "fsGroup of the pod's security context."),
    ("ka.req.pod.supplemental_groups", S, _LIST, "supplementalGroups of the pod's security context."),
    ("ka.req.service.type", S, F.NONE, "Type of the service in the request."),
    ("ka.req.service.ports", S, _LIST_INDEXED, "Ports of the service in the request, each as JSON text."),
    ("ka.req.pod.volumes.hostpath", S, _LIST_INDEXED, "hostPath paths of the pod's volumes."),
    (
        "ka.req.volume.hostpath", S, _REQUIRED_KEY,
        "Deprecated: 'true' if a hostPath volume matches the path argument (a trailing * is a prefix match).",
    ),
    ("ka.req.pod.volumes.flexvolume_driver", S, _LIST_INDEXED, "flexVolume drivers of the pod's volumes."),
    ("ka.req.pod.volumes.volume_type", S, _LIST_INDEXED, "Volume types (hostPath, secret, ...) of the pod's volumes."),
    ("ka.resp.name", S, F.NONE, "Name of the object in the response."),
    ("ka.response.code", S, F.NONE, "HTTP status code of the response, as text."),
    ("ka.response.reason", S, F.NONE, "Reason given in the response status (mostly on failures)."),
    ("ka.useragent", S, F.NONE, "User agent of the client."),
    ("ka.sourceips", S, _LIST_INDEXED, "Client IP addresses of the request."),
    ("ka.cluster.name", S, F.NONE, "Name of the cluster, from the cluster_name annotation."),
    *_pod_container_fields("initContainers", with_host_port=True),
    *_pod_container_fields("ephemeralContainers", with_host_port=False),
)
# fmt: on

# fmt: off
JSON_FIELDS: tuple[Row, ...] = (
    ("json.value", S, _REQUIRED_KEY, "Value at a JSON pointer in the event: json.value[/a/b]; strings raw, else JSON."),
    ("json.obj", S, F.NONE, "The whole event as indented JSON text."),
    ("json.rawtime", S, F.NONE, "Event time in nanoseconds, as decimal text."),
    ("jevt.value", S, _REQUIRED_KEY, "Old name of json.value."),
    ("jevt.obj", S, F.NONE, "Old name of json.obj."),
    ("jevt.rawtime", S, F.NONE, "Old name of json.rawtime."),
)
# fmt: on

K8S_AUDIT_CLASSES: tuple[FieldClass, ...] = (
    FieldClass("evt", K8S_AUDIT, GENERIC_EVENT_FIELDS),
    FieldClass(K8SAUDIT_PLUGIN, K8S_AUDIT, K8SAUDIT_FIELDS, plugin=K8SAUDIT_PLUGIN),
    FieldClass(JSON_PLUGIN, K8S_AUDIT, JSON_FIELDS, plugin=JSON_PLUGIN),
)
