"""One syscall as an enter+exit pair: arguments by the event table's names, derived parameters
(fd numbers, tuples, devices and inodes), and the effects the kernel would have on fd tables and
on files (owner, mode and times; see :mod:`falcorules_ci.sources.scenario_files`).

A :class:`Call` is filled by the scenario's ``args`` or by a high-level action, then
:func:`record` completes it the way the kernel would and emits its events.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from falcorules_ci.errors import InputError, Span
from falcorules_ci.sources import scenario_files as files
from falcorules_ci.sources.event import SockAddr, SockTuple
from falcorules_ci.sources.scenario_emit import SyscallEvents, Timeline
from falcorules_ci.sources.scenario_tables import (
    FD_BPF,
    FD_DIRECTORY,
    FD_EVENT,
    FD_EVENTPOLL,
    FD_FIFO,
    FD_FILE,
    FD_INOTIFY,
    FD_IOURING,
    FD_MEMFD,
    FD_NETLINK,
    FD_PIDFD,
    FD_SIGNALFD,
    FD_TIMERFD,
    FD_UNIX_SOCK,
    FD_UNKNOWN,
    FD_USERFAULTFD,
    FLAG_TABLES,
    L4_ICMP,
    L4_RAW,
    L4_TCP,
    L4_UDP,
    PPM_AF_INET,
    PPM_AF_INET6,
    PPM_AF_UNIX,
    PPM_AT_FDCWD,
    PPM_FD_LOWER_LAYER,
    PPM_FD_UPPER_LAYER,
    PPM_O_CLOEXEC,
    PPM_O_CREAT,
    PPM_O_DIRECTORY,
    PPM_O_F_CREATED,
    PPM_O_NONBLOCK,
    PPM_O_RDONLY,
    PPM_O_RDWR,
    PPM_O_TMPFILE,
    PPM_O_TRUNC,
    PPM_O_WRONLY,
    SOCK_DGRAM,
    SOCK_STREAM,
)
from falcorules_ci.sources.scenario_world import (
    HOST_DEV,
    OVERLAY_DEV,
    SOCKET_FD_TYPES,
    OpenFd,
    Thread,
    World,
    normalize_path,
    stable_number,
)
from falcorules_ci.sources.scenario_yaml import Cursor

EINPROGRESS = -115
DEFAULT_BACKLOG = 4096
SOCK_TYPE_MASK = 0xF
RENAME_EXCHANGE = FLAG_TABLES["renameat2_flags"]["RENAME_EXCHANGE"]
SOCK_NONBLOCK = 0o4000
SOCK_CLOEXEC = 0o2000000
# Parameters whose values are (ranges of) fds and default to "the current directory".
_DIRFD_PARAMS = frozenset({"dirfd", "olddirfd", "newdirfd", "linkdirfd", "olddir", "newdir"})
# Parameters a call cannot go without (a real syscall always has them).
_REQUIRED = {
    "connect": ("addr",), "bind": ("addr",), "setuid": ("uid",), "setgid": ("gid",), "kill": ("pid", "sig"),
    "ptrace": ("request",), "dup2": ("newfd",), "dup3": ("newfd",), "chmod": ("mode",), "fchmod": ("mode",),
    "fchmodat": ("mode",), "symlink": ("target",), "symlinkat": ("target",),
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "mmap": {"fd": -1}, "mmap2": {"fd": -1}, "mkdir": {"mode": 0o755}, "mkdirat": {"mode": 0o755},
}
_EXIT_ONLY_OPEN_FLAGS = PPM_O_F_CREATED | PPM_FD_UPPER_LAYER | PPM_FD_LOWER_LAYER
_NOT_OVERLAY = ("/proc", "/sys", "/dev")
# bpf commands that return a new fd (maps, programs, links, BTF objects, pinned objects).
_BPF_FD_COMMANDS = frozenset({0, 5, 7, 13, 14, 17, 18, 19, 28, 30, 33})
_FD_KINDS = {
    "eventfd": FD_EVENT, "eventfd2": FD_EVENT, "signalfd": FD_SIGNALFD, "signalfd4": FD_SIGNALFD,
    "timerfd_create": FD_TIMERFD, "inotify_init": FD_INOTIFY, "inotify_init1": FD_INOTIFY,
    "epoll_create": FD_EVENTPOLL, "epoll_create1": FD_EVENTPOLL, "userfaultfd": FD_USERFAULTFD,
    "io_uring_setup": FD_IOURING, "pidfd_open": FD_PIDFD, "bpf": FD_BPF, "memfd_create": FD_MEMFD,
}
_FD_NAMES = {
    FD_EVENT: "anon_inode:[eventfd]", FD_SIGNALFD: "anon_inode:[signalfd]", FD_TIMERFD: "anon_inode:[timerfd]",
    FD_INOTIFY: "anon_inode:inotify", FD_EVENTPOLL: "anon_inode:[eventpoll]",
    FD_USERFAULTFD: "anon_inode:[userfaultfd]", FD_IOURING: "anon_inode:[io_uring]",
    FD_PIDFD: "anon_inode:[pidfd]", FD_BPF: "anon_inode:bpf-prog",
}


@dataclass(slots=True)
class Call:
    """A syscall being recorded: who makes it, its events, the values known so far and the result."""

    world: World
    thread: Thread
    events: SyscallEvents
    values: dict[str, Any] = field(default_factory=dict)
    res: int | None = None
    cur: Cursor | None = None  # the event node, for error positions
    span: Span | None = None
    exit_only: dict[str, Any] = field(default_factory=dict)  # values only the exit event reports
    # Effects that happen at the exit's time (file times), run with that timestamp.
    at_exit: list[Callable[[int], None]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.events.name

    @property
    def result_param(self) -> str:
        return self.events.exit.params[0].name if self.events.exit.params else "res"

    @property
    def result(self) -> int:
        assert self.res is not None
        return self.res

    @property
    def ok(self) -> bool:
        """Whether the call succeeds (a result not given yet will be a success)."""
        return self.res is None or self.res >= 0 or self.res == EINPROGRESS

    def fail(self, message: str, *keys: str) -> NoReturn:
        """Raise at the deepest node of ``args.<keys>`` that exists, else at the event."""
        cur = self.cur
        if cur is not None:
            for key in ("args", *keys):
                deeper = cur.get(key)
                if deeper is None:
                    break
                cur = deeper
            cur.fail(f"{cur.where}: {message}")
        raise InputError(message, self.span)

    def fd_entry(self, key: str, fd: int) -> OpenFd | None:
        """The open fd ``fd`` (passed as ``key``); an error when a successful call names a closed fd."""
        entry = self.thread.fds.get(fd)
        if entry is None and self.ok and fd >= 0:
            self.fail(f"{self.name}: fd {fd} is not open in pid {self.thread.pid} (open it first, or give "
                      "res: EBADF)", key)
        return entry


def record(call: Call, timeline: Timeline, *, enter_values: dict[str, Any] | None = None) -> None:
    """Complete ``call`` (defaults, derived values, fd-table effects) and emit its events."""
    exit_info = call.events.exit
    for required in _REQUIRED.get(call.name, ()):
        if required not in call.values:
            call.fail(f"{call.name} needs args.{required}")
    for param in exit_info.params:
        if param.name in _DIRFD_PARAMS and param.type == "PT_FD":
            call.values.setdefault(param.name, PPM_AT_FDCWD)
    for key, value in _DEFAULTS.get(call.name, {}).items():
        call.values.setdefault(key, value)
    if "EF_USES_FD" in exit_info.flags and any(p.name == "fd" for p in exit_info.params):
        if "fd" not in call.values:
            call.fail(f"{call.name} needs args.fd")
        call.fd_entry("fd", call.values["fd"])
    handler = _HANDLERS.get(call.name) or (_new_fd if "EF_CREATES_FD" in exit_info.flags else None)
    if handler is not None:
        handler(call)
    if call.res is None:
        call.res = 0
    for param in exit_info.params:
        if param.type in ("PT_FSPATH", "PT_FSRELPATH") and param.name not in call.values:
            call.fail(f"{call.name} needs args.{param.name}")
    data = call.values.get("data")
    if isinstance(data, bytes) and len(data) > call.world.snaplen:
        call.values["data"] = data[: call.world.snaplen]
    call.values[call.result_param] = call.res
    if call.events.enter is not None:
        timeline.emit(call.thread.tid, call.events.enter,
                      call.values if enter_values is None else enter_values, call.span)
    exited = timeline.emit(call.thread.tid, exit_info, {**call.values, **call.exit_only}, call.span)
    for effect in call.at_exit:
        effect(exited.ts)


def _lowest_fd(call: Call, start: int = 0) -> int:
    return call.thread.lowest_free_fd(start)


def _result_fd(call: Call, start: int = 0) -> int:
    if call.res is None:
        call.res = _lowest_fd(call, start)
    elif call.res >= 0 and call.res in call.thread.fds:
        call.fail(f"{call.name}: fd {call.res} is already open in pid {call.thread.pid}")
    return call.res


def _resolve(call: Call, path: str, dirfd: int | None) -> str:
    if not path or path.startswith("/") or dirfd is None or dirfd == PPM_AT_FDCWD:
        return normalize_path(path, call.thread.cwd)
    entry = call.thread.fds.get(dirfd)
    if entry is None:
        if call.ok:
            call.fail(f"{call.name}: dirfd {dirfd} is not open in pid {call.thread.pid}", "dirfd")
        return path
    return normalize_path(path, entry.name)


def _file_identity(call: Call, path: str) -> tuple[int, int]:
    if not call.ok:
        return 0, 0
    dev = OVERLAY_DEV if call.thread.container else HOST_DEV
    return dev, stable_number("ino", call.thread.container_id, path, floor=2)


def _open(call: Call) -> None:
    values = call.values
    if call.name == "creat":
        flags = PPM_O_CREAT | PPM_O_WRONLY | PPM_O_TRUNC
        values.setdefault("mode", 0o666)
    else:
        flags = values.setdefault("flags", PPM_O_RDONLY)
        values.setdefault("mode", 0o666 if flags & (PPM_O_CREAT | PPM_O_TMPFILE) else 0)
    if "name" not in values:
        call.fail(f"{call.name} needs args.name")
    fd = _result_fd(call)
    path = _resolve(call, values["name"], values.get("dirfd"))
    dev, ino = _file_identity(call, path)
    values.setdefault("dev", dev)
    values.setdefault("ino", ino)
    if not call.ok:
        return
    # What only the exit reports: whether the open created the file, and its overlay layer.
    reported = flags & _EXIT_ONLY_OPEN_FLAGS
    writing = bool(flags & (PPM_O_WRONLY | PPM_O_CREAT | PPM_O_TRUNC))
    values["flags"] = flags & ~_EXIT_ONLY_OPEN_FLAGS
    key = (call.thread.container_id, path)
    created = bool((flags & PPM_O_CREAT or call.name == "creat") and key not in call.world.seen_paths)
    if not reported:
        if created and call.name != "creat":
            reported |= PPM_O_F_CREATED
        reported |= _layer(call, path, writing)
    call.world.seen_paths.add(key)
    if writing:
        call.world.written_paths.add(key)
        call.at_exit.append(lambda ts: _opened_for_writing(call, path, created, values["mode"], ts))
    if call.name == "creat":
        layer = reported & (PPM_FD_UPPER_LAYER | PPM_FD_LOWER_LAYER)
        values.setdefault("creat_flags", 1 if layer == PPM_FD_UPPER_LAYER else 2 if layer else 0)
    else:
        call.exit_only["flags"] = values["flags"] | reported
    kind = FD_DIRECTORY if flags & PPM_O_DIRECTORY else FD_FILE
    call.thread.fds[fd] = OpenFd(kind, path, flags | reported, ino=values["ino"], dev=values["dev"],
                                 cloexec=bool(flags & PPM_O_CLOEXEC), meta=call.world.files.get(key))


def _opened_for_writing(call: Call, path: str, created: bool, mode: int, when: int) -> None:
    """A created file is the caller's; truncating one changes its content."""
    world, thread = call.world, call.thread
    if created:
        meta = files.create_file(world, thread, path, mode, when)
    else:
        meta = files.tracked(world, thread, path)
        if call.name == "creat" or call.values["flags"] & PPM_O_TRUNC:
            files.modified(meta, when)
    entry = thread.fds.get(call.result)
    if entry is not None and entry.name == path:
        entry.meta = meta


