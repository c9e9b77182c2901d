"""The container plugin's fields (``container.*``, ``k8s.*``), as plugin 0.7.x declares them.

Since Falco 0.41 these come from the container plugin (shipped with Falco 0.44.1 as 0.7.1), which
extracts from the ``syscall`` source only. Plugin field arguments are bracketed: an index argument
is plain digits without a leading zero, a key argument is any text; the mount fields accept either.
Plugins cannot flag fields as deprecated, so the plugin's deprecated fields are ordinary fields
here; their descriptions say so.

Behaviour worth knowing when reading rules: ``container.mount.dest[KEY]`` gives no value at all
when no mount matches the key (observed with Falco 0.44.1 and plugin 0.7.1), so a negated check
on it is true for a container without mounts.
"""

from __future__ import annotations

from falcorules_ci.fields._declare import FieldClass, Row
from falcorules_ci.fields._declare import Flag as F
from falcorules_ci.fields.registry import FieldType as T

CONTAINER_PLUGIN = "container"

_MOUNT = F.ARG_INDEX | F.ARG_KEY | F.ARG_REQUIRED
_LABEL = F.ARG_KEY | F.ARG_REQUIRED
_SUGGESTED = F.SUGGESTED
_DEPRECATED_K8S = "Deprecated (use the k8smeta plugin): "

