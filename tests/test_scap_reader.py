"""The .scap reader on the upstream captures (counts cross-checked against sysdig 0.29.3), on gzip
and plain copies, and on small synthesized captures for parameter decoding and block versions."""

from __future__ import annotations

import gzip
import ipaddress
import re
import struct
import subprocess
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from conftest import CAPTURES

from falcorules_ci.errors import InputError
from falcorules_ci.fields.event_table import event_table
from falcorules_ci.sources.event import Event, SockAddr, SockTuple
from falcorules_ci.sources.records import ProcessInfo
from falcorules_ci.sources.scap import CaptureError, read_capture
from falcorules_ci.sources.scap.params import decode_params, param_spec

SYSDIG = Path("/usr/bin/sysdig")
SYSDIG_EVENT_MAX = 336  # PPM_EVENT_MAX of sysdig 0.29.3's libs: it skips codes from here on, unnumbered

# Computed once with our reader and checked against sysdig 0.29.3 (``sysdig -D -r F`` numbers every
# event it knows; ``sysdig -r F | wc -l`` prints all but internal/meta events). sample.scap holds 95
# USER_ADDED/GROUP_ADDED events (codes 354/358) that sysdig skips; curl_google_comments.scap (pcapng
# options in its section header and events) is rejected by sysdig, so its numbers are curl_google's.
# name: (events, below 336 = sysdig's last evt.num, printed by `sysdig -r`, threads, users, groups,
#        interfaces, fds, (major, minor))
EXPECTED: dict[str, tuple[int, int, int, int, int, int, int, int, tuple[int, int]]] = {
    "cat_write.scap": (345, 345, 85, 73, 32, 61, 5, 384, (1, 0)),
    "connect_localhost.scap": (374, 374, 8, 184, 41, 71, 7, 690, (1, 0)),
    "curl_google.scap": (1536, 1536, 1221, 54, 31, 55, 5, 316, (1, 0)),
    "curl_google_comments.scap": (1536, 1536, 1221, 54, 31, 55, 5, 316, (1, 0)),
    "open-multiple-files.scap": (1272, 1272, 86, 128, 40, 70, 8, 685, (1, 0)),
    "ping_sendto.scap": (1526, 1526, 20, 136, 42, 72, 10, 674, (1, 2)),
    "sample.scap": (572, 477, 402, 94, 34, 61, 6, 515, (1, 2)),
    "single_ipv6_conn.scap": (1728, 1728, 28, 154, 42, 72, 13, 564, (1, 2)),
    "syscall.scap": (368, 368, 12, 229, 41, 71, 7, 773, (1, 1)),
    "test_ipv6_client.scap": (326, 326, 68, 58, 31, 55, 5, 333, (1, 0)),
}
CAPTURE_FILES = sorted(p.name for p in CAPTURES.glob("*.scap"))


def _hidden_by_sysdig(code: int) -> bool:
    category = event_table().by_code[code].category
    return bool(category & {"EC_INTERNAL", "EC_METAEVENT"})


def test_expected_table_covers_every_upstream_capture() -> None:
    assert sorted(EXPECTED) == CAPTURE_FILES


@pytest.mark.parametrize("name", CAPTURE_FILES)
def test_upstream_capture_reads_with_expected_counts(name: str) -> None:
    events, numbered, printed, threads, users, groups, interfaces, fds, version = EXPECTED[name]
    capture = read_capture(CAPTURES / name)
    seen = list(capture.events())
    assert len(seen) == events == capture.stats.events
    assert [e.num for e in seen] == list(range(1, events + 1))
    assert sum(e.code < SYSDIG_EVENT_MAX for e in seen) == numbered
    assert sum(e.code < SYSDIG_EVENT_MAX and not _hidden_by_sysdig(e.code) for e in seen) == printed
    header = capture.header
    assert (len(header.processes), len(header.users), len(header.groups), len(header.interfaces)) == (
        threads, users, groups, interfaces,
    )  # fmt: skip
    assert sum(len(p.fds) for p in header.processes) == fds
    assert capture.version == version
    assert capture.stats.skipped == {}
    assert capture.stats.bytes == capture.first_event_offset + sum(_block_lengths(capture.path, events))
    assert all(isinstance(p, ProcessInfo) for p in header.processes)


def _block_lengths(path: str, events: int) -> list[int]:
    raw = Path(path).read_bytes()
    data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    capture = read_capture(path)
    pos, lengths = capture.first_event_offset, []
    while pos < len(data):
        lengths.append(struct.unpack_from("<I", data, pos + 4)[0])
        pos += lengths[-1]
    assert len(lengths) == events
    return lengths