def _inode_change(call: Call) -> None:
    """chmod, chown and rename families: the inode's mode, owner or path changes at the exit."""
    values, name = call.values, call.name
    if call.res not in (None, 0):
        return
    if name in ("fchmod", "fchown"):
        entry = call.fd_entry("fd", values.get("fd", -1))
        path = None
    elif name.startswith("rename"):
        old = _resolve(call, values.get("oldpath", ""), values.get("olddirfd"))
        new = _resolve(call, values.get("newpath", ""), values.get("newdirfd"))
        swap = bool(values.get("flags", 0) & RENAME_EXCHANGE)
        call.at_exit.append(lambda ts: files.rename(call.world, call.thread, old, new, ts, exchange=swap))
        return
    else:
        key = "filename" if "chmod" in name else "pathname" if name == "fchownat" else "path"
        path = _resolve(call, values.get(key, ""), values.get("dirfd"))
        entry = None

    def change(ts: int) -> None:
        meta = files.fd_inode(call.world, call.thread, entry, ts) if entry is not None else (
            files.tracked(call.world, call.thread, path) if path else None)
        if meta is None:
            return
        if "chmod" in name:
            files.chmod(meta, values.get("mode", meta.mode), ts)
        else:
            files.chown(meta, values.get("uid", -1), values.get("gid", -1), ts)

    call.at_exit.append(change)


