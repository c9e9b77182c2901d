"""Containers as Falco's container plugin knows them in replay.

A thread's container id comes from its cgroup paths, tried with the plugin's matchers in order
(podman, docker, cri, containerd, lxc, libvirt-lxc, bpm); the first cgroup that yields an id wins
and an unmatched thread is on the host. Metadata (name, image, labels, mounts, ...) comes only
from the capture header or from container events (``container`` JSON events, old
``PPME_CONTAINER_E``, and the plugin's own async ``container`` events); a container id without
metadata has an id and nothing else. The host is a pseudo-container whose id, name and full id
are ``host``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from falcorules_ci.sources.records import ContainerInfo, MountInfo

_HEX = frozenset("0123456789abcdefABCDEF")
_ID_LEN = 64
_SHORT_ID_LEN = 12

_TYPE_NAMES = {
    0: "docker", 1: "lxc", 2: "libvirt-lxc", 3: "mesos", 4: "rkt", 6: "cri", 7: "containerd",
    8: "cri-o", 9: "bpm", 11: "podman", 0xFFFE: "host",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ContainerRecord:
    """Everything the plugin's fields can report about one container."""

    id: str
    full_id: str = ""
    name: str = ""
    image: str = ""
    image_id: str = ""
    image_repository: str = ""
    image_tag: str = ""
    image_digest: str = ""
    type: str = ""
    privileged: bool = False
    mounts: tuple[MountInfo, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    user: str = ""
    ip: str = ""
    cni_json: str = ""
    host_pid: bool = False
    host_network: bool = False
    host_ipc: bool = False
    pod_sandbox_id: str = ""
    pod_sandbox_labels: dict[str, str] = field(default_factory=dict)

    def mount_by_index(self, index: int) -> MountInfo | None:
        return self.mounts[index] if 0 <= index < len(self.mounts) else None

    def mount_by_source(self, pattern: str) -> MountInfo | None:
        """The first mount whose source matches ``pattern`` (a regular expression, searched)."""
        regex = _compile(pattern)
        if regex is None:
            return None
        return next((m for m in self.mounts if regex.search(m.source)), None)

    def mount_by_dest(self, pattern: str) -> MountInfo | None:
        regex = _compile(pattern)
        if regex is None:
            return None
        return next((m for m in self.mounts if regex.search(m.dest)), None)


HOST = ContainerRecord(id="host", full_id="host", name="host", type="host")


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern, re.MULTILINE)
    except re.error:
        return None


def container_type_name(code: object) -> str:
    """The ``container.type`` text of a numeric container type from container events."""
    return _TYPE_NAMES.get(code, "") if isinstance(code, int) else ""


def record_from_info(info: ContainerInfo) -> ContainerRecord:
    return ContainerRecord(
        id=info.id, full_id=info.full_id, name=info.name, image=info.image,
        image_id=info.image_id, image_repository=info.image_repository,
        image_tag=info.image_tag, image_digest=info.image_digest, type=info.runtime,
        privileged=info.privileged, mounts=tuple(info.mounts), labels=dict(info.labels),
        user=info.user, ip=info.ip, host_pid=info.host_pid, host_network=info.host_network,
        host_ipc=info.host_ipc, cni_json=info.cni_json, pod_sandbox_id=info.pod_sandbox_id,
        pod_sandbox_labels=dict(info.pod_sandbox_labels),
    )  # fmt: skip


