"""What the rules reader collects: lists, macros, rules and requirements, as Falco's collector
keeps them (definition order, ``index``/``visibility`` counters, appends and overrides applied)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from falcorules_ci.errors import Span


class Priority(enum.IntEnum):
    """Falco priorities; a lower number is more severe."""

    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFORMATIONAL = 6
    DEBUG = 7

    @property
    def label(self) -> str:
        """The long form Falco prints: ``Warning``, ``Informational``."""
        return self.name.capitalize()

    @classmethod
    def parse(cls, text: str) -> Priority | None:
        """Case-insensitive, with ``info`` accepted for Informational (Falco's parse_priority)."""
        lowered = text.lower()
        if lowered == "info":
            return cls.INFORMATIONAL
        for member in cls:
            if member.name.lower() == lowered:
                return member
        return None


@dataclass(frozen=True, slots=True)
class Location:
    """Falco's context location: item type and name, and a 0-based file position."""

    item_type: str
    item_name: str
    name: str  # file name, or the quoted condition text for condition expressions
    line: int
    column: int
    offset: int


@dataclass(frozen=True, slots=True)
class Context:
    """A chain of locations from the file down to the offending node (Falco's rule_loader::context),
    plus the 1-based span and the snippet text used for human messages."""

    locations: tuple[Location, ...]
    span: Span
    snippet_source: str = ""  # text the last location's offset points into (file or condition)


@dataclass(slots=True)
class ExceptionEntry:
    """One of ``fields``, ``comps`` or a ``values`` entry: a scalar or a (nested) sequence."""

    defined: bool = False
    is_list: bool = False
    item: str = ""
    items: list[ExceptionEntry] = field(default_factory=list)


@dataclass(slots=True)
class ExceptionInfo:
    name: str
    context: Context
    fields: ExceptionEntry = field(default_factory=ExceptionEntry)
    comps: ExceptionEntry = field(default_factory=ExceptionEntry)
    values: list[ExceptionEntry] = field(default_factory=list)


@dataclass(slots=True)
class ListInfo:
    name: str
    items: list[str]
    context: Context
    index: int = 0
    visibility: int = 0


@dataclass(slots=True)
class MacroInfo:
    name: str
    condition: str
    context: Context
    cond_context: Context
    cond_node: object = None  # the YAML scalar node, to map condition offsets into the file
    cond_source: object = None
    index: int = 0
    visibility: int = 0


@dataclass(slots=True)
class RuleInfo:
    name: str
    context: Context
    condition: str = ""
    output: str = ""
    desc: str = ""
    priority: Priority = Priority.DEBUG
    source: str = "syscall"
    enabled: bool = True
    capture: bool = False
    capture_duration: int = 0
    warn_evttypes: bool = True
    skip_if_unknown_filter: bool = False
    tags: set[str] = field(default_factory=set)
    exceptions: list[ExceptionInfo] = field(default_factory=list)
    cond_context: Context | None = None
    output_context: Context | None = None
    cond_node: object = None
    cond_source: object = None
    unknown_source: bool = False
    index: int = 0
    visibility: int = 0


@dataclass(frozen=True, slots=True)
class PluginRequirement:
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class PluginRequirementGroup:
    alternatives: tuple[PluginRequirement, ...]
    context: Context
