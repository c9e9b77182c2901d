"""Socket addresses: parsing event endpoints and rendering them as libsinsp names them.

Names follow libsinsp with hostname and port resolution off (Falco's setting): IPv4 tuples are
``1.2.3.4:5->6.7.8.9:10``, IPv6 tuples ``::1:5->::2:10`` (no brackets), unix tuples
``<src hex>-><dst hex> <path>``. IPv4-mapped IPv6 endpoints (and the all-zero address) are treated
as IPv4, as libsinsp does.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address

from falcorules_ci.sources.event import SockAddr, SockTuple
from falcorules_ci.sources.records import InterfaceInfo
from falcorules_ci.state import constants as c
from falcorules_ci.state.fds import FdInfo, IPAddress

ZERO_V4 = IPv4Address(0)
ZERO_V6 = IPv6Address(0)
LOOPBACK_V4 = IPv4Address("127.0.0.1")
LOOPBACK_V6 = IPv6Address("::1")


@lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress:
    """An address from an event's text form; unparsable text counts as the zero address."""
    if not text:
        return ZERO_V4
    try:
        return ip_address(text)
    except ValueError:
        return ZERO_V6 if ":" in text else ZERO_V4


def is_ipv4_mapped(addr: IPAddress) -> bool:
    if isinstance(addr, IPv4Address):
        return True
    return addr.ipv4_mapped is not None or int(addr) == 0


def as_ipv4(addr: IPAddress) -> IPv4Address:
    if isinstance(addr, IPv4Address):
        return addr
    mapped = addr.ipv4_mapped
    return mapped if mapped is not None else IPv4Address(int(addr) & 0xFFFFFFFF)


def endpoint_text(addr: IPAddress | None, port: int) -> str:
    return f"{addr if addr is not None else ZERO_V4}:{port}"


def tuple_text(fd: FdInfo) -> str:
    """The fd name of a connected IPv4/IPv6 socket (``sockinfo_to_str``)."""
    proto = fd.l4proto
    if fd.fd_type == c.FD_IPV4_SOCK:
        if proto in (c.L4_TCP, c.L4_UDP):
            return f"{endpoint_text(fd.sip, fd.sport)}->{endpoint_text(fd.dip, fd.dport)}"
        if proto in (c.L4_ICMP, c.L4_RAW):
            return f"{fd.sip or ZERO_V4}->{fd.dip or ZERO_V4}"
        return "<unknown>"
    if fd.fd_type == c.FD_IPV6_SOCK:
        sip = fd.sip or ZERO_V6
        dip = fd.dip or ZERO_V6
        if proto in (c.L4_TCP, c.L4_UDP):
            if is_ipv4_mapped(sip) and is_ipv4_mapped(dip):
                return f"{as_ipv4(sip)}:{fd.sport}->{as_ipv4(dip)}:{fd.dport}"
            return f"{sip}:{fd.sport}->{dip}:{fd.dport}"
        if proto == c.L4_ICMP:
            if is_ipv4_mapped(sip) and is_ipv4_mapped(dip):
                return f"{as_ipv4(sip)}->{as_ipv4(dip)}"
            return f"{sip}->{dip}"
        return "<unknown>"
    return ""


def unix_tuple_text(src: int, dst: int, path: str) -> str:
    return f"{src:x}->{dst:x} {path}"


def unix_path(t: SockTuple) -> str:
    return t.dst_path or t.src_path


def sockaddr_text(addr: SockAddr | None) -> str:
    """A socket address parameter as libsinsp renders it (``<NA>`` when absent)."""
    if addr is None:
        return "<NA>"
    if addr.family == c.AF_UNIX:
        return addr.path
    if addr.family == c.AF_INET:
        return f"{parse_ip(addr.addr)}:{addr.port}"
    if addr.family == c.AF_INET6:
        return f"{parse_ip(addr.addr)}:{addr.port}"
    return f"family {addr.family}"