def _layer(call: Call, path: str, writing: bool) -> int:
    """The overlay layer a container's file is on: written files are copied up to the upper one."""
    container = call.thread.container
    if container is None or any(path == top or path.startswith(top + "/") for top in _NOT_OVERLAY):
        return 0
    if any(path == m.dest or path.startswith(m.dest.rstrip("/") + "/") for m in container.info.mounts):
        return 0
    return PPM_FD_UPPER_LAYER if writing or (container.info.id, path) in call.world.written_paths else (
        PPM_FD_LOWER_LAYER)


def _socket(call: Call) -> None:
    values = call.values
    domain = values.setdefault("domain", PPM_AF_INET)
    sock_type = values.setdefault("type", SOCK_STREAM)
    proto = values.setdefault("proto", 0)
    # The exit reports only the non-blocking and close-on-exec bits of the type.
    flags = (PPM_O_NONBLOCK if sock_type & SOCK_NONBLOCK else 0) | (PPM_O_CLOEXEC if sock_type & SOCK_CLOEXEC else 0)
    values.setdefault("flags", flags)
    flags |= PPM_O_RDWR
    fd = _result_fd(call)
    if not call.ok:
        return
    base = sock_type & SOCK_TYPE_MASK
    l4 = L4_TCP if base == SOCK_STREAM else L4_UDP if base == SOCK_DGRAM else (L4_ICMP if proto in (1, 58) else L4_RAW)
    if domain in SOCKET_FD_TYPES:
        entry = OpenFd(SOCKET_FD_TYPES[domain], flags=flags, family=domain,
                       l4proto=0 if domain == PPM_AF_UNIX else l4, cloexec=bool(flags & PPM_O_CLOEXEC))
    else:
        entry = OpenFd(FD_NETLINK if domain == 16 else FD_UNKNOWN, "", flags, cloexec=bool(flags & PPM_O_CLOEXEC))
    call.thread.fds[fd] = entry


