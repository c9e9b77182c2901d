"""Extractors for ``fd.*``, ``fdlist.*`` and ``fs.path.*`` (libsinsp's fd, fdlist and fspath field
classes).

``fd.*`` fields apply to events that create, use or destroy an fd. When the fd is unknown, a few
fields fall back to the event's own parameters (``fd.name`` of a failed ``openat`` is the path it
tried) and ``fd.typechar`` to a per-syscall guess, as libsinsp does. Socket fields that depend on
which end is local (``fd.lip``, ``fd.rport``, ...) compare the source address with the machine's
interfaces, or with the container's IP for container threads.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from falcorules_ci.extract.base import EitherEnd, Extractor
from falcorules_ci.extract.syscall_params import param_text
from falcorules_ci.sources.event import Event
from falcorules_ci.state import constants as c
from falcorules_ci.state.fds import (
    OVERLAY_LOWER,
    OVERLAY_UPPER,
    SERVER_SOCKETS,
    SOCKET_CONNECTED,
    TUPLE_SOCKETS,
    FdInfo,
)
from falcorules_ci.state.layouts import layout_of
from falcorules_ci.state.paths import concatenate_paths
from falcorules_ci.state.sockets import ZERO_V6
from falcorules_ci.state.syscall_state import SyscallState
from falcorules_ci.state.threads import ThreadInfo

Factory = Callable[[str | None], Extractor]
_L4_NAMES = {c.L4_TCP: "tcp", c.L4_UDP: "udp", c.L4_ICMP: "icmp", c.L4_RAW: "raw"}
_TYPECHAR_GUESS = {
    "openat": "f", "openat2": "f", "creat": "f", "socket": "4", "accept": "4", "accept4": "4",
    "pipe": "p", "pipe2": "p", "eventfd": "e", "eventfd2": "e", "signalfd": "s", "signalfd4": "s",
    "timerfd_create": "t", "inotify_init": "i", "inotify_init1": "i",
}  # fmt: skip
_NAME_FROM_PARAM = frozenset({"open", "creat", "accept", "accept4", "connect"})


def _context(ev: Event, st: SyscallState) -> tuple[ThreadInfo, FdInfo | None] | None:
    """The event's thread and fd, or None when fd fields do not apply to the event."""
    if st.event is ev:
        layout = st.layout
        t = st.thread
        if layout is None or not layout.fd_related or t is None:
            return None
        fd = st.fd
        if fd is None and st.fd_num != -1:
            fd = t.get_fd(st.fd_num)
        return t, fd
    layout = layout_of(ev.code)
    other = st.threads.get(ev.tid)
    if layout is None or not layout.fd_related or other is None:
        return None
    return other, other.get_fd(other.lastevent_fd) if other.lastevent_fd != -1 else None


def _fd_number(ev: Event, st: SyscallState, t: ThreadInfo) -> int:
    return st.fd_num if st.event is ev else t.lastevent_fd


def _name_from_event(ev: Event, st: SyscallState, raw: bool) -> str | None:
    """fd.name of an event whose fd is unknown, from its parameters (None: no name)."""
    if ev.is_enter:
        return None
    name = ev.name
    if name in _NAME_FROM_PARAM:
        return param_text(ev, st, 1)
    if name in ("openat", "openat2"):
        path = ev.params.get("name")
        if not isinstance(path, str):
            return None
        if raw:
            return path
        dirfd = ev.params.get("dirfd")
        if not isinstance(dirfd, int):
            return None
        return concatenate_paths(st.parse_dirfd(path, dirfd), path)
    if name == "open_by_handle_at":
        path = ev.params.get("path")
        return path if isinstance(path, str) else ""
    return ""


def _fd_field(getter: Callable[[FdInfo, ThreadInfo, Event, SyscallState], Any]) -> Factory:
    def factory(arg: str | None) -> Extractor:
        def extract(ev: Event, st: SyscallState) -> Any:
            ctx = _context(ev, st)
            if ctx is None or ctx[1] is None:
                return None
            return getter(ctx[1], ctx[0], ev, st)

        return extract

    return factory