def socktuple_text(t: SockTuple | None) -> str:
    """A socket tuple parameter as libsinsp renders it (``NULL`` when absent)."""
    if t is None:
        return "NULL"
    if t.family == c.AF_UNIX:
        return unix_tuple_text(t.unix_src, t.unix_dst, unix_path(t))
    if t.family == c.AF_INET:
        return f"{parse_ip(t.src_addr)}:{t.src_port}->{parse_ip(t.dst_addr)}:{t.dst_port}"
    if t.family == c.AF_INET6:
        sip, dip = parse_ip(t.src_addr), parse_ip(t.dst_addr)
        if is_ipv4_mapped(sip) and is_ipv4_mapped(dip):
            return f"{as_ipv4(sip)}:{t.src_port}->{as_ipv4(dip)}:{t.dst_port}"
        return f"{sip}:{t.src_port}->{dip}:{t.dst_port}"
    return f"family {t.family}"


def is_valid_sockaddr(addr: object) -> bool:
    return isinstance(addr, SockAddr)


def is_valid_socktuple(t: object) -> bool:
    return isinstance(t, SockTuple)


class Interfaces:
    """The machine's network interfaces, used to complete half-known tuples and to tell the
    local end of a connection (``fd.lip``/``fd.rip``)."""

    def __init__(self, interfaces: list[InterfaceInfo]) -> None:
        self.v4: list[tuple[IPv4Address, IPv4Network]] = []
        self.v6: list[IPv6Address] = []
        for iface in interfaces:
            addr = parse_ip(iface.addr)
            if isinstance(addr, IPv4Address):
                mask = parse_ip(iface.netmask) if iface.netmask else IPv4Address("255.255.255.255")
                net = IPv4Network((int(addr) & int(mask), _prefix(int(mask))), strict=False)
                self.v4.append((addr, net))
            else:
                self.v6.append(addr)

    def infer_v4(self, dest: IPv4Address) -> IPv4Address:
        for addr, _ in self.v4:
            if addr == dest:
                return addr
        for addr, net in self.v4:
            if dest in net:
                return addr
        for addr, _ in self.v4:
            if addr != LOOPBACK_V4:
                return addr
        return ZERO_V4

    def infer_v6(self, dest: IPv6Address) -> IPv6Address:
        if dest in self.v6:
            return dest
        for addr in self.v6:
            if addr != LOOPBACK_V6:
                return addr
        return ZERO_V6

    def is_local_v4(self, addr: IPAddress | None) -> bool:
        return any(a == addr for a, _ in self.v4)

    def is_local_v6(self, addr: IPAddress | None) -> bool:
        # Same first 64 bits as an interface address counts as local.
        if not isinstance(addr, IPv6Address):
            return False
        return any(int(a) >> 64 == int(addr) >> 64 for a in self.v6)

    def complete(self, fd: FdInfo) -> None:
        """Fill a zero source or destination address from the interfaces (``update_fd``)."""
        if fd.fd_type == c.FD_IPV4_SOCK:
            sip = fd.sip or ZERO_V4
            dip = fd.dip or ZERO_V4
            if int(sip) and int(dip):
                return
            if not int(sip):
                new = self.infer_v4(as_ipv4(dip))
                if new == dip and fd.sport == fd.dport:
                    return
                fd.sip = new
            else:
                new = self.infer_v4(as_ipv4(sip))
                if new == sip and fd.sport == fd.dport:
                    return
                fd.dip = new
        elif fd.fd_type == c.FD_IPV6_SOCK:
            sip6 = fd.sip if isinstance(fd.sip, IPv6Address) else ZERO_V6
            dip6 = fd.dip if isinstance(fd.dip, IPv6Address) else ZERO_V6
            if int(sip6) and int(dip6):
                return
            if not int(sip6):
                new6 = self.infer_v6(dip6)
                if new6 == dip6 and fd.sport == fd.dport:
                    return
                fd.sip = new6
            else:
                new6 = self.infer_v6(sip6)
                if new6 == sip6 and fd.sport == fd.dport:
                    return
                fd.dip = new6


def _prefix(mask: int) -> int:
    return bin(mask & 0xFFFFFFFF).count("1")
