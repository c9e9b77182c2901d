"""Extractors for the ``evt.*`` and ``syscall.*`` fields of syscall events (libsinsp's event and
generic-event field classes)."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from typing import Any

from falcorules_ci.errors import ConditionError
from falcorules_ci.extract.base import Extractor
from falcorules_ci.extract.syscall_params import all_params_text, param_text, render
from falcorules_ci.fields.event_table import event_table
from falcorules_ci.sources.event import Event
from falcorules_ci.state import constants as c
from falcorules_ci.state.layouts import Layout, layout_of
from falcorules_ci.state.paths import concatenate_paths
from falcorules_ci.state.syscall_state import SyscallState

Factory = Callable[[str | None], Extractor]
NS = 1_000_000_000

_CATEGORY_NAMES = (
    ("EC_UNKNOWN", "unknown"), ("EC_OTHER", "other"), ("EC_FILE", "file"), ("EC_NET", "net"),
    ("EC_IPC", "IPC"), ("EC_MEMORY", "memory"), ("EC_PROCESS", "process"), ("EC_SLEEP", "sleep"),
    ("EC_SYSTEM", "system"), ("EC_SIGNAL", "signal"), ("EC_USER", "user"), ("EC_TIME", "time"),
    ("EC_PROCESSING", "processing"), ("EC_WAIT", "wait"), ("EC_SCHEDULER", "scheduler"),
    ("EC_INTERNAL", "internal"),
)  # fmt: skip
_IO_CATEGORIES = frozenset({"EC_IO_READ", "EC_IO_WRITE", "EC_IO_OTHER"})
_NET_FD_TYPES = frozenset({c.FD_IPV4_SOCK, c.FD_IPV6_SOCK, c.FD_IPV4_SERVSOCK, c.FD_IPV6_SERVSOCK})
_FILE_FD_TYPES = frozenset({c.FD_FILE, c.FD_FILE_V2})


# --- time ------------------------------------------------------------------------------------

_local_offset: int | None = None


def _utc_offset() -> int:
    """The local zone's offset from UTC in seconds, taken once (libsinsp's ``gmt2local``)."""
    global _local_offset
    if _local_offset is None:
        now = _dt.datetime.now().astimezone()
        offset = now.utcoffset()
        _local_offset = int(offset.total_seconds()) if offset is not None else 0
    return _local_offset


def time_text(ts: int, *, date: bool, nanos: bool) -> str:
    """``HH:MM:SS.nnnnnnnnn`` (optionally preceded by the date) in local time."""
    sec, nsec = divmod(ts, NS)
    local = sec + _utc_offset()
    day_seconds = local % 86400
    text = ""
    if date:
        day = _dt.datetime.fromtimestamp(local - day_seconds, _dt.UTC)
        text = f"{day.year:04d}-{day.month:02d}-{day.day:02d} "
    text += f"{day_seconds // 3600:02d}:{day_seconds % 3600 // 60:02d}:{day_seconds % 60:02d}"
    return text + f".{nsec:09d}" if nanos else text


def iso8601_text(ts: int) -> str:
    sec, nsec = divmod(ts, NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{nsec:09d}+0000"


# --- helpers ---------------------------------------------------------------------------------


def _layout(ev: Event) -> Layout | None:
    return layout_of(ev.code)


def has_return_value(layout: Layout | None, ev: Event) -> bool:
    return (
        layout is not None
        and layout.is_syscall
        and not ev.is_enter
        and bool(layout.params)
        and layout.name != "syscall"
    )


def return_value(layout: Layout, ev: Event) -> int:
    value = ev.params.get(layout.params[0])
    return value if isinstance(value, int) else 0


def _const(value: Any) -> Extractor:
    def extract(ev: Event, st: SyscallState) -> Any:
        return value

    return extract


def _simple(fn: Extractor) -> Factory:
    return lambda arg: fn


# --- extractors ------------------------------------------------------------------------------


def _evt_num(ev: Event, st: SyscallState) -> Any:
    return ev.num


def _evt_type(ev: Event, st: SyscallState) -> Any:
    if ev.code == 402:
        name = ev.params.get("name")
        if isinstance(name, str):
            return name
    return ev.name


def _syscall_type(ev: Event, st: SyscallState) -> Any:
    layout = _layout(ev)
    return ev.name if layout is not None and layout.is_syscall else None


def _evt_dir(ev: Event, st: SyscallState) -> Any:
    return ">" if ev.is_enter else "<"


_IPC_FD_TYPES = frozenset({c.FD_FIFO, c.FD_UNIX_SOCK, c.FD_EVENT, c.FD_SIGNALFD, c.FD_INOTIFY,
                           c.FD_USERFAULTFD})  # fmt: skip


def _evt_category(ev: Event, st: SyscallState) -> Any:
    """The syscall category (the source bits SYSCALL/TRACEPOINT/PLUGIN/METAEVENT masked off);
    I/O events are named after their fd's kind."""
    layout = _layout(ev)
    if layout is None:
        return "unknown"
    cats = layout.category
    if cats & _IO_CATEGORIES:
        fd = st.fd if st.event is ev else None
        if fd is None:
            return "unknown"
        if fd.fd_type in _FILE_FD_TYPES or fd.fd_type == c.FD_DIRECTORY:
            return "file"
        if fd.fd_type in _NET_FD_TYPES:
            return "net"
        if fd.fd_type in _IPC_FD_TYPES:
            return "ipc"
        return "unknown"
    for key, name in _CATEGORY_NAMES:
        if key in cats:
            return name
    return "unknown"


