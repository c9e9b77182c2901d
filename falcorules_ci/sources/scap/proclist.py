"""Proc list (PL V1..V9) and fd list (FDL V1/V2) blocks: the threads and open fds a capture starts with.

The layouts follow libscap's savefile reader (``scap_read_proclist`` / ``scap_read_fdlist``,
libs 48dfd53c): fields appear version by version, V9 entries carry their own length so later fields
are read only when they fit, and the libs-0.10 tail layout is told apart from the older one by how
many bytes are left after ``root`` (29 or fewer: the old ``loginuid, exe_writable, caps`` tail).
"""

from __future__ import annotations

import socket
from typing import Final

from falcorules_ci.sources.event import SockTuple
from falcorules_ci.sources.records import FdInfo, ProcessInfo
from falcorules_ci.sources.scap.cursor import Cursor, c_string, nul_list

MAX_PATH: Final = 1024  # SCAP_MAX_PATH_SIZE
MAX_ARGS: Final = 4096  # SCAP_MAX_ARGS_SIZE, also env and cgroups
_PRE_0_10_TAIL: Final = 29  # loginuid 4 + exe_writable 1 + three capability sets 8 each
_UINT32_NONE: Final = 0xFFFFFFFF

# PPM_EXE_* bits, the way execve exits report the same facts
EXE_WRITABLE: Final = 1
EXE_UPPER_LAYER: Final = 2
EXE_FROM_MEMFD: Final = 4
EXE_LOWER_LAYER: Final = 8

# scap_fd_type numbers
FD_UNKNOWN: Final = 0
FD_IPV4_SOCK: Final = 3
FD_IPV6_SOCK: Final = 4
FD_IPV4_SERVSOCK: Final = 5
FD_IPV6_SERVSOCK: Final = 6
FD_UNIX_SOCK: Final = 8
FD_UNSUPPORTED: Final = 10
FD_FILE_V2: Final = 16
# types whose payload is just a name: file, directory, fifo, event, unsupported, signalfd,
# eventpoll, inotify, timerfd, netlink, bpf, userfaultfd, io_uring, memfd, pidfd
_NAMED_FD_TYPES: Final = frozenset({1, 2, 7, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19, 20, 21})
_AF_INET: Final = 2
_AF_INET6: Final = 10
_AF_UNIX: Final = 1


def read_proclist(cur: Cursor, version: int) -> list[ProcessInfo]:
    """Every thread entry of one PL block body (``cur`` spans the body and its padding)."""
    out: list[ProcessInfo] = []
    while cur.left >= 4:
        out.append(_read_thread(cur, version))
    return out


def _read_thread(cur: Cursor, version: int) -> ProcessInfo:
    start = cur.pos
    sub_len = cur.u32() if version >= 9 else 0
    tid, pid, ptid = cur.i64(), cur.i64(), cur.i64()
    sid = cur.i64() if version >= 6 else -1
    vpgid = cur.i64() if version >= 8 else -1
    comm = c_string(cur.sized(MAX_PATH, "comm"))
    exe = c_string(cur.sized(MAX_PATH, "exe"))
    exepath = c_string(cur.sized(MAX_PATH, "exepath")) if version >= 7 else ""
    args = nul_list(cur.sized(MAX_ARGS, "args"))
    cwd = c_string(cur.sized(MAX_PATH, "cwd"))
    fdlimit = cur.i64()
    flags, uid, gid = cur.u32(), cur.u32(), cur.u32()
    env: tuple[str, ...] = ()
    vtid = vpid = -1
    cgroups: tuple[str, ...] = ()
    root = "/"
    vmsize_kb = vmrss_kb = vmswap_kb = pfmajor = pfminor = 0
    if version >= 2:
        vmsize_kb, vmrss_kb, vmswap_kb = cur.u32(), cur.u32(), cur.u32()
        pfmajor, pfminor = cur.u64(), cur.u64()
        if version >= 3:
            env = nul_list(cur.sized(MAX_ARGS, "env"))
        if version >= 4:
            vtid, vpid = cur.i64(), cur.i64()
            cgroups = nul_list(cur.sized(MAX_ARGS, "cgroups"))
            if version >= 5:
                root = c_string(cur.sized(MAX_PATH, "root"))

    def fits(size: int) -> bool:
        return bool(sub_len) and cur.pos - start + size <= sub_len

    tail: dict[str, int] = {}
    # Without sub_len libscap's unsigned subtraction wraps, so the old-tail check never fires
    pre_0_10 = bool(sub_len) and 0 <= sub_len - (cur.pos - start) <= _PRE_0_10_TAIL
    layout: list[tuple[str, int]] = [] if pre_0_10 else [("pidns_init_start_ts", 8), ("tty", 4)]
    layout += [("loginuid", 4), ("exe_writable", 1), ("cap_inheritable", 8), ("cap_permitted", 8),
               ("cap_effective", 8), ("exe_upper_layer", 1), ("exe_ino", 8), ("exe_ino_ctime", 8),
               ("exe_ino_mtime", 8), ("exe_from_memfd", 1), ("exe_lower_layer", 1), ("pgid", 8)]  # fmt: skip
    for name, size in layout:
        if fits(size):  # each field on its own, as libscap checks them
            tail[name] = cur.u8() if size == 1 else cur.u32() if size == 4 else cur.u64()
    if sub_len:
        used = cur.pos - start
        if used > sub_len:
            cur.fail(f"proc list entry declares {sub_len} bytes but its fields take {used}", start)
        if start + sub_len > cur.stop:
            cur.fail(f"proc list entry of {sub_len} bytes runs past the end of the block", start)
        cur.skip_to(start + sub_len)
    loginuid = tail.get("loginuid", _UINT32_NONE)
    pgid = tail.get("pgid", -1)
    return ProcessInfo(
        tid=tid, pid=pid, ptid=ptid, comm=comm, exe=exe, exepath=exepath, args=args, cwd=cwd, env=env,
        uid=uid, gid=gid, loginuid=-1 if loginuid == _UINT32_NONE else loginuid, sid=sid, vpgid=vpgid,
        pgid=pgid - (1 << 64) if pgid >= 1 << 63 else pgid, vtid=vtid, vpid=vpid, tty=tail.get("tty", 0),
        flags=flags, fdlimit=fdlimit, cap_inheritable=tail.get("cap_inheritable", 0),
        cap_permitted=tail.get("cap_permitted", 0), cap_effective=tail.get("cap_effective", 0),
        cgroups=cgroups, root=root, exe_ino=tail.get("exe_ino", 0),
        exe_ino_ctime=tail.get("exe_ino_ctime", 0), exe_ino_mtime=tail.get("exe_ino_mtime", 0),
        pidns_init_start_ts=tail.get("pidns_init_start_ts", 0),
        exe_writable=bool(tail.get("exe_writable", 0)), exe_upper_layer=bool(tail.get("exe_upper_layer", 0)),
        exe_lower_layer=bool(tail.get("exe_lower_layer", 0)),
        exe_from_memfd=bool(tail.get("exe_from_memfd", 0)),
        vmsize_kb=vmsize_kb, vmrss_kb=vmrss_kb, vmswap_kb=vmswap_kb, pfmajor=pfmajor, pfminor=pfminor,
    )  # fmt: skip


