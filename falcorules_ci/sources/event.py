"""The event model every input produces: scenarios, ``.scap`` captures and Kubernetes audit logs.

Syscall events carry libscap's parameters decoded to Python values keyed by the parameter names of
the event table (``../shared/reference/event-tables``):

=====================================  =====================================================
libscap parameter type                 Python value
=====================================  =====================================================
INT*/UINT*, FD, PID, ERRNO, UID, GID,  ``int`` (signed types sign-extended)
MODE, FLAGS*, ENUMFLAGS*, SYSCALLID,
SIGTYPE, RELTIME, ABSTIME, PORT, ...
CHARBUF, FSPATH, FSRELPATH             ``str`` (UTF-8, invalid bytes kept with surrogateescape)
BYTEBUF                                ``bytes``
CHARBUFARRAY                           ``tuple[str, ...]``
CHARBUF_PAIR_ARRAY                     ``tuple[str, ...]`` (flattened pairs)
SOCKADDR                               :class:`SockAddr`
SOCKTUPLE                              :class:`SockTuple`
FDLIST                                 ``tuple[tuple[int, int], ...]`` (fd, flags)
DYN, others                            ``bytes`` (raw), unless a decoder knows better
=====================================  =====================================================

A parameter whose on-disk length is 0 (libscap's "empty" value) is absent from ``params``.

Since libs 0.22 Falco merges each enter event's parameters into its exit event and drops the
enter event before rules run; sources that read enter events keep them (``direction == ">"``) so
the legacy evaluation mode can see them, and the engine decides what reaches rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from falcorules_ci.errors import Span

SYSCALL_SOURCE = "syscall"
K8S_AUDIT_SOURCE = "k8s_audit"


@dataclass(frozen=True, slots=True)
class SockAddr:
    """A socket address: ``family`` is AF_INET(2), AF_INET6(10), AF_UNIX(1) or another number."""

    family: int
    addr: str = ""  # dotted IPv4 or compressed IPv6 text; "" for unix
    port: int = 0
    path: str = ""  # unix sockets


@dataclass(frozen=True, slots=True)
class SockTuple:
    """A connection tuple as libscap stores it: source and destination endpoints."""

    family: int
    src_addr: str = ""
    src_port: int = 0
    dst_addr: str = ""
    dst_port: int = 0
    src_path: str = ""  # unix: libscap carries one path; sources fill dst_path (src_path is a fallback)
    dst_path: str = ""
    unix_src: int = 0
    unix_dst: int = 0


@dataclass(slots=True)
class Event:
    """One event from any source.

    ``num`` is ``evt.num`` (1-based, in reading order). ``ts`` is nanoseconds since the epoch.
    ``code`` is the libscap event code (``PPME_*``); ``name`` the event type name used by
    ``evt.type`` (``openat``, ``execve``, ``container``, ...; ``k8s_audit`` events use the
    plugin event name). ``payload`` holds a plugin event's data (the audit event as a dict).
    """

    num: int
    ts: int
    tid: int
    code: int
    name: str
    direction: str = "<"
    params: dict[str, Any] = field(default_factory=dict)
    cpu: int = 0
    flags: int = 0
    source: str = SYSCALL_SOURCE
    payload: Any = None
    span: Span | None = None

    @property
    def is_enter(self) -> bool:
        return self.direction == ">"
