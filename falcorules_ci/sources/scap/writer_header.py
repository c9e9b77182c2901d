"""The header blocks of a written capture: section header, machine, interfaces, users, proc and fd lists,
and the JSON that carries container metadata.

Layouts follow libscap's writer (``scap_setup_dump``) so that both sysdig 0.29.3 (libs e5c53d64) and
current libs read them (``../shared/reference/scap-format.md`` §1):

- the section header is exactly 28 bytes (the old reader expects its trailer right after the body);
- the machine info body is the packed 180-byte ``scap_machine_info``;
- interface, user, proc and fd lists use their ``_V2``/``V9`` blocks, whose entries carry their
  own length;
- a proc-list entry ends either with the pre-0.10 tail (``loginuid, exe_writable, caps``, 29 bytes:
  what both readers understand) or, for current libs only, with the full current tail.

Strings longer than a reader accepts are cut (and reported through ``note``) rather than producing
a file the reader refuses.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any, Final

from falcorules_ci.sources.event import SockTuple
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
from falcorules_ci.sources.scap import blocks as b
from falcorules_ci.sources.scap.proclist import (
    FD_FILE_V2,
    FD_IPV4_SERVSOCK,
    FD_IPV4_SOCK,
    FD_IPV6_SERVSOCK,
    FD_IPV6_SOCK,
    FD_UNIX_SOCK,
    FD_UNKNOWN,
    FD_UNSUPPORTED,
)
from falcorules_ci.sources.scap.writer_params import frame_block

Note = Callable[[str], None]

MI_BLOCK: Final = 0x201
IL_BLOCK_V2: Final = 0x219
UL_BLOCK_V2: Final = 0x220
PL_BLOCK_V9: Final = 0x215
FDL_BLOCK_V2: Final = 0x218

MAX_PATH: Final = 1024  # SCAP_MAX_PATH_SIZE: PL strings may be this long
MAX_FD_NAME: Final = MAX_PATH - 1  # fd names and interface names must be shorter
MAX_LIST: Final = 4096  # SCAP_MAX_ARGS_SIZE, _ENV_SIZE, _CGROUPS_SIZE
MAX_CREDENTIAL: Final = 255  # user and group strings: MAX_CREDENTIALS_STR_LEN less the NUL
MAX_HOSTNAME: Final = 127  # hostname[128] with its NUL

_SHB: Final = struct.Struct("<IIIHHqI")
_MACHINE_INFO: Final = struct.Struct("<IQQ128sQQQQ")
_U16: Final = struct.Struct("<H").pack
_U32: Final = struct.Struct("<I").pack
_MASK32: Final = 0xFFFFFFFF
_MASK64: Final = (1 << 64) - 1

# scap_fd_type numbers are the reader's; sysdig 0.29.3's reader refuses any type above FD_FILE_V2
FD_MEMFD: Final = 20
FD_NEWEST_FOR_SYSDIG: Final = FD_FILE_V2

# container.type numbers of sysdig's container JSON (sinsp_container_type)
CONTAINER_TYPES: Final[dict[str, int]] = {
    "docker": 0, "lxc": 1, "libvirt-lxc": 2, "mesos": 3, "rkt": 4, "cri": 6, "containerd": 7, "cri-o": 8,
    "bpm": 9, "podman": 11,
}  # fmt: skip
_LOOKUP_SUCCESSFUL: Final = 1


def _cut(raw: bytes, limit: int, what: str, note: Note) -> bytes:
    if len(raw) > limit:
        note(f"{what} cut to {limit} bytes (reader limit)")
        return raw[:limit]
    return raw


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def _sized(value: str, limit: int, what: str, note: Note) -> bytes:
    raw = _cut(_text(value), limit, what, note)
    return _U16(len(raw)) + raw


def _nul_list(items: tuple[str, ...], limit: int, what: str, note: Note) -> bytes:
    """A NUL-terminated list (args, env, cgroups) with a u16 length; whole items that would pass the
    reader's limit are left out."""
    out = bytearray()
    for item in items:
        raw = _text(item) + b"\0"
        if len(out) + len(raw) > limit:
            note(f"{what} list cut to {limit} bytes (reader limit)")
            break
        out += raw
    return _U16(len(out)) + bytes(out)


def section_header() -> bytes:
    """The 28-byte section header: magic, version 1.2, unknown section length."""
    return _SHB.pack(b.SHB_TYPE, 28, b.SHB_MAGIC, 1, 2, -1, 28)