def _socket_entry(call: Call, key: str = "fd") -> OpenFd | None:
    if key not in call.values:
        call.fail(f"{call.name} needs args.{key}")
    entry = call.fd_entry(key, call.values[key])
    if entry is not None and not entry.is_socket and call.ok:
        call.fail(f"{call.name}: fd {call.values[key]} is not a socket", key)
    return entry


def _bind_local(call: Call, entry: OpenFd) -> tuple[str, int]:
    if entry.local is None or (entry.local[1] == 0 and not entry.listening):
        addr = entry.local[0] if entry.local and entry.local[0] not in ("0.0.0.0", "::") else (
            call.world.local_ip(call.thread, entry.family))
        entry.local = (addr, call.world.ephemeral_port())
    return entry.local


def _addr_tuple(entry: OpenFd, local: tuple[str, int], remote: tuple[str, int], outbound: bool) -> SockTuple:
    if outbound:
        return SockTuple(entry.family, local[0], local[1], remote[0], remote[1])
    return SockTuple(entry.family, remote[0], remote[1], local[0], local[1])


def _connect(call: Call) -> None:
    entry = _socket_entry(call)
    addr: SockAddr = call.values["addr"]
    if entry is None:
        call.values.setdefault("tuple", SockTuple(addr.family, dst_addr=addr.addr, dst_port=addr.port))
        return
    if entry.family and addr.family != entry.family:
        call.fail(f"connect: address family {addr.family} does not match the socket's {entry.family}", "addr")
    if addr.family == PPM_AF_UNIX:
        call.values.setdefault("tuple", SockTuple(PPM_AF_UNIX, src_path=addr.path, dst_path=addr.path,
                                                  unix_src=stable_number("sk", call.thread.pid, call.values["fd"],
                                                                         bits=47, floor=1 << 40),
                                                  unix_dst=stable_number("sk", addr.path, bits=47, floor=1 << 40)))
        if call.ok:
            entry.unix_path = entry.name = addr.path
        return
    local = _bind_local(call, entry)
    call.values.setdefault("tuple", _addr_tuple(entry, local, (addr.addr, addr.port), True))
    if call.ok:
        entry.remote = (addr.addr, addr.port)


