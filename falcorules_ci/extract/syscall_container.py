"""Extractors for the container plugin's fields (``container.*``, ``k8s.*``,
``proc.is_container_*``).

The plugin looks the event's thread up and reports its container's metadata: on the host that is
the host pseudo-container (id, name and full id ``host``, other strings empty, flags false); for a
container it knows only by id (no metadata event), only ``container.id`` and the start time have a
value. On a container event the event's own container is used. Kubernetes names come from the
CRI labels; pod labels, IP and CNI result may come from the pod sandbox container.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from falcorules_ci.extract.base import Extractor
from falcorules_ci.sources.event import Event
from falcorules_ci.sources.records import MountInfo
from falcorules_ci.state.containers import ContainerRecord
from falcorules_ci.state.syscall_state import SyscallState
from falcorules_ci.state.threads import ThreadInfo

Factory = Callable[[str | None], Extractor]
_SHORT_ID = 12
_POD_NAME = "io.kubernetes.pod.name"
_POD_NAMESPACE = "io.kubernetes.pod.namespace"
_POD_UID = "io.kubernetes.pod.uid"


def _lookup(ev: Event, st: SyscallState) -> tuple[ThreadInfo | None, str, ContainerRecord | None] | None:
    """The thread, container id and container record for the event; None when the plugin
    cannot extract anything (no thread and no container event)."""
    current = st.event is ev
    if current and st.event_container is not None:
        return None, st.event_container.id, st.event_container
    t = st.thread if current else st.threads.get(ev.tid)
    if t is None:
        return None
    return t, t.container_id, st.containers.get(t.container_id)


def _with_record(getter: Callable[[ContainerRecord, SyscallState], Any]) -> Factory:
    def factory(arg: str | None) -> Extractor:
        def extract(ev: Event, st: SyscallState) -> Any:
            found = _lookup(ev, st)
            if found is None or found[2] is None:
                return None
            return getter(found[2], st)

        return extract

    return factory


def _container_id(arg: str | None) -> Extractor:
    def extract(ev: Event, st: SyscallState) -> Any:
        found = _lookup(ev, st)
        if found is None:
            return None
        return found[2].id if found[2] is not None else found[1]

    return extract


def _start_ts(duration: bool) -> Factory:
    def factory(arg: str | None) -> Extractor:
        def extract(ev: Event, st: SyscallState) -> Any:
            found = _lookup(ev, st)
            if found is None or found[0] is None:
                return None
            start = found[0].pidns_init_start_ts
            if not start:
                return None
            return ev.ts - start if duration else start

        return extract

    return factory


def mount_text(mount: MountInfo) -> str:
    return f"{mount.source}:{mount.dest}:{mount.mode}:{'true' if mount.rw else 'false'}:{mount.propagation}"


def _mount(part: str) -> Factory:
    def factory(arg: str | None) -> Extractor:
        def pick(record: ContainerRecord, st: SyscallState) -> Any:
            if arg is None:
                return None
            if arg.isdigit():
                mount = record.mount_by_index(int(arg))
            elif part == "source":
                mount = record.mount_by_dest(arg)
            else:
                mount = record.mount_by_source(arg)
            if mount is None:
                return None
            if part == "all":
                return mount_text(mount)
            if part == "rdwr":
                return "true" if mount.rw else "false"
            value: str = getattr(mount, part)
            return value

        return _with_record(pick)(arg)

    return factory


def labels_text(labels: dict[str, str]) -> str:
    """Labels as ``k1:v1, k2:v2`` in key order, without annotations and ``io.kubernetes.*``."""
    parts = []
    for key in sorted(labels):
        if key.startswith(("annotation.", "io.kubernetes.")):
            continue
        parts.append(f"{key}:{labels[key]}" if labels[key] else key)
    return ", ".join(parts)


def _label(source: str) -> Factory:
    def factory(arg: str | None) -> Extractor:
        def pick(record: ContainerRecord, st: SyscallState) -> Any:
            if arg is None:
                return None
            if source == "container":
                return record.labels.get(arg)
            sandbox = _sandbox(record, st)
            if sandbox is not None and arg in sandbox.pod_sandbox_labels:
                return sandbox.pod_sandbox_labels[arg]
            return record.pod_sandbox_labels.get(arg)

        return _with_record(pick)(arg)

    return factory


def _sandbox(record: ContainerRecord, st: SyscallState) -> ContainerRecord | None:
    """The pod sandbox container holding pod-level data, when the container lacks it."""
    if record.cni_json:
        return None
    return st.containers.get(record.pod_sandbox_id[:_SHORT_ID])


def _pod_labels(record: ContainerRecord, st: SyscallState) -> Any:
    sandbox = _sandbox(record, st)
    return labels_text(sandbox.pod_sandbox_labels if sandbox is not None else record.pod_sandbox_labels)


def _pod_ip(record: ContainerRecord, st: SyscallState) -> Any:
    if not record.cni_json:
        sandbox = st.containers.get(record.pod_sandbox_id[:_SHORT_ID])
        return sandbox.ip if sandbox is not None else None
    return record.ip


def _pod_cni(record: ContainerRecord, st: SyscallState) -> Any:
    if not record.cni_json:
        sandbox = st.containers.get(record.pod_sandbox_id[:_SHORT_ID])
        return sandbox.cni_json if sandbox is not None else None
    return record.cni_json


def _none(arg: str | None) -> Extractor:
    return lambda ev, st: None


_R = _with_record

FACTORIES: dict[str, Factory] = {
    "container.id": _container_id,
    "container.full_id": _R(lambda r, st: r.full_id),
    "container.name": _R(lambda r, st: r.name),
    "container.image": _R(lambda r, st: r.image),
    "container.image.id": _R(lambda r, st: r.image_id),
    "container.type": _R(lambda r, st: r.type),
    "container.privileged": _R(lambda r, st: r.privileged),
    "container.mounts": _R(lambda r, st: ",".join(mount_text(m) for m in r.mounts)),
    "container.mount": _mount("all"),
    "container.mount.source": _mount("source"),
    "container.mount.dest": _mount("dest"),
    "container.mount.mode": _mount("mode"),
    "container.mount.rdwr": _mount("rdwr"),
    "container.mount.propagation": _mount("propagation"),
    "container.image.repository": _R(lambda r, st: r.image_repository),
    "container.image.tag": _R(lambda r, st: r.image_tag),
    "container.image.digest": _R(lambda r, st: r.image_digest),
    "container.healthcheck": _none,
    "container.liveness_probe": _none,
    "container.readiness_probe": _none,
    "container.start_ts": _start_ts(False),
    "container.duration": _start_ts(True),
    "container.ip": _R(lambda r, st: r.ip),
    "container.cni.json": _R(lambda r, st: r.cni_json),
    "container.host_pid": _R(lambda r, st: r.host_pid),
    "container.host_network": _R(lambda r, st: r.host_network),
    "container.host_ipc": _R(lambda r, st: r.host_ipc),
    "container.label": _label("container"),
    "container.labels": _R(lambda r, st: labels_text(r.labels)),
    "proc.is_container_healthcheck": _none,
    "proc.is_container_liveness_probe": _none,
    "proc.is_container_readiness_probe": _none,
    "k8s.pod.name": _R(lambda r, st: r.labels.get(_POD_NAME)),
    "k8s.ns.name": _R(lambda r, st: r.labels.get(_POD_NAMESPACE)),
    "k8s.pod.id": _R(lambda r, st: r.labels.get(_POD_UID)),
    "k8s.pod.uid": _R(lambda r, st: r.labels.get(_POD_UID)),
    "k8s.pod.sandbox_id": _R(lambda r, st: r.pod_sandbox_id[:_SHORT_ID]),
    "k8s.pod.full_sandbox_id": _R(lambda r, st: r.pod_sandbox_id),
    "k8s.pod.label": _label("pod"),
    "k8s.pod.labels": _R(_pod_labels),
    "k8s.pod.ip": _R(_pod_ip),
    "k8s.pod.cni.json": _R(_pod_cni),
    **{
        f"k8s.{kind}.{attr}": _none
        for kind in ("rc", "svc", "ns", "rs", "deployment")
        for attr in ("name", "id", "label", "labels")
        if (kind, attr) != ("ns", "name")
    },
}
