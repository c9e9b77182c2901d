"""libscap's event table as data: event codes, names, directions and parameter lists.

Generated into ``falcorules_ci/data/event_table.json`` by ``scripts/gen_event_table.py`` from
the reference tables (libs HEAD codes and parameters, plus the parameter counts of the libs that
Debian's sysdig 0.29.3 is built from, which a capture must use to be readable by both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class ParamInfo:
    name: str
    type: str  # "PT_FSPATH", ...
    fmt: str  # "PF_DEC", "PF_HEX", ...


@dataclass(frozen=True, slots=True)
class EventInfo:
    code: int
    enum: str  # "PPME_SYSCALL_OPENAT_2_X"
    name: str  # "openat"
    direction: str  # ">" enter, "<" exit
    params: tuple[ParamInfo, ...]
    flags: frozenset[str]
    category: frozenset[str]
    legacy_nparams: int | None  # parameter count in sysdig 0.29.3's table; None if unknown there

    @property
    def is_old_version(self) -> bool:
        return "EF_OLD_VERSION" in self.flags

    @property
    def is_unused(self) -> bool:
        return "EF_UNUSED" in self.flags


@dataclass(frozen=True, slots=True, eq=False)
class EventTable:
    by_code: dict[int, EventInfo]
    syscall_names: frozenset[str]
    syscall_by_code: dict[int, str]  # ppm_sc code (a generic event's ID parameter) → syscall name

    def syscall_name(self, ppm_sc: int) -> str | None:
        """The name ``evt.type`` shows for a generic event whose ``ID`` parameter is ``ppm_sc``."""
        return self.syscall_by_code.get(ppm_sc)

    def codes_for_name(self, name: str) -> frozenset[int]:
        """Every event code with this ``evt.type`` name, enter and exit, as libsinsp maps it.

        A syscall with no event of its own is reported through the generic events, so its name
        maps to the generic codes.
        """
        return _codes_by_name(self).get(name, frozenset())

    def is_known_evttype(self, name: str) -> bool:
        """Whether ``evt.type=name`` compiles: an event name or a syscall name (libsinsp's check)."""
        return name in _codes_by_name(self) or name in self.syscall_names

    def lookup(self, name: str, direction: str) -> EventInfo | None:
        """The current (non-old-version) event with this name and direction."""
        best: EventInfo | None = None
        for code in sorted(self.codes_for_name(name)):
            info = self.by_code[code]
            if info.direction == direction and not info.is_old_version and not info.is_unused:
                best = info
        return best


@cache
def _codes_by_name(table: EventTable) -> dict[str, frozenset[int]]:
    names: dict[str, set[int]] = {}
    for info in table.by_code.values():
        names.setdefault(info.name, set()).add(info.code)
    generic = frozenset(names.get("syscall", set()))
    result = {name: frozenset(codes) for name, codes in names.items()}
    for name in table.syscall_names:
        result.setdefault(name, generic)
    return result


@cache
def event_table() -> EventTable:
    raw = json.loads(resources.files("falcorules_ci").joinpath("data/event_table.json").read_text())
    legacy = {int(k): int(v) for k, v in raw["legacy_nparams"].items()}
    by_code: dict[int, EventInfo] = {}
    for code_text, info in raw["head"].items():
        code = int(code_text)
        by_code[code] = EventInfo(
            code=code,
            enum=info["enum"],
            name=info["name"],
            direction=info["dir"],
            params=tuple(ParamInfo(*p) for p in info["params"]),
            flags=frozenset(info["flags"]),
            category=frozenset(info["category"]),
            legacy_nparams=legacy.get(code),
        )
    return EventTable(
        by_code=by_code,
        syscall_names=frozenset(raw["syscall_names"]),
        syscall_by_code={int(k): v for k, v in raw.get("syscall_codes", {}).items()},
    )
