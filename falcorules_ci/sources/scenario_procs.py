"""Process declarations and process images: who is running when the scenario starts, and what a
thread looks like after ``execve``.

The same process fields (``exe``, ``args``, ``user``, ``container``, ``caps``, ...) describe a
declared process, a ``spawn`` and an ``exec``; :func:`apply_image` gives them one meaning.
"""

from __future__ import annotations

import dataclasses

from falcorules_ci.sources.scenario_decl import (
    DEFAULT_PATH,
    HOUR,
    comm_of,
    container_cgroups,
    default_caps,
    default_gid,
    env_list,
    exe_identity,
    home_of,
    read_caps,
    read_exe_flags,
    read_fd,
    resolve_gid,
    resolve_uid,
    std_fds,
    text_list,
)
from falcorules_ci.sources.scenario_files import exe_source, exe_writable, exepath_through_fd, opened_through
from falcorules_ci.sources.scenario_tables import (
    ALL_CAPS,
    PPM_CL_CLONE_FILES,
    PPM_CL_CLONE_FS,
    PPM_CL_CLONE_SIGHAND,
    PPM_CL_CLONE_THREAD,
    PPM_CL_CLONE_VM,
    PPM_EXE_FROM_MEMFD,
    PPM_EXE_WRITABLE,
)
from falcorules_ci.sources.scenario_values import int_value, time_or_offset, tty_value
from falcorules_ci.sources.scenario_world import Container, Thread, World, cgroups_for, normalize_path
from falcorules_ci.sources.scenario_yaml import Cursor

THREAD_CLONE_FLAGS = PPM_CL_CLONE_THREAD | PPM_CL_CLONE_VM | PPM_CL_CLONE_FS | PPM_CL_CLONE_FILES | (
    PPM_CL_CLONE_SIGHAND)
CONTAINER_FDLIMIT = 1048576
SHELLS = frozenset({"ash", "bash", "csh", "dash", "fish", "ksh", "mksh", "sh", "tcsh", "zsh"})


@dataclasses.dataclass(frozen=True, slots=True)
class Image:
    """What ``execve`` was asked to run, resolved against the calling thread."""

    filename: str  # the path given to execve
    argv0: str
    exepath: str
    comm: str
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str  # what a relative filename is relative to


def read_image(world: World, cur: Cursor, thread: Thread, *, cwd: str | None = None) -> Image:
    exe = cur.child("exe").text
    if not exe:
        cur.child("exe").fail(f"{cur.where}.exe: must not be empty")
    base_cwd = cwd if cwd is not None else thread.cwd
    argv0 = cur.child("argv0").text if cur.has("argv0") else exe
    if cur.has("exepath"):
        exepath = cur.child("exepath").text
    else:
        through = opened_through(world, thread, exe, base_cwd)
        exepath = exepath_through_fd(through) if through is not None else normalize_path(exe, base_cwd)
    comm = cur.child("comm").text if cur.has("comm") else comm_of(exe)
    args = text_list(cur.get("args"))
    env = env_list(cur.child("env")) if cur.has("env") else thread.env
    return Image(exe, argv0, exepath, comm, args, env, base_cwd)


def apply_image(world: World, thread: Thread, cur: Cursor, image: Image, when: int) -> None:
    """The thread after a successful execve of ``image`` with the fields of ``cur``."""
    container = thread.container
    thread.argv0, thread.exepath, thread.comm = image.argv0, image.exepath, image.comm
    thread.args, thread.env = image.args, image.env
    uid_changed = False
    if cur.has("user"):
        thread.uid = resolve_uid(world, cur.child("user"), container)
        thread.gid = default_gid(world, thread.uid, container)
        uid_changed = True
    if cur.has("group"):
        thread.gid = resolve_gid(world, cur.child("group"), container)
    if cur.has("loginuid"):
        thread.loginuid = resolve_uid(world, cur.child("loginuid"), container)
    if cur.has("tty"):
        thread.tty = tty_value(cur.child("tty"))
    if cur.has("fdlimit"):
        thread.fdlimit = int_value(cur.child("fdlimit"), minimum=0)
    # execve recomputes capabilities from the (possibly new) effective uid.
    caps = default_caps(thread.uid, container) if uid_changed or thread.uid == 0 else (
        thread.cap_inheritable, thread.cap_permitted, thread.cap_effective)
    if cur.has("caps"):
        caps = read_caps(cur.child("caps"), caps)
    thread.cap_inheritable, thread.cap_permitted, thread.cap_effective = caps
    source = exe_source(world, thread, image.filename, image.exepath, image.cwd)
    if cur.has("exe_flags"):
        flags, upper, lower = read_exe_flags(cur.child("exe_flags"))
    else:
        # What the drivers see with the task's new credentials: whether it may write the file,
        # whether it is a memfd (not on any overlay), and whether the scenario dropped it into the
        # container (the overlay's upper layer).
        flags = (PPM_EXE_WRITABLE if exe_writable(world, thread, source) else 0) | (
            PPM_EXE_FROM_MEMFD if source.memfd else 0)
        upper = source.written and thread.container is not None
        lower = False if source.memfd else None
    exe_identity(world, thread, upper, lower, flags, when, source.meta)
    if cur.has("exe_ino"):
        thread.exe_ino = int_value(cur.child("exe_ino"), minimum=0)
    for key in ("exe_ctime", "exe_mtime"):
        if cur.has(key):
            setattr(thread, key, time_or_offset(cur.child(key), world.start_ts))
    _apply_session(cur, thread, world)
    # Close-on-exec descriptors do not survive the new image.
    for fd in [fd for fd, entry in thread.fds.items() if entry.cloexec]:
        del thread.fds[fd]


