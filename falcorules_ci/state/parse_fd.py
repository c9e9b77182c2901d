"""Event parsers that change fd tables, sockets aside (libsinsp's open, close, dup, fcntl, pipe
and related ``parse_*_exit`` functions; sockets are in :mod:`parse_net`).

Paths are resolved as libsinsp resolves them: against the cwd for ``open``/``creat``, against the
dirfd (or the cwd for ``AT_FDCWD``) for ``openat``/``openat2``, and the enter event's path, flags
and dirfd are preferred when libsinsp kept it (a path swapped between enter and exit is ignored).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from falcorules_ci.sources.event import Event
from falcorules_ci.state import constants as c
from falcorules_ci.state.fds import OVERLAY_LOWER, OVERLAY_UPPER, FdInfo
from falcorules_ci.state.paths import concatenate_paths
from falcorules_ci.state.values import as_int, as_text

if TYPE_CHECKING:
    from falcorules_ci.state.syscall_state import SyscallState

Params = dict[str, Any]
Handler = Callable[["SyscallState", Event, Params], None]


def _res(p: Params, key: str = "res") -> int:
    return as_int(p.get(key), 0)


# --- files -----------------------------------------------------------------------------------


def parse_open_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if t is None:
        return
    name = ev.name
    enter = state.retrieve_enter(ev) if name != "open_by_handle_at" else None
    fd = _res(p, "fd")
    dev = ino = 0
    if name == "open" or name == "creat":
        path = as_text(p.get("name"))
        if name == "open":
            flags = as_int(p.get("flags"))
        else:
            flags = 0
            creat_flags = as_int(p.get("creat_flags"))
            if creat_flags & c.FD_UPPER_LAYER_CREAT:
                flags |= c.FD_UPPER_LAYER
            elif creat_flags & c.FD_LOWER_LAYER_CREAT:
                flags |= c.FD_LOWER_LAYER
        if "dev" in p:
            dev = as_int(p.get("dev"))
            ino = as_int(p.get("ino"))
        if enter is not None:
            enter_name = enter.params.get("name")
            if isinstance(enter_name, str) and enter_name != "<NA>":
                path = enter_name
                if name == "open":
                    flags = as_int(enter.params.get("flags")) | (flags & ~(c.O_F_CREATED - 1))
        sdir = t.get_cwd()
    elif name == "open_by_handle_at":
        flags = as_int(p.get("flags"))
        path = as_text(p.get("path"))
        dev = as_int(p.get("dev"))
        ino = as_int(p.get("ino"))
        sdir = ""
    else:  # openat, openat2
        path = as_text(p.get("name"), "<NA>") if "name" in p else "<NA>"
        flags = as_int(p.get("flags"))
        if "ino" in p:
            dev = as_int(p.get("dev"))
            ino = as_int(p.get("ino"))
        dirfd = p.get("dirfd")
        if enter is not None:
            enter_name = enter.params.get("name")
            if isinstance(enter_name, str) and enter_name != "<NA>":
                path = enter_name
                flags = as_int(enter.params.get("flags")) | (flags & ~(c.O_F_CREATED - 1))
                dirfd = enter.params.get("dirfd")
        sdir = state.parse_dirfd(path, dirfd) if isinstance(dirfd, int) else ""
    if fd < 0:
        return
    info = FdInfo(c.FD_DIRECTORY if flags & c.O_DIRECTORY else c.FD_FILE_V2)
    info.openflags = flags
    info.dev = dev
    info.ino = ino
    info.name_raw = path
    info.name = concatenate_paths(sdir, path)
    if flags & c.FD_UPPER_LAYER:
        info.flags |= OVERLAY_UPPER
    if flags & c.FD_LOWER_LAYER:
        info.flags |= OVERLAY_LOWER
    state.fd = t.add_fd(fd, info)


def parse_memfd_create_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if t is None:
        return
    fd = _res(p, "fd")
    # libsinsp files the entry even when the call failed (under the negative number, which no
    # lookup can reach), and the event's fd fields then describe an uninitialised entry.
    info = FdInfo(-1)
    if fd >= 0:
        info.fd_type = c.FD_MEMFD
        info.name = as_text(p.get("name"))
        info.openflags = as_int(p.get("flags"))
    state.fd = t.add_fd(fd, info)


def parse_pidfd_open_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    fd = _res(p, "fd")
    if t is None or fd < 0:
        return
    pid = as_int(p.get("pid"))
    info = FdInfo(c.FD_PIDFD, f"/proc/{pid}", as_int(p.get("flags")))
    info.pid = pid
    state.fd = t.add_fd(fd, info)


def parse_pidfd_getfd_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if t is None:
        return
    pidfd = t.get_fd(as_int(p.get("pid_fd"), -1))
    if pidfd is None or pidfd.fd_type != c.FD_PIDFD:
        return
    owner = state.threads.get(pidfd.pid)
    target = owner.get_fd(as_int(p.get("target_fd"), -1)) if owner is not None else None
    if target is None:
        return
    info = target.clone()
    info.clear_close_on_exec()
    info.openflags |= c.O_CLOEXEC
    state.fd = t.add_fd(_res(p, "fd"), info)


# --- closing and duplicating -----------------------------------------------------------------


def parse_close_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if _res(p) < 0 or state.fd is None or t is None:
        return
    # Removed at the next event: the close itself still sees the fd.
    state.schedule_fd_removal(t.tid, t.lastevent_fd)


def parse_close_range_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if t is None or _res(p) < 0:
        return
    table = t.fd_table()
    if table is None:
        return
    first, last = as_int(p.get("first")), as_int(p.get("last"))
    in_range = [fd for fd in table if fd >= 0 and first <= fd <= last]
    if as_int(p.get("flags")) & c.CLOSE_RANGE_CLOEXEC:
        for fd in in_range:
            table[fd].openflags |= c.O_CLOEXEC
    else:
        for fd in in_range:
            del table[fd]


def parse_dup_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if t is None:
        return
    res = _res(p)
    if res < 0 or state.fd is None:
        return
    # A dup onto stdin/stdout marks the thread as part of a shell pipe.
    if res == 0:
        t.flags |= c.CL_PIPE_DST
    elif res == 1:
        t.flags |= c.CL_PIPE_SRC
    info = state.fd.clone()
    info.clear_close_on_exec()
    if ev.name == "dup3" and as_int(p.get("flags")) & c.O_CLOEXEC:
        info.openflags |= c.O_CLOEXEC
    state.fd = t.add_fd(res, info)


def parse_fcntl_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if t is None:
        return
    cmd = as_int(p.get("cmd"))
    if cmd not in (c.FCNTL_F_DUPFD, c.FCNTL_F_DUPFD_CLOEXEC, c.FCNTL_F_SETFD):
        return
    res = _res(p)
    if res < 0 or state.fd is None:
        return
    if cmd == c.FCNTL_F_SETFD:
        state.fd.clear_close_on_exec()
        if as_int(p.get("arg")) & c.FD_CLOEXEC:
            state.fd.openflags |= c.O_CLOEXEC
        return
    info = state.fd.clone()
    info.clear_close_on_exec()
    if cmd == c.FCNTL_F_DUPFD_CLOEXEC:
        info.openflags |= c.O_CLOEXEC
    state.fd = t.add_fd(res, info)


# --- other fd-creating syscalls --------------------------------------------------------------


def parse_pipe_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if _res(p) < 0 or t is None:
        return
    ino = as_int(p.get("ino"))
    flags = as_int(p.get("flags")) if ev.name == "pipe2" else 0
    for key in ("fd1", "fd2"):
        info = FdInfo(c.FD_FIFO, "", flags)
        info.ino = ino
        state.fd = t.add_fd(as_int(p.get(key), -1), info)


def parse_eventfd_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    fd = _res(p)
    if t is None or fd < 0:
        return
    flags = as_int(p.get("flags")) & 0xFFFF if ev.name == "eventfd2" else 0
    state.fd = t.add_fd(fd, FdInfo(c.FD_EVENT, "", flags))


_SINGLE_FD_TYPES = {
    "signalfd": c.FD_SIGNALFD, "signalfd4": c.FD_SIGNALFD, "timerfd_create": c.FD_TIMERFD,
    "inotify_init": c.FD_INOTIFY, "inotify_init1": c.FD_INOTIFY, "bpf": c.FD_BPF,
    "userfaultfd": c.FD_USERFAULTFD, "io_uring_setup": c.FD_IOURING,
    "epoll_create": c.FD_EVENTPOLL, "epoll_create1": c.FD_EVENTPOLL,
}  # fmt: skip


def parse_single_fd_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if t is None:
        return
    layout = state.layout
    first = layout.params[0] if layout is not None and layout.params else "res"
    fd = as_int(p.get(first), -1)
    if fd < 0:
        return
    info = FdInfo(_SINGLE_FD_TYPES[ev.name])
    name = ev.name
    if name in ("inotify_init1", "signalfd4"):
        info.openflags = as_int(p.get("flags")) & 0xFFFF
    elif name == "timerfd_create":
        info.openflags = as_int(p.get("flags")) & 0xFF
    elif name == "epoll_create1" and as_int(p.get("flags")) & c.EPOLL_CLOEXEC:
        info.openflags |= c.O_CLOEXEC
    state.fd = t.add_fd(fd, info)


HANDLERS: dict[tuple[str, bool], Handler] = {
    ("open", False): parse_open_exit,
    ("creat", False): parse_open_exit,
    ("openat", False): parse_open_exit,
    ("openat2", False): parse_open_exit,
    ("open_by_handle_at", False): parse_open_exit,
    ("memfd_create", False): parse_memfd_create_exit,
    ("pidfd_open", False): parse_pidfd_open_exit,
    ("pidfd_getfd", False): parse_pidfd_getfd_exit,
    ("close", False): parse_close_exit,
    ("close_range", False): parse_close_range_exit,
    ("dup", False): parse_dup_exit,
    ("dup2", False): parse_dup_exit,
    ("dup3", False): parse_dup_exit,
    ("fcntl", False): parse_fcntl_exit,
    ("pipe", False): parse_pipe_exit,
    ("pipe2", False): parse_pipe_exit,
    ("eventfd", False): parse_eventfd_exit,
    ("eventfd2", False): parse_eventfd_exit,
    **{(name, False): parse_single_fd_exit for name in _SINGLE_FD_TYPES},
}  # fmt: skip