def test_cat_write_header_records() -> None:
    header = read_capture(CAPTURES / "cat_write.scap").header
    assert header.machine is not None
    assert (header.machine.hostname, header.machine.num_cpus, header.machine.memory_bytes) == ("ubuntu", 2, 10485940224)
    assert [(i.name, i.family, i.addr, i.netmask) for i in header.interfaces[:2]] == [
        ("lo", 2, "127.0.0.1", "255.0.0.0"), ("enp0s3", 2, "10.0.2.15", "255.255.255.0"),
    ]  # fmt: skip
    root = header.users[0]
    assert (root.uid, root.gid, root.name, root.home, root.shell) == (0, 0, "root", "/root", "/bin/bash")
    assert (header.groups[1].gid, header.groups[1].name) == (1, "daemon")
    threads = {p.tid: p for p in header.processes}
    sudo = threads[20069]
    assert (sudo.comm, sudo.exe, sudo.ptid, sudo.uid, sudo.gid) == ("sudo", "sudo", 1079, 0, 1000)
    assert sudo.args == ("sysdig", "-zw", "cat_write.scap", "proc.name=cat")
    assert "SUDO_COMMAND=/usr/bin/sysdig -zw cat_write.scap proc.name=cat" in threads[20070].env
    assert threads[11310].comm == "bash"  # the parent sysdig shows for cat's execve
    init = threads[1]
    assert (init.comm, init.exe, init.exepath) == ("systemd", "/sbin/init", "")
    assert (init.sid, init.vpid, init.loginuid) == (1, 1, -1)
    assert init.cgroups[:2] == ("freezer=/", "devices=/")
    fds = {f.fd: f for f in init.fds}
    assert (fds[3].fd_type, fds[3].name, fds[3].ino) == (1, "/dev/kmsg", 12)
    assert fds[12].fd_type == 8 and fds[12].tuple is not None and fds[12].tuple.unix_src == 18446612135966411584
    sshd = {f.fd: f for f in threads[936].fds}[3]
    assert (sshd.fd_type, sshd.name, sshd.l4proto) == (3, "10.0.2.15:22->10.0.2.2:54626", 2)
    assert sshd.tuple == SockTuple(2, "10.0.2.15", 22, "10.0.2.2", 54626)
    apache = {f.fd: f for f in threads[809].fds}[4]
    assert (apache.fd_type, apache.name, apache.tuple) == (6, ":::80", SockTuple(10, "::", 80))


def test_sample_v9_proc_list_tail_and_v2_fd_list() -> None:
    threads = {p.tid: p for p in read_capture(CAPTURES / "sample.scap").header.processes}
    sysdig = threads[2987]
    assert isinstance(sysdig, ProcessInfo)
    assert (sysdig.exepath, sysdig.loginuid, sysdig.tty) == ("/usr/bin/sysdig", 1000, 34817)
    assert (sysdig.vpgid, sysdig.sid) == (2986, 1629)
    assert (sysdig.cap_permitted, sysdig.exe_ino, sysdig.exe_writable) == (2199023255551, 1481566, True)
    assert sysdig.pidns_init_start_ts == 1690556576768000000
    assert sysdig.exe_ino_mtime == 1681205762000000000
    assert sysdig.pgid == -1  # this libscap did not write pgid yet
    assert sysdig.cgroups[0] == "cpu=/user.slice/user-1000.slice/session-5.scope"
    scap1 = {f.fd: f for f in sysdig.fds}[4]
    assert (scap1.fd_type, scap1.name, scap1.open_flags) == (16, "/dev/scap1", 4243)
    assert threads[1].args == ("=",)


def test_gzip_and_plain_copies_read_the_same(tmp_path: Path) -> None:
    plain = tmp_path / "curl_google.scap"
    plain.write_bytes(gzip.decompress((CAPTURES / "curl_google.scap").read_bytes()))
    packed = tmp_path / "sample.scap.gz"
    packed.write_bytes(gzip.compress((CAPTURES / "sample.scap").read_bytes()))
    for one, other in ((CAPTURES / "curl_google.scap", plain), (CAPTURES / "sample.scap", packed)):
        a, b = read_capture(one), read_capture(other)
        assert a.compressed != b.compressed
        assert a.header == b.header
        assert [_without_span(e) for e in a.events()] == [_without_span(e) for e in b.events()]


def _without_span(event: Event) -> tuple[Any, ...]:
    return (event.num, event.ts, event.tid, event.code, event.name, event.direction, event.params, event.cpu,
            event.flags)  # fmt: skip


def test_pcapng_comments_do_not_change_the_capture() -> None:
    plain = read_capture(CAPTURES / "curl_google.scap")
    commented = read_capture(CAPTURES / "curl_google_comments.scap")
    assert commented.first_event_offset == plain.first_event_offset + 88  # the section header's options
    assert commented.header == plain.header
    assert [_without_span(e) for e in commented.events()] == [_without_span(e) for e in plain.events()]