def _evt_res(ev: Event, st: SyscallState) -> Any:
    layout = _layout(ev)
    if layout is None or not has_return_value(layout, ev):
        return None
    if return_value(layout, ev) >= 0:
        return "SUCCESS"
    plain, resolved = render(layout, 0, ev, st)
    return resolved or plain


def _evt_rawres(ev: Event, st: SyscallState) -> Any:
    layout = _layout(ev)
    if layout is None or not has_return_value(layout, ev):
        return None
    return return_value(layout, ev)


def _evt_failed(ev: Event, st: SyscallState) -> Any:
    layout = _layout(ev)
    if layout is None or not has_return_value(layout, ev):
        return None
    return return_value(layout, ev) < 0


def _error_count(ev: Event, st: SyscallState) -> Any:
    failed = _evt_failed(ev, st)
    return None if failed is None else int(failed)


def _flag(name: str) -> Extractor:
    def extract(ev: Event, st: SyscallState) -> Any:
        layout = _layout(ev)
        return layout is not None and name in layout.flags

    return extract


def _evt_is_io(ev: Event, st: SyscallState) -> Any:
    layout = _layout(ev)
    return layout is not None and (layout.reads or layout.writes)


def _evt_io_dir(ev: Event, st: SyscallState) -> Any:
    layout = _layout(ev)
    if layout is None:
        return None
    if layout.writes:
        return "write"
    if layout.reads:
        return "read"
    return None


def _evt_is_syslog(ev: Event, st: SyscallState) -> Any:
    layout = _layout(ev)
    fd = st.fd if st.event is ev else None
    return bool(layout is not None and layout.writes and fd is not None and "/dev/log" in fd.name)


def _evt_args(ev: Event, st: SyscallState) -> Any:
    return all_params_text(ev, st)


def _evt_buffer(ev: Event, st: SyscallState) -> Any:
    """In a condition: the ``data`` parameter's raw bytes (empty when the parameter is; a dynamic
    parameter keeps its type byte), None for an event without one."""
    data = ev.params.get("data")
    if data is None:
        layout = _layout(ev)
        # The reader leaves zero-length parameters out; libsinsp still has the (empty) parameter.
        return b"" if layout is not None and "data" in layout.index else None
    return bytes(data) if isinstance(data, bytes | bytearray) else str(data).encode("utf-8", "surrogateescape")


def _buflen(category: str | None, fd_types: frozenset[int] | None) -> Extractor:
    def extract(ev: Event, st: SyscallState) -> Any:
        layout = _layout(ev)
        fd = st.fd if st.event is ev else None
        if layout is None or fd is None or ev.is_enter:
            return None
        if category is None:
            if not layout.category & _IO_CATEGORIES:
                return None
        elif category not in layout.category:
            return None
        if fd_types is not None and fd.fd_type not in fd_types:
            return None
        res = return_value(layout, ev) if layout.params else 0
        return res if res >= 0 else None

    return extract


_OPEN_ENUMS = frozenset({"PPME_SYSCALL_OPEN_X", "PPME_SYSCALL_OPENAT_2_X", "PPME_SYSCALL_OPENAT2_X",
                         "PPME_SYSCALL_OPEN_BY_HANDLE_AT_X"})  # fmt: skip
_EXEC_MASK = c.S_IXUSR | c.S_IXGRP | c.S_IXOTH


