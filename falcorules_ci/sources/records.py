"""State records an input carries besides events: what a capture's header blocks (or a scenario's
declarations) say about the machine, users, processes, open fds and containers at the start.

Captures and scenarios both produce these records; the state stage seeds its tables from them the
way libsinsp seeds its thread and fd tables from a capture's proc and fd lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from falcorules_ci.sources.event import Event, SockTuple


@dataclass(frozen=True, slots=True)
class MachineInfo:
    hostname: str = ""
    num_cpus: int = 0
    memory_bytes: int = 0
    max_pid: int = 0
    boot_ts: int = 0  # ns since epoch; 0 when the capture does not say
    flags: int = 0


@dataclass(frozen=True, slots=True)
class UserInfo:
    uid: int
    gid: int
    name: str
    home: str = ""
    shell: str = ""
    container_id: str = ""  # "" for host users


@dataclass(frozen=True, slots=True)
class GroupInfo:
    gid: int
    name: str
    container_id: str = ""


@dataclass(frozen=True, slots=True)
class InterfaceInfo:
    name: str
    family: int  # 2 = AF_INET, 10 = AF_INET6
    addr: str
    netmask: str = ""
    broadcast: str = ""


@dataclass(frozen=True, slots=True)
class FdInfo:
    """One open fd of a thread, as a capture's fd list (or a scenario) declares it.

    ``fd_type`` is libscap's ``scap_fd_type`` number (1 file, 2 directory, 3 IPv4 socket, 4 IPv6
    socket, 5 IPv4 server socket, 6 IPv6 server socket, 7 FIFO, 8 unix socket, 9 event, ...,
    16 file v2, 20 memfd ...). ``name`` is the path or, for sockets, libsinsp's rendered name.
    """

    fd: int
    fd_type: int
    name: str = ""
    ino: int = 0
    open_flags: int = 0
    dev: int = 0
    tuple: SockTuple | None = None
    l4proto: int = 0  # 0 unknown, 2 TCP, 3 UDP, 4 ICMP, 5 raw (scap_l4_proto)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One thread as a capture's proc list (or a scenario's process tree) declares it."""

    tid: int
    pid: int
    ptid: int
    comm: str
    exe: str = ""  # argv[0]
    exepath: str = ""
    args: tuple[str, ...] = ()  # argv[1:]
    cwd: str = ""
    env: tuple[str, ...] = ()  # "K=V"
    uid: int = 0
    gid: int = 0
    loginuid: int = -1
    sid: int = 0
    vpgid: int = 0
    pgid: int = 0
    vtid: int = 0
    vpid: int = 0
    tty: int = 0
    flags: int = 0  # PPM_CL_* clone flags, e.g. PPM_CL_CLONE_THREAD, exe_writable, exe_upper_layer
    fdlimit: int = 0
    vmsize_kb: int = 0
    vmrss_kb: int = 0
    vmswap_kb: int = 0
    pfmajor: int = 0
    pfminor: int = 0
    cap_inheritable: int = 0
    cap_permitted: int = 0
    cap_effective: int = 0
    cgroups: tuple[str, ...] = ()  # "subsys=/path"
    root: str = "/"
    exe_ino: int = 0
    exe_ino_ctime: int = 0
    exe_ino_mtime: int = 0
    exe_writable: bool = False
    exe_upper_layer: bool = False
    exe_lower_layer: bool = False
    exe_from_memfd: bool = False
    clone_ts: int = 0  # ns since epoch; 0 when unknown (process started before the capture)
    pidns_init_start_ts: int = 0
    fds: tuple[FdInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class MountInfo:
    source: str
    dest: str
    mode: str = ""
    rw: bool = True
    propagation: str = ""


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """Container metadata as the container plugin (or sysdig's container JSON event) knows it."""

    id: str  # 12-character short id as libsinsp reports container.id
    full_id: str = ""
    name: str = ""
    image: str = ""  # as given, e.g. "docker.io/library/nginx:1.25"
    image_id: str = ""
    image_repository: str = ""
    image_tag: str = ""
    image_digest: str = ""
    runtime: str = "docker"  # docker, containerd, cri-o, podman, ...
    privileged: bool = False
    mounts: tuple[MountInfo, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    user: str = ""
    ip: str = ""
    host_pid: bool = False
    host_network: bool = False
    host_ipc: bool = False
    created_ts: int = 0  # ns since epoch; container.start_ts
    pod_sandbox_id: str = ""
    pod_sandbox_labels: dict[str, str] = field(default_factory=dict)
    cni_json: str = ""
    is_pod_sandbox: bool = False


@dataclass(slots=True)
class CaptureHeader:
    """Everything an input says before (or besides) its events."""

    machine: MachineInfo | None = None
    interfaces: list[InterfaceInfo] = field(default_factory=list)
    users: list[UserInfo] = field(default_factory=list)
    groups: list[GroupInfo] = field(default_factory=list)
    processes: list[ProcessInfo] = field(default_factory=list)
    containers: list[ContainerInfo] = field(default_factory=list)
    # What the resolver answers for host names (name -> addresses, in the order given): a
    # scenario's ``dns``. Captures carry no such block; their replays resolve nothing.
    dns: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(slots=True)
class SourceStats:
    """What a source read and what it skipped, so nothing is dropped silently."""

    events: int = 0
    bytes: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count


__all__ = [
    "CaptureHeader", "ContainerInfo", "Event", "FdInfo", "GroupInfo", "InterfaceInfo",
    "MachineInfo", "MountInfo", "ProcessInfo", "SourceStats", "UserInfo",
]  # fmt: skip