def _apply_session(cur: Cursor, thread: Thread, world: World) -> None:
    if cur.has("sid"):
        thread.sid = _self_or_int(cur.child("sid"), thread.pid)
    if cur.has("pgid"):
        thread.pgid = _self_or_int(cur.child("pgid"), thread.pid)
        leader = world.threads.get(thread.pgid)
        thread.vpgid = thread.vpid if thread.pgid == thread.pid else (
            leader.vpid if leader is not None and leader.container is thread.container else thread.pgid)
    if cur.has("vpgid"):
        thread.vpgid = _self_or_int(cur.child("vpgid"), thread.vpid)


def _self_or_int(cur: Cursor, own: int) -> int:
    return own if cur.text == "self" else int_value(cur, minimum=0)


def declare_processes(world: World, cur: Cursor | None) -> None:
    """Create every declared process (parents first) plus the implicit init and runtime shims."""
    declared: dict[int, Cursor] = {}
    for item in cur.elements() if cur else ():
        pid = int_value(item.child("pid"), minimum=1)
        if pid in declared:
            item.child("pid").fail(f"{item.where}.pid: process {pid} is declared twice")
        declared[pid] = item
        for tid_cur in item.child("threads").elements() if item.has("threads") else ():
            tid = int_value(tid_cur, minimum=1)
            if tid in declared or tid in world.reserved_pids:
                tid_cur.fail(f"{tid_cur.where}: tid {tid} is already used")
            world.reserved_pids.add(tid)
    world.reserved_pids.update(declared)
    for container in world.containers:
        ids = [int_value(p.child("vpid"), minimum=1) for p in declared.values()
               if p.has("vpid") and _container_key(p) in (container.info.name, container.info.id)]
        container.next_vpid = 1 if 1 not in ids else max(ids) + 1
    visiting: set[int] = set()
    if 1 not in declared:
        _implicit_init(world)
    for pid in declared:
        _declare(world, pid, declared, visiting)


def _container_key(item: Cursor) -> str:
    key = item.get("container")
    return key.text if key is not None else ""


def _declare(world: World, pid: int, declared: dict[int, Cursor], visiting: set[int]) -> Thread:
    if pid in world.threads:
        return world.threads[pid]
    item = declared[pid]
    if pid in visiting:
        item.fail(f"{item.where}: process {pid} is its own ancestor")
    visiting.add(pid)
    container: Container | None = None
    if item.has("container"):
        container = world.container(item.child("container").text)
        if container is None:
            item.child("container").fail(f"{item.where}.container: no container {item.child('container').text!r}"
                                         " is declared")
    parent_cur = item.get("ppid") or item.get("parent")
    parent: Thread | None
    if parent_cur is not None:
        ppid = int_value(parent_cur, minimum=0)
        if ppid == pid:
            parent_cur.fail(f"{parent_cur.where}: a process cannot be its own parent")
        if ppid in declared:
            parent = _declare(world, ppid, declared, visiting)
        elif ppid == 0:
            parent = None
        elif ppid in world.threads:
            parent = world.threads[ppid]
        else:
            parent_cur.fail(f"{parent_cur.where}: undefined parent process {ppid}; declare it under processes")
    elif container is not None:
        parent = _shim(world, container)
    else:
        parent = world.threads[1] if pid != 1 else None
    if container is None and not item.has("container") and parent is not None and parent.container is not None:
        container = parent.container
    thread = _new_process(world, item, pid, parent, container)
    world.threads[pid] = thread
    for tid_cur in item.child("threads").elements() if item.has("threads") else ():
        tid = int(tid_cur.value)
        vtid = container.take_vpid() if container is not None and container.own_pidns else tid
        world.threads[tid] = dataclasses.replace(thread, tid=tid, vtid=vtid, clone_flags=THREAD_CLONE_FLAGS)
    visiting.discard(pid)
    return thread