def _is_open(kind: str) -> Extractor:
    def extract(ev: Event, st: SyscallState) -> Any:
        layout = _layout(ev)
        if layout is None or ev.is_enter:
            return False
        p = ev.params
        if layout.enum in _OPEN_ENUMS:
            flags = p.get("flags")
            flags = flags if isinstance(flags, int) else 0
            if kind == "read":
                return bool(flags & c.O_RDONLY)
            if kind == "write":
                return bool(flags & c.O_WRONLY)
            if kind == "create":
                if flags & c.O_F_CREATED:
                    return True
                return bool(flags & c.O_TMPFILE) and return_value(layout, ev) >= 0
            if flags & (c.O_TMPFILE | c.O_CREAT) and layout.enum != "PPME_SYSCALL_OPEN_BY_HANDLE_AT_X":
                mode = p.get("mode")
                return isinstance(mode, int) and bool(mode & _EXEC_MASK)
            return False
        if kind == "exec" and layout.enum == "PPME_SYSCALL_CREAT_X":
            mode = p.get("mode")
            return bool(mode & _EXEC_MASK) if isinstance(mode, int) else False
        return False

    return extract


def _evt_arg(arg: str | None) -> Extractor:
    if arg is None:
        raise ConditionError("the field 'evt.arg' requires an argument")
    key: str | int = int(arg) if arg.lstrip("-").isdigit() else arg

    def extract(ev: Event, st: SyscallState) -> Any:
        return param_text(ev, st, key)

    return extract


def _evt_rawarg(arg: str | None) -> Extractor:
    if arg is None:
        raise ConditionError("evt.arg fields must be expressed explicitly")

    def extract(ev: Event, st: SyscallState) -> Any:
        value = ev.params.get(arg)
        if value is None:
            return None
        if isinstance(value, str):
            return value.split("\0", 1)[0]
        return value

    return extract


def _evt_type_is(arg: str | None) -> Extractor:
    wanted: tuple[int, ...]
    if arg is None:
        wanted = ()
    elif arg.isdigit():
        wanted = (int(arg),)
    else:
        codes = sorted(code for code, info in event_table().by_code.items() if info.name == arg)
        wanted = (codes[0], codes[0] + 1) if codes else ()

    def extract(ev: Event, st: SyscallState) -> Any:
        layout = _layout(ev)
        code = layout.current_code if layout is not None else ev.code
        return 1 if code in wanted else 0

    return extract


def _evt_abspath(arg: str | None) -> Extractor:
    which = {"src": 1, "dst": 2}.get(arg or "", 0)
    pairs = {
        "renameat": {0: ("olddirfd", "oldpath"), 1: ("olddirfd", "oldpath"), 2: ("newdirfd", "newpath")},
        "renameat2": {0: ("olddirfd", "oldpath"), 1: ("olddirfd", "oldpath"), 2: ("newdirfd", "newpath")},
        "linkat": {0: ("olddir", "oldpath"), 1: ("olddir", "oldpath"), 2: ("newdir", "newpath")},
        "symlinkat": {0: ("linkdirfd", "linkpath"), 1: ("linkdirfd", "linkpath"), 2: ("linkdirfd", "linkpath")},
        "openat": {w: ("dirfd", "name") for w in (0, 1, 2)},
        "openat2": {w: ("dirfd", "name") for w in (0, 1, 2)},
        "unlinkat": {w: ("dirfd", "name") for w in (0, 1, 2)},
        "mkdirat": {w: ("dirfd", "path") for w in (0, 1, 2)},
        "fchmodat": {w: ("dirfd", "filename") for w in (0, 1, 2)},
        "fchownat": {w: ("dirfd", "pathname") for w in (0, 1, 2)},
    }  # fmt: skip

    def extract(ev: Event, st: SyscallState) -> Any:
        thread = st.thread if st.event is ev else st.threads.get(ev.tid)
        if thread is None or ev.is_enter:
            return None
        if ev.name == "open_by_handle_at":
            res = ev.params.get("fd")
            path = ev.params.get("path")
            if isinstance(res, int) and res > 0 and isinstance(path, str):
                return concatenate_paths("", path)
            return None
        names = pairs.get(ev.name, {}).get(which)
        if names is None:
            return None
        dirfd, path = ev.params.get(names[0]), ev.params.get(names[1])
        if not isinstance(dirfd, int) or not isinstance(path, str) or not path:
            return None
        if path.startswith("/"):
            sdir = "."
        elif dirfd == c.AT_FDCWD:
            sdir = thread.get_cwd()
        else:
            info = thread.get_fd(dirfd)
            sdir = "<UNKNOWN>/" if info is None else info.name + "/"
        return concatenate_paths(sdir, path)

    return extract


