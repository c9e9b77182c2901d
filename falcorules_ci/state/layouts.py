"""What the state tables need to know about each event code, precomputed once.

Events of an older layout are treated as the current layout of the same name and direction, as
libscap's capture converter turns them into before libsinsp parses them: parameter *names* carry
over, so handlers look parameters up by name and missing ones count as absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from falcorules_ci.fields.event_table import EventInfo, event_table

# The parameter libsinsp reads an exit event's fd from (libscap's get_exit_event_fd_location),
# by the position it gives for each current exit layout.
_EXIT_FD_POSITION = {
    1: (
        "PPME_SYSCALL_SETNS_X", "PPME_SOCKET_LISTEN_X", "PPME_SOCKET_SHUTDOWN_X",
        "PPME_SYSCALL_FCHDIR_X", "PPME_SYSCALL_LSEEK_X", "PPME_SYSCALL_LLSEEK_X",
        "PPME_SYSCALL_IOCTL_3_X", "PPME_SYSCALL_FSTAT_X", "PPME_SYSCALL_CLOSE_X",
        "PPME_SYSCALL_GETDENTS_X", "PPME_SYSCALL_GETDENTS64_X", "PPME_SYSCALL_FLOCK_X",
        "PPME_SYSCALL_COPY_FILE_RANGE_X", "PPME_SYSCALL_FCNTL_X", "PPME_SYSCALL_DUP_1_X",
        "PPME_SYSCALL_DUP2_X", "PPME_SYSCALL_DUP3_X", "PPME_SYSCALL_NEWFSTATAT_X",
        "PPME_SYSCALL_FCHOWNAT_X", "PPME_SYSCALL_FCHMODAT_X", "PPME_SYSCALL_MKDIRAT_X",
        "PPME_SYSCALL_UNLINKAT_2_X", "PPME_SYSCALL_MKNODAT_X", "PPME_SOCKET_SENDMMSG_X",
        "PPME_SOCKET_RECVMMSG_X", "PPME_SYSCALL_IO_URING_REGISTER_X",
        "PPME_SYSCALL_IO_URING_ENTER_X", "PPME_SOCKET_SETSOCKOPT_X", "PPME_SOCKET_GETSOCKOPT_X",
        "PPME_SYSCALL_FSCONFIG_X", "PPME_SYSCALL_FINIT_MODULE_X", "PPME_SYSCALL_FCHMOD_X",
        "PPME_SYSCALL_FCHOWN_X",
    ),
    2: (
        "PPME_SYSCALL_READ_X", "PPME_SYSCALL_PREAD_X", "PPME_SOCKET_BIND_X",
        "PPME_SYSCALL_WRITE_X", "PPME_SYSCALL_PWRITE_X", "PPME_SOCKET_RECV_X",
        "PPME_SOCKET_SEND_X", "PPME_SOCKET_SENDTO_X", "PPME_SOCKET_SENDMSG_X",
        "PPME_SYSCALL_SENDFILE_X", "PPME_SYSCALL_SPLICE_X", "PPME_SYSCALL_WRITEV_X",
        "PPME_SYSCALL_PWRITEV_X", "PPME_SOCKET_CONNECT_X", "PPME_SYSCALL_SYMLINKAT_X",
    ),
    3: ("PPME_SOCKET_RECVFROM_X", "PPME_SYSCALL_READV_X", "PPME_SYSCALL_PREADV_X"),
    5: ("PPME_SOCKET_RECVMSG_X",),
    8: ("PPME_SYSCALL_MMAP_X", "PPME_SYSCALL_MMAP2_X"),
}  # fmt: skip

# An enter event's fd is its first parameter, except for these (get_enter_event_fd_location).
_ENTER_FD_POSITION = {"PPME_SYSCALL_MMAP_E": 4, "PPME_SYSCALL_MMAP2_E": 4, "PPME_SYSCALL_SPLICE_E": 1}

# Syscall enter events libscap's converter still hands to libsinsp (all others it only keeps to
# complete the matching exit event).
PASSED_ENTER_NAMES = frozenset({"open", "creat", "openat", "openat2", "execve", "execveat", "connect"})

# Meta events libsinsp attaches to no thread.
_THREADLESS_ENUMS = frozenset({
    "PPME_CONTAINER_JSON_E", "PPME_CONTAINER_JSON_2_E", "PPME_CONTAINER_E", "PPME_USER_ADDED_E",
    "PPME_USER_DELETED_E", "PPME_GROUP_ADDED_E", "PPME_GROUP_DELETED_E", "PPME_PLUGINEVENT_E",
    "PPME_ASYNCEVENT_E",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Layout:
    """The effective (current) layout of an event code, with the flags state handling uses."""

    code: int
    current_code: int  # the code libscap's converter turns this event into
    info: EventInfo  # the current layout's table entry (parameter types and formats)
    enum: str
    name: str
    is_enter: bool
    params: tuple[str, ...]
    flags: frozenset[str]
    category: frozenset[str]
    uses_fd: bool
    creates_fd: bool
    fd_related: bool  # creates, uses or destroys an fd: fd.* fields apply
    reads: bool
    writes: bool
    waits: bool
    is_syscall: bool
    skip_reset: bool
    threadless: bool
    fd_param: str | None  # where reset() reads the event's fd from
    sinsp_visible: bool  # reaches libsinsp's parsers (see PASSED_ENTER_NAMES)
    is_meta: bool
    index: dict[str, int]  # parameter name -> position


@cache
def layout_of(code: int) -> Layout | None:
    table = event_table()
    info = table.by_code.get(code)
    if info is None:
        return None
    current = info
    if info.is_old_version:
        newer = table.lookup(info.name, info.direction)
        if newer is not None:
            current = newer
    return _make(info, current)


def _make(info: EventInfo, current: EventInfo) -> Layout:
    flags = current.flags
    is_enter = info.direction == ">"
    params = tuple(p.name for p in current.params)
    is_syscall = "EC_SYSCALL" in current.category
    uses_fd = "EF_USES_FD" in flags
    fd_param: str | None = None
    if uses_fd:
        if is_enter:
            pos = _ENTER_FD_POSITION.get(current.enum, 0)
        else:
            pos = next((p for p, enums in _EXIT_FD_POSITION.items() if current.enum in enums), -1)
        if 0 <= pos < len(params):
            fd_param = params[pos]
    visible = not (is_enter and is_syscall) or info.name in PASSED_ENTER_NAMES
    return Layout(
        code=info.code,
        current_code=current.code,
        info=current,
        enum=current.enum,
        name=info.name,
        is_enter=is_enter,
        params=params,
        flags=flags,
        category=current.category,
        uses_fd=uses_fd,
        creates_fd="EF_CREATES_FD" in flags,
        fd_related=bool(flags & {"EF_CREATES_FD", "EF_USES_FD", "EF_DESTROYS_FD"}),
        reads="EF_READS_FROM_FD" in flags,
        writes="EF_WRITES_TO_FD" in flags,
        waits="EF_WAITS" in flags,
        is_syscall=is_syscall,
        skip_reset="EF_SKIPPARSERESET" in flags,
        threadless=info.enum in _THREADLESS_ENUMS,
        fd_param=fd_param,
        sinsp_visible=visible,
        is_meta="EC_METAEVENT" in current.category,
        index={name: i for i, name in enumerate(params)},
    )
