"""Hand-built syscall events and capture headers for state and extraction tests.

Events are named like Falco names them (``openat``, ``execve``) and take parameters by the
libscap names of the current event table; the helper picks the event code. A :class:`Replay`
numbers events, advances the clock and feeds them to a :class:`SyscallState`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from falcorules_ci.fields.event_table import event_table
from falcorules_ci.sources.event import Event, SockAddr, SockTuple
from falcorules_ci.sources.records import (
    CaptureHeader,
    ContainerInfo,
    FdInfo,
    GroupInfo,
    InterfaceInfo,
    MachineInfo,
    ProcessInfo,
    UserInfo,
)
from falcorules_ci.state import SyscallState

BASE_TS = 1_700_000_000_000_000_000
DOCKER_ID = "a1b2c3d4e5f6" + "0" * 52


@cache
def code_for(name: str, direction: str = "<") -> int:
    """The current event code for an event name and direction (old-version codes as fallback)."""
    table = event_table()
    info = table.lookup(name, direction)
    if info is not None:
        return info.code
    candidates = [
        code
        for code in table.codes_for_name(name)
        if table.by_code[code].direction == direction and not table.by_code[code].is_unused
    ]
    if not candidates:
        raise KeyError(f"no {direction} event named {name}")
    return max(candidates)


def event(name: str, thread: int, direction: str = "<", /, *, num: int = 1, ts: int = BASE_TS, **params: Any) -> Event:
    """One event of thread ``thread``; ``params`` may include a ``tid`` parameter (clone, execve)."""
    code = params.pop("code", None) or code_for(name, direction)
    return Event(num=num, ts=ts, tid=thread, code=code, name=name, direction=direction, params=params)


def ipv4_tuple(src: str, sport: int, dst: str, dport: int) -> SockTuple:
    return SockTuple(family=2, src_addr=src, src_port=sport, dst_addr=dst, dst_port=dport)


def ipv4_addr(addr: str, port: int) -> SockAddr:
    return SockAddr(family=2, addr=addr, port=port)


def process(tid: int, comm: str, *, ptid: int = 1, pid: int | None = None, **kw: Any) -> ProcessInfo:
    kw.setdefault("exe", comm)
    kw.setdefault("exepath", f"/usr/bin/{comm}")
    kw.setdefault("cwd", "/")
    return ProcessInfo(tid=tid, pid=tid if pid is None else pid, ptid=ptid, comm=comm, **kw)


def header(
    *processes: ProcessInfo, containers: tuple[ContainerInfo, ...] = (), with_init: bool = True
) -> CaptureHeader:
    """A machine with root/alice users, two interfaces, init (pid 1) and the given processes."""
    init = [process(1, "systemd", ptid=0, exe="/sbin/init", exepath="/usr/lib/systemd/systemd")]
    return CaptureHeader(
        machine=MachineInfo(hostname="fixture-host"),
        interfaces=[InterfaceInfo("lo", 2, "127.0.0.1", "255.0.0.0"),
                    InterfaceInfo("eth0", 2, "10.0.0.2", "255.255.255.0")],
        users=[UserInfo(0, 0, "root", "/root", "/bin/bash"),
               UserInfo(1000, 1000, "alice", "/home/alice", "/bin/bash")],
        groups=[GroupInfo(0, "root"), GroupInfo(1000, "alice")],
        processes=[*(init if with_init else []), *processes],
        containers=list(containers),
    )  # fmt: skip


def file_fd(fd: int, name: str, flags: int = 1) -> FdInfo:
    return FdInfo(fd=fd, fd_type=16, name=name, open_flags=flags)


def dir_fd(fd: int, name: str) -> FdInfo:
    return FdInfo(fd=fd, fd_type=2, name=name)


class Replay:
    """Feeds events to a state with increasing numbers and timestamps."""

    def __init__(self, head: CaptureHeader | None = None) -> None:
        self.state = SyscallState(head if head is not None else header())
        self.num = 0
        self.ts = BASE_TS

    def __call__(self, name: str, thread: int, direction: str = "<", /, **params: Any) -> Event:
        self.num += 1
        self.ts += params.pop("delay", 1_000)
        ev = event(name, thread, direction, num=self.num, ts=self.ts, **params)
        self.state.update(ev)
        return ev

    def syscall(self, name: str, thread: int, enter: dict[str, Any], /, **exit_params: Any) -> Event:
        """An enter/exit pair on one thread; returns the exit event."""
        self(name, thread, ">", **enter)
        return self(name, thread, "<", **exit_params)

    def spawn(self, parent_tid: int, child_tid: int, *, comm: str = "", **extra: Any) -> Event:
        """clone in the parent and in the child (parent side first)."""
        parent = self.state.threads.get(parent_tid)
        comm = comm or (parent.comm if parent else "sh")
        common = dict(
            exe=parent.exe if parent else comm, args=b"", pid=parent.pid if parent else parent_tid,
            ptid=parent.ptid if parent else 1, cwd="", fdlimit=1024, comm=comm, flags=0,
            uid=parent.uid if parent else 0, gid=parent.gid if parent else 0,
        )  # fmt: skip
        common.update(extra)
        self("clone", parent_tid, res=child_tid, tid=parent_tid, **common)
        child = dict(common, pid=child_tid, ptid=parent_tid, tid=child_tid)
        return self("clone", child_tid, res=0, **child)

    def execve(self, tid: int, exe: str, *args: str, res: int = 0, **extra: Any) -> Event:
        thread = self.state.threads.get(tid)
        params: dict[str, Any] = dict(
            res=res, exe=exe, args="\0".join(args).encode() + (b"\0" if args else b""),
            tid=tid, pid=thread.pid if thread else tid, ptid=thread.ptid if thread else 1,
            cwd="", fdlimit=1024, comm=exe.rsplit("/", 1)[-1], env=b"PATH=/bin\0",
            tty=0, vpgid=tid, loginuid=thread.loginuid if thread else 0, flags=0,
            trusted_exepath=exe if exe.startswith("/") else "/usr/bin/" + exe,
        )  # fmt: skip
        params.update(extra)
        return self("execve", tid, **params)