def _fd_num(arg: str | None) -> Extractor:
    def extract(ev: Event, st: SyscallState) -> Any:
        ctx = _context(ev, st)
        return None if ctx is None else _fd_number(ev, st, ctx[0])

    return extract


def _fd_name(container: bool) -> Factory:
    def factory(arg: str | None) -> Extractor:
        def extract(ev: Event, st: SyscallState) -> Any:
            ctx = _context(ev, st)
            if ctx is None:
                return None
            t, fd = ctx
            name = fd.name if fd is not None else _name_from_event(ev, st, raw=False)
            if name is None:
                return None
            return f"{t.container_id}:{name}" if container else name

        return extract

    return factory


def _fd_directory(container: bool) -> Factory:
    def factory(arg: str | None) -> Extractor:
        def extract(ev: Event, st: SyscallState) -> Any:
            ctx = _context(ev, st)
            if ctx is None:
                return None
            t, fd = ctx
            if fd is None:
                name = _name_from_event(ev, st, raw=False)
                if name is None:
                    return None
            elif not (fd.is_file() or fd.is_directory()):
                return None
            else:
                name = fd.name
            if fd is None or fd.is_file():
                pos = name.rfind("/")
                if pos > 0:
                    if pos < len(name) - 1:
                        name = name[:pos]
                else:
                    name = "/"
            return f"{t.container_id}:{name}" if container else name

        return extract

    return factory