def test_decode_selects_event_codes_and_keeps_headers() -> None:
    capture = read_capture(CAPTURES / "connect_localhost.scap")
    full = list(capture.events())
    connect_codes = {e.code for e in full if e.name == "connect"}
    partial = list(capture.events(decode=connect_codes.__contains__, spans=False))
    assert len(partial) == len(full)
    for a, b in zip(full, partial, strict=True):
        assert (a.num, a.ts, a.tid, a.code, a.cpu) == (b.num, b.ts, b.tid, b.code, b.cpu)
        assert b.params == (a.params if a.code in connect_codes else {})
        assert b.span is None and a.span is not None
    connect_exit = next(e for e in full if e.name == "connect" and e.direction == "<")
    assert connect_exit.params["tuple"] == SockTuple(2, "127.0.0.1", 47192, "127.0.0.1", 80)
    assert connect_exit.params["res"] == -115


def test_events_restart_and_stats_reset() -> None:
    capture = read_capture(CAPTURES / "syscall.scap")
    first = [_without_span(e) for e in capture.events()]
    walk = capture.events()
    next(walk)
    next(walk)
    assert capture.stats.events == 2
    walk.close()
    assert [_without_span(e) for e in capture.events()] == first
    assert capture.stats.events == len(first)


def test_spans_point_at_event_blocks() -> None:
    capture = read_capture(CAPTURES / "sample.scap")
    data = (CAPTURES / "sample.scap").read_bytes()
    for event in capture.events():
        assert event.span is not None and event.span.offset is not None
        assert struct.unpack_from("<I", data, event.span.offset)[0] == 0x216
    assert str(next(iter(capture.events())).span) == f"{CAPTURES / 'sample.scap'}:@{capture.first_event_offset}"


def test_event_params_of_an_execve_exit_and_an_open() -> None:
    events = list(read_capture(CAPTURES / "cat_write.scap").events())
    execve = next(e for e in events if e.name == "execve" and e.direction == "<")
    p = execve.params
    assert (execve.code, execve.tid, p["res"], p["exe"], p["comm"]) == (231, 20072, 0, "cat", "cat")
    assert (p["tid"], p["pid"], p["ptid"]) == (20072, 20072, 11310)
    assert p["args"] == b"/dev/null\0"
    assert p["cwd"] == "/mnt/sf_mstemm/work/src/agent/build/release/userspace/dragent"
    assert execve.params["env"].startswith(b"XDG_SESSION_ID=1\0")  # PPME_SYSCALL_EXECVE_16_X: no tty yet
    opened = next(e for e in events if e.name == "open" and e.direction == "<")
    assert opened.params == {"fd": 3, "name": "/etc/ld.so.cache", "flags": 4097, "mode": 0}


# --- synthesized captures -------------------------------------------------------------------------


def block(block_type: int, body: bytes) -> bytes:
    padded = body + b"\0" * (-len(body) % 4)
    length = len(padded) + 12
    return struct.pack("<II", block_type, length) + padded + struct.pack("<I", length)


def section_header(major: int = 1, minor: int = 2) -> bytes:
    return block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, major, minor, -1))


def event_v2(code: int, params: list[bytes], *, tid: int = 7, ts: int = 1000, cpu: int = 1,
             flags: int | None = None, wide: bool = False, block_type: int | None = None) -> bytes:  # fmt: skip
    lens = struct.pack(f"<{len(params)}{'I' if wide else 'H'}", *map(len, params))
    event = struct.pack("<QqIHI", ts, tid, 26 + len(lens) + sum(map(len, params)), code, len(params))
    event += lens + b"".join(params)
    if flags is None:
        return block(block_type or 0x216, struct.pack("<H", cpu) + event)
    return block(block_type or 0x217, struct.pack("<HI", cpu, flags) + event)


def event_v1(code: int, params: list[bytes], *, tid: int = 7, ts: int = 1000, flags: int | None = None) -> bytes:
    lens = struct.pack(f"<{len(params)}H", *map(len, params))
    event = struct.pack("<QqIH", ts, tid, 22 + len(lens) + sum(map(len, params)), code) + lens + b"".join(params)
    if flags is None:
        return block(0x204, struct.pack("<H", 0) + event)
    return block(0x208, struct.pack("<HI", 0, flags) + event)


def write(tmp_path: Path, *blocks: bytes, name: str = "t.scap") -> Path:
    path = tmp_path / name
    path.write_bytes(section_header() + b"".join(blocks))
    return path


def i64(v: int) -> bytes:
    return struct.pack("<q", v)


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def cstr(text: str) -> bytes:
    return text.encode() + b"\0"


OPENAT_X = 307  # fd, dirfd, name, flags, mode, dev, ino
CONTAINER_JSON_2 = 324  # one u32-length parameter