def _bind(call: Call) -> None:
    entry = _socket_entry(call)
    addr: SockAddr = call.values["addr"]
    if entry is not None and call.res in (None, 0):
        if addr.family == PPM_AF_UNIX:
            entry.unix_path = entry.name = addr.path
        else:
            entry.local = (addr.addr, addr.port or call.world.ephemeral_port())


def _listen(call: Call) -> None:
    entry = _socket_entry(call)
    call.values.setdefault("backlog", DEFAULT_BACKLOG)
    if entry is not None and call.res in (None, 0):
        entry.listening = True
        if entry.local is None and entry.family != PPM_AF_UNIX:
            entry.local = ("0.0.0.0" if entry.family == PPM_AF_INET else "::", call.world.ephemeral_port())


def _accept(call: Call) -> None:
    tuple_value: SockTuple | None = call.values.get("tuple")
    if tuple_value is None:
        call.fail(f"{call.name} needs args.tuple (client->server), or use the accept action")
    call.values.setdefault("queuemax", DEFAULT_BACKLOG)
    fd = _result_fd(call, 3)
    if call.ok:
        call.thread.fds[fd] = OpenFd(
            SOCKET_FD_TYPES.get(tuple_value.family, FD_UNIX_SOCK), family=tuple_value.family,
            l4proto=0 if tuple_value.family == PPM_AF_UNIX else L4_TCP, flags=PPM_O_RDWR,
            local=(tuple_value.dst_addr, tuple_value.dst_port), remote=(tuple_value.src_addr, tuple_value.src_port),
            unix_path=tuple_value.dst_path, cloexec=bool(call.values.get("flags", 0) & SOCK_CLOEXEC), inbound=True)


def _transfer(call: Call) -> None:
    """read/write/send/recv families: sizes and results follow the data; tuples follow the socket."""
    data: bytes = call.values.setdefault("data", b"")
    reading = "EF_READS_FROM_FD" in call.events.exit.flags
    call.values.setdefault("size", max(len(data), 4096) if reading else len(data))
    if call.res is None:
        call.res = len(data)
    written = call.thread.fds.get(call.values.get("fd", -1))
    if not reading and written is not None and not written.is_socket and call.ok:
        call.at_exit.append(lambda ts: _content_written(call, written, ts))
    if "tuple" not in call.values and any(p.name == "tuple" for p in call.events.exit.params):
        entry = _socket_entry(call)
        if entry is not None and entry.family in (PPM_AF_INET, PPM_AF_INET6):
            if entry.remote is None:
                call.fail(f"{call.name}: fd {call.values['fd']} is not connected; give args.tuple")
            local = _bind_local(call, entry)
            call.values["tuple"] = _addr_tuple(entry, local, entry.remote, not reading)
        elif entry is not None and entry.family == PPM_AF_UNIX:
            call.values["tuple"] = SockTuple(PPM_AF_UNIX, src_path=entry.unix_path, dst_path=entry.unix_path)
    elif "tuple" in call.values and "fd" in call.values:
        entry = call.fd_entry("fd", call.values["fd"])
        if entry is not None and entry.is_socket and entry.local is None:
            local_end = call.values["tuple"]
            entry.local = (local_end.src_addr, local_end.src_port) if not reading else (
                local_end.dst_addr, local_end.dst_port)


