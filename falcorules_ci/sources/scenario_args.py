"""A syscall's ``args`` as the scenario writes them, converted to event parameter values by each
parameter's type: fds, errnos, users and groups by name, modes, flags by name, signals, data,
addresses and tuples (host names through the scenario's ``dns``).
"""

from __future__ import annotations

import struct
from typing import Any

from falcorules_ci.sources.scenario_decl import resolve_gid, resolve_uid
from falcorules_ci.sources.scenario_emit import STRING_TYPES, SyscallEvents
from falcorules_ci.sources.scenario_values import (
    bytes_value,
    errno_value,
    fd_value,
    flag_table_for,
    flags_value,
    int_value,
    mode_value,
    signal_value,
    sockaddr_value,
    socktuple_value,
)
from falcorules_ci.sources.scenario_world import Thread, World
from falcorules_ci.sources.scenario_yaml import Cursor


def parse_args(world: World, thread: Thread, events: SyscallEvents, args: Cursor | None) -> dict[str, Any]:
    """The ``args`` mapping converted by each parameter's type (and flag table)."""
    values: dict[str, Any] = {}
    for key, item in args.items() if args is not None else ():
        name = "oldfd" if key == "fd" and events.name in ("dup", "dup2", "dup3") else key
        ptype = events.param_type(name)
        if ptype is None:
            known = ", ".join(n for n in events.param_names if n != events.exit.params[0].name)
            item.fail(f"{item.where}: {events.name} has no parameter {key!r} (parameters: {known})", key=True)
        values[name] = convert(world, thread, events.name, name, ptype, item)
    return values


def convert(world: World, thread: Thread, event: str, name: str, ptype: str, item: Cursor) -> Any:
    table = flag_table_for(event, name)
    if ptype in STRING_TYPES:
        if isinstance(item.value, (dict, list)):
            item.fail(f"{item.where}: expected text")
        return item.text
    if ptype == "PT_FD":
        return fd_value(item)
    if ptype == "PT_ERRNO":
        return errno_value(item)
    if ptype == "PT_UID":
        return resolve_uid(world, item, thread.container)
    if ptype == "PT_GID":
        return resolve_gid(world, item, thread.container)
    if ptype == "PT_MODE" or (name == "mode" and table is None and ptype.startswith("PT_UINT")):
        return mode_value(item, table)
    if ptype.startswith(("PT_FLAGS", "PT_ENUMFLAGS")) or table is not None:
        return flags_value(item, table, single=ptype.startswith("PT_ENUMFLAGS"))
    if ptype == "PT_SIGTYPE":
        return signal_value(item)
    if ptype == "PT_BYTEBUF":
        return bytes_value(item)
    if ptype == "PT_SOCKADDR":
        return sockaddr_value(item, world.dns)
    if ptype == "PT_SOCKTUPLE":
        return socktuple_value(item, world.dns)
    if ptype == "PT_FDLIST":
        pairs = []
        for entry in item.elements():
            if isinstance(entry.value, list) and len(entry.value) == 2:
                pairs.append((int(entry.value[0]), int(entry.value[1])))
            else:
                pairs.append((int_value(entry), 0))
        return tuple(pairs)
    if ptype == "PT_DYN":
        if isinstance(item.value, int) and not isinstance(item.value, bool):
            return struct.pack("<BQ", 0, item.value & 0xFFFFFFFFFFFFFFFF)
        return bytes_value(item)
    if ptype == "PT_DOUBLE":
        if not isinstance(item.value, (int, float)) or isinstance(item.value, bool):
            item.fail(f"{item.where}: expected a number")
        return float(item.value)
    return int_value(item)