def test_fewer_and_more_parameters_than_the_table(tmp_path: Path) -> None:
    short = event_v2(OPENAT_X, [i64(3), i64(-100), cstr("/etc/shadow")])
    extra = event_v2(OPENAT_X, [i64(4), i64(-100), cstr("/x"), u32(1), u32(0o644), u32(2049), struct.pack("<Q", 9),
                                b"new1", b"new2"])  # fmt: skip
    capture = read_capture(write(tmp_path, short, extra))
    a, b = capture.events()
    assert a.params == {"fd": 3, "dirfd": -100, "name": "/etc/shadow"}
    assert b.params == {"fd": 4, "dirfd": -100, "name": "/x", "flags": 1, "mode": 0o644, "dev": 2049, "ino": 9}
    assert capture.stats.skipped == {"parameters beyond the event table (not decoded)": 2}
    assert (a.name, a.direction, a.tid, a.cpu, a.ts) == ("openat", "<", 7, 1, 1000)


def test_empty_parameters_are_absent_and_flags_blocks_carry_flags(tmp_path: Path) -> None:
    capture = read_capture(write(tmp_path, event_v2(OPENAT_X, [i64(3), b"", cstr("/a")], flags=1)))
    (event,) = capture.events()
    assert event.params == {"fd": 3, "name": "/a"}
    assert event.flags == 1


def test_large_payload_event_in_a_large_block(tmp_path: Path) -> None:
    text = '{"container":{"id":"' + "a" * 70000 + '"}}'
    big = event_v2(CONTAINER_JSON_2, [cstr(text)], tid=-1, wide=True, block_type=0x221)
    (event,) = read_capture(write(tmp_path, big)).events()
    assert (event.name, event.tid, event.params["json"]) == ("container", -1, text)


def test_v1_blocks_infer_the_parameter_count(tmp_path: Path) -> None:
    blocks = [event_v1(OPENAT_X, [i64(3), i64(-100), cstr("/etc/passwd"), u32(1), u32(0), u32(7)]),
              event_v1(OPENAT_X, [i64(5), i64(-100), cstr("/y"), u32(0), u32(0), u32(0), struct.pack("<Q", 1)]),
              event_v1(2, [cstr("/z"), u32(0), u32(0)], flags=1)]  # fmt: skip
    a, b, c = read_capture(write(tmp_path, *blocks)).events()
    assert a.params == {"fd": 3, "dirfd": -100, "name": "/etc/passwd", "flags": 1, "mode": 0, "dev": 7}
    assert b.params["ino"] == 1
    assert (c.name, c.direction, c.flags, c.params) == ("open", ">", 1, {"name": "/z", "flags": 0, "mode": 0})


def test_unknown_event_codes_are_skipped_and_counted(tmp_path: Path) -> None:
    capture = read_capture(write(tmp_path, event_v2(999, [b"x"]), event_v2(OPENAT_X, [i64(1)])))
    (event,) = capture.events()
    assert event.num == 1
    assert capture.stats.skipped == {"event type 999 unknown to the event table": 1}


def _decode_one(ptype: str, raw: bytes) -> tuple[dict[str, Any], list[str]]:
    problems: list[str] = []
    return decode_params((param_spec("p", ptype),), raw, 0, (len(raw),), problems.append), problems


@pytest.mark.parametrize(
    ("ptype", "raw", "value"),
    [
        ("PT_FD", i64(-1), -1),
        ("PT_INT32", struct.pack("<i", -5), -5),
        ("PT_UID", u32(0xFFFFFFFF), 0xFFFFFFFF),
        ("PT_UINT16", struct.pack("<H", 65535), 65535),
        ("PT_ERRNO", u32(0xFFFFFFFE), 0xFFFFFFFE & 0x7FFFFFFF | -0x80000000),  # 4 bytes: read at that width
        ("PT_UINT64", u32(7), 7),
        ("PT_IPV4ADDR", bytes([10, 0, 0, 1]), 0x0100000A),
        ("PT_DOUBLE", struct.pack("<d", 1.5), 1.5),
        ("PT_CHARBUF", b"bash\0", "bash"),
        ("PT_FSPATH", b"/tmp/\xff\0junk", "/tmp/\udcff"),
        ("PT_BYTEBUF", b"-c\0id\0", b"-c\0id\0"),
        ("PT_SOCKADDR", b"\x02" + bytes([1, 2, 3, 4]) + struct.pack("<H", 443), SockAddr(2, "1.2.3.4", 443)),
        ("PT_SOCKADDR", b"\x0a" + ipaddress.ip_address("::1").packed + struct.pack("<H", 22), SockAddr(10, "::1", 22)),
        ("PT_SOCKADDR", b"\x01/run/x.sock\0", SockAddr(1, path="/run/x.sock")),
        ("PT_SOCKADDR", b"\x11", SockAddr(17)),
        ("PT_SOCKTUPLE", b"\x02" + bytes([172, 17, 0, 2]) + struct.pack("<H", 40000) + bytes([10, 0, 0, 5])
         + struct.pack("<H", 443), SockTuple(2, "172.17.0.2", 40000, "10.0.0.5", 443)),
        ("PT_SOCKTUPLE", b"\x0a" + ipaddress.ip_address("::ffff:1.2.3.4").packed + struct.pack("<H", 1)
         + ipaddress.ip_address("fe80::1").packed + struct.pack("<H", 2), SockTuple(10, "::ffff:1.2.3.4", 1, "fe80::1", 2)),
        ("PT_SOCKTUPLE", b"\x01" + struct.pack("<QQ", 0xFFFF8800, 0) + b"/var/run/nscd/socket\0",
         SockTuple(1, src_path="/var/run/nscd/socket", dst_path="/var/run/nscd/socket", unix_src=0xFFFF8800)),
        ("PT_FDLIST", struct.pack("<H", 2) + struct.pack("<qHqH", 4, 1, 5, 0x41), ((4, 1), (5, 0x41))),
        ("PT_CHARBUFARRAY", b"a\0\0b\0", ("a", "", "b")),
        ("PT_IPV6ADDR", ipaddress.ip_address("::1").packed, ipaddress.ip_address("::1").packed),
        ("PT_DYN", b"\x00" + i64(3), b"\x00" + i64(3)),
    ],
)  # fmt: skip
def test_parameter_values(ptype: str, raw: bytes, value: Any) -> None:
    params, problems = _decode_one(ptype, raw)
    assert params == {"p": value}
    assert type(params["p"]) is type(value)
    assert problems == []


