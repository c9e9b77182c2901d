"""Parsers for the values a scenario writes by name: times, errnos, flags, modes, addresses, bytes.

Each parser takes a :class:`Cursor` so a bad value is reported at its YAML position, and returns
the value in the Python form the event model uses (``falcorules_ci.sources.event``).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from falcorules_ci.sources.event import SockAddr, SockTuple
from falcorules_ci.sources.scenario_tables import (
    ALL_CAPS,
    CAPABILITIES,
    ERRNO,
    FLAG_TABLES,
    PARAM_FLAG_TABLE,
    PPM_AF_INET,
    PPM_AF_INET6,
    PPM_AF_UNIX,
    PPM_AT_FDCWD,
    SIGNALS,
)
from falcorules_ci.sources.scenario_yaml import Cursor

NS_PER_S = 1_000_000_000
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": NS_PER_S, "m": 60 * NS_PER_S,
          "h": 3600 * NS_PER_S, "d": 86400 * NS_PER_S}
_DURATION = re.compile(r"^\s*([+-]?)\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s|m|h|d)?\s*$")


def duration(cur: Cursor) -> int:
    """Nanoseconds from ``250ms``, ``1.5s``, ``2m``, ``100us``, ``-1h``; bare numbers are seconds."""
    value = cur.value
    if isinstance(value, bool):
        cur.fail(f"{cur.where}: expected a duration like 10ms or 2s, got {value!r}")
    if isinstance(value, (int, float)):
        return round(value * NS_PER_S)
    match = _DURATION.match(str(value))
    if not match:
        cur.fail(f"{cur.where}: expected a duration like 10ms, 1.5s or 2m, got {value!r}")
    sign, number, unit = match.groups()
    ns = round(float(number) * _UNITS[unit or "s"])
    return -ns if sign == "-" else ns


def timestamp(cur: Cursor) -> int:
    """Nanoseconds since the epoch from an RFC 3339 time (``2024-05-01T12:00:00.5Z``) or epoch seconds."""
    value = cur.value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return round(value * NS_PER_S)
    text = str(value).strip()
    fraction = 0
    match = re.match(r"^(.*?\d{2}:\d{2}:\d{2})\.(\d{1,9})(.*)$", text)
    if match:
        text = match.group(1) + match.group(3)
        fraction = int(match.group(2).ljust(9, "0"))
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        cur.fail(f"{cur.where}: expected an RFC 3339 time like 2024-05-01T12:00:00Z, got {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp()) * NS_PER_S + fraction


def time_or_offset(cur: Cursor, base: int) -> int:
    """An absolute time, or a duration relative to ``base`` (``-1h`` = an hour before)."""
    value = cur.value
    if isinstance(value, str) and _DURATION.match(value):
        return base + duration(cur)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return base + duration(cur)
    return timestamp(cur)


def errno_value(cur: Cursor) -> int:
    """A syscall result: ``ENOENT`` (→ -2), ``-2``, ``SUCCESS`` (0) or any integer as is."""
    value = cur.value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.upper() == "SUCCESS":
        return 0
    name = text.lstrip("-")
    if name in ERRNO:
        return -ERRNO[name]
    cur.fail(f"{cur.where}: unknown errno {value!r} (use a name like ENOENT or a number)")


def signal_value(cur: Cursor) -> int:
    value = cur.value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 65:
        return value
    name = str(value).strip().upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name in SIGNALS:
        return SIGNALS[name]
    cur.fail(f"{cur.where}: unknown signal {value!r}")


def flag_table_for(event_name: str, param: str) -> dict[str, int] | None:
    table = PARAM_FLAG_TABLE.get((event_name, param))
    return FLAG_TABLES[table] if table else None


def flags_value(cur: Cursor, table: dict[str, int] | None, *, single: bool = False) -> int:
    """An integer, or names from ``table``: ``O_RDONLY|O_CREAT`` or a list of names."""
    value = cur.value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    names: list[str]
    if isinstance(value, list):
        names = [str(v).strip() for v in value]
    elif isinstance(value, str):
        if re.fullmatch(r"\s*(0[xX][0-9a-fA-F]+|\d+)\s*", value):
            return int(value.strip(), 0)
        names = [part.strip() for part in value.split("|")]
    else:
        cur.fail(f"{cur.where}: expected flag names or a number, got {value!r}")
    if single and len(names) != 1:
        cur.fail(f"{cur.where}: takes one value, got {value!r}")
    result = 0
    for name in names:
        if table is not None and name in table:
            result |= table[name]
        elif re.fullmatch(r"0[xX][0-9a-fA-F]+|\d+", name):
            result |= int(name, 0)
        else:
            known = ", ".join(sorted(table)) if table else "none: give a number"
            cur.fail(f"{cur.where}: unknown name {name!r} (known: {known})")
    return result


def mode_value(cur: Cursor, table: dict[str, int] | None = None) -> int:
    """A file mode: the scalar's text read as octal (``644``, ``0644``, ``0o4755``) or ``S_*`` names."""
    value = cur.value
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        text = cur.text.strip()
        if re.fullmatch(r"(0[oO]?)?[0-7]+", text):
            return int(text.lower().removeprefix("0o") or "0", 8)
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", text):
            return int(text, 16)
    if isinstance(value, (str, list)):
        names = table or FLAG_TABLES["chmod_mode"]
        return flags_value(cur, names)
    cur.fail(f"{cur.where}: expected an octal mode like 0644 or S_* names, got {value!r}")


