"""Event parameters rendered as text, as libsinsp's ``get_param_as_str`` does for ``evt.arg.*``,
``evt.args`` and ``evt.res``.

Each parameter renders to a plain form (numbers, raw paths) and, for some types, a resolved form
that the fields prefer when it is not empty: fds as ``<f>/etc/passwd`` (type character, then the
L4 protocol for sockets), flags as ``O_RDONLY|O_CLOEXEC``, errnos as ``ENOENT``, uids as user
names, relative paths joined to the cwd or dirfd. An absent parameter renders ``<NA>`` (``NULL``
for buffers, tuples and lists).
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from falcorules_ci.extract.syscall_tables import (
    DYNAMIC_PARAM_TYPES,
    ERRNO_NAMES,
    FLAG_TABLES,
    PARAM_DIRFD,
    PARAM_FLAG_TABLE,
    SIGNAL_NAMES,
)
from falcorules_ci.fields.event_table import ParamInfo, event_table
from falcorules_ci.sources.event import Event, SockAddr, SockTuple
from falcorules_ci.state import constants as c
from falcorules_ci.state.layouts import Layout, layout_of
from falcorules_ci.state.paths import concatenate_paths
from falcorules_ci.state.sockets import sockaddr_text, socktuple_text
from falcorules_ci.state.syscall_state import SyscallState
from falcorules_ci.state.threads import ThreadInfo
from falcorules_ci.state.values import as_strings

NULL_WHEN_EMPTY = frozenset({"PT_BYTEBUF", "PT_SOCKTUPLE", "PT_FDLIST", "PT_CHARBUFARRAY",
                             "PT_CHARBUF_PAIR_ARRAY", "PT_DYN"})  # fmt: skip
_SIGNED = {"PT_INT8": 8, "PT_INT16": 16, "PT_INT32": 32, "PT_INT64": 64}
# Printed with %d after C's integer promotion: 8/16-bit values stay positive, 32-bit ones do not.
_UNSIGNED = {"PT_UINT8": (8, False), "PT_UINT16": (16, False), "PT_UINT32": (32, True)}
_L4_CHARS = {c.L4_TCP: "t", c.L4_UDP: "u", c.L4_ICMP: "i", c.L4_RAW: "r"}
_ENUM_FLAG_TYPES = frozenset({"PT_ENUMFLAGS8", "PT_ENUMFLAGS16", "PT_ENUMFLAGS32"})
_FLAG_WIDTH = {"PT_FLAGS8": 8, "PT_FLAGS16": 16, "PT_FLAGS32": 32, "PT_ENUMFLAGS8": 8,
               "PT_ENUMFLAGS16": 16, "PT_ENUMFLAGS32": 32}  # fmt: skip


def errno_name(value: int) -> str:
    return ERRNO_NAMES.get(-value, "")


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def format_number(value: int, fmt: str, bits: int, signed: bool) -> str:
    """A number printed with a parameter's print format (C's ``%d``, ``%X``, ``%#o``, ``%09d``)."""
    unsigned = value & ((1 << bits) - 1)
    if fmt == "PF_OCT":
        return f"0{unsigned:o}" if unsigned else "0"
    if fmt == "PF_HEX":
        return f"{unsigned:X}"
    number = _signed(value, bits) if signed else unsigned
    if fmt == "PF_10_PADDED_DEC":
        return f"{number:09d}"
    return str(number)


def render_flags(value: int, table: tuple[tuple[str, int], ...], exact: bool) -> str:
    names: list[str] = []
    remaining = value
    for name, flag in table:
        if exact:
            if flag == value:
                names.append(name)
            continue
        if (flag == 0 and value == 0) or (flag != 0 and remaining & flag == flag and remaining != 0):
            names.append(name)
            remaining &= ~flag
            if flag == value:
                break
    return "|".join(names)


def render_mode(value: int, table: tuple[tuple[str, int], ...]) -> str:
    names: list[str] = []
    remaining = value
    for name, flag in table:
        if flag == value:
            # The walk stops at an entry equal to the whole value and names it.
            names.append(name)
            break
        if (flag == 0 and value == 0) or (flag != 0 and remaining & flag == flag and remaining != 0):
            names.append(name)
            remaining &= ~flag
    return "|".join(names)


def render_fd(fd: int, thread: ThreadInfo | None) -> tuple[str, str]:
    plain = str(fd)
    if thread is None:
        return plain, ""
    if fd >= 0:
        info = thread.get_fd(fd)
        if info is None:
            return plain, ""
        proto = ""
        if info.fd_type in (c.FD_IPV4_SOCK, c.FD_IPV6_SOCK, c.FD_IPV4_SERVSOCK, c.FD_IPV6_SERVSOCK):
            proto = _L4_CHARS.get(info.l4proto_effective(), "")
        return plain, f"<{info.typechar}{proto}>{info.name}"
    if fd == c.AT_FDCWD:
        return plain, "AT_FDCWD"
    return plain, errno_name(fd)