@pytest.mark.parametrize(
    ("ptype", "raw"),
    [("PT_SOCKADDR", b"\x02\x01\x02"), ("PT_SOCKTUPLE", b"\x0a" + bytes(20)), ("PT_SOCKTUPLE", b"\x01" + bytes(8)),
     ("PT_FDLIST", struct.pack("<H", 3) + bytes(10)), ("PT_INT64", bytes(3)), ("PT_DOUBLE", bytes(4))],
)  # fmt: skip
def test_malformed_parameter_values_are_left_out_and_reported(ptype: str, raw: bytes) -> None:
    params, problems = _decode_one(ptype, raw)
    assert params == {} and problems == [ptype]


def pl_entry(tid: int, tail: bytes, *, comm: str = "bash", args: bytes = b"-c\0id\0") -> bytes:
    def s(raw: bytes) -> bytes:
        return struct.pack("<H", len(raw)) + raw

    body = struct.pack("<qqqqq", tid, tid, 1, tid, tid)
    body += s(comm.encode()) + s(b"/bin/bash") + s(b"/usr/bin/bash") + s(args) + s(b"/root")
    body += struct.pack("<qIII", 1024, 0, 1000, 1000) + struct.pack("<IIIQQ", 1, 2, 3, 4, 5)
    body += s(b"HOME=/root\0") + struct.pack("<qq", 1, 1) + s(b"cpu=/docker/x\0") + s(b"/")
    return struct.pack("<I", 4 + len(body) + len(tail)) + body + tail


def test_proc_list_v9_tail_layouts(tmp_path: Path) -> None:
    compat = struct.pack("<IBQQQ", 1000, 1, 10, 20, 30)  # loginuid, exe_writable, 3 capability sets: 29 bytes
    current = struct.pack("<QI", 555, 34816) + compat + struct.pack("<BQQQBBq", 1, 77, 88, 99, 1, 0, 42)
    newer = current + b"future field"
    body = pl_entry(10, compat) + pl_entry(11, current) + pl_entry(12, newer, args=b"unterminated")
    header = read_capture(write(tmp_path, block(0x215, body), event_v2(OPENAT_X, []))).header
    old, cur, fut = header.processes
    assert isinstance(old, ProcessInfo) and isinstance(cur, ProcessInfo)
    assert (old.loginuid, old.exe_writable, old.cap_effective) == (1000, True, 30)
    assert (old.tty, old.pidns_init_start_ts) == (0, 0)
    assert (cur.pidns_init_start_ts, cur.tty, cur.loginuid) == (555, 34816, 1000)
    assert (cur.cap_inheritable, cur.exe_upper_layer) == (10, True)
    assert (cur.exe_ino, cur.exe_ino_ctime, cur.exe_ino_mtime, cur.exe_from_memfd, cur.pgid) == (77, 88, 99, True, 42)
    assert fut.pgid == 42 and fut.args == ("unterminated",)
    assert (cur.comm, cur.exe, cur.exepath, cur.args, cur.cwd, cur.env, cur.cgroups, cur.root) == (
        "bash", "/bin/bash", "/usr/bin/bash", ("-c", "id"), "/root", ("HOME=/root",), ("cpu=/docker/x",), "/",
    )  # fmt: skip