def fd_value(cur: Cursor) -> int:
    value = cur.value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip() in ("AT_FDCWD", "FDCWD"):
        return PPM_AT_FDCWD
    cur.fail(f"{cur.where}: expected an fd number (or AT_FDCWD), got {value!r}")


def int_value(cur: Cursor, *, minimum: int | None = None) -> int:
    value = cur.value
    if isinstance(value, str) and re.fullmatch(r"\s*-?(0[xX][0-9a-fA-F]+|\d+)\s*", value):
        value = int(value.strip(), 0)
    if not isinstance(value, int) or isinstance(value, bool):
        cur.fail(f"{cur.where}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        cur.fail(f"{cur.where}: must be at least {minimum}, got {value}")
    return value


def bytes_value(cur: Cursor) -> bytes:
    """Text (UTF-8), ``!!binary``, ``{hex: cafebabe}``, ``{base64: ...}`` or a list of byte values."""
    value = cur.value
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, dict) and len(value) == 1:
        (kind, body), = value.items()
        inner = cur.child(kind)
        try:
            if kind == "hex":
                return bytes.fromhex(re.sub(r"\s+", "", str(body)))
            if kind == "base64":
                return base64.b64decode(str(body), validate=True)
            if kind == "text":
                return str(body).encode("utf-8", "surrogateescape")
        except (ValueError, binascii.Error) as exc:
            inner.fail(f"{inner.where}: bad {kind} data: {exc}")
        cur.fail(f"{cur.where}: data is text, !!binary, {{hex: ...}}, {{base64: ...}} or {{text: ...}}")
    if isinstance(value, list) and all(isinstance(v, int) and 0 <= v < 256 for v in value):
        return bytes(value)
    cur.fail(f"{cur.where}: expected data as text, !!binary, {{hex: ...}} or {{base64: ...}}")


def caps_value(cur: Cursor) -> int:
    """Capabilities: ``all``, ``none``, a number, or names (``CAP_SYS_ADMIN``, ``sys_admin``)."""
    value = cur.value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("all", "full"):
            return ALL_CAPS
        if text.lower() in ("none", ""):
            return 0
        if re.fullmatch(r"0[xX][0-9a-fA-F]+|\d+", text):
            return int(text, 0)
        names = [n.strip() for n in re.split(r"[|,\s]+", text) if n.strip()]
    elif isinstance(value, list):
        names = [str(v).strip() for v in value]
    else:
        cur.fail(f"{cur.where}: expected capability names, all, none or a number, got {value!r}")
    mask = 0
    for name in names:
        key = name.upper()
        key = key if key.startswith("CAP_") else "CAP_" + key
        if key not in CAPABILITIES:
            cur.fail(f"{cur.where}: unknown capability {name!r}")
        mask |= 1 << CAPABILITIES[key]
    return mask


def tty_value(cur: Cursor) -> int:
    """A tty device number (as the drivers encode it) from a number, ``pts/N``, ``ttyN`` or ``console``."""
    value = cur.value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().removeprefix("/dev/")
    match = re.fullmatch(r"pts/(\d+)", text)
    if match:
        return encode_dev(136, int(match.group(1)))
    match = re.fullmatch(r"tty(\d+)", text)
    if match:
        return encode_dev(4, int(match.group(1)))
    match = re.fullmatch(r"ttyS(\d+)", text)
    if match:
        return encode_dev(4, 64 + int(match.group(1)))
    if text == "console":
        return encode_dev(5, 1)
    if text in ("none", "0", ""):
        return 0
    cur.fail(f"{cur.where}: expected a tty like pts/0, tty1 or a device number, got {value!r}")