def _base_dir(layout: Layout, name: str, ev: Event, thread: ThreadInfo) -> str:
    cwd = thread.get_cwd()
    dirfd_name = PARAM_DIRFD.get(layout.enum, {}).get(name)
    if dirfd_name is None:
        return cwd
    dirfd = ev.params.get(dirfd_name)
    if not isinstance(dirfd, int):
        dirfd = 0
    if dirfd == c.AT_FDCWD:
        return cwd
    info = thread.get_fd(dirfd)
    if info is not None and info.name:
        return info.name if info.name.endswith("/") else info.name + "/"
    # libsinsp would ask /proc for the directory; a replay has none.
    return ""


def render(layout: Layout, index: int, ev: Event, st: SyscallState) -> tuple[str, str]:
    """The plain and resolved text of parameter ``index`` of the event's current layout."""
    pinfo: ParamInfo = layout.info.params[index]
    ptype = pinfo.type
    value = ev.params.get(pinfo.name)
    if value is None:
        return ("NULL" if ptype in NULL_WHEN_EMPTY else "<NA>"), ""
    thread = st.thread if st.event is ev else st.threads.get(ev.tid)
    if ptype == "PT_DYN":
        alternatives = DYNAMIC_PARAM_TYPES.get((layout.name, pinfo.name), ())
        raw = _raw(value)
        if not raw or raw[0] >= len(alternatives):
            return "INVALID DYNAMIC PARAMETER", ""
        # The value is printed as its own type, with the parameter's print format.
        ptype = alternatives[raw[0]]
        value = _decode_dynamic(ptype, raw[1:])
    return _render_value(layout, pinfo, ptype, value, ev, st, thread)


def _render_value(layout: Layout, pinfo: ParamInfo, ptype: str, value: Any, ev: Event, st: SyscallState,
                  thread: ThreadInfo | None) -> tuple[str, str]:  # fmt: skip
    name = pinfo.name
    if ptype == "PT_FD":
        return render_fd(_int(value), thread)
    if ptype in _SIGNED:
        return format_number(_int(value), pinfo.fmt, _SIGNED[ptype], True), ""
    if ptype in _UNSIGNED:
        bits, signed = _UNSIGNED[ptype]
        return format_number(_int(value), pinfo.fmt, bits, signed), ""
    if ptype == "PT_UINT64":
        # Printed through a signed 64-bit conversion, like libsinsp.
        return format_number(_int(value), pinfo.fmt, 64, True), ""
    if ptype in ("PT_FSPATH", "PT_FSRELPATH"):
        path = _text(value)
        if thread is None or path == "<NA>":
            return path, ""
        if not path or path.startswith("/"):
            return path, ""
        return path, concatenate_paths(_base_dir(layout, name, ev, thread), path)
    if ptype == "PT_CHARBUF":
        return _text(value).split("\0", 1)[0], ""
    if ptype in _FLAG_WIDTH:
        number = _int(value) & ((1 << _FLAG_WIDTH[ptype]) - 1)
        table = FLAG_TABLES.get(PARAM_FLAG_TABLE.get(layout.enum, {}).get(name, ""))
        if table is None:
            return str(number), ""
        return str(number), render_flags(number, table, ptype in _ENUM_FLAG_TYPES)
    if ptype == "PT_MODE":
        number = _int(value) & 0xFFFFFFFF
        plain = format_number(number, pinfo.fmt, 32, True)
        table = FLAG_TABLES.get(PARAM_FLAG_TABLE.get(layout.enum, {}).get(name, ""))
        return plain, render_mode(number, table) if table else ""
    if ptype == "PT_ERRNO":
        number = _int(value)
        return str(number), errno_name(number) if number < 0 else ""
    if ptype == "PT_PID":
        number = _int(value)
        target = st.threads.get(number)
        return str(number), target.comm if target is not None else ""
    if ptype in ("PT_UID", "PT_GID"):
        number = _int(value) & 0xFFFFFFFF
        if number == c.UID_NONE:
            return "-1", "<NONE>"
        container_id = thread.container_id if thread is not None else ""
        if ptype == "PT_UID":
            resolved = st.users.resolved_user(container_id, number)
        else:
            resolved = st.users.resolved_group(container_id, number)
        return str(_signed(number, 32)), resolved
    if ptype == "PT_BYTEBUF":
        raw = value if isinstance(value, bytes | bytearray) else _text(value).encode("utf-8", "surrogateescape")
        return printable(bytes(raw)), ""
    if ptype == "PT_SOCKADDR":
        return sockaddr_text(value if isinstance(value, SockAddr) else None), ""
    if ptype == "PT_SOCKTUPLE":
        return socktuple_text(value if isinstance(value, SockTuple) else None), ""
    if ptype == "PT_FDLIST":
        return _fdlist_text(value, thread), ""
    if ptype == "PT_SIGTYPE":
        number = _int(value) & 0xFF
        return str(number), SIGNAL_NAMES.get(number, "")
    if ptype == "PT_SIGSET":
        number = _int(value) & 0xFFFFFFFF
        return " ".join(SIGNAL_NAMES[s + 1] for s in range(32) if number >> s & 1 and s + 1 in SIGNAL_NAMES), ""
    if ptype == "PT_RELTIME":
        number = _int(value) & 0xFFFFFFFFFFFFFFFF
        if number == 0xFFFFFFFFFFFFFFFF:
            return "none", ""
        return str(number), f"{number / 1_000_000_000:g}s"
    if ptype == "PT_ABSTIME":
        return abstime_text(_int(value)), ""
    if ptype == "PT_CHARBUFARRAY":
        return ".".join(as_strings(value)), ""
    if ptype == "PT_CHARBUF_PAIR_ARRAY":
        items = as_strings(value)
        return ",".join(f"{a}:{b}" for a, b in zip(items[::2], items[1::2], strict=False)), ""
    if ptype == "PT_SYSCALLID":
        return syscall_id_text(_int(value) & 0xFFFF)
    if isinstance(value, int):
        return str(value), ""
    return "(n.a.)", ""