def test_old_block_versions(tmp_path: Path) -> None:
    def s(raw: bytes) -> bytes:
        return struct.pack("<H", len(raw)) + raw

    pl_v1 = (
        struct.pack("<qqq", 5, 5, 1)
        + s(b"init")
        + s(b"/sbin/init")
        + s(b"")
        + s(b"/")
        + struct.pack("<qIII", 64, 0, 0, 0)
    )
    users_v1 = b"\0" + struct.pack("<II", 0, 0) + s(b"root") + s(b"/root") + s(b"/bin/sh") + b"\1" + u32(4) + s(b"adm")
    iface_v1 = struct.pack("<HH", 3, 2) + bytes([127, 0, 0, 1, 255, 0, 0, 0, 127, 255, 255, 255]) + b"lo"
    iface_v1 += struct.pack("<HH", 2, 4) + bytes(16) * 3 + struct.pack("<Q", 1000) + b"eth0"
    fdl_v1 = i64(5) + struct.pack("<qQB", 0, 1, 1) + s(b"/dev/null") + struct.pack("<qQB", 1, 2, 0)
    fdl_v1 += struct.pack("<qQB", 2, 3, 99)  # a type from the future: no payload, libsinsp calls it unsupported
    machine = struct.pack("<IQQ128sQQQQ", 4, 1 << 30, 32768, b"host", 5, 6, 0, 0)
    path = write(tmp_path, block(0x201, machine), block(0x206, users_v1), block(0x205, iface_v1),
                 block(0x202, pl_v1), block(0x203, fdl_v1), event_v2(OPENAT_X, []))  # fmt: skip
    capture = read_capture(path)
    h = capture.header
    assert h.machine is not None and (h.machine.hostname, h.machine.num_cpus, h.machine.boot_ts) == ("host", 4, 5)
    assert [(u.name, u.home, u.shell) for u in h.users] == [("root", "/root", "/bin/sh")]
    assert [(g.gid, g.name) for g in h.groups] == [(4, "adm")]
    assert [(i.name, i.family, i.addr, i.broadcast) for i in h.interfaces] == [
        ("lo", 2, "127.0.0.1", "127.255.255.255"), ("eth0", 10, "::", "::"),
    ]  # fmt: skip
    (init,) = h.processes
    assert (init.comm, init.sid, init.vtid, init.vpid, init.root, init.env) == ("init", -1, -1, -1, "/", ())
    assert [(f.fd, f.fd_type, f.name) for f in init.fds] == [(0, 1, "/dev/null"), (2, 10, "unknown-type:[99]")]
    assert capture.stats.skipped == {"fd list entry of type 0 (unknown)": 1}


def test_capture_error_is_an_input_error_with_an_offset(tmp_path: Path) -> None:
    path = tmp_path / "empty.scap"
    path.write_bytes(b"")
    with pytest.raises(InputError) as info:
        read_capture(path)
    assert isinstance(info.value, CaptureError) and info.value.span is not None and info.value.span.offset == 0
    with pytest.raises(CaptureError, match="cannot open capture"):
        read_capture(tmp_path / "missing.scap")


# --- cross-check with sysdig 0.29.3 ---------------------------------------------------------------

_KEY = re.compile(r"(?:^| )(\w+)=")
_INT = re.compile(r"-?\d+")
_CHECKED_TYPES = {"PT_ERRNO", "PT_FD", "PT_PID", "PT_INT64", "PT_INT32", "PT_FD32", "PT_PID32", "PT_FLAGS8",
                  "PT_FLAGS16", "PT_FLAGS32", "PT_ENUMFLAGS8", "PT_ENUMFLAGS16", "PT_ENUMFLAGS32", "PT_CHARBUF",
                  "PT_FSPATH", "PT_FSRELPATH", "PT_SOCKTUPLE", "PT_SOCKADDR", "PT_UINT8", "PT_UINT16",
                  "PT_UINT32", "PT_UINT64"}  # fmt: skip


def _sysdig_lines(path: Path, fmt: str, *filters: str) -> list[list[str]]:
    out = subprocess.run([str(SYSDIG), "-D", "-r", str(path), "-p", "*" + fmt, *filters], capture_output=True,
                         check=True, timeout=60).stdout.decode("utf-8", "surrogateescape")  # fmt: skip
    count = fmt.count("|")
    return [line.split("|", count) for line in out.splitlines() if line[:1].isdigit() and line.count("|") >= count]


def _args(text: str) -> dict[str, str]:
    found = list(_KEY.finditer(text))
    out: dict[str, str] = {}
    for i, match in enumerate(found):
        stop = found[i + 1].start() if i + 1 < len(found) else len(text)
        out.setdefault(match.group(1), text[match.end() : stop].rstrip(" "))
    return out


def _ip_text(text: str) -> str:
    address = ipaddress.ip_address(text)
    return str(address.ipv4_mapped) if address.version == 6 and address.ipv4_mapped else str(address)