def _new_process(world: World, item: Cursor, pid: int, parent: Thread | None, container: Container | None) -> Thread:
    started = time_or_offset(item.child("started"), world.start_ts) if item.has("started") else (
        world.boot_ts if pid == 1 else world.start_ts - HOUR)
    inherit = parent is not None and parent.pid != 1 and parent.container is container
    uid = resolve_uid(world, item.child("user"), container) if item.has("user") else (
        parent.uid if inherit and parent else 0)
    cwd = item.child("cwd").text if item.has("cwd") else "/"
    thread = Thread(tid=pid, pid=pid, ptid=parent.pid if parent else 0, comm="", argv0="", exepath="",
                    cwd=cwd, uid=uid, gid=default_gid(world, uid, container), container=container,
                    loginuid=parent.loginuid if inherit and parent else -1,
                    tty=parent.tty if inherit and parent else 0, clone_ts=started,
                    fdlimit=CONTAINER_FDLIMIT if container else 1024,
                    env=parent.env if inherit and parent else (DEFAULT_PATH, f"HOME={home_of(world, uid, container)}"))
    if container is not None and container.own_pidns:
        thread.vpid = thread.vtid = container.take_vpid(
            int_value(item.child("vpid"), minimum=1) if item.has("vpid") else None)
        if thread.vpid == 1:
            container.init_pid = pid
    else:
        thread.vpid = thread.vtid = int_value(item.child("vpid"), minimum=1) if item.has("vpid") else pid
    # Daemons (children of init or of a runtime shim) and login shells on a new terminal lead
    # their own session; other processes share their parent's.
    if item.has("tty"):
        thread.tty = tty_value(item.child("tty"))
    leader = (parent is None or parent.pid == 1 or parent.container is not container
              or (thread.tty != 0 and thread.tty != parent.tty))
    thread.sid = pid if leader or parent is None else parent.sid
    thread.pgid = pid if leader or parent is None or job_leader(parent) else parent.pgid
    thread.vpgid = thread.vpid if thread.pgid == pid else parent.vpgid if parent else thread.vpid
    thread.cgroups = _cgroups(item) or container_cgroups(container)
    thread.root = item.child("root").text if item.has("root") else "/"
    thread.pidns_init_start_ts = pidns_start(world, container)
    thread.cap_inheritable, thread.cap_permitted, thread.cap_effective = default_caps(uid, container)
    image = read_image(world, item, thread)
    apply_image(world, thread, item, image, started)
    thread.fds = std_fds(thread)
    for fd_cur in item.child("fds").elements() if item.has("fds") else ():
        fd, entry = read_fd(world, thread, fd_cur)
        thread.fds[fd] = entry
    return thread


def job_leader(parent: Thread) -> bool:
    """Whether a child of ``parent`` gets its own process group: interactive shells (a shell on a
    terminal) run each command as a job of its own."""
    return parent.tty != 0 and parent.comm in SHELLS


def _cgroups(item: Cursor) -> tuple[str, ...]:
    cur = item.get("cgroup")
    if cur is None:
        return ()
    if isinstance(cur.value, list):
        return tuple(e.text for e in cur.elements())
    return cgroups_for(cur.text)


def pidns_start(world: World, container: Container | None) -> int:
    """When the init of the thread's pid namespace started, in ns since boot (what clone reports)."""
    if container is None or not container.own_pidns:
        return 0
    if not container.created_ts:
        container.created_ts = world.start_ts - HOUR
    return container.created_ts - world.boot_ts


def _implicit_init(world: World) -> None:
    init = Thread(tid=1, pid=1, ptid=0, comm="systemd", argv0="/sbin/init", exepath="/usr/lib/systemd/systemd",
                  env=("HOME=/", "TERM=linux"), sid=1, pgid=1, vpgid=1, vtid=1, vpid=1,
                  cap_permitted=ALL_CAPS, cap_effective=ALL_CAPS, clone_ts=world.boot_ts,
                  cgroups=cgroups_for("/init.scope"), fdlimit=1073741816)
    # Root running a root-owned binary: the drivers report it writable.
    exe_identity(world, init, False, None, PPM_EXE_WRITABLE, world.boot_ts)
    init.fds = std_fds(init)
    world.threads[1] = init
    world.reserved_pids.add(1)


def _shim(world: World, container: Container) -> Thread:
    """The runtime process a container's first process is a child of."""
    if container.info.id in world.shims:
        return world.threads[world.shims[container.info.id]]
    pid = world.free_pid()
    runtime = container.info.runtime
    if runtime in ("cri-o", "podman"):
        argv0, comm = "/usr/bin/conmon", "conmon"
        args: tuple[str, ...] = ("-c", container.info.full_id, "-r", "/usr/bin/runc")
    else:
        argv0, comm = "/usr/bin/containerd-shim-runc-v2", "containerd-shim"
        namespace = "k8s.io" if runtime in ("containerd",) else "moby"
        args = ("-namespace", namespace, "-id", container.info.full_id, "-address",
                "/run/containerd/containerd.sock")
    shim = Thread(tid=pid, pid=pid, ptid=1, comm=comm, argv0=argv0, exepath=argv0,
                  args=args, env=(DEFAULT_PATH,), sid=pid, pgid=pid,
                  vpgid=pid, vtid=pid, vpid=pid, cap_permitted=ALL_CAPS, cap_effective=ALL_CAPS,
                  clone_ts=world.start_ts - HOUR, cgroups=cgroups_for("/system.slice/containerd.service"))
    exe_identity(world, shim, False, None, PPM_EXE_WRITABLE, shim.clone_ts)
    shim.fds = std_fds(shim)
    world.threads[pid] = shim
    world.shims[container.info.id] = pid
    return shim