def syscall_id_text(ppm_sc: int) -> tuple[str, str]:
    """A generic event's syscall id: the number, resolved to the syscall's ppm_sc name (libscap's
    names: "unknown" for 0, nothing for an unnamed code; past the table, no number either)."""
    names = event_table().syscall_by_code
    if ppm_sc > _last_syscall_code():
        return "<unknown syscall>", ""
    return str(ppm_sc), "unknown" if ppm_sc == 0 else names.get(ppm_sc, "")


@cache
def _last_syscall_code() -> int:
    return max(event_table().syscall_by_code, default=0)


_DYNAMIC_WIDTHS = {"PT_UINT64": (8, False), "PT_RELTIME": (8, False), "PT_UINT32": (4, False), "PT_SIGTYPE": (1, False),
                   "PT_FD": (8, True), "PT_ERRNO": (8, True), "PT_INT64": (8, True)}  # fmt: skip


def _decode_dynamic(ptype: str, data: bytes) -> Any:
    """A PT_DYN parameter's value (after its index byte) as the reader decodes that type."""
    width = _DYNAMIC_WIDTHS.get(ptype)
    if width is not None:
        size, signed = width
        return int.from_bytes(data[:size].ljust(size, b"\0"), "little", signed=signed)
    if ptype == "PT_CHARBUF":
        return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    return data


def _raw(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return _text(value).encode("utf-8", "surrogateescape")


def abstime_text(ns: int) -> str:
    """``YYYY-MM-DD HH:MM:SS.nnnnnnnnn +zzzz`` in local time."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    local = time.localtime(seconds)
    return time.strftime("%Y-%m-%d %H:%M:%S", local) + f".{nanos:09d} " + time.strftime("%z", local)


def printable(raw: bytes) -> str:
    """A buffer as libsinsp prints it by default: printable ASCII kept, every other byte a dot."""
    return "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in raw)


def _fdlist_text(value: Any, thread: ThreadInfo | None) -> str:
    if thread is None or not isinstance(value, tuple | list):
        return ""
    parts = []
    for item in value:
        fd, flags = item[0], item[1]
        info = thread.get_fd(fd)
        parts.append(f"{fd}:{info.typechar if info is not None else '?'}{flags & 0xFFFF:x}")
    return " ".join(parts)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "surrogateescape")
    return str(value)


def param_text(ev: Event, st: SyscallState, key: str | int) -> str | None:
    """``evt.arg.NAME`` / ``evt.arg[N]``: the resolved form when there is one, else the plain
    form; None when the event has no such parameter."""
    layout = layout_of(ev.code)
    if layout is None:
        return None
    index = key if isinstance(key, int) else layout.index.get(key)
    if index is None or index < 0 or index >= len(layout.params):
        return None
    plain, resolved = render(layout, index, ev, st)
    return resolved or plain


def all_params_text(ev: Event, st: SyscallState) -> str:
    """``evt.args``: every parameter as ``name=value`` (``name=value(resolved)``)."""
    layout = layout_of(ev.code)
    # Only the generic exit hides its parameters (they are for internal use); the enter shows
    # its syscall id and native id.
    if layout is None or (layout.name == "syscall" and not layout.is_enter):
        return ""
    parts = []
    for index, name in enumerate(layout.params):
        plain, resolved = render(layout, index, ev, st)
        parts.append(f"{name}={plain}({resolved})" if resolved else f"{name}={plain}")
    return " ".join(parts)