def read_fdlist(cur: Cursor, version: int) -> tuple[int, list[FdInfo], int]:
    """The thread id, fds and the number of entries libsinsp ignores (type 0) of one FDL block body."""
    tid = cur.i64()
    fds: list[FdInfo] = []
    ignored = 0
    while cur.left >= 4:
        info = _read_fd(cur, version)
        if info is None:
            ignored += 1
        else:
            fds.append(info)
    return tid, fds, ignored


def _ipv4(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, raw)


def _ipv6(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


def _read_fd(cur: Cursor, version: int) -> FdInfo | None:
    """One fd entry. Socket names use libsinsp's unresolved text (``sip:sport->dip:dport``); the
    state stage still applies its interface and IPv4-mapped-IPv6 rules to the raw tuple."""
    start = cur.pos
    sub_len = cur.u32() if version >= 2 else 0
    fd, ino, fd_type = cur.i64(), cur.u64(), cur.u8()
    info: FdInfo | None
    if fd_type in (FD_IPV4_SOCK, FD_IPV6_SOCK):
        addr, family = (_ipv4, _AF_INET) if fd_type == FD_IPV4_SOCK else (_ipv6, _AF_INET6)
        width = 4 if fd_type == FD_IPV4_SOCK else 16
        sip, dip = addr(cur.take(width)), addr(cur.take(width))
        sport, dport, l4 = cur.u16(), cur.u16(), cur.u8()
        info = FdInfo(fd, fd_type, f"{sip}:{sport}->{dip}:{dport}", ino,
                      tuple=SockTuple(family, sip, sport, dip, dport), l4proto=l4)  # fmt: skip
    elif fd_type in (FD_IPV4_SERVSOCK, FD_IPV6_SERVSOCK):
        addr, family = (_ipv4, _AF_INET) if fd_type == FD_IPV4_SERVSOCK else (_ipv6, _AF_INET6)
        ip = addr(cur.take(4 if fd_type == FD_IPV4_SERVSOCK else 16))
        port, l4 = cur.u16(), cur.u8()
        info = FdInfo(fd, fd_type, f"{ip}:{port}", ino, tuple=SockTuple(family, ip, port), l4proto=l4)
    elif fd_type == FD_UNIX_SOCK:
        src, dst = cur.u64(), cur.u64()
        path = c_string(cur.sized(MAX_PATH, "file name", inclusive=False))
        info = FdInfo(fd, fd_type, path, ino, tuple=SockTuple(_AF_UNIX, src_path=path, dst_path=path,
                                                              unix_src=src, unix_dst=dst))  # fmt: skip
    elif fd_type == FD_FILE_V2:
        open_flags = cur.u32()
        name = c_string(cur.sized(MAX_PATH, "file name", inclusive=False))
        dev = cur.u32() if sub_len and sub_len >= cur.pos - start + 4 else 0
        info = FdInfo(fd, fd_type, name, ino, open_flags=open_flags, dev=dev)
    elif fd_type in _NAMED_FD_TYPES:
        info = FdInfo(fd, fd_type, c_string(cur.sized(MAX_PATH, "file name", inclusive=False)), ino)
    elif fd_type == FD_UNKNOWN:
        info = None  # libsinsp does not add such an fd
    else:
        # a type from a newer libscap: no payload is read, as libscap does
        info = FdInfo(fd, FD_UNSUPPORTED, f"unknown-type:[{fd_type}]", ino)
    if sub_len:
        used = cur.pos - start
        if used > sub_len:
            cur.fail(f"fd list entry declares {sub_len} bytes but its fields take {used}", start)
        if start + sub_len > cur.stop:
            cur.fail(f"fd list entry of {sub_len} bytes runs past the end of the block", start)
        cur.skip_to(start + sub_len)
    return info