def _content_written(call: Call, entry: OpenFd, when: int) -> None:
    meta = files.fd_inode(call.world, call.thread, entry, when)
    if meta is not None:
        files.modified(meta, when)


def _close(call: Call) -> None:
    if "fd" not in call.values:
        call.fail("close needs args.fd")
    fd = call.values["fd"]
    if call.ok:
        call.thread.fds.pop(fd, None)


def _close_range(call: Call) -> None:
    low = call.values.setdefault("first", 3)
    high = call.values.setdefault("last", 0xFFFFFFFF)
    if call.res in (None, 0):
        for fd in [fd for fd in call.thread.fds if low <= fd <= high]:
            del call.thread.fds[fd]


def _dup(call: Call) -> None:
    if "oldfd" not in call.values:
        call.fail(f"{call.name} needs args.oldfd")
    old = call.values["oldfd"]
    call.values["fd"] = old  # the enter event's name for it
    if call.name == "dup":
        new = _result_fd(call)
    else:
        new = call.values["newfd"]
        if call.res is None:
            call.res = new
    source = call.fd_entry("oldfd", old)
    if call.ok and source is not None and new != old:
        copy = dataclasses.replace(source, cloexec=bool(call.values.get("flags", 0) & PPM_O_CLOEXEC))
        call.thread.fds[new] = copy


def _fcntl(call: Call) -> None:
    cmd = call.values.get("cmd", 0)
    if cmd not in (FLAG_TABLES["fcntl_commands"]["F_DUPFD"], FLAG_TABLES["fcntl_commands"]["F_DUPFD_CLOEXEC"]):
        return
    source = call.fd_entry("fd", call.values.get("fd", -1))
    new = _result_fd(call, call.values.get("arg", 0))
    if call.ok and source is not None:
        copy = dataclasses.replace(source, cloexec=cmd == FLAG_TABLES["fcntl_commands"]["F_DUPFD_CLOEXEC"])
        call.thread.fds[new] = copy


def _pipe(call: Call) -> None:
    first = call.values.setdefault("fd1", _lowest_fd(call))
    call.thread.fds[first] = OpenFd(FD_FIFO)  # reserve while choosing the second
    second = call.values.setdefault("fd2", _lowest_fd(call))
    del call.thread.fds[first]
    if not call.ok:
        return
    flags = call.values.get("flags", 0)
    if call.name == "socketpair":
        src = stable_number("sk", call.thread.pid, first, bits=47, floor=1 << 40)
        peer = stable_number("sk", call.thread.pid, second, bits=47, floor=1 << 40)
        call.values.setdefault("source", src)
        call.values.setdefault("peer", peer)
        for fd in (first, second):
            call.thread.fds[fd] = OpenFd(FD_UNIX_SOCK, "", PPM_O_RDWR, family=PPM_AF_UNIX)
        return
    ino = call.values.setdefault("ino", stable_number("pipe", call.thread.pid, first, bits=24, floor=1000))
    for fd, mode in ((first, PPM_O_RDONLY), (second, PPM_O_WRONLY)):
        call.thread.fds[fd] = OpenFd(FD_FIFO, f"pipe:[{ino}]", mode | flags, ino=ino,
                                     cloexec=bool(flags & PPM_O_CLOEXEC))