def _sysdig_text(ptype: str, fmt: str, value: Any) -> tuple[str, Any] | None:
    """How sysdig prints ``value`` in ``evt.args``: ('int', number) for numbers (printed before any
    ``(decoration)``, in decimal or hex), ('str', text) for text, None when not compared."""
    if ptype.startswith("PT_UINT") and fmt != "PF_DEC":
        return None
    if isinstance(value, int):
        return "int", value
    if isinstance(value, str):
        return "str", value
    if isinstance(value, SockTuple) and value.family in (2, 10):
        return "str", f"{_ip_text(value.src_addr)}:{value.src_port}->{_ip_text(value.dst_addr)}:{value.dst_port}"
    if isinstance(value, SockTuple) and value.family == 1:
        return "str", f"{value.unix_src:x}->{value.unix_dst:x} {value.dst_path}"
    if isinstance(value, SockAddr) and value.family in (2, 10):
        return "str", f"{_ip_text(value.addr)}:{value.port}"
    if isinstance(value, SockAddr) and value.family == 1:
        return "str", value.path
    return None


def _matches(kind: str, expected: Any, shown: str) -> bool:
    if kind == "int":
        number = _INT.match(shown)
        head = shown.split("(", 1)[0]
        hex_ok = bool(re.fullmatch(r"[0-9A-F]+", head)) and int(head, 16) == expected & 0xFFFFFFFFFFFFFFFF
        return (number is not None and int(number.group()) == expected) or hex_ok
    return (
        shown == expected
        or shown.startswith(expected + "(")
        or (shown.endswith("...") and expected.startswith(shown[:-3]))
    )


@pytest.mark.sysdig
@pytest.mark.skipif(not SYSDIG.exists(), reason="needs /usr/bin/sysdig")
@pytest.mark.parametrize("name", [n for n in CAPTURE_FILES if n != "curl_google_comments.scap"])
def test_events_match_sysdig(name: str) -> None:
    path = CAPTURES / name
    table = event_table().by_code
    ours = [e for e in read_capture(path).events() if e.code < SYSDIG_EVENT_MAX]
    lines = _sysdig_lines(path, "%evt.num|%evt.type|%evt.dir|%thread.tid|%evt.args")
    assert int(lines[-1][0]) == len(ours) == EXPECTED[name][1]
    compared = 0
    for num, etype, direction, tid, args in lines:
        event = ours[int(num) - 1]
        assert (event.direction, str(event.tid)) == (direction, tid), num
        # generic events take evt.type from their syscall id; 196/197 were renamed after 0.29.3
        if event.code not in (0, 1, 196, 197):
            assert event.name == etype, num
        shown = _args(args)
        for param in table[event.code].params:
            if param.type not in _CHECKED_TYPES or param.name not in event.params or param.name not in shown:
                continue
            expected = _sysdig_text(param.type, param.fmt, event.params[param.name])
            if expected is not None:
                assert _matches(*expected, shown[param.name]), (num, param.name, shown[param.name], expected)
                compared += 1
    assert compared > len(ours) // 10


@pytest.mark.sysdig
@pytest.mark.skipif(not SYSDIG.exists(), reason="needs /usr/bin/sysdig")
@pytest.mark.parametrize("name", [n for n in CAPTURE_FILES if n != "curl_google_comments.scap"])
def test_proc_list_matches_sysdig(name: str) -> None:
    """Threads from the proc list as sysdig sees them at their first event (before any execve)."""
    path = CAPTURES / name
    capture = read_capture(path)
    threads = {p.tid: p for p in capture.header.processes}
    users = {u.uid: u.name for u in capture.header.users}
    first: dict[str, list[str]] = {}
    for line in _sysdig_lines(
        path, "%evt.num|%thread.tid|%evt.type|%proc.name|%proc.exe|%user.uid|%user.name|%proc.exepath"
    ):
        first.setdefault(line[1], line)
    checked = 0
    for tid, (_num, _tid, etype, comm, exe, uid, user, exepath) in first.items():
        thread = threads.get(int(tid))
        if thread is None or etype in ("execve", "clone", "fork", "vfork"):
            continue
        assert (comm, exe, int(uid)) == (thread.comm, thread.exe, thread.uid), tid
        assert user == users.get(thread.uid, "<NA>"), tid
        if thread.exepath:
            assert exepath == thread.exepath, tid
        checked += 1
    assert checked >= 1


