"""A scenario's declarations: host, containers, users, groups and the processes already running.

Builds the :class:`World` the events start from. Defaults aim at what a real host shows: pid 1
is ``systemd``; a container's first process hangs off its runtime's shim (``containerd-shim`` or
``conmon``); root has every capability on the host and the runtime's default set in a container;
executables inside a container come from the image's lower overlay layer.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
import shlex
from dataclasses import dataclass

from falcorules_ci.sources.records import ContainerInfo, GroupInfo, MountInfo, UserInfo
from falcorules_ci.sources.scenario_tables import (
    ALL_CAPS,
    CAPABILITIES,
    DEFAULT_CONTAINER_CAPS,
    FD_DIRECTORY,
    FD_EVENT,
    FD_FIFO,
    FD_FILE,
    FD_MEMFD,
    FLAG_TABLES,
    L4_TCP,
    L4_UDP,
    PPM_AF_UNIX,
    PPM_EXE_FROM_MEMFD,
    PPM_O_DIRECTORY,
    PPM_O_RDONLY,
    PPM_O_RDWR,
    PPM_O_WRONLY,
)
from falcorules_ci.sources.scenario_values import (
    caps_value,
    endpoint,
    flags_value,
    int_value,
    time_or_offset,
)
from falcorules_ci.sources.scenario_world import (
    HOST_DEV,
    OVERLAY_DEV,
    SOCKET_FD_TYPES,
    Container,
    FileMeta,
    OpenFd,
    Thread,
    World,
    cgroups_for,
    container_cgroup,
    exe_layer_flags,
    stable_hex,
    stable_number,
)
from falcorules_ci.sources.scenario_yaml import Cursor

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOUR = 3600 * 1_000_000_000
TASK_COMM_LEN = 15  # the kernel keeps 15 characters of a task's name
_HEX = re.compile(r"[0-9a-f]+")
_CRI_RUNTIMES = frozenset({"containerd", "cri-o"})
_SUBNETS = {"docker": "172.17.0.", "podman": "10.88.0.", "containerd": "10.244.0.", "cri-o": "10.244.1."}


def comm_of(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))[:TASK_COMM_LEN] or path[:TASK_COMM_LEN]


def text_list(cur: Cursor | None) -> tuple[str, ...]:
    """A list of scalars as their source text, or a shell-quoted string split like a shell does."""
    if cur is None:
        return ()
    if isinstance(cur.value, str):
        try:
            return tuple(shlex.split(cur.value))
        except ValueError as exc:
            cur.fail(f"{cur.where}: cannot split {cur.value!r}: {exc}")
    return tuple(item.text for item in cur.elements())


def env_list(cur: Cursor) -> tuple[str, ...]:
    if isinstance(cur.value, dict):
        return tuple(f"{key}={'' if value.value is None else value.text}" for key, value in cur.items())
    entries = text_list(cur)
    for entry, item in zip(entries, cur.elements(), strict=False):
        if "=" not in entry:
            item.fail(f"{item.where}: environment entries are KEY=VALUE, got {entry!r}")
    return entries


def image_parts(image: str) -> tuple[str, str, str]:
    """(repository, tag, digest) of an image reference, as given (no registry normalization)."""
    digest = ""
    if "@" in image:
        image, digest = image.split("@", 1)
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1:], digest
    return image, ("" if digest else "latest"), digest


@dataclass(frozen=True, slots=True)
class HostSpec:
    """The machine itself: name, addresses, size and boot time."""

    hostname: str = "scenario-host"
    ip: str = "192.168.10.20"
    ip6: str = "fd00:10::20"
    cpus: int = 4
    memory: int = 8 << 30
    boot: int = 0


def read_host(cur: Cursor | None, start_ts: int) -> HostSpec:
    """``host``; the machine booted a day before the scenario unless it says otherwise."""
    spec = HostSpec(boot=start_ts - 24 * HOUR)
    for key, item in cur.items() if cur else ():
        if key == "boot":
            spec = dataclasses.replace(spec, boot=time_or_offset(item, start_ts))
        elif key == "cpus":
            spec = dataclasses.replace(spec, cpus=int_value(item, minimum=1))
        elif key == "memory":
            spec = dataclasses.replace(spec, memory=int_value(item, minimum=1))
        elif key == "ip":
            spec = dataclasses.replace(spec, ip=endpoint(item, default_port=0)[1])
        elif key == "ip6":
            spec = dataclasses.replace(spec, ip6=endpoint(item, default_port=0)[1])
        else:
            spec = dataclasses.replace(spec, hostname=item.text)
    return spec


def read_containers(world: World, cur: Cursor | None) -> None:
    for index, item in enumerate(cur.elements() if cur else ()):
        world.containers.append(_container(world, item, index))
        _check_unique(world, item)


def _check_unique(world: World, item: Cursor) -> None:
    last = world.containers[-1].info
    for other in world.containers[:-1]:
        if (last.id == other.info.id) or (last.name and last.name == other.info.name):
            item.fail(f"{item.where}: container {last.name or last.id} is declared twice")


def _container(world: World, cur: Cursor, index: int) -> Container:
    name = cur.get("name")
    image = cur.get("image")
    id_cur = cur.get("id")
    if id_cur is not None:
        given = id_cur.text.strip().lower()
        if not _HEX.fullmatch(given) or len(given) not in (12, 64):
            id_cur.fail(f"{id_cur.where}: a container id is 12 or 64 hex digits, got {id_cur.text!r}")
        full_id = given if len(given) == 64 else given + stable_hex("container-id", given, length=52)
    else:
        full_id = stable_hex("container", name.text if name else "", image.text if image else "", index)
    image_text = image.text if image else ""
    repository, tag, digest = image_parts(image_text)
    pod = cur.get("pod")
    runtime = cur.get("runtime")
    runtime_name = runtime.text if runtime else ("containerd" if pod else "docker")
    labels = {key: value.text for key, value in cur.child("labels").items()} if cur.has("labels") else {}
    pod_uid = ""
    if pod is not None:
        uid_cur = pod.get("uid")
        pod_uid = uid_cur.text if uid_cur is not None else _uuid(full_id)
        for key, label in (("name", "io.kubernetes.pod.name"), ("namespace", "io.kubernetes.pod.namespace")):
            value = pod.get(key)
            if value is not None:
                labels.setdefault(label, value.text)
        labels.setdefault("io.kubernetes.pod.uid", pod_uid)
        if name is not None:
            labels.setdefault("io.kubernetes.container.name", name.text)
    elif "io.kubernetes.pod.uid" in labels:
        pod_uid = labels["io.kubernetes.pod.uid"]
    elif runtime_name in ("containerd", "cri-o"):
        pod_uid = _uuid(full_id)
    host_network = bool(cur.value.get("host_network", False))
    ip_cur = cur.get("ip")
    if ip_cur is not None:
        ip = endpoint(ip_cur, default_port=0)[1]
    elif host_network:
        ip = world.host_ip
    else:
        ip = _SUBNETS.get(runtime_name, "172.17.0.") + str(2 + index)
    privileged = bool(cur.value.get("privileged", False))
    caps = ALL_CAPS if privileged else sum(1 << CAPABILITIES[c] for c in DEFAULT_CONTAINER_CAPS)
    if cur.has("cap_add"):
        caps |= caps_value(cur.child("cap_add"))
    if cur.has("cap_drop"):
        caps &= ~caps_value(cur.child("cap_drop"))
    created = cur.get("created")
    info = ContainerInfo(
        id=full_id[:12], full_id=full_id, name=name.text if name else "", image=image_text,
        image_id=cur.child("image_id").text if cur.has("image_id") else stable_hex("image", image_text),
        image_repository=repository, image_tag=tag, image_digest=digest, runtime=runtime_name,
        privileged=privileged, mounts=tuple(_mount(m, runtime_name) for m in cur.child("mounts").elements())
        if cur.has("mounts") else (), labels=labels, user=cur.child("user").text if cur.has("user") else "",
        ip=ip, host_pid=bool(cur.value.get("host_pid", False)), host_network=host_network,
        host_ipc=bool(cur.value.get("host_ipc", False)),
        created_ts=time_or_offset(created, world.start_ts) if created else 0,
    )
    cgroup = cur.child("cgroup").text if cur.has("cgroup") else container_cgroup(runtime_name, full_id, pod_uid)
    return Container(info=info, cgroup=cgroup, bounding_caps=caps, created_ts=info.created_ts)


def _uuid(seed: str) -> str:
    h = stable_hex("pod", seed, length=32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _mount(cur: Cursor, runtime: str) -> MountInfo:
    """A mount as the container plugin reports it. The short form is a bind mount: Docker and
    Podman report its ``-v`` mode and ``rprivate`` propagation; through CRI (containerd, CRI-O)
    there is no mode and the default propagation is ``private``."""
    if isinstance(cur.value, str):
        parts = cur.value.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            cur.fail(f"{cur.where}: a mount is source:dest[:ro|rw] or {{source, dest}}")
        mode = parts[2] if len(parts) == 3 else ""
        if runtime in _CRI_RUNTIMES:
            return MountInfo(source=parts[0], dest=parts[1], mode="", rw=mode != "ro", propagation="private")
        return MountInfo(source=parts[0], dest=parts[1], mode=mode, rw=mode != "ro", propagation="rprivate")
    value = cur.value
    return MountInfo(source=str(value["source"]), dest=str(value["dest"]), mode=str(value.get("mode", "")),
                     rw=bool(value.get("rw", True)), propagation=str(value.get("propagation", "")))


def read_users(world: World, users: Cursor | None, groups: Cursor | None) -> None:
    world.users.append(UserInfo(uid=0, gid=0, name="root", home="/root", shell="/bin/bash"))
    world.groups.append(GroupInfo(gid=0, name="root"))
    for item in groups.elements() if groups else ():
        scope = _scope(world, item)
        gid = int_value(item.child("gid"), minimum=0)
        world.groups.append(GroupInfo(gid=gid, name=item.child("name").text, container_id=scope))
    for item in users.elements() if users else ():
        scope = _scope(world, item)
        uid = int_value(item.child("uid"), minimum=0)
        name = item.child("name").text
        gid = int_value(item.child("gid"), minimum=0) if item.has("gid") else uid
        home = item.child("home").text if item.has("home") else ("/root" if uid == 0 else f"/home/{name}")
        shell = item.child("shell").text if item.has("shell") else "/bin/bash"
        if uid == 0 and name == "root" and not scope:
            world.users[0] = UserInfo(uid=0, gid=gid, name="root", home=home, shell=shell)
            continue
        if any(u.name == name and u.container_id == scope for u in world.users):
            item.fail(f"{item.where}: user {name!r} is declared twice")
        world.users.append(UserInfo(uid=uid, gid=gid, name=name, home=home, shell=shell, container_id=scope))
        if not any(g.gid == gid and g.container_id == scope for g in world.groups):
            world.groups.append(GroupInfo(gid=gid, name=name, container_id=scope))


def _scope(world: World, item: Cursor) -> str:
    key = item.get("container")
    if key is None:
        return ""
    container = world.container(key.text)
    if container is None:
        key.fail(f"{key.where}: no container {key.text!r} is declared")
    return container.info.id


def resolve_uid(world: World, cur: Cursor, container: Container | None) -> int:
    """A user given by name (looked up in the container first, then the host) or by number."""
    value = cur.value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < -1:
            cur.fail(f"{cur.where}: a uid cannot be negative")
        return value
    user = world.user(cur.text, container)
    if user is None:
        if re.fullmatch(r"\d+", cur.text):
            return int(cur.text)
        cur.fail(f"{cur.where}: unknown user {cur.text!r}; declare it under users")
    return user.uid


def resolve_gid(world: World, cur: Cursor, container: Container | None) -> int:
    value = cur.value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    group = world.group(cur.text, container)
    if group is None:
        if re.fullmatch(r"\d+", cur.text):
            return int(cur.text)
        cur.fail(f"{cur.where}: unknown group {cur.text!r}; declare it under groups")
    return group.gid


def default_gid(world: World, uid: int, container: Container | None) -> int:
    user = world.user_by_uid(uid, container)
    return user.gid if user else uid


def home_of(world: World, uid: int, container: Container | None) -> str:
    user = world.user_by_uid(uid, container)
    return user.home if user else "/"


def default_caps(uid: int, container: Container | None) -> tuple[int, int, int]:
    """(inheritable, permitted, effective) of a process after exec: root gets the bounding set."""
    bounding = container.bounding_caps if container else ALL_CAPS
    return (0, bounding, bounding) if uid == 0 else (0, 0, 0)


def read_caps(cur: Cursor, current: tuple[int, int, int]) -> tuple[int, int, int]:
    """``caps: [CAP_SYS_ADMIN]`` sets permitted and effective; a mapping sets each set by name."""
    if isinstance(cur.value, dict):
        inheritable, permitted, effective = current
        for key, item in cur.items():
            if key == "inheritable":
                inheritable = caps_value(item)
            elif key == "permitted":
                permitted = caps_value(item)
            elif key == "effective":
                effective = caps_value(item)
        return inheritable, permitted, effective
    mask = caps_value(cur)
    return current[0], mask, mask


def read_exe_flags(cur: Cursor) -> tuple[int, bool, bool | None]:
    """(PPM_EXE_* flags except layers, upper layer?, lower layer?) from ``[upper_layer, memfd]``."""
    names = [item.text for item in cur.elements()] if isinstance(cur.value, list) else [cur.text]
    flags, upper, lower = 0, False, None
    for name in names:
        key = name.strip()
        if key in ("upper_layer", "EXE_UPPER_LAYER"):
            upper = True
        elif key in ("lower_layer", "EXE_LOWER_LAYER"):
            lower = True
        elif key in ("writable", "EXE_WRITABLE"):
            flags |= 1
        elif key in ("memfd", "from_memfd", "EXE_FROM_MEMFD"):
            flags |= PPM_EXE_FROM_MEMFD
            # A memfd lives on shmem, not on the container's overlay.
            lower = False if lower is None else lower
        elif key in ("none", ""):
            lower = False
        else:
            cur.fail(f"{cur.where}: unknown exe flag {name!r} (upper_layer, lower_layer, writable, memfd)")
    return flags, upper, lower


def read_fd(world: World, thread: Thread, cur: Cursor) -> tuple[int, OpenFd]:
    fd = int_value(cur.child("fd"), minimum=0)
    kinds = [k for k in ("file", "dir", "tcp", "udp", "listen", "unix", "pipe", "memfd", "event") if cur.has(k)]
    if len(kinds) != 1:
        cur.fail(f"{cur.where}: an fd needs exactly one of file, dir, tcp, udp, listen, unix, pipe, memfd, event")
    kind = kinds[0]
    body = cur.child(kind)
    dev = OVERLAY_DEV if thread.container else HOST_DEV
    flags_cur = cur.get("flags")
    flags = flags_value(flags_cur, FLAG_TABLES["file_flags"]) if flags_cur else 0
    if kind in ("file", "dir"):
        path = posixpath.normpath(body.text) if body.text.startswith("/") else body.text
        default = PPM_O_RDONLY | (PPM_O_DIRECTORY if kind == "dir" else 0)
        return fd, OpenFd(FD_DIRECTORY if kind == "dir" else FD_FILE, path, flags or default,
                          ino=stable_number("ino", thread.container_id, path, floor=2), dev=dev)
    if kind in ("tcp", "udp", "listen"):
        l4 = L4_UDP if kind == "udp" else L4_TCP
        if kind == "listen":
            family, addr, port, _ = endpoint(body)
            return fd, OpenFd(SOCKET_FD_TYPES[family], family=family, l4proto=l4, local=(addr, port),
                              listening=True, flags=PPM_O_RDWR)
        text = body.text
        if "->" not in text:
            body.fail(f"{body.where}: a connected socket is local->remote, e.g. 10.0.0.2:40000->1.2.3.4:443")
        local_text, remote_text = (part.strip() for part in text.split("->", 1))
        lfam, laddr, lport, _ = endpoint(Cursor(local_text, body.path, body.doc))
        rfam, raddr, rport, _ = endpoint(Cursor(remote_text, body.path, body.doc))
        if lfam != rfam:
            body.fail(f"{body.where}: both ends need the same address family")
        return fd, OpenFd(SOCKET_FD_TYPES[lfam], family=lfam, l4proto=l4, local=(laddr, lport),
                          remote=(raddr, rport), flags=PPM_O_RDWR)
    if kind == "unix":
        return fd, OpenFd(SOCKET_FD_TYPES[PPM_AF_UNIX], body.text, PPM_O_RDWR, family=PPM_AF_UNIX,
                          unix_path=body.text)
    if kind == "pipe":
        ino = stable_number("pipe", thread.pid, fd, bits=24, floor=1000)
        return fd, OpenFd(FD_FIFO, f"pipe:[{ino}]", flags or PPM_O_RDONLY, ino=ino)
    if kind == "memfd":
        return fd, OpenFd(FD_MEMFD, f"memfd:{body.text}", flags or PPM_O_RDWR)
    return fd, OpenFd(FD_EVENT, "anon_inode:[eventfd]", flags or PPM_O_RDWR)


def std_fds(thread: Thread) -> dict[int, OpenFd]:
    """stdin, stdout and stderr: the controlling terminal if there is one, else /dev/null."""
    if thread.tty:
        major, minor = (thread.tty >> 8) & 0xFFF, (thread.tty & 0xFF) | ((thread.tty >> 12) & 0xFFF00)
        name = f"/dev/pts/{minor}" if major == 136 else f"/dev/tty{minor}"
    else:
        name = "/dev/null"
    ino = stable_number("ino", thread.container_id, name, floor=2)
    return {0: OpenFd(FD_FILE, name, PPM_O_RDONLY if not thread.tty else PPM_O_RDWR, ino=ino),
            1: OpenFd(FD_FILE, name, PPM_O_WRONLY if not thread.tty else PPM_O_RDWR, ino=ino),
            2: OpenFd(FD_FILE, name, PPM_O_WRONLY if not thread.tty else PPM_O_RDWR, ino=ino)}


def exe_identity(world: World, thread: Thread, upper: bool, lower: bool | None, extra_flags: int,
                 when: int, meta: FileMeta | None = None) -> None:
    """Set the executable's overlay flags, inode and times for the thread's current exepath.

    The times are the inode's when the scenario knows it (``meta``: it declared, wrote or chmod'ed
    the file); a binary only said to be dropped (upper layer) or a memfd it never showed being
    written was changed a minute before the exec; anything else is an old system file.
    """
    thread.exe_flags = extra_flags | exe_layer_flags(thread.container, upper, lower)
    thread.exe_ino = stable_number("ino", thread.container_id, thread.exepath, floor=2)
    if meta is not None:
        thread.exe_ctime, thread.exe_mtime = meta.ctime, meta.mtime
    elif upper or extra_flags & PPM_EXE_FROM_MEMFD:
        thread.exe_ctime = thread.exe_mtime = max(world.boot_ts, when - 60 * 1_000_000_000)
    else:
        thread.exe_ctime = thread.exe_mtime = world.boot_ts - 30 * 24 * HOUR
    thread.vm_size = stable_number("vm", thread.exepath, bits=16, floor=4000)
    thread.vm_rss = thread.vm_size // 4
    thread.pgft_min = stable_number("pf", thread.exepath, bits=10, floor=50)


def container_cgroups(container: Container | None) -> tuple[str, ...]:
    return cgroups_for(container.cgroup) if container else cgroups_for("/")