class AroundWindow:
    """The value of ``evt.around[T]``: the comparison ``evt.around[T]=D`` (the only one libsinsp
    allows) holds when T lies within D milliseconds of the event's time."""

    __slots__ = ("center", "ts")

    def __init__(self, center: int, ts: int) -> None:
        self.center = center
        self.ts = ts

    def matches(self, delta_ms: int) -> bool:
        delta = delta_ms * 1_000_000
        return self.ts - delta <= self.center <= self.ts + delta

    def __repr__(self) -> str:
        return f"AroundWindow(center={self.center}, ts={self.ts})"


def _evt_around(arg: str | None) -> Extractor:
    center = int(arg) if arg is not None and arg.isdigit() else 0
    return lambda ev, st: AroundWindow(center, ev.ts)


def _deltatime(kind: str) -> Factory:
    def factory(arg: str | None) -> Extractor:
        previous = [0]

        def extract(ev: Event, st: SyscallState) -> Any:
            ts = ev.ts
            if previous[0] == 0:
                previous[0] = ts
                return 0
            delta = ts - previous[0]
            previous[0] = ts
            if kind == "s":
                return delta // NS
            if kind == "ns":
                return delta % NS
            return delta

        return extract

    return factory


def _counter(arg: str | None) -> Extractor:
    count = [0]

    def extract(ev: Event, st: SyscallState) -> Any:
        count[0] += 1
        return count[0]

    return extract


def _error_count_of(kind: str) -> Extractor:
    fd_kinds = {
        "file": frozenset({c.FD_FILE, c.FD_FILE_V2, c.FD_DIRECTORY}),
        "net": frozenset(_NET_FD_TYPES | {c.FD_UNIX_SOCK}),
    }
    open_names = frozenset({"open", "creat", "openat", "openat2", "open_by_handle_at"})
    net_names = frozenset({"accept", "accept4", "connect"})

    def extract(ev: Event, st: SyscallState) -> Any:
        layout = _layout(ev)
        fd = st.fd if st.event is ev else None
        memory = layout is not None and "EC_MEMORY" in layout.category
        if kind == "memory":
            return _error_count(ev, st) if memory else None
        if kind in fd_kinds:
            if fd is not None:
                return _error_count(ev, st) if fd.fd_type in fd_kinds[kind] else None
            names = open_names if kind == "file" else net_names
            return _error_count(ev, st) if not ev.is_enter and ev.name in names else None
        if fd is not None:
            other = fd.fd_type not in fd_kinds["file"] | fd_kinds["net"]
            return _error_count(ev, st) if other else None
        special = not ev.is_enter and ev.name in open_names | net_names
        return None if special or memory else _error_count(ev, st)

    return extract


def _infra(kind: str) -> Extractor:
    def extract(ev: Event, st: SyscallState) -> Any:
        if ev.name != "infra":
            return None
        desc = ev.params.get("description")
        if not isinstance(desc, str):
            return None
        for raw in desc.split(";"):
            item = raw.strip()
            if kind == "name" and item.startswith("Event"):
                return item.split(":", 1)[-1].strip()
            if kind == "id" and item.startswith("ID"):
                return item.split(":", 1)[-1].strip()[:12]
            if kind == "cname" and item.startswith("name"):
                return item.split(":", 1)[-1].strip()
            if kind == "image" and item.startswith("Image"):
                value = item.split(":", 1)[-1]
                if "@" in value:
                    value = value[: value.find("@")]
                return value.strip()
        return None

    return extract


def _hostname(ev: Event, st: SyscallState) -> Any:
    return st.hostname


def _source(ev: Event, st: SyscallState) -> Any:
    return ev.source or None


def _is_async(ev: Event, st: SyscallState) -> Any:
    layout = _layout(ev)
    return layout is not None and layout.is_meta


def _asynctype(ev: Event, st: SyscallState) -> Any:
    layout = _layout(ev)
    if layout is None or not layout.is_meta:
        return None
    return _evt_type(ev, st)


def _reltime(kind: str) -> Extractor:
    def extract(ev: Event, st: SyscallState) -> Any:
        delta = ev.ts - st.first_ts
        if kind == "s":
            return delta // NS
        if kind == "ns":
            return delta % NS
        return delta

    return extract