@pytest.mark.sysdig
@pytest.mark.skipif(not SYSDIG.exists(), reason="needs /usr/bin/sysdig")
@pytest.mark.parametrize("name", [n for n in CAPTURE_FILES if n != "curl_google_comments.scap"])
def test_proc_list_tail_offsets_against_sysdig(name: str) -> None:
    """sysdig 0.29.3 always reads ``loginuid`` right after ``root``; where a newer libscap put
    ``pidns_init_start_ts`` first (sample.scap) it shows that field's low 32 bits instead, which
    pins down where our reader found each tail field."""
    threads = {p.tid: p for p in read_capture(CAPTURES / name).header.processes}
    checked = 0
    for tid, shown in _sysdig_lines(CAPTURES / name, "%thread.tid|%user.loginuid"):
        thread = threads.get(int(tid))
        if thread is None or shown == "<NA>":
            continue
        low = thread.pidns_init_start_ts & 0xFFFFFFFF
        expected = (low - (1 << 32) if low >> 31 else low) if thread.pidns_init_start_ts else thread.loginuid
        assert int(shown) == expected, tid
        checked += 1
    assert checked > 0


PL_CODES = [(1, 0x202), (1, 0x8000ABCD), (2, 0x207), (2, 0x8013ABCD), (3, 0x209), (3, 0x8014ABCD), (4, 0x210),
            (5, 0x211), (6, 0x212), (7, 0x213), (8, 0x214), (9, 0x215)]  # fmt: skip


def pl_entry_of_version(version: int) -> bytes:
    def s(raw: bytes) -> bytes:
        return struct.pack("<H", len(raw)) + raw

    body = struct.pack("<qqq", 42, 40, 1)
    body += struct.pack("<q", 30) if version >= 6 else b""  # sid
    body += struct.pack("<q", 31) if version >= 8 else b""  # vpgid
    body += s(b"nginx") + s(b"nginx:")
    body += s(b"/usr/sbin/nginx") if version >= 7 else b""
    body += s(b"-g\0daemon off;\0") + s(b"/srv") + struct.pack("<qIII", 4096, 0x2000, 33, 34)
    if version >= 2:
        body += struct.pack("<IIIQQ", 10, 20, 30, 40, 50)
    body += s(b"PATH=/bin\0") if version >= 3 else b""
    body += struct.pack("<qq", 7, 1) + s(b"cpu=/kubepods/x\0") if version >= 4 else b""
    body += s(b"/var/lib/c") if version >= 5 else b""
    if version >= 9:
        body = struct.pack("<I", 4 + len(body)) + body
    return body


@pytest.mark.parametrize(("version", "code"), PL_CODES)
def test_every_proc_list_version(tmp_path: Path, version: int, code: int) -> None:
    header = read_capture(write(tmp_path, block(code, pl_entry_of_version(version) * 2), event_v2(OPENAT_X, []))).header
    assert len(header.processes) == 1  # the same tid twice: the second replaces the first
    (p,) = header.processes
    assert (p.tid, p.pid, p.ptid, p.comm, p.exe) == (42, 40, 1, "nginx", "nginx:")
    assert (p.args, p.cwd) == (("-g", "daemon off;"), "/srv")
    assert (p.fdlimit, p.flags, p.uid, p.gid) == (4096, 0x2000, 33, 34)
    assert p.sid == (30 if version >= 6 else -1)
    assert p.vpgid == (31 if version >= 8 else -1)
    assert p.exepath == ("/usr/sbin/nginx" if version >= 7 else "")
    assert p.env == (("PATH=/bin",) if version >= 3 else ())
    assert (p.vtid, p.vpid, p.cgroups) == ((7, 1, ("cpu=/kubepods/x",)) if version >= 4 else (-1, -1, ()))
    assert p.root == ("/var/lib/c" if version >= 5 else "/")
    assert (p.loginuid, p.tty, p.pgid) == (-1, 0, -1)


def test_flags_on_large_blocks(tmp_path: Path) -> None:
    big = event_v2(CONTAINER_JSON_2, [cstr("{}")], tid=-1, wide=True, flags=1, block_type=0x222)
    (event,) = read_capture(write(tmp_path, big)).events()
    assert (event.code, event.flags, event.cpu, event.params) == (CONTAINER_JSON_2, 1, 1, {"json": "{}"})


@pytest.mark.parametrize("compress", [False, True])
def test_memory_does_not_grow_with_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compress: bool) -> None:
    # a 64 KiB gzip chunk instead of 1 MiB shows the bound on a small file: the window holds a
    # chunk or two, never the file (an mmap'd plain file costs no Python memory at all)
    monkeypatch.setattr("falcorules_ci.sources.scap.blocks._CHUNK", 1 << 16)
    data = (CAPTURES / "sample.scap").read_bytes()
    start = read_capture(CAPTURES / "sample.scap").first_event_offset
    big = data + data[start:] * 30  # 1.4 MB and 17,732 events
    path = tmp_path / "big.scap"
    path.write_bytes(gzip.compress(big, compresslevel=1) if compress else big)
    capture = read_capture(path)
    next(capture.events())  # load the event table before measuring
    tracemalloc.start()
    try:
        count = sum(1 for _ in capture.events(decode=lambda code: False, spans=False))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 572 * 31
    assert peak < (512 << 10 if compress else 64 << 10), peak
