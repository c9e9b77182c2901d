"""File descriptor records: one open fd of a process, as libsinsp's fd table keeps it.

Socket endpoints are kept as ``ipaddress`` objects so extraction hands them out without
conversions. A connected (tuple) socket uses ``sip``/``sport`` for the source and ``dip``/``dport``
for the destination; a bound server socket uses ``sip``/``sport`` for its own address.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from falcorules_ci.state import constants as c

IPAddress = IPv4Address | IPv6Address

ROLE_CLIENT = 1 << 2
ROLE_SERVER = 1 << 3
FROM_PROC = 1 << 0
SOCKET_CONNECTED = 1 << 13
IS_CLONED = 1 << 14
CONNECTION_PENDING = 1 << 15
CONNECTION_FAILED = 1 << 16
OVERLAY_UPPER = 1 << 17
OVERLAY_LOWER = 1 << 18

_TYPECHAR = {
    c.FD_FILE: "f", c.FD_FILE_V2: "f", c.FD_IPV4_SOCK: "4", c.FD_IPV6_SOCK: "6",
    c.FD_DIRECTORY: "d", c.FD_IPV4_SERVSOCK: "4", c.FD_IPV6_SERVSOCK: "6", c.FD_FIFO: "p",
    c.FD_UNIX_SOCK: "u", c.FD_EVENT: "e", c.FD_UNKNOWN: "o", c.FD_UNSUPPORTED: "X",
    c.FD_SIGNALFD: "s", c.FD_EVENTPOLL: "l", c.FD_INOTIFY: "i", c.FD_TIMERFD: "t",
    c.FD_NETLINK: "n", c.FD_BPF: "b", c.FD_USERFAULTFD: "u", c.FD_IOURING: "r", c.FD_MEMFD: "m",
    c.FD_PIDFD: "P",
}  # fmt: skip

_TYPESTRING = {
    c.FD_FILE: "file", c.FD_FILE_V2: "file", c.FD_DIRECTORY: "directory",
    c.FD_IPV4_SOCK: "ipv4", c.FD_IPV4_SERVSOCK: "ipv4", c.FD_IPV6_SOCK: "ipv6",
    c.FD_IPV6_SERVSOCK: "ipv6", c.FD_UNIX_SOCK: "unix", c.FD_FIFO: "pipe", c.FD_EVENT: "event",
    c.FD_SIGNALFD: "signalfd", c.FD_EVENTPOLL: "eventpoll", c.FD_INOTIFY: "inotify",
    c.FD_TIMERFD: "timerfd", c.FD_NETLINK: "netlink", c.FD_BPF: "bpf",
    c.FD_USERFAULTFD: "userfaultfd", c.FD_IOURING: "io_uring", c.FD_MEMFD: "memfd",
    c.FD_PIDFD: "pidfd",
}  # fmt: skip

TUPLE_SOCKETS = frozenset({c.FD_IPV4_SOCK, c.FD_IPV6_SOCK})
SERVER_SOCKETS = frozenset({c.FD_IPV4_SERVSOCK, c.FD_IPV6_SERVSOCK})
IP_SOCKETS = TUPLE_SOCKETS | SERVER_SOCKETS


class FdInfo:
    """One entry of a process's fd table (mutable: parsers update sockets in place)."""

    __slots__ = (
        "dev", "dip", "dport", "fd_type", "flags", "ino", "l4proto", "mount_id", "name",
        "name_raw", "oldname", "openflags", "pid", "sip", "sport", "unix_dst", "unix_src",
    )  # fmt: skip

    def __init__(self, fd_type: int, name: str = "", openflags: int = 0) -> None:
        self.fd_type = fd_type
        self.name = name
        self.name_raw = ""
        # The name at the start of the current event; differs from `name` when parsing renamed it.
        self.oldname = ""
        self.openflags = openflags
        self.flags = 0
        self.dev = 0
        self.ino = 0
        self.mount_id = 0
        self.pid = 0
        self.sip: IPAddress | None = None
        self.dip: IPAddress | None = None
        self.sport = 0
        self.dport = 0
        self.l4proto = c.L4_UNKNOWN
        self.unix_src = 0
        self.unix_dst = 0

    def clone(self) -> FdInfo:
        other = FdInfo.__new__(FdInfo)
        for slot in FdInfo.__slots__:
            setattr(other, slot, getattr(self, slot))
        return other

    @property
    def typechar(self) -> str:
        return _TYPECHAR.get(self.fd_type, "?")

    @property
    def typestring(self) -> str:
        return _TYPESTRING.get(self.fd_type, "<NA>")

    def is_file(self) -> bool:
        return self.fd_type == c.FD_FILE or self.fd_type == c.FD_FILE_V2

    def is_directory(self) -> bool:
        return self.fd_type == c.FD_DIRECTORY

    def is_role_none(self) -> bool:
        return not self.flags & (ROLE_CLIENT | ROLE_SERVER)

    def is_role_server(self) -> bool:
        return bool(self.flags & ROLE_SERVER)

    def is_role_client(self) -> bool:
        return bool(self.flags & ROLE_CLIENT)

    def set_connected(self) -> None:
        self.flags = (self.flags & ~(CONNECTION_PENDING | CONNECTION_FAILED)) | SOCKET_CONNECTED

    def is_udp(self) -> bool:
        return self.fd_type == c.FD_IPV4_SOCK and self.l4proto == c.L4_UDP

    def is_tcp(self) -> bool:
        return self.fd_type == c.FD_IPV4_SOCK and self.l4proto == c.L4_TCP

    def is_close_on_exec(self) -> bool:
        if self.openflags & c.O_CLOEXEC:
            return True
        if self.fd_type == c.FD_EVENTPOLL and self.openflags & c.EPOLL_CLOEXEC:
            return True
        return self.fd_type == c.FD_MEMFD and bool(self.openflags & c.MFD_CLOEXEC)

    def clear_close_on_exec(self) -> None:
        # The epoll and memfd close-on-exec bits share bit 0 with O_RDONLY in libsinsp's encoding,
        # so clearing them clears that bit too, exactly as libsinsp does.
        self.openflags &= ~(c.O_CLOEXEC | c.EPOLL_CLOEXEC | c.MFD_CLOEXEC)

    def l4proto_effective(self) -> int:
        """The transport protocol as libsinsp reports it (``get_l4proto``)."""
        t = self.fd_type
        if t == c.FD_IPV4_SOCK or t == c.FD_IPV6_SOCK:
            if self.l4proto == c.L4_RAW:
                return c.L4_RAW
            if self.is_role_none():
                return c.L4_NA
            return self.l4proto
        if t == c.FD_IPV4_SERVSOCK or t == c.FD_IPV6_SERVSOCK:
            return self.l4proto
        return c.L4_NA

    def swap_endpoints(self) -> None:
        self.sip, self.dip = self.dip, self.sip
        self.sport, self.dport = self.dport, self.sport

    def __repr__(self) -> str:
        return f"FdInfo(type={self.fd_type}, name={self.name!r})"