def _filename(fd: FdInfo, t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
    if not fd.is_file():
        return None
    name = fd.name
    pos = name.rfind("/")
    if pos < 0:
        return "/"
    return name[pos + 1 :] if pos < len(name) - 1 else name


def _typechar(arg: str | None) -> Extractor:
    def extract(ev: Event, st: SyscallState) -> Any:
        ctx = _context(ev, st)
        if ctx is None:
            return None
        fd = ctx[1]
        if fd is not None:
            return fd.typechar
        return _TYPECHAR_GUESS.get(ev.name, "o")

    return extract


def _fd_types(arg: str | None) -> Extractor:
    index = int(arg) if arg is not None and arg.lstrip("-").isdigit() else None

    def extract(ev: Event, st: SyscallState) -> Any:
        ctx = _context(ev, st)
        if ctx is None:
            return None
        t = ctx[0]
        if index is not None:
            fd = t.get_fd(index)
            return [fd.typestring] if fd is not None else None
        table = t.fd_table() or {}
        kinds: list[str] = []
        for info in table.values():
            if info.typestring not in kinds:
                kinds.append(info.typestring)
        return kinds or None

    return extract


def _is_local(fd: FdInfo, t: ThreadInfo, st: SyscallState) -> bool:
    """Whether the socket's source address is this machine's (or this container's)."""
    addr = fd.sip
    if fd.fd_type == c.FD_IPV4_SOCK:
        if t.container_id:
            record = st.containers.get(t.container_id)
            ip = record.ip if record is not None else ""
            if ip:
                return str(addr) == ip
            return addr is not None and st.containers.any_ip_equals(str(addr))
        return st.interfaces.is_local_v4(addr)
    if t.container_id:
        return False
    # An address never set is all zeros in libsinsp's socket info, which shares its first 64 bits
    # with ::1 (ipv6addr::in_subnet compares only those).
    return st.interfaces.is_local_v6(addr if addr is not None else ZERO_V6)


def _local_first(fd: FdInfo, t: ThreadInfo, st: SyscallState, kind: str) -> bool:
    """Whether the wanted end is the socket's source end (client, or local/remote by address)."""
    if kind == "client":
        return True
    local = _is_local(fd, t, st)
    return local if kind == "local" else not local


def _tuple_end(kind: str, want: str) -> Factory:
    """Client/local/remote address or port of a connected socket (no value without a role)."""

    def getter(fd: FdInfo, t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
        if fd.fd_type not in TUPLE_SOCKETS or fd.is_role_none():
            return None
        source = _local_first(fd, t, st, kind)
        if want == "addr":
            return fd.sip if source else fd.dip
        return fd.sport if source else fd.dport

    return _fd_field(getter)


def _server_ip(fd: FdInfo, t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
    if fd.is_role_none():
        return None
    if fd.fd_type in TUPLE_SOCKETS:
        return fd.dip
    if fd.fd_type in SERVER_SOCKETS:
        return fd.sip
    return None


def _server_port(fd: FdInfo, t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
    # Unlike the server address, a bound socket's port needs no role.
    if fd.fd_type in TUPLE_SOCKETS:
        return None if fd.is_role_none() else fd.dport
    if fd.fd_type in SERVER_SOCKETS:
        return fd.sport
    return None


def _proto_text(kind: str) -> Factory:
    """fd.cproto/sproto/lproto/rproto: the port as text (no service names: resolution is off)."""

    def getter(fd: FdInfo, t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
        tuple_socket = fd.fd_type in TUPLE_SOCKETS
        if kind == "server":
            if tuple_socket:
                return None if fd.is_role_none() else str(fd.dport)
            return "" if fd.fd_type in SERVER_SOCKETS else None
        if kind == "client":
            if fd.is_role_none():
                return None
            return str(fd.sport) if tuple_socket else ""
        if not tuple_socket or fd.is_role_none():
            return None
        return str(fd.sport if _local_first(fd, t, st, kind) else fd.dport)

    return _fd_field(getter)


_UNSET_V4 = IPv4Address(0)
_UNSET_V6 = IPv6Address(0)


def _either(kind: str) -> Factory:
    """fd.ip / fd.net / fd.port / fd.proto: both ends of a connection (or the server address)."""

    def getter(fd: FdInfo, t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
        # libsinsp keeps a socket's info zeroed until it has an address, and compares that zero.
        unset = _UNSET_V6 if fd.fd_type in (c.FD_IPV6_SOCK, c.FD_IPV6_SERVSOCK) else _UNSET_V4
        if fd.fd_type in TUPLE_SOCKETS:
            if kind == "addr":
                return EitherEnd((fd.sip or unset, fd.dip or unset))
            return EitherEnd((fd.sport or 0, fd.dport or 0))
        if fd.fd_type in SERVER_SOCKETS:
            return EitherEnd((fd.sip or unset,)) if kind == "addr" else EitherEnd((fd.sport or 0, fd.sport or 0))
        # Not an IP socket: `exists` is still true in libsinsp, every comparison false.
        return EitherEnd(())

    return _fd_field(getter)


def _l4proto(fd: FdInfo, t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
    return _L4_NAMES.get(fd.l4proto_effective(), "<NA>")


def _is_server(fd: FdInfo, t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
    if fd.fd_type in SERVER_SOCKETS:
        return True
    if fd.fd_type == c.FD_IPV4_SOCK:
        if t.container_id:
            record = st.containers.get(t.container_id)
            ip = record.ip if record is not None else ""
            if ip:
                return str(fd.dip) == ip
            return fd.dip is not None and st.containers.any_ip_equals(str(fd.dip))
        return st.interfaces.is_local_v4(fd.dip)
    if fd.fd_type == c.FD_IPV6_SOCK:
        return not t.container_id and st.interfaces.is_local_v6(fd.dip if fd.dip is not None else ZERO_V6)
    return False


def _sockfamily(fd: FdInfo, t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
    if fd.fd_type in TUPLE_SOCKETS or fd.fd_type in SERVER_SOCKETS:
        return "ip"
    if fd.fd_type == c.FD_UNIX_SOCK:
        return "unix"
    return None


def _fd_uid(arg: str | None) -> Extractor:
    def extract(ev: Event, st: SyscallState) -> Any:
        ctx = _context(ev, st)
        return None if ctx is None else f"{ctx[0].tid}{_fd_number(ev, st, ctx[0])}"

    return extract


def _name_changed(fd: FdInfo, t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
    return st.fd_name_changed if st.event is ev else False


def _nameraw(arg: str | None) -> Extractor:
    def extract(ev: Event, st: SyscallState) -> Any:
        ctx = _context(ev, st)
        if ctx is None:
            return None
        fd = ctx[1]
        name = fd.name_raw if fd is not None else _name_from_event(ev, st, raw=True)
        if name is None:
            return None
        while "//" in name:
            name = name.replace("//", "/")
        return name

    return extract


def _resolved_names(fd: FdInfo, t: ThreadInfo, st: SyscallState, kind: str) -> EitherEnd | None:
    """The host names that resolve to the wanted end's address (no value where libsinsp's
    fd.*ip.name has none: not an IP socket, or no role yet).

    libsinsp compares ``fd.sip.name = NAME`` by resolving NAME and looking for the fd's address
    among the answers (``!=``: not among them), so the value is every name the address is an
    answer for, compared either-end style. A listening socket only has a name when one resolves
    to its address; a connected socket always has a (possibly empty) set, so ``!=`` holds when
    nothing resolves to it.
    """
    if fd.is_role_none():
        return None
    if fd.fd_type in SERVER_SOCKETS:
        if kind != "server":
            return None
        names = st.dns.names_of(fd.sip)
        return EitherEnd(names) if names else None
    if fd.fd_type not in TUPLE_SOCKETS:
        return None
    if kind == "server":
        source = False
    else:
        source = _local_first(fd, t, st, kind)
    return EitherEnd(st.dns.names_of(fd.sip if source else fd.dip))


def _dns_name(kind: str) -> Factory:
    return _fd_field(lambda fd, t, ev, st: _resolved_names(fd, t, st, kind))


def _dns_name_output(kind: str) -> Factory:
    """In an output, libsinsp prints the first cached name that resolves to the address."""

    def getter(fd: FdInfo, t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
        names = _resolved_names(fd, t, st, kind)
        return names[0] if names else None

    return _fd_field(getter)


# --- fdlist ----------------------------------------------------------------------------------


def _fdlist(kind: str) -> Factory:
    def factory(arg: str | None) -> Extractor:
        def extract(ev: Event, st: SyscallState) -> Any:
            if ev.is_enter or ev.name not in ("poll", "ppoll"):
                return None
            fds = ev.params.get("fds")
            t = st.thread if st.event is ev else st.threads.get(ev.tid)
            if t is None or not isinstance(fds, tuple | list):
                return None
            parts: list[str] = []
            for item in fds:
                fdnum = item[0]
                info = t.get_fd(fdnum)
                part = _fdlist_item(kind, fdnum, info)
                if part is not None:
                    parts.append(part)
            return ",".join(parts) or None

        return extract

    return factory


def _fdlist_item(kind: str, fdnum: int, info: FdInfo | None) -> str | None:
    if kind == "nums":
        return str(fdnum)
    if kind == "names":
        return info.name if info is not None and info.name else "<NA>"
    if info is None:
        return None
    if kind == "cips" and info.fd_type in TUPLE_SOCKETS:
        return str(info.sip)
    if kind == "sips" and (info.fd_type in TUPLE_SOCKETS or info.fd_type in SERVER_SOCKETS):
        addr = info.dip if info.fd_type in TUPLE_SOCKETS else info.sip
        if info.fd_type == c.FD_IPV6_SERVSOCK:
            # libsinsp formats an IPv6 server address as IPv4 (its first four bytes).
            return str(IPv4Address(int(addr or 0) >> 96))
        return str(addr)
    if kind in ("cports", "sports") and info.fd_type in TUPLE_SOCKETS:
        return str(info.sport if kind == "cports" else info.dport)
    return None


# --- fs.path ---------------------------------------------------------------------------------

# Per current exit layout: the parameter whose value must signal success, and the path
# parameters (or "fd" for the event's fd name) for name, source and target.
_FSPATH: dict[str, tuple[str, str | None, str | None, str | None]] = {
    "mkdir": ("res", "path", None, None), "mkdirat": ("res", "path", None, None),
    "rmdir": ("res", "path", None, None), "unlink": ("res", "path", None, None),
    "unlinkat": ("res", "name", None, None), "open": ("fd", "name", None, None),
    "openat": ("fd", "name", None, None), "openat2": ("fd", "name", None, None),
    "fchmodat": ("res", "filename", None, None), "chmod": ("res", "filename", None, None),
    "fchmod": ("res", "fd", None, None), "chown": ("res", "path", None, None),
    "lchown": ("res", "path", None, None), "fchown": ("res", "fd", None, None),
    "fchownat": ("res", "pathname", None, None), "quotactl": ("res", "special", None, None),
    "rename": ("res", None, "oldpath", "newpath"), "renameat": ("res", None, "oldpath", "newpath"),
    "renameat2": ("res", None, "oldpath", "newpath"), "link": ("res", None, "newpath", "oldpath"),
    "linkat": ("res", None, "newpath", "oldpath"), "symlink": ("res", None, "linkpath", "target"),
    "symlinkat": ("res", None, "linkpath", "target"), "mount": ("res", None, "dev", "dir"),
    "umount": ("res", "name", None, None), "umount2": ("res", "name", None, None),
}  # fmt: skip
_DIRFD_SDIR = frozenset({"newfstatat", "fchownat", "fchmodat", "mkdirat", "unlinkat", "mknodat"})


def _format_dirfd(st: SyscallState, ev: Event) -> str:
    fd = st.fd if st.event is ev else None
    if fd is None or not fd.is_directory():
        return "<UNKNOWN>"
    if not fd.name or fd.name.endswith("/"):
        return fd.name
    return fd.name + "/"


def _fs_path(which: int, raw: bool) -> Factory:
    def factory(arg: str | None) -> Extractor:
        fd_name = _fd_name(False)(None)

        def extract(ev: Event, st: SyscallState) -> Any:
            if ev.is_enter:
                return None
            spec = _FSPATH.get(ev.name)
            if spec is None:
                return None
            p = ev.params
            success = p.get(spec[0])
            if spec[0] == "fd":
                if not isinstance(success, int) or success == -1:
                    return None
            elif success != 0:
                return None
            key = spec[which]
            if key is None:
                return None
            value = fd_name(ev, st) if key == "fd" else p.get(key)
            if not isinstance(value, str):
                return None
            path = value.split("\0", 1)[0]
            if raw:
                return path
            t = st.thread if st.event is ev else st.threads.get(ev.tid)
            if t is None:
                return None
            if path.startswith("/"):
                return concatenate_paths("", path)
            base, path = _relative_base(ev, st, t, which, path)
            return concatenate_paths(base, path)

        return extract

    return factory


def _relative_base(ev: Event, st: SyscallState, t: ThreadInfo, which: int, path: str) -> tuple[str, str]:
    """The directory a relative fs.path is joined to (and the path, which openat replaces)."""
    name = ev.name
    if name in ("openat", "openat2"):
        # The opened fd already holds the resolved name: it replaces the path.
        fd = st.fd if st.event is ev else None
        return "", fd.name if fd is not None else "<UNKNOWN>"
    if name in _DIRFD_SDIR:
        return _format_dirfd(st, ev), path
    if name == "symlinkat":
        return (_format_dirfd(st, ev) if which == 2 else "<UNKNOWN>"), path
    if name == "renameat2":
        if which == 1:
            return "<UNKNOWN>", path
        dirfd = ev.params.get("newdirfd" if which == 3 else "olddirfd")
        return st.parse_dirfd(path, dirfd if isinstance(dirfd, int) else 0), path
    return t.get_cwd(), path


def _fs(which: int, raw: bool) -> Factory:
    return _fs_path(which, raw)


_F = _fd_field

FACTORIES: dict[str, Factory] = {
    "fd.num": _fd_num,
    "fd.type": _F(lambda fd, t, ev, st: fd.typestring),
    "fd.typechar": _typechar,
    "fd.name": _fd_name(False),
    "fd.containername": _fd_name(True),
    "fd.directory": _fd_directory(False),
    "fd.containerdirectory": _fd_directory(True),
    "fd.filename": _F(_filename),
    "fd.ip": _either("addr"),
    "fd.net": _either("addr"),
    "fd.port": _either("port"),
    "fd.proto": _either("port"),
    "fd.cip": _tuple_end("client", "addr"),
    "fd.cnet": _tuple_end("client", "addr"),
    "fd.sip": _F(_server_ip),
    "fd.snet": _F(_server_ip),
    "fd.lip": _tuple_end("local", "addr"),
    "fd.lnet": _tuple_end("local", "addr"),
    "fd.rip": _tuple_end("remote", "addr"),
    "fd.rnet": _tuple_end("remote", "addr"),
    "fd.cport": _tuple_end("client", "port"),
    "fd.sport": _F(_server_port),
    "fd.lport": _tuple_end("local", "port"),
    "fd.rport": _tuple_end("remote", "port"),
    "fd.cproto": _proto_text("client"),
    "fd.sproto": _proto_text("server"),
    "fd.lproto": _proto_text("local"),
    "fd.rproto": _proto_text("remote"),
    "fd.l4proto": _F(_l4proto),
    "fd.is_server": _F(_is_server),
    "fd.sockfamily": _F(_sockfamily),
    "fd.uid": _fd_uid,
    "fd.connected": _F(lambda fd, t, ev, st: bool(fd.flags & SOCKET_CONNECTED)),
    "fd.name_changed": _F(_name_changed),
    "fd.cip.name": _dns_name("client"),
    "fd.sip.name": _dns_name("server"),
    "fd.lip.name": _dns_name("local"),
    "fd.rip.name": _dns_name("remote"),
    "fd.dev": _F(lambda fd, t, ev, st: fd.dev & 0xFFFFFFFF),
    "fd.dev.major": _F(lambda fd, t, ev, st: (fd.dev & 0xFFF00) >> 8),
    "fd.dev.minor": _F(lambda fd, t, ev, st: (fd.dev & 0xFF) | ((fd.dev >> 12) & 0xFFF00)),
    "fd.ino": _F(lambda fd, t, ev, st: fd.ino),
    "fd.nameraw": _nameraw,
    "fd.types": _fd_types,
    "fd.is_upper_layer": _F(lambda fd, t, ev, st: bool(fd.flags & OVERLAY_UPPER)),
    "fd.is_lower_layer": _F(lambda fd, t, ev, st: bool(fd.flags & OVERLAY_LOWER)),
    "fdlist.nums": _fdlist("nums"),
    "fdlist.names": _fdlist("names"),
    "fdlist.cips": _fdlist("cips"),
    "fdlist.sips": _fdlist("sips"),
    "fdlist.cports": _fdlist("cports"),
    "fdlist.sports": _fdlist("sports"),
    "fs.path.name": _fs(1, False),
    "fs.path.nameraw": _fs(1, True),
    "fs.path.source": _fs(2, False),
    "fs.path.sourceraw": _fs(2, True),
    "fs.path.target": _fs(3, False),
    "fs.path.targetraw": _fs(3, True),
}

# Outputs print one name, not the set a condition compares against.
OUTPUT_FACTORIES: dict[str, Factory] = {
    "fd.cip.name": _dns_name_output("client"),
    "fd.sip.name": _dns_name_output("server"),
    "fd.lip.name": _dns_name_output("local"),
    "fd.rip.name": _dns_name_output("remote"),
}
