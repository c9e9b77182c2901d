"""The syscall state tables, updated per event before rules see it (Falco's order).

:class:`SyscallState` reproduces what libsinsp (libs 0.25, Falco 0.44) and the container plugin do
with each event of a capture replay:

1. Removals deferred by the previous event are applied: a thread that exited, fds that were
   closed (so the ``procexit``/``close`` events themselves still see them).
2. Enter events are handled as libscap's capture converter does: every syscall enter event is
   remembered per thread (one slot) and the next exit of the same syscall gets the parameters it
   lacks copied from it (older exit layouts carried fewer parameters). Only the enter events of
   ``open``, ``creat``, ``openat``, ``openat2``, ``execve``, ``execveat`` and ``connect`` reach
   libsinsp itself, which keeps them to prefer the enter-time path, flags and address (TOCTOU
   protection) and to rebuild ``proc.exepath`` for old ``execve`` layouts.
3. The event's thread is looked up. An unknown thread gets a placeholder entry (``<NA>``), except
   for clone/fork exits and ``procexit``.
4. libsinsp's parser for the event updates threads, fds, users and groups; the container plugin
   then tags new processes with their container id and records container events.

After :meth:`SyscallState.update`, ``state.thread`` and ``state.fd`` are the thread and fd the
event's fields refer to.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from falcorules_ci.sources.event import Event
from falcorules_ci.sources.records import CaptureHeader, ProcessInfo
from falcorules_ci.sources.records import FdInfo as HeaderFd
from falcorules_ci.state import constants as c
from falcorules_ci.state import parse_fd, parse_net, parse_process
from falcorules_ci.state.containers import (
    ContainerRecord,
    ContainerTable,
    container_type_name,
    record_from_json,
)
from falcorules_ci.state.dns import DnsAnswers
from falcorules_ci.state.fds import FROM_PROC, ROLE_CLIENT, ROLE_SERVER, SOCKET_CONNECTED, FdInfo
from falcorules_ci.state.layouts import Layout, layout_of
from falcorules_ci.state.sockets import Interfaces, as_ipv4, is_ipv4_mapped, parse_ip, tuple_text
from falcorules_ci.state.threads import (
    ThreadInfo,
    ThreadTable,
    parse_cgroups,
    placeholder_thread,
)
from falcorules_ci.state.users import UserTable

# Exit events after which the container plugin (re)computes the thread's container id.
_NEW_PROCESS_NAMES = frozenset({"clone", "fork", "vfork", "clone3", "execve", "execveat", "chroot"})
_CLONE_NAMES = frozenset({"clone", "fork", "vfork", "clone3"})


class SyscallState:
    """libsinsp-like thread, fd, user and container tables for one syscall event stream."""

    def __init__(self, header: CaptureHeader, *, hostname: str | None = None) -> None:
        machine = header.machine
        self.hostname = hostname if hostname is not None else (machine.hostname if machine else "")
        # Falco reads pid namespace start times relative to the capture's boot time, which its
        # replay leaves at 0 (observed: container.start_ts is the raw monotonic value).
        self.boot_ts = 0
        self.threads = ThreadTable()
        self.users = UserTable(header.users, header.groups)
        self.containers = ContainerTable(header.containers)
        self.interfaces = Interfaces(header.interfaces)
        # The resolver's answers for fd.*ip.name (a scenario's dns; a capture has none).
        self.dns = DnsAnswers(header.dns)
        self.first_ts = 0
        # Per-event results.
        self.event: Event | None = None
        self.layout: Layout | None = None
        self.thread: ThreadInfo | None = None
        self.fd: FdInfo | None = None
        # The fd number fd.num reports (libsinsp's per-thread "last event fd").
        self.fd_num = -1
        self.fd_name_changed = False
        self.event_container: ContainerRecord | None = None
        # Deferred work and converter memory.
        self._tid_to_remove: int | None = None
        self._fds_to_remove: tuple[int, list[int]] | None = None
        self._enter_slots: dict[int, Event] = {}
        self._recently_exited: dict[tuple[int, int], int] = {}
        self._exit_ring: deque[tuple[tuple[int, int], int]] = deque()
        self._load_processes(header.processes)

    # --- initial state -----------------------------------------------------------------------

    def _load_processes(self, processes: list[ProcessInfo]) -> None:
        server_ports: set[int] = set()
        for proc in processes:
            thread = _thread_from_record(proc)
            for record in proc.fds:
                info = self._fd_from_record(record)
                if info is None:
                    continue
                thread.fds[record.fd] = info
                if info.fd_type in (c.FD_IPV4_SERVSOCK, c.FD_IPV6_SERVSOCK):
                    server_ports.add(info.sport)
            self.threads.add(thread, with_dependencies=False)
        for thread in list(self.threads.threads.values()):
            self.threads.link(thread)
        for thread in self.threads.threads.values():
            _orient_proc_sockets(thread, server_ports)
            thread.container_id = self.containers.resolve(thread.cgroups)

    def _fd_from_record(self, record: HeaderFd) -> FdInfo | None:
        info = FdInfo(record.fd_type)
        info.flags = FROM_PROC
        info.ino = record.ino
        t = record.tuple
        if record.fd_type in (c.FD_IPV4_SOCK, c.FD_IPV6_SOCK):
            sip = parse_ip(t.src_addr) if t else None
            dip = parse_ip(t.dst_addr) if t else None
            info.sport = t.src_port if t else 0
            info.dport = t.dst_port if t else 0
            info.l4proto = record.l4proto
            if record.l4proto == c.L4_TCP:
                info.flags |= SOCKET_CONNECTED
            mapped = sip is not None and dip is not None and is_ipv4_mapped(sip) and is_ipv4_mapped(dip)
            if record.fd_type == c.FD_IPV4_SOCK or mapped:
                info.fd_type = c.FD_IPV4_SOCK
                info.sip = as_ipv4(sip) if sip is not None else None
                info.dip = as_ipv4(dip) if dip is not None else None
                self.interfaces.complete(info)
            else:
                info.sip, info.dip = sip, dip
            info.name = tuple_text(info)
        elif record.fd_type in (c.FD_IPV4_SERVSOCK, c.FD_IPV6_SERVSOCK):
            if t is not None:
                info.sip = parse_ip(t.src_addr or t.dst_addr)
                info.sport = t.src_port or t.dst_port
            info.l4proto = record.l4proto
            info.name = record.name or f"{info.sip}:{info.sport}"
        elif record.fd_type == c.FD_UNIX_SOCK:
            if t is not None:
                info.unix_src, info.unix_dst = t.unix_src, t.unix_dst
            info.name = record.name
            info.flags |= ROLE_SERVER if record.name else ROLE_CLIENT
        elif record.fd_type == c.FD_FILE_V2:
            info.openflags = record.open_flags
            info.name = record.name
            info.dev = record.dev
        elif record.fd_type in _NAMED_PROC_FD_TYPES:
            info.name = record.name
        else:
            return None
        return info

    # --- per-event update --------------------------------------------------------------------

    def update(self, event: Event) -> None:
        """Apply one event to the tables, as libsinsp does before evaluating rules on it."""
        self.event = event
        self.fd = None
        self.fd_num = -1
        self.fd_name_changed = False
        self.event_container = None
        if self._tid_to_remove is not None:
            self._remove_exited(self._tid_to_remove, event.ts)
        if self._fds_to_remove is not None:
            tid, fds = self._fds_to_remove
            self._fds_to_remove = None
            owner = self.threads.get(tid)
            table = owner.fd_table() if owner is not None else None
            if table is not None:
                for fd in fds:
                    table.pop(fd, None)
        layout = layout_of(event.code)
        self.layout = layout
        if layout is None:
            self.thread = None
            return
        if not self.first_ts and not layout.is_meta:
            self.first_ts = event.ts
        if layout.is_enter and layout.is_syscall:
            self._enter_slots[event.tid] = event
            if not layout.sinsp_visible:
                self._invisible_enter(event, layout)
                return
        elif not layout.is_enter and layout.is_syscall:
            slot = self._enter_slots.pop(event.tid, None)
            if slot is not None:
                _complete_from_enter(event, slot, layout)
            if layout.code != layout.current_code:
                _convert_old_exit(event, layout)
        self._reset(event, layout)
        handler = _HANDLERS.get((layout.name, layout.is_enter))
        if handler is not None:
            handler(self, event, event.params)
        self._plugin_parse(event, layout)
        info = self.fd
        if info is not None:
            self.fd_name_changed = info.name != info.oldname
        thread = self.thread
        if thread is not None:
            self.fd_num = thread.lastevent_fd
            if not layout.is_enter:
                thread.stored_enter = None

    def _invisible_enter(self, event: Event, layout: Layout) -> None:
        """An enter event Falco never parses (the converter only keeps its parameters): the
        tables stay as they are, but its thread and fd are looked up for legacy evaluation."""
        thread = self.threads.get(event.tid)
        self.thread = thread
        self.fd_num = -1
        if thread is not None and layout.uses_fd and layout.fd_param is not None:
            fd = event.params.get(layout.fd_param)
            if isinstance(fd, int):
                self.fd_num = fd
                self.fd = thread.get_fd(fd)

    def _remove_exited(self, tid: int, ts: int) -> None:
        self._tid_to_remove = None
        thread = self.threads.get(tid)
        ptid = thread.ptid if thread is not None else -1
        self._remember_exit(tid, ptid, ts)
        self.threads.remove(tid)
        self._enter_slots.pop(tid, None)

    def _remember_exit(self, tid: int, ptid: int, ts: int) -> None:
        key = (ptid & 0xFFFFFFFF, tid & 0xFFFFFFFF)
        self._recently_exited[key] = ts
        self._exit_ring.append((key, ts))
        if len(self._exit_ring) > c.RECENTLY_EXITED_RING_SIZE:
            old_key, old_ts = self._exit_ring.popleft()
            if self._recently_exited.get(old_key) == old_ts:
                del self._recently_exited[old_key]

    def recently_exited(self, tid: int, ptid: int, ts: int) -> bool:
        when = self._recently_exited.get((ptid & 0xFFFFFFFF, tid & 0xFFFFFFFF))
        return when is not None and ts >= when and ts - when < c.CLONE_STALE_TIME_NS

    def _reset(self, event: Event, layout: Layout) -> None:
        if layout.skip_reset:
            self.thread = self.threads.get(event.tid) if layout.name == "procinfo" else None
            return
        if layout.threadless:
            self.thread = None
            return
        name = layout.name
        no_query = (not layout.is_enter and name in _CLONE_NAMES) or name in ("procexit", "switch")
        thread = self.threads.get(event.tid) if no_query else self.get_thread(event.tid)
        self.thread = thread
        if thread is None or name == "switch":
            return
        if not no_query:
            thread.flags |= c.CL_ACTIVE
        params = event.params
        if layout.is_enter:
            thread.lastevent_fd = -1
            thread.lastevent_type = name
            if layout.uses_fd and layout.fd_param is not None:
                fd = params.get(layout.fd_param, 0)
                thread.lastevent_fd = fd
                self.fd = thread.get_fd(fd)
            if (
                layout.is_syscall
                and name in _STORED_ENTERS
                and (name in ("execveat", "connect") or (layout.params and layout.params[0] in params))
            ):
                thread.stored_enter = event
            return
        if thread.lastevent_type != name and not (name == "execve" and thread.lastevent_type == "execveat"):
            thread.lastevent_fd = -1
            thread.stored_enter = None
        if not layout.uses_fd:
            return
        if thread.lastevent_fd == -1 and layout.fd_param is not None:
            fd = params.get(layout.fd_param)
            if isinstance(fd, int):
                thread.lastevent_fd = fd
        self.fd = thread.get_fd(thread.lastevent_fd)

    def get_thread(self, tid: int) -> ThreadInfo:
        """The thread with this tid, creating libsinsp's placeholder entry when unknown."""
        thread = self.threads.get(tid)
        if thread is None:
            thread = self.threads.add(placeholder_thread(tid))
        return thread

    def retrieve_enter(self, event: Event) -> Event | None:
        """The enter event libsinsp kept for this exit, if it matches (``retrieve_enter_event``)."""
        thread = self.thread
        if thread is None:
            return None
        stored = thread.stored_enter
        if not isinstance(stored, Event):
            return None
        if stored.name == event.name or (event.name == "execve" and stored.name == "execveat"):
            return stored
        return None

    def schedule_fd_removal(self, tid: int, fd: int) -> None:
        if self._fds_to_remove is not None and self._fds_to_remove[0] == tid:
            self._fds_to_remove[1].append(fd)
        else:
            self._fds_to_remove = (tid, [fd])

    def schedule_thread_removal(self, tid: int) -> None:
        self._tid_to_remove = tid

    # --- container plugin --------------------------------------------------------------------

    def _plugin_parse(self, event: Event, layout: Layout) -> None:
        if layout.threadless and layout.name == "container":
            p = event.params
            if "json" in p:
                record = record_from_json(_text(p.get("json")))
            else:
                # The oldest container event carries only id, type, name and image.
                record = ContainerRecord(
                    id=_text(p.get("id")), name=_text(p.get("name")), image=_text(p.get("image")),
                    type=container_type_name(p.get("type")),
                )  # fmt: skip
            if record is not None:
                self.containers.add(record)
                self.event_container = record
        elif layout.enum == "PPME_ASYNCEVENT_E":
            self._plugin_async(event)
        elif not layout.is_enter and layout.name in _NEW_PROCESS_NAMES:
            res = event.params.get(layout.params[0]) if layout.params else None
            if isinstance(res, int) and res < 0:
                return
            thread = self.threads.get(event.tid)
            if thread is not None:
                thread.container_id = self.containers.resolve(thread.cgroups)

    def _plugin_async(self, event: Event) -> None:
        name = _text(event.params.get("name"))
        if name not in ("container", "container_removed"):
            return
        record = record_from_json(_text(event.params.get("data")))
        if record is None:
            return
        if name == "container":
            self.containers.add(record)
        else:
            self.containers.remove(record.id)
        self.event_container = record

    def container_of(self, thread: ThreadInfo | None) -> ContainerRecord | None:
        """The container the current event belongs to (None: no metadata, or no thread)."""
        if self.event_container is not None:
            return self.event_container
        if thread is None:
            return None
        return self.containers.get(thread.container_id)

    def parse_dirfd(self, name: str, dirfd: int) -> str:
        """The directory a relative path of an ``*at`` syscall is relative to (libsinsp's
        ``parse_dirfd``): ``.`` for absolute paths, the cwd for ``AT_FDCWD``, the dirfd's name
        with a trailing ``/``, or ``<UNKNOWN>``."""
        if name.startswith("/"):
            return "."
        thread = self.thread
        if thread is None:
            return "<UNKNOWN>"
        if dirfd == c.AT_FDCWD:
            return thread.get_cwd()
        info = thread.get_fd(dirfd)
        if info is None:
            return "<UNKNOWN>"
        if not info.name or info.name.endswith("/"):
            return info.name
        return info.name + "/"