def encode_dev(major: int, minor: int) -> int:
    """The kernel's ``new_encode_dev``: what the drivers put in ``tty`` and ``dev`` parameters."""
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def endpoint(cur: Cursor, *, default_port: int | None = None,
             names: Mapping[str, tuple[str, ...]] | None = None) -> tuple[int, str, int, str]:
    """(family, address, port, unix path) from ``1.2.3.4:443``, ``[::1]:53``, ``/run/x.sock``,
    ``{ip: ..., port: ...}`` or ``{path: ...}``; host names resolve through ``names`` (the
    scenario's ``dns``)."""
    value = cur.value
    if isinstance(value, dict):
        if "path" in value or "unix" in value:
            return (PPM_AF_UNIX, "", 0, str(value.get("path", value.get("unix"))))
        ip_cur = cur.get("ip") or cur.get("addr") or cur.get("host")
        if ip_cur is None:
            cur.fail(f"{cur.where}: an address needs ip (or path for unix sockets)")
        port_cur = cur.get("port")
        port = int_value(port_cur, minimum=0) if port_cur else default_port
        if port is None:
            cur.fail(f"{cur.where}: an address needs a port")
        family, addr = _ip(ip_cur, str(ip_cur.value), names)
        return (family, addr, _port(cur, port), "")
    if not isinstance(value, str):
        cur.fail(f"{cur.where}: expected an address like 1.2.3.4:443, got {value!r}")
    text = value.strip()
    if text.startswith("/") or text.startswith("@"):
        return (PPM_AF_UNIX, "", 0, text.removeprefix("@"))
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\](?::(\d+))?", text) or re.fullmatch(r"([^:\[\]]+)(?::(\d+))?", text)
    if not match:
        # A bare IPv6 address without brackets has no port.
        if ":" in text:
            family, addr = _ip(cur, text, names)
            if default_port is None:
                cur.fail(f"{cur.where}: give the port as [addr]:port")
            return (family, addr, default_port, "")
        cur.fail(f"{cur.where}: expected an address like 1.2.3.4:443 or [::1]:443, got {value!r}")
    host, port_text = match.groups()
    port = int(port_text) if port_text is not None else default_port
    if port is None:
        cur.fail(f"{cur.where}: {value!r} needs a port (host:port)")
    family, addr = _ip(cur, host, names)
    return (family, addr, _port(cur, port), "")


def _ip(cur: Cursor, text: str, names: Mapping[str, tuple[str, ...]] | None) -> tuple[int, str]:
    text = text.strip()
    if names and text in names:
        text = names[text][0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        cur.fail(f"{cur.where}: {text!r} is not an IP address (declare host names under dns)")
    return (PPM_AF_INET if ip.version == 4 else PPM_AF_INET6, str(ip))


def _port(cur: Cursor, port: int) -> int:
    if not 0 <= port <= 65535:
        cur.fail(f"{cur.where}: port {port} is out of range")
    return port


def sockaddr_value(cur: Cursor, names: Mapping[str, tuple[str, ...]] | None = None) -> SockAddr:
    family, addr, port, path = endpoint(cur, names=names)
    return SockAddr(family=family, addr=addr, port=port, path=path)


def socktuple_value(cur: Cursor, names: Mapping[str, tuple[str, ...]] | None = None) -> SockTuple:
    """``1.2.3.4:5555->10.0.0.1:80`` (source first, as libsinsp prints it) or ``{src: ..., dst: ...}``."""
    value = cur.value
    if isinstance(value, str) and "->" in value:
        left, right = value.split("->", 1)
        src = endpoint(Cursor(left.strip(), cur.path, cur.doc), names=names)
        dst = endpoint(Cursor(right.strip(), cur.path, cur.doc), names=names)
    elif isinstance(value, dict) and "src" in value and "dst" in value:
        src = endpoint(cur.child("src"), names=names)
        dst = endpoint(cur.child("dst"), names=names)
    else:
        cur.fail(f"{cur.where}: expected a tuple like 1.2.3.4:5555->10.0.0.1:80 or {{src: ..., dst: ...}}")
    if src[0] != dst[0]:
        cur.fail(f"{cur.where}: both ends of a tuple need the same address family")
    if src[0] == PPM_AF_UNIX:
        return SockTuple(family=PPM_AF_UNIX, src_path=src[3], dst_path=dst[3])
    return SockTuple(family=src[0], src_addr=src[1], src_port=src[2], dst_addr=dst[1], dst_port=dst[2])

