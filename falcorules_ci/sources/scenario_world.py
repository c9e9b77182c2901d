"""The machine a scenario runs on: threads, their fds, containers and users, as the kernel sees them.

The scenario builder keeps this model up to date while it expands actions into syscalls, so every
event can carry what a real kernel would have reported (the caller's argv, cgroups, caps, the
lowest free fd, the local end of a connection) and impossible sequences are caught.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass, field

from falcorules_ci.sources.event import SockTuple
from falcorules_ci.sources.records import ContainerInfo, FdInfo, GroupInfo, ProcessInfo, UserInfo
from falcorules_ci.sources.scenario_tables import (
    FD_FILE,
    FD_FILE_V2,
    FD_IPV4_SERVSOCK,
    FD_IPV4_SOCK,
    FD_IPV6_SERVSOCK,
    FD_IPV6_SOCK,
    FD_UNIX_SOCK,
    PPM_AF_INET,
    PPM_AF_INET6,
    PPM_AF_UNIX,
    PPM_CL_CLONE_THREAD,
    PPM_EXE_FROM_MEMFD,
    PPM_EXE_LOWER_LAYER,
    PPM_EXE_UPPER_LAYER,
    PPM_EXE_WRITABLE,
)

CGROUP_SUBSYSTEMS = ("cpuset", "cpu", "cpuacct", "io", "memory", "devices", "freezer", "net_cls",
                     "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc")
HOST_DEV = 0xFD01  # the root filesystem of the scenario host (device 253:1)
OVERLAY_DEV = 0x2F  # an overlayfs mount: what files inside containers report


def stable_number(*parts: object, bits: int = 32, floor: int = 0) -> int:
    """A deterministic number derived from ``parts``: inode numbers, ephemeral ids, sizes."""
    digest = hashlib.sha256("\x00".join(map(str, parts)).encode()).digest()
    return floor + int.from_bytes(digest[:8], "little") % ((1 << bits) - floor)


def stable_hex(*parts: object, length: int = 64) -> str:
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:length]


@dataclass(slots=True)
class FileMeta:
    """What the scenario knows about a file's inode: who owns it, its permission bits and the
    times the kernel would report for it (ns since the epoch)."""

    uid: int
    gid: int
    mode: int  # permission bits, 0o7777
    mtime: int
    ctime: int


def normalize_path(path: str, cwd: str) -> str:
    """An absolute, normalized path the way libsinsp joins a relative path to the cwd."""
    if not path:
        return path
    joined = path if path.startswith("/") else posixpath.join(cwd or "/", path)
    normal = posixpath.normpath(joined)
    return "/" + normal.lstrip("/") if normal.startswith("//") else normal


@dataclass(slots=True)
class OpenFd:
    """One entry of a process's fd table."""

    fd_type: int
    name: str = ""
    flags: int = 0  # PPM_O_* for files; 0 for others
    ino: int = 0
    dev: int = 0
    cloexec: bool = False
    family: int = 0  # sockets: PPM_AF_*
    l4proto: int = 0
    local: tuple[str, int] | None = None
    remote: tuple[str, int] | None = None
    listening: bool = False
    unix_path: str = ""
    inbound: bool = False  # accepted: the remote end is the client
    # The inode behind a file or memfd, once the scenario changed it (shared by dups and forks,
    # and by every fd of the same path: it follows renames).
    meta: FileMeta | None = None

    @property
    def is_socket(self) -> bool:
        return self.family != 0

    def tuple(self) -> SockTuple | None:
        """The connection as client -> server (for a listening socket: any -> local)."""
        if self.family == PPM_AF_UNIX:
            return SockTuple(family=PPM_AF_UNIX, src_path=self.unix_path, dst_path=self.unix_path)
        if not self.family or self.local is None:
            return None
        remote = self.remote or ("0.0.0.0" if self.family == PPM_AF_INET else "::", 0)
        if self.inbound or self.listening:
            return SockTuple(self.family, remote[0], remote[1], self.local[0], self.local[1])
        return SockTuple(self.family, self.local[0], self.local[1], remote[0], remote[1])

    def info(self, fd: int) -> FdInfo:
        fd_type = self.fd_type
        if self.is_socket and self.family != PPM_AF_UNIX:
            if self.listening:
                fd_type = FD_IPV4_SERVSOCK if self.family == PPM_AF_INET else FD_IPV6_SERVSOCK
            else:
                fd_type = FD_IPV4_SOCK if self.family == PPM_AF_INET else FD_IPV6_SOCK
        elif fd_type == FD_FILE:
            fd_type = FD_FILE_V2
        return FdInfo(fd=fd, fd_type=fd_type, name=self.render_name(), ino=self.ino, open_flags=self.flags,
                      dev=self.dev, tuple=self.tuple(), l4proto=self.l4proto)

    def render_name(self) -> str:
        if self.family in (PPM_AF_INET, PPM_AF_INET6) and self.local is not None:
            local = _host_port(*self.local)
            if self.listening or self.remote is None:
                return local
            if self.inbound:
                return f"{_host_port(*self.remote)}->{local}"
            return f"{local}->{_host_port(*self.remote)}"
        return self.name