_NAMED_PROC_FD_TYPES = frozenset({
    c.FD_FIFO, c.FD_FILE, c.FD_DIRECTORY, c.FD_UNSUPPORTED, c.FD_SIGNALFD, c.FD_EVENTPOLL,
    c.FD_EVENT, c.FD_INOTIFY, c.FD_TIMERFD, c.FD_NETLINK, c.FD_BPF, c.FD_USERFAULTFD,
    c.FD_IOURING, c.FD_MEMFD, c.FD_PIDFD,
})  # fmt: skip

_STORED_ENTERS = frozenset({"open", "creat", "openat", "openat2", "execve", "execveat", "connect"})

# The converter stores an old dup's enter fd under the current layout's name.
_ENTER_RENAMES = {("dup", "fd"): "oldfd"}


def _complete_from_enter(event: Event, enter: Event, layout: Layout) -> None:
    if enter.name != event.name and not (event.name == "execve" and enter.name == "execveat"):
        return
    params = event.params
    wanted = layout.params
    for key, value in enter.params.items():
        target = _ENTER_RENAMES.get((event.name, key), key)
        if target not in params and target in wanted:
            params[target] = value


# Old exit parameters the converter copies into a differently typed parameter of the current
# layout: (current layout, old name) -> (new name, bytes the new type holds).
_COPIED_FROM_OLD = {("PPME_SYSCALL_BPF_2_X", "res_or_fd"): ("fd", 8)}