FACTORIES: dict[str, Factory] = {
    "evt.num": _simple(_evt_num),
    "evt.time": _simple(lambda ev, st: time_text(ev.ts, date=False, nanos=True)),
    "evt.time.s": _simple(lambda ev, st: time_text(ev.ts, date=False, nanos=False)),
    "evt.time.iso8601": _simple(lambda ev, st: iso8601_text(ev.ts)),
    "evt.datetime": _simple(lambda ev, st: time_text(ev.ts, date=True, nanos=True)),
    "evt.datetime.s": _simple(lambda ev, st: time_text(ev.ts, date=True, nanos=False)),
    "evt.outputtime": _simple(lambda ev, st: time_text(ev.ts, date=False, nanos=True)),
    "evt.rawtime": _simple(lambda ev, st: ev.ts),
    "evt.rawtime.s": _simple(lambda ev, st: ev.ts // NS),
    "evt.rawtime.ns": _simple(lambda ev, st: ev.ts % NS),
    "evt.reltime": _simple(_reltime("")),
    "evt.reltime.s": _simple(_reltime("s")),
    "evt.reltime.ns": _simple(_reltime("ns")),
    "evt.pluginname": _simple(_const(None)),
    "evt.plugininfo": _simple(_const(None)),
    "evt.source": _simple(_source),
    "evt.is_async": _simple(_is_async),
    "evt.asynctype": _simple(_asynctype),
    "evt.hostname": _simple(_hostname),
    "evt.latency": _simple(_const(0)),
    "evt.latency.s": _simple(_const(0)),
    "evt.latency.ns": _simple(_const(0)),
    "evt.latency.quantized": _simple(_const(0)),
    "evt.latency.human": _simple(_const("0ns")),
    "evt.wait_latency": _simple(_const(0)),
    "evt.deltatime": _deltatime(""),
    "evt.deltatime.s": _deltatime("s"),
    "evt.deltatime.ns": _deltatime("ns"),
    "evt.dir": _simple(_evt_dir),
    "evt.type": _simple(_evt_type),
    "evt.type.is": _evt_type_is,
    "syscall.type": _simple(_syscall_type),
    "evt.category": _simple(_evt_category),
    "evt.cpu": _simple(lambda ev, st: ev.cpu),
    "evt.args": _simple(_evt_args),
    "evt.info": _simple(_evt_args),
    "evt.arg": _evt_arg,
    "evt.rawarg": _evt_rawarg,
    "evt.buffer": _simple(_evt_buffer),
    "evt.buflen": _simple(_buflen(None, None)),
    "evt.buflen.in": _simple(_buflen("EC_IO_READ", None)),
    "evt.buflen.out": _simple(_buflen("EC_IO_WRITE", None)),
    "evt.buflen.file": _simple(_buflen(None, _FILE_FD_TYPES)),
    "evt.buflen.file.in": _simple(_buflen("EC_IO_READ", _FILE_FD_TYPES)),
    "evt.buflen.file.out": _simple(_buflen("EC_IO_WRITE", _FILE_FD_TYPES)),
    "evt.buflen.net": _simple(_buflen(None, _NET_FD_TYPES)),
    "evt.buflen.net.in": _simple(_buflen("EC_IO_READ", _NET_FD_TYPES)),
    "evt.buflen.net.out": _simple(_buflen("EC_IO_WRITE", _NET_FD_TYPES)),
    "evt.res": _simple(_evt_res),
    "evt.rawres": _simple(_evt_rawres),
    "evt.failed": _simple(_evt_failed),
    "evt.is_io": _simple(_evt_is_io),
    "evt.is_io_read": _simple(_flag("EF_READS_FROM_FD")),
    "evt.is_io_write": _simple(_flag("EF_WRITES_TO_FD")),
    "evt.io_dir": _simple(_evt_io_dir),
    "evt.is_wait": _simple(_flag("EF_WAITS")),
    "evt.is_syslog": _simple(_evt_is_syslog),
    "evt.count": _simple(_const(1)),
    "evt.count.error": _simple(_error_count),
    "evt.count.error.file": _simple(_error_count_of("file")),
    "evt.count.error.net": _simple(_error_count_of("net")),
    "evt.count.error.memory": _simple(_error_count_of("memory")),
    "evt.count.error.other": _simple(_error_count_of("other")),
    "evt.count.exit": _simple(lambda ev, st: None if ev.is_enter else 1),
    "evt.count.procinfo": _simple(
        lambda ev, st: int(ev.name == "procinfo" and st.thread is not None and st.thread.is_main_thread())
    ),
    "evt.count.threadinfo": _simple(lambda ev, st: int(ev.name == "procinfo")),
    "evt.abspath": _evt_abspath,
    "evt.around": _evt_around,
    "evt.is_open_read": _simple(_is_open("read")),
    "evt.is_open_write": _simple(_is_open("write")),
    "evt.is_open_exec": _simple(_is_open("exec")),
    "evt.is_open_create": _simple(_is_open("create")),
    "evt.infra.docker.name": _simple(_infra("name")),
    "evt.infra.docker.container.id": _simple(_infra("id")),
    "evt.infra.docker.container.name": _simple(_infra("cname")),
    "evt.infra.docker.container.image": _simple(_infra("image")),
    "util.cnt": _counter,
}