def _host_port(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


@dataclass(slots=True)
class Container:
    """A container and its pid namespace."""

    info: ContainerInfo
    cgroup: str  # the cgroup path of its processes (same in every subsystem)
    bounding_caps: int
    next_vpid: int = 1
    init_pid: int = 0  # host pid of the process with vpid 1, once known
    created_ts: int = 0  # when it started: declared, else its first process's clone

    @property
    def own_pidns(self) -> bool:
        return not self.info.host_pid

    def take_vpid(self, wanted: int | None = None) -> int:
        if wanted is not None:
            self.next_vpid = max(self.next_vpid, wanted + 1)
            return wanted
        vpid = self.next_vpid
        self.next_vpid += 1
        return vpid


@dataclass(slots=True)
class Thread:
    """One task: a process's main thread or one of its threads."""

    tid: int
    pid: int
    ptid: int
    comm: str
    argv0: str
    exepath: str
    args: tuple[str, ...] = ()
    cwd: str = "/"
    env: tuple[str, ...] = ()
    uid: int = 0
    gid: int = 0
    loginuid: int = -1
    tty: int = 0
    sid: int = 0
    pgid: int = 0
    vpgid: int = 0
    vtid: int = 0
    vpid: int = 0
    container: Container | None = None
    cap_inheritable: int = 0
    cap_permitted: int = 0
    cap_effective: int = 0
    exe_flags: int = 0  # PPM_EXE_*
    exe_ino: int = 0
    exe_ctime: int = 0
    exe_mtime: int = 0
    fdlimit: int = 1024
    root: str = "/"
    cgroups: tuple[str, ...] = ()
    fds: dict[int, OpenFd] = field(default_factory=dict)  # shared by the threads of a process
    clone_ts: int = 0
    pidns_init_start_ts: int = 0
    vm_size: int = 0
    vm_rss: int = 0
    pgft_min: int = 0
    clone_flags: int = 0
    alive: bool = True

    @property
    def in_pidns(self) -> bool:
        return self.container is not None and self.container.own_pidns

    @property
    def container_id(self) -> str:
        return self.container.info.id if self.container else ""

    def lowest_free_fd(self, start: int = 0) -> int:
        fd = start
        while fd in self.fds:
            fd += 1
        return fd

    def process_info(self) -> ProcessInfo:
        flags = self.clone_flags | (PPM_CL_CLONE_THREAD if self.tid != self.pid else 0)
        return ProcessInfo(
            tid=self.tid, pid=self.pid, ptid=self.ptid, comm=self.comm, exe=self.argv0, exepath=self.exepath,
            args=self.args, cwd=self.cwd, env=self.env, uid=self.uid, gid=self.gid, loginuid=self.loginuid,
            sid=self.sid, vpgid=self.vpgid, pgid=self.pgid, vtid=self.vtid, vpid=self.vpid, tty=self.tty,
            flags=flags, fdlimit=self.fdlimit, cap_inheritable=self.cap_inheritable,
            cap_permitted=self.cap_permitted, cap_effective=self.cap_effective, cgroups=self.cgroups,
            root=self.root, exe_ino=self.exe_ino, exe_ino_ctime=self.exe_ctime, exe_ino_mtime=self.exe_mtime,
            clone_ts=self.clone_ts, pidns_init_start_ts=self.pidns_init_start_ts,
            exe_writable=bool(self.exe_flags & PPM_EXE_WRITABLE),
            exe_upper_layer=bool(self.exe_flags & PPM_EXE_UPPER_LAYER),
            exe_lower_layer=bool(self.exe_flags & PPM_EXE_LOWER_LAYER),
            exe_from_memfd=bool(self.exe_flags & PPM_EXE_FROM_MEMFD),
            fds=tuple(entry.info(fd) for fd, entry in sorted(self.fds.items())) if self.tid == self.pid else (),
        )


def cgroups_for(path: str) -> tuple[str, ...]:
    return tuple(f"{subsystem}={path}" for subsystem in CGROUP_SUBSYSTEMS)


def container_cgroup(runtime: str, full_id: str, pod_uid: str) -> str:
    """The cgroup path a runtime puts a container's processes in, in a layout both container
    engines of sysdig 0.29.3 and the container plugin of current Falco recognize."""
    pod_slice = pod_uid.replace("-", "_")
    if runtime == "containerd":
        return (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{pod_slice}.slice/"
                f"cri-containerd-{full_id}.scope")
    if runtime == "cri-o":
        return (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod_slice}.slice/"
                f"crio-{full_id}.scope")
    if runtime == "podman":
        return f"/machine.slice/libpod-{full_id}.scope"
    return f"/docker/{full_id}"