def machine_info(machine: MachineInfo, note: Note) -> bytes:
    hostname = _cut(_text(machine.hostname), MAX_HOSTNAME, "hostname", note)
    body = _MACHINE_INFO.pack(machine.num_cpus & _MASK32, machine.memory_bytes & _MASK64, machine.max_pid & _MASK64,
                              hostname, machine.boot_ts & _MASK64, machine.flags & _MASK64, 0, 0)  # fmt: skip
    return frame_block(MI_BLOCK, body)


def _address(family: int, text: str) -> bytes:
    if family == socket.AF_INET:
        return socket.inet_aton(text or "0.0.0.0")
    return socket.inet_pton(socket.AF_INET6, text or "::")


def interface_list(interfaces: list[InterfaceInfo], note: Note) -> bytes:
    entries: list[bytes] = []
    for iface in interfaces:
        if iface.family not in (2, 10):
            note("interface of unknown family left out")
            continue
        family = socket.AF_INET if iface.family == 2 else socket.AF_INET6
        kind = 1 if iface.family == 2 else 2  # with link speed
        name = _cut(_text(iface.name), MAX_FD_NAME, "interface name", note)
        body = (struct.pack("<HH", kind, len(name)) + _address(family, iface.addr) + _address(family, iface.netmask)
                + _address(family, iface.broadcast) + struct.pack("<Q", 0) + name)  # fmt: skip
        entries.append(_U32(len(body)) + body)  # the entry length excludes its own field
    return frame_block(IL_BLOCK_V2, entries)


def user_list(users: list[UserInfo], groups: list[GroupInfo], note: Note) -> bytes:
    """Host users and groups; container ones travel in user/group events instead."""
    entries: list[bytes] = []
    for user in users:
        body = (b"\0" + struct.pack("<II", user.uid & _MASK32, user.gid & _MASK32)
                + _sized(user.name, MAX_CREDENTIAL, "user name", note)
                + _sized(user.home, MAX_CREDENTIAL, "user home", note)
                + _sized(user.shell, MAX_CREDENTIAL, "user shell", note))  # fmt: skip
        entries.append(_U32(len(body) + 4) + body)  # the entry length includes its own field
    for group in groups:
        body = b"\1" + _U32(group.gid & _MASK32) + _sized(group.name, MAX_CREDENTIAL, "group name", note)
        entries.append(_U32(len(body) + 4) + body)
    return frame_block(UL_BLOCK_V2, entries)


def _flag(value: bool) -> bytes:
    return b"\1" if value else b"\0"


def _compat_tail(proc: ProcessInfo) -> bytes:
    # libs < 0.10 layout; current readers recognise it because at most 29 bytes follow ``root``
    return (_U32(proc.loginuid & _MASK32) + _flag(proc.exe_writable)
            + struct.pack("<QQQ", proc.cap_inheritable & _MASK64, proc.cap_permitted & _MASK64,
                          proc.cap_effective & _MASK64))  # fmt: skip


def _current_tail(proc: ProcessInfo) -> bytes:
    return (struct.pack("<QII", proc.pidns_init_start_ts & _MASK64, proc.tty & _MASK32, proc.loginuid & _MASK32)
            + _flag(proc.exe_writable)
            + struct.pack("<QQQ", proc.cap_inheritable & _MASK64, proc.cap_permitted & _MASK64,
                          proc.cap_effective & _MASK64)
            + _flag(proc.exe_upper_layer)
            + struct.pack("<QQQ", proc.exe_ino & _MASK64, proc.exe_ino_ctime & _MASK64, proc.exe_ino_mtime & _MASK64)
            + _flag(proc.exe_from_memfd) + _flag(proc.exe_lower_layer) + struct.pack("<q", proc.pgid))  # fmt: skip


def _proc_entry(proc: ProcessInfo, current_tail: bool, note: Note) -> bytes:
    body = b"".join((
        struct.pack("<qqqqq", proc.tid, proc.pid, proc.ptid, proc.sid, proc.vpgid),
        _sized(proc.comm, MAX_PATH, "comm", note), _sized(proc.exe, MAX_PATH, "exe", note),
        _sized(proc.exepath, MAX_PATH, "exepath", note), _nul_list(proc.args, MAX_LIST, "args", note),
        _sized(proc.cwd, MAX_PATH, "cwd", note),
        # fdlimit, flags, uid, gid, vmsize/vmrss/vmswap (kB), major/minor page faults: no record fields
        struct.pack("<qIIIIIIQQ", proc.fdlimit, proc.flags & _MASK32, proc.uid & _MASK32, proc.gid & _MASK32,
                    0, 0, 0, 0, 0),
        _nul_list(proc.env, MAX_LIST, "env", note),
        struct.pack("<qq", proc.vtid, proc.vpid),
        _nul_list(proc.cgroups, MAX_LIST, "cgroups", note), _sized(proc.root, MAX_PATH, "root", note),
        _current_tail(proc) if current_tail else _compat_tail(proc),
    ))  # fmt: skip
    return _U32(len(body) + 4) + body