# fmt: off
CONTAINER_FIELDS: tuple[Row, ...] = (
    ("container.id", T.CHARBUF, _SUGGESTED, "Container id cut to 12 characters (from the cgroup); 'host' outside containers."),
    ("container.full_id", T.CHARBUF, F.NONE, "Full container id, filled in by the container engine lookup."),
    ("container.name", T.CHARBUF, _SUGGESTED, "Container name; 'host' outside containers."),
    ("container.image", T.CHARBUF, F.NONE, "Container image name, such as falcosecurity/falco:latest."),
    ("container.image.id", T.CHARBUF, F.NONE, "Container image id, such as 6f7e2741b66b."),
    ("container.type", T.CHARBUF, F.NONE, "Container engine type: docker, cri-o, containerd, ..."),
    ("container.privileged", T.BOOL, F.NONE, "Whether the container runs privileged."),
    ("container.mounts", T.CHARBUF, F.NONE, "All mounts, space-separated, each as source:dest:mode:rdrw:propagation."),
    ("container.mount", T.CHARBUF, _MOUNT, "One mount as source:dest:mode:rdrw:propagation, by [N] or by source glob."),
    ("container.mount.source", T.CHARBUF, _MOUNT, "Source of one mount, by [N] or by destination glob."),
    ("container.mount.dest", T.CHARBUF, _MOUNT, "Destination of one mount, by [N] or by source glob."),
    ("container.mount.mode", T.CHARBUF, _MOUNT, "Mode of one mount, by [N] or by source glob."),
    ("container.mount.rdwr", T.CHARBUF, _MOUNT, "Read/write flag of one mount, by [N] or by source glob."),
    ("container.mount.propagation", T.CHARBUF, _MOUNT, "Propagation of one mount, by [N] or by source glob."),
    ("container.image.repository", T.CHARBUF, _SUGGESTED, "Repository part of the image, such as falcosecurity/falco."),
    ("container.image.tag", T.CHARBUF, _SUGGESTED, "Tag part of the image, such as latest."),
    ("container.image.digest", T.CHARBUF, F.NONE, "Registry digest of the image (sha256:...)."),
    ("container.healthcheck", T.CHARBUF, F.NONE, "Deprecated: the container's health check command."),
    ("container.liveness_probe", T.CHARBUF, F.NONE, "Deprecated (use the k8smeta plugin): the liveness probe command."),
    ("container.readiness_probe", T.CHARBUF, F.NONE, "Deprecated (use the k8smeta plugin): the readiness probe command."),
    ("container.start_ts", T.ABSTIME, F.NONE, "Container start time in nanoseconds, as the runtime reports it."),
    ("container.duration", T.RELTIME, F.NONE, "Nanoseconds since container.start_ts."),
    ("container.ip", T.CHARBUF, F.NONE, "IP address of the container."),
    ("container.cni.json", T.CHARBUF, F.NONE, "CNI result of the container or pod, as JSON text."),
    ("container.host_pid", T.BOOL, F.NONE, "Whether the container shares the host's pid namespace."),
    ("container.host_network", T.BOOL, F.NONE, "Whether the container shares the host's network namespace."),
    ("container.host_ipc", T.BOOL, F.NONE, "Whether the container shares the host's IPC namespace."),
    ("container.label", T.CHARBUF, _LABEL, "Value of one container label: container.label[KEY]."),
    ("container.labels", T.CHARBUF, F.NONE, "All container labels as key:value pairs, comma-separated."),
    ("proc.is_container_healthcheck", T.BOOL, F.NONE, "Deprecated: whether the process is the container's health check."),
    ("proc.is_container_liveness_probe", T.BOOL, F.NONE, "Deprecated: whether the process is a liveness probe."),
    ("proc.is_container_readiness_probe", T.BOOL, F.NONE, "Deprecated: whether the process is a readiness probe."),
    ("k8s.pod.name", T.CHARBUF, _SUGGESTED, "Name of the Kubernetes pod the container belongs to."),
    ("k8s.ns.name", T.CHARBUF, _SUGGESTED, "Kubernetes namespace of the container's pod."),
    ("k8s.pod.id", T.CHARBUF, F.NONE, "Pod UID (legacy name of k8s.pod.uid)."),
    ("k8s.pod.uid", T.CHARBUF, F.NONE, "Pod UID."),
    ("k8s.pod.sandbox_id", T.CHARBUF, F.NONE, "Pod sandbox container id, cut to 12 characters."),
    ("k8s.pod.full_sandbox_id", T.CHARBUF, F.NONE, "Full pod sandbox container id."),
    ("k8s.pod.label", T.CHARBUF, _LABEL, "Value of one pod label: k8s.pod.label[KEY]."),
    ("k8s.pod.labels", T.CHARBUF, F.NONE, "All pod labels as key:value pairs."),
    ("k8s.pod.ip", T.CHARBUF, F.NONE, "IP address of the pod."),
    ("k8s.pod.cni.json", T.CHARBUF, F.NONE, "CNI result of the pod, as JSON text."),
    ("k8s.rc.name", T.CHARBUF, F.NONE, _DEPRECATED_K8S + "replication controller name."),
    ("k8s.rc.id", T.CHARBUF, F.NONE, _DEPRECATED_K8S + "replication controller id."),
    ("k8s.rc.label", T.CHARBUF, _LABEL, _DEPRECATED_K8S + "one replication controller label."),
    ("k8s.rc.labels", T.CHARBUF, F.NONE, _DEPRECATED_K8S + "replication controller labels."),
    ("k8s.svc.name", T.CHARBUF, F.NONE, _DEPRECATED_K8S + "service name."),
    ("k8s.svc.id", T.CHARBUF, F.NONE, _DEPRECATED_K8S + "service id."),
    ("k8s.svc.label", T.CHARBUF, _LABEL, _DEPRECATED_K8S + "one service label."),
    ("k8s.svc.labels", T.CHARBUF, F.NONE, _DEPRECATED_K8S + "service labels."),
    ("k8s.ns.id", T.CHARBUF, F.NONE, _DEPRECATED_K8S + "namespace id."),
    ("k8s.ns.label", T.CHARBUF, _LABEL, _DEPRECATED_K8S + "one namespace label."),
    ("k8s.ns.labels", T.CHARBUF, F.NONE, _DEPRECATED_K8S + "namespace labels."),
    ("k8s.rs.name", T.CHARBUF, F.NONE, _DEPRECATED_K8S + "replica set name."),
    ("k8s.rs.id", T.CHARBUF, F.NONE, _DEPRECATED_K8S + "replica set id."),
    ("k8s.rs.label", T.CHARBUF, _LABEL, _DEPRECATED_K8S + "one replica set label."),
    ("k8s.rs.labels", T.CHARBUF, F.NONE, _DEPRECATED_K8S + "replica set labels."),
    ("k8s.deployment.name", T.CHARBUF, F.NONE, _DEPRECATED_K8S + "deployment name."),
    ("k8s.deployment.id", T.CHARBUF, F.NONE, _DEPRECATED_K8S + "deployment id."),
    ("k8s.deployment.label", T.CHARBUF, _LABEL, _DEPRECATED_K8S + "one deployment label."),
    ("k8s.deployment.labels", T.CHARBUF, F.NONE, _DEPRECATED_K8S + "deployment labels."),
)
# fmt: on

CONTAINER_CLASS = FieldClass(CONTAINER_PLUGIN, "syscall", CONTAINER_FIELDS, plugin=CONTAINER_PLUGIN)
