"""Files as the kernel knows them when a scenario executes one: the owner, mode and times of the
inodes the scenario declared (``files``), created, wrote, chmod'ed, chown'ed or renamed, and where
an executable came from (a path, or a memfd reached through ``/proc/self/fd/N``).

Every other file is a system file: root's, mode 0755, unchanged since long before boot.

The drivers set ``EXE_WRITABLE`` on an execve exit when the task, with the credentials the exec
gave it, could write its executable: it owns the file, the mode lets it write (group bits for the
file's group, else the other bits), or it holds ``CAP_DAC_OVERRIDE`` or ``CAP_FOWNER``. So root
running a root-owned system binary reports it, and so does anyone running a memfd (memfds are
created 0777). User namespaces, ACLs, supplementary groups and read-only file systems are not
modelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from falcorules_ci.sources.scenario_decl import HOUR, default_gid, resolve_gid, resolve_uid
from falcorules_ci.sources.scenario_tables import CAPABILITIES, FD_DIRECTORY, FD_FILE, FD_MEMFD
from falcorules_ci.sources.scenario_values import mode_value, time_or_offset
from falcorules_ci.sources.scenario_world import FileMeta, OpenFd, Thread, World, normalize_path
from falcorules_ci.sources.scenario_yaml import Cursor

UMASK = 0o022  # what new files lose from the mode open() asks for
MEMFD_MODE = 0o777  # memfd_create makes world-writable inodes
SYSTEM_FILE_MODE = 0o755
SYSTEM_FILE_AGE = 30 * 24 * HOUR  # how long before boot system files were last changed
_OVERRIDE_CAPS = (1 << CAPABILITIES["CAP_DAC_OVERRIDE"]) | (1 << CAPABILITIES["CAP_FOWNER"])
_NO_CHANGE = (-1, 0xFFFFFFFF)  # chown's "leave this id alone"
# Paths that name an open fd: /proc/self/fd/N, /proc/thread-self/fd/N, /proc/PID/fd/N, /dev/fd/N.
_FD_PATH = re.compile(r"/(?:proc/(self|thread-self|\d+)|dev)/fd/(\d+)")


@dataclass(frozen=True, slots=True)
class ExeSource:
    """What an execve runs: the inode if the scenario knows it, whether it is a memfd, and
    whether the scenario wrote it (inside a container: it is on the overlay's upper layer)."""

    meta: FileMeta | None
    memfd: bool = False
    written: bool = False


def system_file(world: World) -> FileMeta:
    when = world.boot_ts - SYSTEM_FILE_AGE
    return FileMeta(uid=0, gid=0, mode=SYSTEM_FILE_MODE, mtime=when, ctime=when)


def tracked(world: World, thread: Thread, path: str) -> FileMeta:
    """The inode at ``path`` in the thread's file system, tracked from now on."""
    return world.files.setdefault((thread.container_id, path), system_file(world))


def create_file(world: World, thread: Thread, path: str, mode: int, when: int) -> FileMeta:
    """A file the thread just created: its own, with the requested mode less the umask."""
    meta = FileMeta(thread.uid, thread.gid, mode & 0o7777 & ~UMASK, when, when)
    world.files[(thread.container_id, path)] = meta
    return meta


def fd_inode(world: World, thread: Thread, entry: OpenFd, when: int) -> FileMeta | None:
    """The inode behind an fd that is about to change (None: not a file or memfd)."""
    if entry.meta is None:
        if entry.fd_type == FD_MEMFD:
            entry.meta = FileMeta(thread.uid, thread.gid, MEMFD_MODE, when, when)
        elif entry.fd_type in (FD_FILE, FD_DIRECTORY) and entry.name.startswith("/"):
            entry.meta = tracked(world, thread, entry.name)
    return entry.meta


def modified(meta: FileMeta, when: int) -> None:
    """New content: both the modification and the status-change time move."""
    meta.mtime = meta.ctime = when


def chmod(meta: FileMeta, mode: int, when: int) -> None:
    meta.mode = mode & 0o7777
    meta.ctime = when


def chown(meta: FileMeta, uid: int, gid: int, when: int) -> None:
    if uid not in _NO_CHANGE:
        meta.uid = uid
    if gid not in _NO_CHANGE:
        meta.gid = gid
    meta.ctime = when


def rename(world: World, thread: Thread, old: str, new: str, when: int, *, exchange: bool = False) -> None:
    """The inode moves to ``new``, replacing what was there (or, exchanging, the two swap). In a
    container, overlayfs copies a renamed file up, so it is on the upper layer afterwards."""
    scope = thread.container_id
    moved = world.files.pop((scope, old), None) or system_file(world)
    replaced = world.files.pop((scope, new), None) or system_file(world)
    for meta, path in ((moved, new), (replaced, old)) if exchange else ((moved, new),):
        meta.ctime = when
        world.files[(scope, path)] = meta
        world.seen_paths.add((scope, path))
        if thread.container is not None:
            world.written_paths.add((scope, path))


def opened_through(world: World, thread: Thread, filename: str, cwd: str) -> OpenFd | None:
    """The open fd an exec path like ``/proc/self/fd/3`` names, if it is one."""
    match = _FD_PATH.fullmatch(normalize_path(filename, cwd))
    if match is None:
        return None
    who = match.group(1)
    owner = thread if who in (None, "self", "thread-self") else world.threads.get(int(who))
    return owner.fds.get(int(match.group(2))) if owner is not None else None


def exepath_through_fd(entry: OpenFd) -> str:
    """What ``/proc/PID/exe`` shows for an executable run through an open fd: a memfd's name
    under ``/``, marked deleted; a file's path."""
    return f"/{entry.name} (deleted)" if entry.fd_type == FD_MEMFD else entry.name


def exe_source(world: World, thread: Thread, filename: str, exepath: str, cwd: str) -> ExeSource:
    entry = opened_through(world, thread, filename, cwd)
    if entry is not None and entry.fd_type == FD_MEMFD:
        return ExeSource(entry.meta, memfd=True)
    key = (thread.container_id, exepath)
    return ExeSource(world.files.get(key), written=key in world.written_paths)


def exe_writable(world: World, thread: Thread, source: ExeSource) -> bool:
    """Whether the thread, after the exec, could write its executable (owner, mode, or caps)."""
    meta = source.meta
    if meta is None:
        meta = (FileMeta(thread.uid, thread.gid, MEMFD_MODE, 0, 0) if source.memfd else system_file(world))
    if meta.uid == thread.uid:
        return True
    bits = meta.mode >> 3 if meta.gid == thread.gid else meta.mode
    if bits & 0o2:
        return True
    return bool(thread.cap_effective & _OVERRIDE_CAPS)


def read_files(world: World, cur: Cursor | None) -> None:
    """``files``: inodes that are not plain system files, e.g. ``{path: /opt/app/run, owner: app,
    mode: 775, container: web, mtime: -2d}``."""
    for item in cur.elements() if cur else ():
        path = item.child("path").text
        if not path.startswith("/"):
            item.child("path").fail(f"{item.where}.path: give an absolute path")
        container = None
        if item.has("container"):
            container = world.container(item.child("container").text)
            if container is None:
                item.child("container").fail(f"{item.where}.container: no container "
                                             f"{item.child('container').text!r} is declared")
        uid = resolve_uid(world, item.child("owner"), container) if item.has("owner") else 0
        gid = resolve_gid(world, item.child("group"), container) if item.has("group") else (
            default_gid(world, uid, container))
        mode = mode_value(item.child("mode")) if item.has("mode") else SYSTEM_FILE_MODE
        base = system_file(world)
        mtime = time_or_offset(item.child("mtime"), world.start_ts) if item.has("mtime") else base.mtime
        ctime = time_or_offset(item.child("ctime"), world.start_ts) if item.has("ctime") else mtime
        key = (container.info.id if container else "", normalize_path(path, "/"))
        if key in world.files:
            item.fail(f"{item.where}: file {path} is declared twice")
        world.files[key] = FileMeta(uid, gid, mode & 0o7777, mtime, ctime)
        world.seen_paths.add(key)  # it exists: opening it with O_CREAT does not create it