def proc_list(processes: list[ProcessInfo], current_tail: bool, note: Note) -> bytes:
    return frame_block(PL_BLOCK_V9, [_proc_entry(p, current_tail, note) for p in processes])


def _servsock_endpoint(tup: SockTuple) -> tuple[str, int]:
    # a listening socket's own address; scenarios write it as the destination of "any -> local"
    if tup.dst_port or (tup.dst_addr and tup.dst_addr not in ("0.0.0.0", "::")):
        return tup.dst_addr, tup.dst_port
    return tup.src_addr, tup.src_port


def _fd_payload(fd: FdInfo, fd_type: int, note: Note) -> bytes:
    tup = fd.tuple or SockTuple(family=0)
    if fd_type in (FD_IPV4_SOCK, FD_IPV6_SOCK):
        family = socket.AF_INET if fd_type == FD_IPV4_SOCK else socket.AF_INET6
        return (_address(family, tup.src_addr) + _address(family, tup.dst_addr)
                + struct.pack("<HHB", tup.src_port & 0xFFFF, tup.dst_port & 0xFFFF, fd.l4proto & 0xFF))  # fmt: skip
    if fd_type in (FD_IPV4_SERVSOCK, FD_IPV6_SERVSOCK):
        family = socket.AF_INET if fd_type == FD_IPV4_SERVSOCK else socket.AF_INET6
        addr, port = _servsock_endpoint(tup)
        return _address(family, addr) + struct.pack("<HB", port & 0xFFFF, fd.l4proto & 0xFF)
    name = fd.name or tup.dst_path or tup.src_path
    if fd_type == FD_UNIX_SOCK:
        return struct.pack("<QQ", tup.unix_src & _MASK64, tup.unix_dst & _MASK64) + _sized(
            name, MAX_FD_NAME, "fd name", note
        )
    if fd_type == FD_FILE_V2:
        return (_U32(fd.open_flags & _MASK32) + _sized(name, MAX_FD_NAME, "fd name", note)
                + _U32(fd.dev & _MASK32))  # fmt: skip
    return _sized(name, MAX_FD_NAME, "fd name", note)


def written_fd_type(fd_type: int, for_sysdig: bool) -> int:
    """The fd type stored for ``fd_type``: sysdig 0.29.3 refuses types newer than its own, so a memfd
    is stored the way its proc scan saw one (a regular file) and the other new anonymous-inode
    kinds (bpf, userfaultfd, io_uring, pidfd) as "unsupported"."""
    if not for_sysdig or fd_type <= FD_NEWEST_FOR_SYSDIG:
        return fd_type
    return FD_FILE_V2 if fd_type == FD_MEMFD else FD_UNSUPPORTED


def fd_list(proc: ProcessInfo, for_sysdig: bool, note: Note) -> bytes | None:
    """The FDL block of one thread, or None when it has no fds to list."""
    entries: list[bytes] = []
    for fd in proc.fds:
        if fd.fd_type == FD_UNKNOWN:
            note("fd of type 0 (unknown) left out: libsinsp ignores it")
            continue
        fd_type = written_fd_type(fd.fd_type, for_sysdig)
        if fd_type != fd.fd_type:
            note(f"fd type {fd.fd_type} written as {fd_type} for sysdig 0.29.3")
        body = struct.pack("<qQB", fd.fd, fd.ino & _MASK64, fd_type) + _fd_payload(fd, fd_type, note)
        entries.append(_U32(len(body) + 4) + body)
    if not entries:
        return None
    return frame_block(FDL_BLOCK_V2, [struct.pack("<q", proc.tid), *entries])


def fd_lists(processes: list[ProcessInfo], for_sysdig: bool, note: Note) -> Iterator[bytes]:
    for proc in processes:
        block = fd_list(proc, for_sysdig, note)
        if block is not None:
            yield block