def record_from_json(text: str) -> ContainerRecord | None:
    """A container from the ``{"container": {...}}`` JSON of container events; None if unusable."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    body = doc.get("container") if isinstance(doc, dict) else None
    if not isinstance(body, dict):
        return None
    mounts = tuple(
        MountInfo(
            source=_str(m, "Source"), dest=_str(m, "Destination"), mode=_str(m, "Mode"),
            rw=bool(m.get("RW", False)), propagation=_str(m, "Propagation"),
        )
        for m in _list(body, "Mounts")
        if isinstance(m, dict)
    )  # fmt: skip
    type_code = body.get("type", 0xFFFF)
    return ContainerRecord(
        id=_str(body, "id"), full_id=_str(body, "full_id"), name=_str(body, "name"),
        image=_str(body, "image"), image_id=_str(body, "imageid"),
        image_repository=_str(body, "imagerepo"), image_tag=_str(body, "imagetag"),
        image_digest=_str(body, "imagedigest"),
        type=container_type_name(type_code),
        privileged=bool(body.get("privileged", False)), mounts=mounts,
        labels=_str_map(body, "labels"), user=_str(body, "User"), ip=_str(body, "ip"),
        cni_json=_str(body, "cni_json"), host_pid=bool(body.get("host_pid", False)),
        host_network=bool(body.get("host_network", False)),
        host_ipc=bool(body.get("host_ipc", False)), pod_sandbox_id=_str(body, "pod_sandbox_id"),
        pod_sandbox_labels=_str_map(body, "pod_sandbox_labels"),
    )  # fmt: skip


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _list(obj: dict[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    return value if isinstance(value, list) else []


def _str_map(obj: dict[str, Any], key: str) -> dict[str, str]:
    value = obj.get(key)
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


# --- cgroup matchers -------------------------------------------------------------------------

_PODMAN = (("/libpod-", ".scope"), ("/libpod-", ".scope/container"), ("/libpod-", ""),
           ("/libpod-payload-", ".scope"), ("/libpod-payload-", ".scope/container"),
           ("/libpod-payload-", ""))  # fmt: skip
_DOCKER = (("/", ""), ("/docker-", ".scope"))
_CRI = (("/", ""), ("/crio-", ""), ("/cri-containerd-", ".scope"), ("/crio-", ".scope"),
        (":cri-containerd:", ""), ("/docker-", ".scope"), ("/nerdctl-", ".scope"))  # fmt: skip
_CONTAINERD_NAMESPACE = re.compile(r"/([A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*)/")
_LXC = ("/lxc/", "/lxc.payload/", "/lxc.payload.")
_BPM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _match_runc(cgroup: str, prefix: str, suffix: str, containerd: bool = False) -> str | None:
    start = cgroup.rfind(prefix)
    if start < 0:
        return None
    start += len(prefix)
    if suffix:
        end = cgroup.rfind(suffix)
        if end < 0:
            return None
    else:
        end = len(cgroup)
    length = end - start
    if length == _ID_LEN and _first_non_hex(cgroup, start) >= _ID_LEN:
        return cgroup[start : start + _SHORT_ID_LEN]
    if length > _ID_LEN or length <= 0:
        return None
    if containerd and not cgroup.endswith((".service", ".slice", ".scope")):
        return cgroup[start : start + min(length, _SHORT_ID_LEN)]
    return None


def _first_non_hex(text: str, start: int) -> int:
    # The plugin compares this *absolute* position with 64, so ids that start past offset 64
    # are accepted whatever their characters; reproduced as is.
    for i in range(start, len(text)):
        if text[i] not in _HEX:
            return i
    return len(text)


def _match_layouts(cgroup: str, layouts: tuple[tuple[str, str], ...]) -> str | None:
    for prefix, suffix in layouts:
        found = _match_runc(cgroup, prefix, suffix)
        if found is not None:
            return found
    return None


def _match_containerd(cgroup: str) -> str | None:
    m = _CONTAINERD_NAMESPACE.search(cgroup)
    if m is None:
        return None
    return _match_runc(cgroup, m.group(0), "", containerd=True)


def _match_lxc(cgroup: str) -> str | None:
    for layout in _LXC:
        pos = cgroup.find(layout)
        if pos >= 0:
            start = pos + len(layout)
            end = cgroup.find("/", start)
            return cgroup[start:] if end < 0 else cgroup[start:end]
    return None


def _match_libvirt_lxc(cgroup: str) -> str | None:
    pos = cgroup.find(".libvirt-lxc")
    if pos >= 0 and pos == len(cgroup) - len(".libvirt-lxc"):
        slash = cgroup.rfind("/")
        if slash >= 0:
            return cgroup[slash + 1 : pos]
    pos = cgroup.find("-lxc\\x2")
    if pos >= 0:
        delimiter = ".scope/libvirt" if ".scope/libvirt" in cgroup else ".scope"
        end = cgroup.find(delimiter)
        if end >= 0 and end == len(cgroup) - len(delimiter):
            # The plugin skips one more character than the marker is long (a `d` of `\x2d`).
            skip = len("-lxc\\x2") + 1
            return cgroup[pos + skip : end]
    pos = cgroup.find("/libvirt/lxc/")
    if pos >= 0:
        return cgroup[pos + len("/libvirt/lxc/") :]
    return None


def _match_bpm(cgroup: str) -> str | None:
    pos = cgroup.find("bpm-")
    if pos < 0:
        return None
    start = pos + len("bpm-")
    end = cgroup.find(".scope", start)
    found = cgroup[start:] if end < 0 else cgroup[start:end]
    if found and all(ch in _BPM_CHARS for ch in found):
        return found
    return None


# Matchers whose id alone makes a (metadata-less) container the plugin caches immediately.
_MATCHERS = (
    (lambda cg: _match_layouts(cg, _PODMAN), ""),
    (lambda cg: _match_layouts(cg, _DOCKER), ""),
    (lambda cg: _match_layouts(cg, _CRI), ""),
    (_match_containerd, ""),
    (_match_lxc, "lxc"),
    (_match_libvirt_lxc, "libvirt-lxc"),
    (_match_bpm, "bpm"),
)


@lru_cache(maxsize=4096)
def match_cgroup(cgroup: str) -> tuple[str, str]:
    """The container id a cgroup path names and, for matchers that create a bare container
    record, its type; ``("", "")`` on the host."""
    for matcher, bare_type in _MATCHERS:
        found = matcher(cgroup)
        if found is not None:
            return found, bare_type
    return "", ""


class ContainerTable:
    """Container metadata by id, plus the host pseudo-container."""

    def __init__(self, containers: list[ContainerInfo]) -> None:
        self._by_id: dict[str, ContainerRecord] = {"": HOST}
        for info in containers:
            self._by_id[info.id] = record_from_info(info)

    def get(self, container_id: str) -> ContainerRecord | None:
        return self._by_id.get(container_id)

    def add(self, record: ContainerRecord) -> None:
        self._by_id[record.id] = record

    def remove(self, container_id: str) -> None:
        if container_id:
            self._by_id.pop(container_id, None)

    def resolve(self, cgroups: tuple[tuple[str, str], ...]) -> str:
        """A thread's container id from its cgroups (caching bare records as the plugin does)."""
        for _subsys, path in cgroups:
            if not path:
                continue
            container_id, bare_type = match_cgroup(path)
            if container_id:
                if bare_type:
                    self._by_id[container_id] = ContainerRecord(id=container_id, type=bare_type)
                return container_id
        return ""

    def any_ip_equals(self, addr: str) -> bool:
        return any(rec.ip == addr for rec in self._by_id.values() if rec.ip)
