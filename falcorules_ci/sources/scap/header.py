"""The header blocks of a capture, read eagerly: section header, machine, interfaces, users, threads, fds.

Mirrors libscap's ``_scap_read_init`` (libs 48dfd53c): the first block must be a section header
with the little-endian magic and major version 1; then any mix of MI, IL, UL, PL and FDL blocks,
each checked against its trailing length; unknown block types are skipped by their length (and
counted). The header ends at the first event block; a file that ends before one is an error ("no
events in file"), as it is for libscap.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
from dataclasses import dataclass, field
from typing import Final

from falcorules_ci.sources.records import (
    CaptureHeader,
    FdInfo,
    GroupInfo,
    InterfaceInfo,
    MachineInfo,
    ProcessInfo,
    UserInfo,
)
from falcorules_ci.sources.scap import blocks as b
from falcorules_ci.sources.scap.cursor import Cursor, c_string
from falcorules_ci.sources.scap.errors import CaptureError
from falcorules_ci.sources.scap.proclist import (
    MAX_PATH,
    read_fdlist,
    read_proclist,
)

_SHB_BODY: Final = struct.Struct("<IHHq")
_SHB_MIN_LEN: Final = b.BLOCK_OVERHEAD + _SHB_BODY.size  # 28
_MACHINE_INFO: Final = struct.Struct("<IQQ128sQQQQ")  # packed scap_machine_info, 180 bytes
_MAX_CREDENTIAL: Final = 256  # MAX_CREDENTIALS_STR_LEN; libscap refuses names this long or longer
_AF_INET: Final = 2
_AF_INET6: Final = 10


@dataclass(slots=True)
class HeaderResult:
    header: CaptureHeader
    first_event_offset: int
    version: tuple[int, int]
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count


def read_header(window: b.ByteWindow) -> HeaderResult:
    """Read every block before the first event block; leave ``window`` positioned anywhere."""
    path = window.path
    pos = window.refill(0, _SHB_MIN_LEN)
    if window.end - pos < 8:
        raise CaptureError("not a capture file: empty or shorter than a block header", path, 0)
    block_type, length = b.BLOCK_HEADER.unpack_from(window.buf, pos)
    if block_type != b.SHB_TYPE:
        raise CaptureError(
            f"not a capture file: first block type 0x{block_type:08x} is not a section header block "
            f"(0x{b.SHB_TYPE:08x})",
            path,
            0,
        )
    pos = window.require(pos, 8 + _SHB_BODY.size, "section header block", 0)
    magic, major, minor, _section_length = _SHB_BODY.unpack_from(window.buf, pos + 8)
    if magic == b.SHB_MAGIC_SWAPPED:
        raise CaptureError("invalid magic number: byte-swapped (big-endian) captures are not supported", path, 8)
    if magic != b.SHB_MAGIC:
        raise CaptureError(f"invalid magic number 0x{magic:08x} (expected 0x{b.SHB_MAGIC:08x})", path, 8)
    if major > b.SHB_MAJOR_SUPPORTED:
        raise CaptureError(
            f"cannot correctly parse the capture: format version {major}.{minor} is newer than "
            f"{b.SHB_MAJOR_SUPPORTED}.x",
            path,
            12,
        )
    if length < _SHB_MIN_LEN:
        raise CaptureError(f"section header block length {length} is less than {_SHB_MIN_LEN}", path, 0)
    result = HeaderResult(CaptureHeader(), 0, (major, minor))
    pos = _whole_block(window, pos, block_type, length)
    # libscap skips the SHB's pcapng options and never compares its trailer
    if b.U32.unpack_from(window.buf, pos + length - 4)[0] != length:
        result.skip("section header block trailer differs from its length (ignored, as libscap does)")
    pos += length
    return _read_metadata_blocks(window, pos, result)


def _whole_block(window: b.ByteWindow, pos: int, block_type: int, length: int) -> int:
    b.check_block_length(window, pos, block_type, length)
    return window.require(pos, length, f"block of type 0x{block_type:x}", window.base + pos)


def _read_metadata_blocks(window: b.ByteWindow, pos: int, result: HeaderResult) -> HeaderResult:
    path = window.path
    header = result.header
    threads: dict[int, ProcessInfo] = {}
    fds: dict[int, list[FdInfo]] = {}
    while True:
        if window.end - pos < 8:
            pos = window.refill(pos, 8)
            if window.end == pos:
                raise CaptureError("no events in file", path, window.base + pos)
            if window.end - pos < 8:
                raise CaptureError(
                    f"truncated capture: block header needs 8 bytes, only {window.end - pos} remain",
                    path,
                    window.base + pos,
                )
        block_type, length = b.BLOCK_HEADER.unpack_from(window.buf, pos)
        if block_type in b.EVENT_TYPES:
            result.first_event_offset = window.base + pos
            break
        pos = _whole_block(window, pos, block_type, length)
        at = window.base + pos
        trailer = b.U32.unpack_from(window.buf, pos + length - 4)[0]
        if trailer != length:
            raise CaptureError(f"wrong block total length: header {length}, trailer {trailer}", path, at)
        body = Cursor(window.buf, pos + 8, pos + length - 4, path, window.base, f"block 0x{block_type:x}")
        if block_type in b.MI_TYPES:
            body.what = "machine info block"
            header.machine = _read_machine_info(body)
        elif block_type in b.PL_VERSIONS:
            body.what = "proc list block"
            for thread in read_proclist(body, b.PL_VERSIONS[block_type]):
                threads[thread.tid] = thread  # a thread listed again replaces the old one
                fds[thread.tid] = []
        elif block_type in b.FDL_VERSIONS:
            body.what = "fd list block"
            tid, entries, ignored = read_fdlist(body, b.FDL_VERSIONS[block_type])
            if ignored:
                result.skip("fd list entry of type 0 (unknown)", ignored)
            if tid in fds:
                fds[tid].extend(entries)
            else:
                result.skip("fd list block for a thread not in the proc list")
        elif block_type in b.IL_VERSIONS:
            body.what = "interface list block"
            header.interfaces = _read_interfaces(body, b.IL_VERSIONS[block_type])
        elif block_type in b.UL_VERSIONS:
            body.what = "user list block"
            header.users, header.groups = _read_users(body, b.UL_VERSIONS[block_type])
        else:
            result.skip(f"unknown block type 0x{block_type:x} before the first event")
        pos += length
    header.processes = [
        dataclasses.replace(thread, fds=tuple(fds[tid])) if fds[tid] else thread for tid, thread in threads.items()
    ]
    return result


def _read_machine_info(cur: Cursor) -> MachineInfo:
    # libscap always reads sizeof(scap_machine_info) and then expects the trailer right after it
    if cur.left != _MACHINE_INFO.size:
        cur.fail(f"machine info body is {cur.left} bytes; it must be {_MACHINE_INFO.size}")
    num_cpus, memory, max_pid, hostname, boot_ts, flags, _r3, _r4 = _MACHINE_INFO.unpack_from(cur.buf, cur.pos)
    return MachineInfo(
        hostname=c_string(hostname), num_cpus=num_cpus, memory_bytes=memory, max_pid=max_pid,
        boot_ts=boot_ts, flags=flags,
    )  # fmt: skip


def _read_interfaces(cur: Cursor, version: int) -> list[InterfaceInfo]:
    out: list[InterfaceInfo] = []
    while cur.left >= 4:
        start = cur.pos
        entry_size = cur.u32() if version >= 2 else 0  # V2: the entry's length, excluding this field
        kind, name_len = cur.u16(), cur.u16()
        if name_len >= MAX_PATH:
            cur.fail(f"corrupted interface list: name length {name_len}", start)
        if kind in (1, 3):  # IPv4, IPv4 without link speed
            family, width, text = _AF_INET, 4, _ipv4
        elif kind in (2, 4):  # IPv6, IPv6 without link speed
            family, width, text = _AF_INET6, 16, _ipv6
        else:
            cur.fail(f"unknown interface type {kind}", start)
        addr, netmask, broadcast = cur.take(width), cur.take(width), cur.take(width)
        if kind in (1, 2):
            cur.u64()  # link speed
        name = c_string(cur.take(name_len))
        out.append(InterfaceInfo(name, family, text(addr), text(netmask), text(broadcast)))
        if entry_size:
            following = start + 4 + entry_size
            if following > cur.stop:
                cur.fail(f"corrupted interface list: entry of {entry_size} bytes runs past the block", start)
            cur.skip_to(following)
    return out


def _ipv4(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, raw)


def _ipv6(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


def _read_users(cur: Cursor, version: int) -> tuple[list[UserInfo], list[GroupInfo]]:
    users: list[UserInfo] = []
    groups: list[GroupInfo] = []
    while cur.left >= 4:
        start = cur.pos
        sub_len = cur.u32() if version >= 2 else 0  # V2: the entry's length, including this field
        if cur.u8() == 0:
            uid, gid = cur.u32(), cur.u32()
            name = c_string(cur.sized(_MAX_CREDENTIAL, "user name", inclusive=False))
            home = c_string(cur.sized(_MAX_CREDENTIAL, "user homedir", inclusive=False))
            shell = c_string(cur.sized(_MAX_CREDENTIAL, "user shell", inclusive=False))
            users.append(UserInfo(uid, gid, name, home, shell))
        else:  # libscap reads every non-zero type as a group
            gid = cur.u32()
            groups.append(GroupInfo(gid, c_string(cur.sized(_MAX_CREDENTIAL, "group name", inclusive=False))))
        if sub_len:
            used = cur.pos - start
            if used > sub_len:
                cur.fail(f"user list entry declares {sub_len} bytes but its fields take {used}", start)
            if start + sub_len > cur.stop:
                cur.fail(f"user list entry of {sub_len} bytes runs past the end of the block", start)
            cur.skip_to(start + sub_len)
    return users, groups