def _convert_old_exit(event: Event, layout: Layout) -> None:
    """What libscap's converter does with old parameters whose type changed: it copies their
    bytes, cut to the new type's size (converter.cpp push_parameter, cap_param_len). The old bpf
    exit's dynamic ``res_or_fd`` (a type byte, then 8 value bytes) thus becomes an ``fd`` made of
    the type byte and the value's low 7 bytes."""
    for (enum, old), (new, size) in _COPIED_FROM_OLD.items():
        if layout.enum != enum or old not in event.params or new in event.params:
            continue
        value = event.params[old]
        raw = bytes(value) if isinstance(value, bytes | bytearray) else b""
        if len(raw) >= size:
            event.params[new] = int.from_bytes(raw[:size], "little", signed=True)


def _thread_from_record(proc: ProcessInfo) -> ThreadInfo:
    t = ThreadInfo(proc.tid)
    t.pid, t.ptid, t.sid, t.vpgid, t.pgid = proc.pid, proc.ptid, proc.sid, proc.vpgid, proc.pgid
    t.comm = proc.comm
    t.exe = proc.exe
    t.exepath = proc.exepath
    t.exe_writable = bool(getattr(proc, "exe_writable", False))
    t.exe_upper_layer = bool(getattr(proc, "exe_upper_layer", False))
    t.exe_lower_layer = bool(getattr(proc, "exe_lower_layer", False))
    t.exe_from_memfd = bool(getattr(proc, "exe_from_memfd", False))
    t.set_args(tuple(proc.args))
    if t.is_main_thread():
        t.set_env(tuple(proc.env))
        t.cwd = ""
        t.update_cwd(proc.cwd)
    t.flags |= proc.flags | c.CL_ACTIVE
    t.fdlimit = proc.fdlimit
    # Memory sizes (kB) and page faults of the entry; read once the capture reader keeps them.
    t.vmsize, t.vmrss, t.vmswap = proc.vmsize_kb, proc.vmrss_kb, proc.vmswap_kb
    t.pfmajor, t.pfminor = proc.pfmajor, proc.pfminor
    t.cap_permitted, t.cap_effective = proc.cap_permitted, proc.cap_effective
    t.cap_inheritable = proc.cap_inheritable
    t.exe_ino, t.exe_ino_ctime, t.exe_ino_mtime = proc.exe_ino, proc.exe_ino_ctime, proc.exe_ino_mtime
    # A record without namespace ids means a host process: virtual ids equal real ones.
    t.vtid = proc.vtid if proc.vtid > 0 else proc.tid
    t.vpid = proc.vpid if proc.vpid > 0 else proc.pid
    t.pidns_init_start_ts = proc.pidns_init_start_ts
    t.clone_ts = proc.clone_ts
    t.tty = proc.tty
    t.cgroups = parse_cgroups(tuple(proc.cgroups))
    t.root = proc.root
    t.uid = proc.uid & 0xFFFFFFFF
    t.gid = proc.gid & 0xFFFFFFFF
    t.loginuid = proc.loginuid & 0xFFFFFFFF
    return t


def _orient_proc_sockets(thread: ThreadInfo, server_ports: set[int]) -> None:
    """Decide client/server roles of connected IPv4 sockets read from the proc list: a socket
    whose source port is a bound server port is the server end (its endpoints are swapped)."""
    for info in thread.fds.values():
        if info.fd_type != c.FD_IPV4_SOCK:
            continue
        if info.sport not in server_ports:
            info.flags |= ROLE_CLIENT
            continue
        info.swap_endpoints()
        info.name = tuple_text(info)
        info.flags |= ROLE_SERVER


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    return ""


_HANDLERS = {**parse_process.HANDLERS, **parse_fd.HANDLERS, **parse_net.HANDLERS}
