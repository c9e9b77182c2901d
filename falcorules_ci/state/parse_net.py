"""Event parsers for sockets (libsinsp's socket, bind, connect, accept and datagram
``parse_*_exit`` functions).

A socket learns its endpoints from ``connect``/``accept`` tuples (the enter-time address wins
when the exit's address equals the tuple's destination), from ``bind`` (a server socket), and for
datagram sockets from the tuple of each ``sendto``/``recvfrom``. A client/server role decides
which end is shown as source.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv6Address
from typing import TYPE_CHECKING, Any

from falcorules_ci.sources.event import Event, SockAddr, SockTuple
from falcorules_ci.state import constants as c
from falcorules_ci.state.fds import ROLE_CLIENT, ROLE_SERVER, FdInfo, IPAddress
from falcorules_ci.state.sockets import (
    as_ipv4,
    is_ipv4_mapped,
    parse_ip,
    sockaddr_text,
    socktuple_text,
    tuple_text,
    unix_path,
    unix_tuple_text,
)
from falcorules_ci.state.threads import ThreadInfo
from falcorules_ci.state.values import as_int

if TYPE_CHECKING:
    from falcorules_ci.state.syscall_state import SyscallState

Params = dict[str, Any]
Handler = Callable[["SyscallState", Event, Params], None]


def _res(p: Params, key: str = "res") -> int:
    return as_int(p.get(key), 0)


def add_socket(state: SyscallState, fd: int, domain: int, kind: int, proto: int, flags: int) -> None:
    t = state.thread
    if t is None:
        return
    info = FdInfo(c.FD_UNKNOWN)
    info.openflags = flags
    if domain == c.AF_UNIX:
        info.fd_type = c.FD_UNIX_SOCK
    elif domain in (c.AF_INET, c.AF_INET6):
        info.fd_type = c.FD_IPV4_SOCK if domain == c.AF_INET else c.FD_IPV6_SOCK
        info.l4proto = _l4proto(kind, proto)
    elif domain == c.AF_NETLINK:
        info.fd_type = c.FD_NETLINK
    state.fd = t.add_fd(fd, info)


def _l4proto(kind: int, proto: int) -> int:
    if proto == c.IPPROTO_TCP:
        return c.L4_RAW if kind == c.SOCK_RAW else c.L4_TCP
    if proto == c.IPPROTO_UDP:
        return c.L4_RAW if kind == c.SOCK_RAW else c.L4_UDP
    if proto == c.IPPROTO_IP:
        # The type may carry SOCK_NONBLOCK/SOCK_CLOEXEC bits above the low byte.
        if kind & 0xFF == c.SOCK_STREAM:
            return c.L4_TCP
        if kind & 0xFF == c.SOCK_DGRAM:
            return c.L4_UDP
        return c.L4_UNKNOWN
    if proto == c.IPPROTO_ICMP:
        return c.L4_RAW if kind == c.SOCK_RAW else c.L4_ICMP
    if proto == c.IPPROTO_RAW:
        return c.L4_RAW
    return c.L4_UNKNOWN


def parse_socket_exit(state: SyscallState, ev: Event, p: Params) -> None:
    fd = _res(p, "fd")
    if fd < 0 or state.thread is None:
        return
    add_socket(
        state, fd, as_int(p.get("domain")), as_int(p.get("type")), as_int(p.get("proto")),
        as_int(p.get("flags")),
    )  # fmt: skip


def parse_socketpair_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if _res(p) < 0 or t is None:
        return
    fd1, fd2 = as_int(p.get("fd1"), -1), as_int(p.get("fd2"), -1)
    if fd1 == fd2:
        state.fd = None
        return
    first = FdInfo(c.FD_UNIX_SOCK)
    first.unix_src = as_int(p.get("source"))
    first.unix_dst = as_int(p.get("peer"))
    second = first.clone()
    state.fd = t.add_fd(fd1, first)
    t.add_fd(fd2, second)


def parse_bind_exit(state: SyscallState, ev: Event, p: Params) -> None:
    info = state.fd
    if info is None or _res(p) < 0:
        return
    addr = p.get("addr")
    if not isinstance(addr, SockAddr):
        return
    if addr.family == c.AF_INET and addr.port > 0:
        info.fd_type = c.FD_IPV4_SERVSOCK
        info.sip = as_ipv4(parse_ip(addr.addr))
        info.sport = addr.port
        info.flags |= ROLE_SERVER
    elif addr.family == c.AF_INET6 and addr.port > 0:
        ip = parse_ip(addr.addr)
        if is_ipv4_mapped(ip):
            info.fd_type = c.FD_IPV4_SERVSOCK
            info.sip = as_ipv4(ip)
        else:
            info.fd_type = c.FD_IPV6_SERVSOCK
            info.sip = ip
        info.sport = addr.port
        info.flags |= ROLE_SERVER
    info.name = sockaddr_text(addr)


def parse_connect_exit(state: SyscallState, ev: Event, p: Params) -> None:
    info = state.fd
    if state.thread is None or info is None:
        return
    res = _res(p)
    # A connect in progress counts as connected (Falco does not track connection status).
    if res < 0 and res != -c.EINPROGRESS:
        return
    info.set_connected()
    enter = state.retrieve_enter(ev)
    enter_addr = enter.params.get("addr") if enter is not None else None
    if not isinstance(enter_addr, SockAddr):
        enter_addr = None
    conn = p.get("tuple")
    if conn is None:
        if enter_addr is not None:
            _fill_from_address(info, enter_addr)
        return
    if not isinstance(conn, SockTuple):
        return
    exit_addr = p.get("addr")
    _fill_client(state, info, conn, exit_addr if isinstance(exit_addr, SockAddr) else None, enter_addr)


def _fill_from_address(info: FdInfo, addr: SockAddr) -> None:
    if addr.family == c.AF_INET:
        info.fd_type = c.FD_IPV4_SOCK
        info.dip = as_ipv4(parse_ip(addr.addr))
        info.dport = addr.port
    elif addr.family == c.AF_INET6:
        ip = parse_ip(addr.addr)
        if is_ipv4_mapped(ip):
            info.fd_type = c.FD_IPV4_SOCK
            info.dip = as_ipv4(ip)
        else:
            info.fd_type = c.FD_IPV6_SOCK
            info.dip = ip
        info.dport = addr.port
    else:
        # libsinsp names the fd after the exit's (empty) tuple parameter here.
        info.name = "NULL"


def _destination(conn: SockTuple, exit_addr: SockAddr | None, enter_addr: SockAddr | None) -> tuple[IPAddress, int]:
    """The tuple's destination, unless the exit address equals it: then the enter-time address
    (not swappable by the caller after the syscall started) is used."""
    tuple_dst = (parse_ip(conn.dst_addr), conn.dst_port)
    if exit_addr is None or enter_addr is None:
        return tuple_dst
    if (parse_ip(exit_addr.addr), exit_addr.port) != tuple_dst or enter_addr.family != conn.family:
        return tuple_dst
    return parse_ip(enter_addr.addr), enter_addr.port


def _fill_client(
    state: SyscallState,
    info: FdInfo,
    conn: SockTuple,
    exit_addr: SockAddr | None,
    enter_addr: SockAddr | None,
) -> None:
    if conn.family in (c.AF_INET, c.AF_INET6):
        sip, sport = parse_ip(conn.src_addr), conn.src_port
        dip, dport = _destination(conn, exit_addr, enter_addr)
        if conn.family == c.AF_INET6 and not (is_ipv4_mapped(sip) and is_ipv4_mapped(dip)):
            info.fd_type = c.FD_IPV6_SOCK
            changed = set_addresses(info, sip, sport, dip, dport, overwrite_dest=True)
        else:
            info.fd_type = c.FD_IPV4_SOCK
            changed = set_addresses(info, as_ipv4(sip), sport, as_ipv4(dip), dport, overwrite_dest=True)
        if changed and info.is_role_server() and info.is_udp():
            info.swap_endpoints()
        info.name = tuple_text(info)
    else:
        if info.fd_type != c.FD_UNIX_SOCK:
            return
        path = unix_path(conn)
        if exit_addr is not None and enter_addr is not None and exit_addr.path == path:
            path = enter_addr.path
        info.unix_src, info.unix_dst = conn.unix_src, conn.unix_dst
        info.name = unix_tuple_text(conn.unix_src, conn.unix_dst, path)
    if info.is_role_none():
        info.flags |= ROLE_CLIENT


def set_addresses(
    info: FdInfo, sip: IPAddress, sport: int, dip: IPAddress, dport: int, overwrite_dest: bool = False
) -> bool:
    """Store a tuple on a socket; False when it is the one already stored (either direction)."""
    v6 = isinstance(sip, IPv6Address)
    same_kind = info.fd_type == (c.FD_IPV6_SOCK if v6 else c.FD_IPV4_SOCK)
    cur_sip, cur_dip = info.sip, info.dip
    if same_kind and (
        (sip == cur_sip and sport == info.sport and dip == cur_dip and dport == info.dport)
        or (dip == cur_sip and dport == info.sport and sip == cur_dip and sport == info.dport)
    ):
        return False
    changed = False
    if cur_sip != sip:
        info.sip = sip
        changed = True
    if info.sport != sport:
        info.sport = sport
        changed = True
    if cur_dip is None or not int(cur_dip) or (overwrite_dest and cur_dip != dip):
        info.dip = dip
        changed = True
    if info.dport == 0 or (overwrite_dest and info.dport != dport):
        info.dport = dport
        changed = True
    return changed


def parse_accept_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if t is None:
        return
    fd = _res(p, "fd")
    if fd < 0:
        return
    t.lastevent_fd = fd
    conn = p.get("tuple")
    if not isinstance(conn, SockTuple):
        return
    info = FdInfo(c.FD_UNKNOWN)
    if conn.family in (c.AF_INET, c.AF_INET6):
        sip, dip = parse_ip(conn.src_addr), parse_ip(conn.dst_addr)
        if conn.family == c.AF_INET or (is_ipv4_mapped(sip) and is_ipv4_mapped(dip)):
            info.fd_type = c.FD_IPV4_SOCK
            sip, dip = as_ipv4(sip), as_ipv4(dip)
        else:
            info.fd_type = c.FD_IPV6_SOCK
        info.sip, info.sport, info.dip, info.dport = sip, conn.src_port, dip, conn.dst_port
        info.l4proto = c.L4_TCP
    elif conn.family == c.AF_UNIX:
        info.fd_type = c.FD_UNIX_SOCK
        info.unix_src, info.unix_dst = conn.unix_src, conn.unix_dst
    else:
        return
    info.name = socktuple_text(conn)
    if ev.name == "accept4":
        info.openflags = as_int(p.get("flags")) & c.O_CLOEXEC
    info.flags = ROLE_SERVER
    info.set_connected()
    state.fd = t.add_fd(fd, info)


def _update_from_tuple(state: SyscallState, info: FdInfo, conn: Any) -> bool:
    """Record a datagram's tuple on its socket (libsinsp's ``update_fd``)."""
    if not isinstance(conn, SockTuple):
        return False
    if conn.family == c.AF_INET:
        info.fd_type = c.FD_IPV4_SOCK
        src4, dst4 = as_ipv4(parse_ip(conn.src_addr)), as_ipv4(parse_ip(conn.dst_addr))
        if not set_addresses(info, src4, conn.src_port, dst4, conn.dst_port):
            return False
    elif conn.family == c.AF_INET6:
        sip, dip = parse_ip(conn.src_addr), parse_ip(conn.dst_addr)
        if is_ipv4_mapped(sip) and is_ipv4_mapped(dip):
            info.fd_type = c.FD_IPV4_SOCK
            if not set_addresses(info, as_ipv4(sip), conn.src_port, as_ipv4(dip), conn.dst_port):
                return False
        elif not set_addresses(info, sip, conn.src_port, dip, conn.dst_port):
            return False
    elif conn.family == c.AF_UNIX:
        info.fd_type = c.FD_UNIX_SOCK
        info.unix_src, info.unix_dst = conn.unix_src, conn.unix_dst
        info.name = unix_path(conn)
        return True
    if info.fd_type in (c.FD_IPV4_SOCK, c.FD_IPV6_SOCK) and info.l4proto == c.L4_UNKNOWN:
        # A tuple change on a connected TCP socket would have failed: assume UDP.
        info.l4proto = c.L4_UDP
    state.interfaces.complete(info)
    return True


def _guess_role(thread: ThreadInfo, info: FdInfo, incoming: bool) -> None:
    table = thread.fd_table() or {}
    bound = any(
        (f.fd_type == c.FD_IPV4_SOCK and f.dport == info.dport)
        or (f.fd_type == c.FD_IPV4_SERVSOCK and f.sport == info.dport)
        for f in table.values()
    )
    if not bound:
        info.flags |= ROLE_CLIENT
        return
    if not any(f.fd_type == c.FD_IPV4_SOCK and f.sport == info.sport for f in table.values()):
        info.flags |= ROLE_SERVER
        return
    if info.is_role_none():
        info.flags |= ROLE_SERVER if incoming else ROLE_CLIENT


def _datagram(state: SyscallState, ev: Event, p: Params, incoming: bool) -> None:
    info = state.fd
    if info is None or _res(p) < 0:
        return
    if info.fd_type in (c.FD_IPV4_SOCK, c.FD_IPV6_SOCK):
        info.set_connected()
    if ev.name not in _TUPLE_EVENTS or (info.name and info.is_tcp()):
        return
    conn = p.get("tuple")
    if not _update_from_tuple(state, info, conn):
        return
    if info.fd_type in (c.FD_IPV4_SOCK, c.FD_IPV6_SOCK):
        if info.is_role_none() and state.thread is not None:
            _guess_role(state.thread, info, incoming)
        if info.is_role_client() if incoming else info.is_role_server():
            info.swap_endpoints()
        info.name = tuple_text(info)
    else:
        info.name = socktuple_text(conn if isinstance(conn, SockTuple) else None)


_TUPLE_EVENTS = frozenset({"recvfrom", "recvmsg", "recvmmsg", "recv", "send", "sendto", "sendmsg", "sendmmsg"})


def parse_read_exit(state: SyscallState, ev: Event, p: Params) -> None:
    if ev.name == "recvmmsg" and "res" not in p:
        return
    _datagram(state, ev, p, incoming=True)


def parse_write_exit(state: SyscallState, ev: Event, p: Params) -> None:
    if ev.name == "sendmmsg" and "res" not in p:
        return
    if ev.name in ("send", "sendto", "sendmsg") and state.fd is None and state.thread is not None:
        # A send on a socket created before the capture: assume a UDP socket.
        conn = p.get("tuple")
        if _res(p) >= 0 and isinstance(conn, SockTuple) and conn.family in (c.AF_INET, c.AF_INET6):
            fd = as_int(p.get("fd"), -1)
            add_socket(state, fd, conn.family, c.SOCK_DGRAM, c.IPPROTO_UDP, 0)
    _datagram(state, ev, p, incoming=False)


_READS = ("read", "readv", "pread", "preadv", "recv", "recvfrom", "recvmsg", "recvmmsg")
_WRITES = ("write", "writev", "pwrite", "pwritev", "send", "sendto", "sendmsg", "sendmmsg")

HANDLERS: dict[tuple[str, bool], Handler] = {
    ("socket", False): parse_socket_exit,
    ("socketpair", False): parse_socketpair_exit,
    ("bind", False): parse_bind_exit,
    ("connect", False): parse_connect_exit,
    ("accept", False): parse_accept_exit,
    ("accept4", False): parse_accept_exit,
    **{(name, False): parse_read_exit for name in _READS},
    **{(name, False): parse_write_exit for name in _WRITES},
}