def exe_layer_flags(container: Container | None, upper: bool, lower: bool | None) -> int:
    """Overlay-layer flags of an executable: inside a container it is on the image's lower layer
    unless the scenario says it was dropped into the upper one."""
    if container is None:
        return 0
    if upper:
        return PPM_EXE_UPPER_LAYER
    return PPM_EXE_LOWER_LAYER if lower is not False else 0


SOCKET_FD_TYPES = {PPM_AF_INET: FD_IPV4_SOCK, PPM_AF_INET6: FD_IPV6_SOCK, PPM_AF_UNIX: FD_UNIX_SOCK}


@dataclass(slots=True)
class World:
    """Everything the scenario declared plus what its events changed so far."""

    start_ts: int
    boot_ts: int
    hostname: str
    host_ip: str
    host_ip6: str
    num_cpus: int
    memory_bytes: int
    snaplen: int
    containers: list[Container] = field(default_factory=list)
    users: list[UserInfo] = field(default_factory=list)
    groups: list[GroupInfo] = field(default_factory=list)
    threads: dict[int, Thread] = field(default_factory=dict)
    exited: dict[int, int] = field(default_factory=dict)  # tid -> exit time
    reserved_pids: set[int] = field(default_factory=set)
    shims: dict[str, int] = field(default_factory=dict)  # container id -> pid of its runtime shim
    seen_paths: set[tuple[str, str]] = field(default_factory=set)  # (container id, path) opened so far
    dns: dict[str, tuple[str, ...]] = field(default_factory=dict)  # host name -> addresses
    written_paths: set[tuple[str, str]] = field(default_factory=set)  # opened for writing so far
    # (container id, path) -> the file's inode, for files the scenario declared, created or
    # changed; any other file is a system file: root's, 0755, unchanged since long before boot.
    files: dict[tuple[str, str], FileMeta] = field(default_factory=dict)
    next_port: int = 40000

    def container(self, key: str) -> Container | None:
        for container in self.containers:
            info = container.info
            if key in (info.name, info.id, info.full_id):
                return container
        return None

    def user(self, name: str, container: Container | None) -> UserInfo | None:
        scope = container.info.id if container else ""
        found = [u for u in self.users if u.name == name]
        return next((u for u in found if u.container_id == scope), None) or next(
            (u for u in found if u.container_id == ""), None)

    def user_by_uid(self, uid: int, container: Container | None) -> UserInfo | None:
        scope = container.info.id if container else ""
        found = [u for u in self.users if u.uid == uid]
        return next((u for u in found if u.container_id == scope), None) or next(
            (u for u in found if u.container_id == ""), None)

    def group(self, name: str, container: Container | None) -> GroupInfo | None:
        scope = container.info.id if container else ""
        found = [g for g in self.groups if g.name == name]
        return next((g for g in found if g.container_id == scope), None) or next(
            (g for g in found if g.container_id == ""), None)

    def ephemeral_port(self) -> int:
        port = self.next_port
        self.next_port = 40000 if port >= 60999 else port + 1
        return port

    def local_ip(self, thread: Thread, family: int) -> str:
        container = thread.container
        if family == PPM_AF_INET6:
            return self.host_ip6 if container is None or container.info.host_network else "fd00::2"
        if container is not None and not container.info.host_network and container.info.ip:
            return container.info.ip
        return self.host_ip

    def free_pid(self, start: int = 900) -> int:
        pid = start
        while pid in self.reserved_pids or pid in self.threads:
            pid += 1
        self.reserved_pids.add(pid)
        return pid
