"""The compact table form every field class is declared in, and its expansion into FieldInfo.

A class is a tuple of rows ``(name, type, flags, description)``. The flags say how the filter
compiler treats the field: they follow libsinsp's ``EPF_*`` flags, except that the argument flags
describe what the field's name parser actually accepts (for libsinsp's built-in classes the
declared ``EPF_ARG_*`` bits are only a hint for listings; the per-class parser is the truth).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from falcorules_ci.fields.registry import ArgKind, FieldInfo, FieldType


class Flag(enum.Flag):
    NONE = 0
    LIST = enum.auto()  # EPF_IS_LIST: multi-valued
    ARG_REQUIRED = enum.auto()  # the field is unusable without an argument
    ARG_INDEX = enum.auto()  # accepts a numeric bracket argument: proc.aname[2]
    ARG_KEY = enum.auto()  # accepts a free-text bracket argument: ka.uri.param[command]
    DOTTED = enum.auto()  # accepts a `.NAME` argument: evt.arg.flags
    DEPRECATED = enum.auto()  # EPF_DEPRECATED (plugins cannot set it; their docs say it instead)
    NO_TRANSFORMER = enum.auto()  # EPF_NO_TRANSFORMER
    NO_RHS = enum.auto()  # EPF_NO_RHS
    FILTER_ONLY = enum.auto()  # EPF_FILTER_ONLY
    PRINT_ONLY = enum.auto()  # EPF_PRINT_ONLY
    TABLE_ONLY = enum.auto()  # EPF_TABLE_ONLY (hidden from listings)
    SUGGESTED = enum.auto()  # EPF_FORMAT_SUGGESTED


Row = tuple[str, FieldType, Flag, str]


@dataclass(frozen=True, slots=True)
class FieldClass:
    """One field class as registered with a source's filter-check list, in registration order."""

    name: str  # libsinsp's class name ("evt", "process", "fd", ...) or the plugin's name
    source: str
    rows: tuple[Row, ...]
    plugin: str = ""  # the plugin providing the class; "" for libsinsp built-ins

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(row[0] for row in self.rows)

    def infos(self, sysdig_known: Callable[[str, str], bool]) -> tuple[FieldInfo, ...]:
        """The rows as FieldInfo records; ``sysdig_known(source, name)`` fills that flag."""
        return tuple(self._info(row, sysdig_known) for row in self.rows)

    def _info(self, row: Row, sysdig_known: Callable[[str, str], bool]) -> FieldInfo:
        name, ftype, flags, description = row
        return FieldInfo(
            name=name,
            type=ftype,
            source=self.source,
            field_class=self.name,
            description=description,
            arg=_arg_kind(flags),
            arg_required=Flag.ARG_REQUIRED in flags,
            is_list=Flag.LIST in flags,
            no_transformer=Flag.NO_TRANSFORMER in flags,
            no_rhs=Flag.NO_RHS in flags,
            deprecated=Flag.DEPRECATED in flags,
            dotted_arg=Flag.DOTTED in flags,
            sysdig_known=sysdig_known(self.source, name),
            filter_only=Flag.FILTER_ONLY in flags,
            print_only=Flag.PRINT_ONLY in flags,
            table_only=Flag.TABLE_ONLY in flags,
            format_suggested=Flag.SUGGESTED in flags,
            plugin=self.plugin,
        )


def _arg_kind(flags: Flag) -> ArgKind:
    index, key = Flag.ARG_INDEX in flags, Flag.ARG_KEY in flags
    if index and key:
        return ArgKind.INDEX_OR_KEY
    if index:
        return ArgKind.INDEX
    if key:
        return ArgKind.KEY
    return ArgKind.NONE