def _new_fd(call: Call) -> None:
    """Syscalls whose result is a new fd of some anonymous kind (eventfd, memfd, bpf, ...)."""
    if call.name == "bpf" and call.values.get("cmd", 5) not in _BPF_FD_COMMANDS:
        return
    fd = _result_fd(call)
    if not call.ok:
        return
    kind = _FD_KINDS.get(call.name, FD_UNKNOWN)
    name = f"memfd:{call.values.get('name', '')}" if kind == FD_MEMFD else _FD_NAMES.get(kind, "")
    flags = call.values.get("flags", 0) if call.name != "memfd_create" else PPM_O_RDWR
    cloexec = bool(call.values.get("flags", 0) & 1) if call.name == "memfd_create" else bool(flags & PPM_O_CLOEXEC)
    entry = OpenFd(kind, name, flags if isinstance(flags, int) else 0, cloexec=cloexec)
    call.thread.fds[fd] = entry
    if kind == FD_MEMFD:
        # The memfd's inode belongs to its creator from the moment it exists.
        call.at_exit.append(lambda ts: _content_written(call, entry, ts))


def _chdir(call: Call) -> None:
    if call.name == "fchdir":
        entry = call.fd_entry("fd", call.values.get("fd", -1))
        target = entry.name if entry is not None else None
    else:
        if "path" not in call.values:
            call.fail(f"{call.name} needs args.path")
        target = normalize_path(call.values["path"], call.thread.cwd)
    if call.res in (None, 0) and target:
        if call.name == "chroot":
            call.thread.root = target
        else:
            call.thread.cwd = target


def _setid(call: Call) -> None:
    if call.res not in (None, 0):
        return
    thread = call.thread
    uid = call.values.get("euid", call.values.get("uid")) if call.name.endswith("uid") else None
    gid = call.values.get("egid", call.values.get("gid")) if call.name.endswith("gid") else None
    if uid is not None and uid != -1 and uid != 0xFFFFFFFF:
        if thread.uid == 0 and uid != 0:
            # Leaving root drops the permitted and effective capabilities.
            thread.cap_permitted = thread.cap_effective = 0
        thread.uid = uid
    if gid is not None and gid != -1 and gid != 0xFFFFFFFF:
        thread.gid = gid


def _capset(call: Call) -> None:
    thread = call.thread
    values = call.values
    values.setdefault("cap_inheritable", thread.cap_inheritable)
    values.setdefault("cap_permitted", thread.cap_permitted)
    values.setdefault("cap_effective", thread.cap_effective)
    if call.res in (None, 0):
        thread.cap_inheritable = values["cap_inheritable"]
        thread.cap_permitted = values["cap_permitted"]
        thread.cap_effective = values["cap_effective"]


def _ptrace(call: Call) -> None:
    call.values.setdefault("addr", struct.pack("<BQ", 0, 0))
    call.values.setdefault("data", struct.pack("<BQ", 0, 0))
    call.values.setdefault("pid", 0)


_HANDLERS: dict[str, Callable[[Call], None]] = {
    "open": _open, "openat": _open, "openat2": _open, "creat": _open, "socket": _socket,
    "connect": _connect, "bind": _bind, "listen": _listen, "accept": _accept, "accept4": _accept,
    "read": _transfer, "write": _transfer, "readv": _transfer, "writev": _transfer, "pread": _transfer,
    "pwrite": _transfer, "preadv": _transfer, "pwritev": _transfer, "sendto": _transfer,
    "sendmsg": _transfer, "recvfrom": _transfer, "recvmsg": _transfer, "close": _close,
    "close_range": _close_range, "dup": _dup, "dup2": _dup, "dup3": _dup, "fcntl": _fcntl, "pipe": _pipe,
    "pipe2": _pipe, "socketpair": _pipe, "chdir": _chdir, "fchdir": _chdir, "chroot": _chdir,
    "setuid": _setid, "setgid": _setid, "setresuid": _setid, "setreuid": _setid, "setresgid": _setid,
    "setregid": _setid, "capset": _capset, "ptrace": _ptrace, "chmod": _inode_change, "fchmod": _inode_change,
    "fchmodat": _inode_change, "chown": _inode_change, "lchown": _inode_change, "fchown": _inode_change,
    "fchownat": _inode_change, "rename": _inode_change, "renameat": _inode_change, "renameat2": _inode_change,
}