def container_json(info: ContainerInfo) -> str:
    """The ``{"container": {...}}`` document that sysdig's ``parse_container_json_evt`` and the
    container plugin's ``from_json`` both read.

    ``ip`` is left out unless it is an IPv4 address: the old parser turns anything else into a
    garbage address. ``created_time`` is in seconds, as docker reports it.
    """
    body: dict[str, Any] = {
        "id": info.id, "full_id": info.full_id or info.id, "type": CONTAINER_TYPES.get(info.runtime, 0),
        "name": info.name, "image": info.image, "imageid": info.image_id, "imagerepo": info.image_repository,
        "imagetag": info.image_tag, "imagedigest": info.image_digest, "privileged": info.privileged,
        "lookup_state": _LOOKUP_SUCCESSFUL, "created_time": info.created_ts // 1_000_000_000,
        "labels": dict(info.labels), "env": [], "port_mappings": [],
        "Mounts": [{"Source": m.source, "Destination": m.dest, "Mode": m.mode, "RW": m.rw,
                    "Propagation": m.propagation} for m in info.mounts],
        "User": info.user, "cni_json": info.cni_json, "host_pid": info.host_pid,
        "host_network": info.host_network, "host_ipc": info.host_ipc, "is_pod_sandbox": info.is_pod_sandbox,
        "pod_sandbox_id": info.pod_sandbox_id, "pod_sandbox_labels": dict(info.pod_sandbox_labels),
    }  # fmt: skip
    if _is_ipv4(info.ip):
        body["ip"] = info.ip
    return json.dumps({"container": body}, separators=(",", ":"), sort_keys=True)


def _is_ipv4(text: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET, text)
    except OSError:
        return False
    return True


def host_tables(header: CaptureHeader, for_sysdig: bool) -> tuple[list[UserInfo], list[GroupInfo]]:
    """The users and groups of the user list block.

    Host entries always; for sysdig 0.29.3 also the container users and groups whose id the host
    table lacks, since that libsinsp looks container processes up in the host table only (current
    libs use the container's own table, filled from the user/group events).
    """
    users = [u for u in header.users if not u.container_id]
    groups = [g for g in header.groups if not g.container_id]
    if for_sysdig:
        uids = {u.uid for u in users}
        for user in header.users:
            if user.container_id and user.uid not in uids:
                users.append(dataclasses.replace(user, container_id=""))
                uids.add(user.uid)
        gids = {g.gid for g in groups}
        for group in header.groups:
            if group.container_id and group.gid not in gids:
                groups.append(dataclasses.replace(group, container_id=""))
                gids.add(group.gid)
    return users, groups


def _interface_as_written(iface: InterfaceInfo) -> InterfaceInfo:
    family = socket.AF_INET if iface.family == 2 else socket.AF_INET6

    def text(addr: str) -> str:
        return socket.inet_ntop(family, _address(family, addr))

    return dataclasses.replace(iface, addr=text(iface.addr), netmask=text(iface.netmask),
                               broadcast=text(iface.broadcast))  # fmt: skip


def _process_as_written(proc: ProcessInfo, for_sysdig: bool) -> ProcessInfo:
    fds = tuple(dataclasses.replace(fd, fd_type=written_fd_type(fd.fd_type, for_sysdig))
                for fd in proc.fds if fd.fd_type != FD_UNKNOWN)  # fmt: skip
    if not for_sysdig:
        return dataclasses.replace(proc, clone_ts=0, fds=fds)
    # the pre-0.10 tail has no room for these
    return dataclasses.replace(proc, clone_ts=0, fds=fds, tty=0, pidns_init_start_ts=0, exe_upper_layer=False,
                               exe_lower_layer=False, exe_from_memfd=False, exe_ino=0, exe_ino_ctime=0,
                               exe_ino_mtime=0, pgid=-1)  # fmt: skip


def header_records_as_written(header: CaptureHeader, for_sysdig: bool) -> CaptureHeader:
    """The header records a reader gets back from a capture written from ``header``.

    Containers are not header records in a capture (they travel as container events); interface
    addresses come back in their canonical text; proc-list threads lose what their tail cannot
    carry (everything after ``loginuid``/``exe_writable``/capabilities for sysdig, the start time
    always); fds keep their written type. Socket fd names and tuples are as given: readers render
    them from the stored endpoints.
    """
    users, groups = host_tables(header, for_sysdig)
    return CaptureHeader(
        machine=header.machine,
        interfaces=[_interface_as_written(i) for i in header.interfaces if i.family in (2, 10)],
        users=users, groups=groups,
        processes=[_process_as_written(p, for_sysdig) for p in header.processes],
        containers=[],
    )  # fmt: skip
