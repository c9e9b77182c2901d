"""Falco's rule collector: definitions, appends, overrides and enable-only items applied in order,
with the global ``index``/``visibility`` counters that decide what each macro and list can see."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from falcorules_ci.errors import Severity
from falcorules_ci.rules.model import (
    Context,
    ExceptionEntry,
    ExceptionInfo,
    ListInfo,
    MacroInfo,
    PluginRequirementGroup,
    RuleInfo,
)
from falcorules_ci.rules.result import LoadMessage
from falcorules_ci.rules.versions import Version

ERROR_NO_PREVIOUS_MACRO = (
    "Macro uses 'append' or 'override.condition: append' but no macro by that name already exists"
)
ERROR_NO_PREVIOUS_LIST = (
    "List uses 'append' or 'override.items: append' but no list by that name already exists"
)
ERROR_NO_PREVIOUS_RULE_APPEND = (
    "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists"
)
ERROR_NO_PREVIOUS_RULE_REPLACE = (
    "An 'override.<key>: replace' to a rule was requested but no rule by that name already exists"
)

# libsinsp's operator set as Falco's exception validation sees it.
SUPPORTED_OPERATORS = frozenset(
    {"=", "==", "!=", "<=", ">=", "<", ">", "contains", "icontains", "bcontains", "glob", "iglob",
     "bstartswith", "startswith", "endswith", "in", "intersects", "pmatch", "exists", "regex"}
)  # fmt: skip
LIST_OPERATORS = frozenset({"in", "intersects", "pmatch"})
STRING_OPERATORS_WITH_MODIFIER_BASE = frozenset(
    {"=", "==", "!=", "contains", "icontains", "glob", "iglob", "startswith", "endswith", "regex",
     "bcontains", "bstartswith"}
)  # fmt: skip
MODIFIERS = ("oneof", "anyof", "allof")


def is_operator_with_modifier(op: str) -> bool:
    """``startswith oneof`` and the like (a string operator, blanks, a modifier)."""
    parts = op.split()
    return len(parts) == 2 and parts[0] in STRING_OPERATORS_WITH_MODIFIER_BASE and parts[1] in MODIFIERS


class CollectError(Exception):
    """An error that stops reading the current file (Falco's rule_load_exception)."""

    def __init__(self, code: str, message: str, context: Context) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.context = context


def fail(message: str, context: Context, code: str = "LOAD_ERR_VALIDATE") -> CollectError:
    return CollectError(code, message, context)


@dataclass(slots=True)
class RuleUpdate:
    """An append or a selective replace of an existing rule."""

    name: str
    context: Context
    source: str = ""
    condition: str | None = None
    output: str | None = None
    desc: str | None = None
    tags: set[str] | None = None
    exceptions: list[ExceptionInfo] | None = None
    priority: object = None
    capture: bool | None = None
    capture_duration: int | None = None
    enabled: bool | None = None
    warn_evttypes: bool | None = None
    skip_if_unknown_filter: bool | None = None
    cond_node: object = None
    cond_source: object = None

    def has_any_value(self) -> bool:
        return any(
            v is not None
            for v in (self.condition, self.output, self.desc, self.tags, self.exceptions, self.priority,
                      self.capture, self.capture_duration, self.enabled, self.warn_evttypes,
                      self.skip_if_unknown_filter)
        )  # fmt: skip


@dataclass(slots=True)
class Collector:
    """Everything collected so far, across files, in definition order."""

    engine_version: Version
    known_source: Callable[[str], bool]
    is_valid_field: Callable[[str, str], bool]
    lists: dict[str, ListInfo] = field(default_factory=dict)
    macros: dict[str, MacroInfo] = field(default_factory=dict)
    rules: dict[str, RuleInfo] = field(default_factory=dict)
    plugin_requirements: list[PluginRequirementGroup] = field(default_factory=list)
    required_engine_version: Version | None = None
    counter: int = 0
    warnings: list[LoadMessage] = field(default_factory=list)

    def _next(self) -> int:
        value = self.counter
        self.counter += 1
        return value

    def warn(self, code: str, message: str, context: Context) -> None:
        self.warnings.append(LoadMessage(Severity.WARNING, code, message, context))

    # -- requirements -------------------------------------------------------------------------
    def require_engine(self, version: Version, context: Context) -> None:
        if not self.engine_version.compatible_with(version):
            raise fail(
                f"Rules require engine version {version}, but engine version is {self.engine_version}",
                context,
            )
        if self.required_engine_version is None or self.required_engine_version < version:
            self.required_engine_version = version

    def require_plugins(self, group: PluginRequirementGroup) -> None:
        seen: set[str] = set()
        for req in group.alternatives:
            if Version.parse(req.version) is None:
                raise fail(f"Invalid required version '{req.version}' for plugin '{req.name}'", group.context)
            if req.name in seen:
                raise fail(
                    f"Defined multiple alternative version requirements for plugin '{req.name}'", group.context
                )
            seen.add(req.name)
        self.plugin_requirements.append(group)

    # -- lists and macros ----------------------------------------------------------------------
    def define_list(self, info: ListInfo) -> None:
        self._define(self.lists, info)

    def append_list(self, info: ListInfo) -> None:
        prev = self.lists.get(info.name)
        if prev is None:
            raise fail(ERROR_NO_PREVIOUS_LIST, info.context)
        prev.items.extend(info.items)
        prev.visibility = self._next()

    def define_macro(self, info: MacroInfo) -> None:
        self._define(self.macros, info)

    def append_macro(self, info: MacroInfo) -> None:
        prev = self.macros.get(info.name)
        if prev is None:
            raise fail(ERROR_NO_PREVIOUS_MACRO, info.context)
        prev.condition += " " + info.condition
        prev.visibility = self._next()

    def _define(self, table: dict[str, ListInfo] | dict[str, MacroInfo] | dict[str, RuleInfo], info: object) -> None:
        counter = self._next()
        name = info.name  # type: ignore[attr-defined]
        prev = table.get(name)
        if prev is not None:
            info.index = prev.index  # type: ignore[attr-defined]
            info.visibility = counter  # type: ignore[attr-defined]
            # Redefinition keeps the original position in definition order.
            table[name] = info  # type: ignore[assignment]
        else:
            info.index = counter  # type: ignore[attr-defined]
            info.visibility = counter  # type: ignore[attr-defined]
            table[name] = info  # type: ignore[assignment]

    # -- rules ---------------------------------------------------------------------------------
    def _find_prev_rule(self, name: str, source: str, context: Context) -> RuleInfo | None:
        prev = self.rules.get(name)
        if prev is not None and prev.source and source and prev.source != source:
            raise fail("Rule has been re-defined with a different source", context)
        return prev

    def define_rule(self, info: RuleInfo) -> None:
        self._find_prev_rule(info.name, info.source, info.context)
        if not self.known_source(info.source):
            info.unknown_source = True
            self.warn("LOAD_UNKNOWN_SOURCE", f"Unknown source {info.source}, skipping", info.context)
        for ex in info.exceptions:
            if not ex.fields.defined:
                raise fail("Rule exception item must have fields property with a list of fields", ex.context)
            self._validate_exception(None if info.unknown_source else info.source, ex)
        self._define(self.rules, info)

    def append_rule(self, update: RuleUpdate) -> None:
        prev = self._find_prev_rule(update.name, update.source, update.context)
        if prev is None:
            raise fail(ERROR_NO_PREVIOUS_RULE_APPEND, update.context)
        if not update.has_any_value():
            raise fail("Appended rule must have exceptions or condition property", update.context)
        source = None if prev.unknown_source else prev.source
        if update.condition:
            prev.condition += " " + update.condition
        if update.output:
            prev.output += " " + update.output
        if update.desc:
            prev.desc += " " + update.desc
        if update.tags is not None:
            prev.tags |= update.tags
        for ex in update.exceptions or ():
            existing = next((e for e in prev.exceptions if e.name == ex.name), None)
            if existing is None:
                if not ex.fields.defined:
                    raise fail("Rule exception must have fields property with a list of fields", ex.context)
                if not ex.values:
                    raise fail("Rule exception must have values property with a list of values", ex.context)
                self._validate_exception(source, ex)
                prev.exceptions.append(ex)
            else:
                if ex.fields.defined:
                    raise fail("Can not append exception fields to existing exception, only values", ex.context)
                if ex.comps.defined:
                    raise fail("Can not append exception comps to existing exception, only values", ex.context)
                existing.values.extend(ex.values)
        prev.visibility = self._next()

    def replace_rule(self, update: RuleUpdate) -> None:
        prev = self._find_prev_rule(update.name, update.source, update.context)
        if prev is None:
            raise fail(ERROR_NO_PREVIOUS_RULE_REPLACE, update.context)
        if not update.has_any_value():
            raise fail("The rule must have at least one field that can be replaced", update.context)
        if update.condition is not None:
            prev.condition = update.condition
            prev.cond_node, prev.cond_source = update.cond_node, update.cond_source
            prev.cond_context = update.context
        for attr in ("output", "desc", "tags", "exceptions", "priority", "capture", "capture_duration",
                     "enabled", "warn_evttypes", "skip_if_unknown_filter"):  # fmt: skip
            value = getattr(update, attr)
            if value is not None:
                setattr(prev, attr, value)
        prev.visibility = self._next()

    def enable_rule(self, name: str, enabled: bool, context: Context) -> None:
        prev = self.rules.get(name)
        if prev is None:
            raise fail("Rule has 'enabled' key but no rule by that name already exists", context)
        prev.enabled = enabled

    def _validate_exception(self, source: str | None, ex: ExceptionInfo) -> None:
        if ex.fields.is_list:
            if not ex.comps.defined:
                ex.comps = ExceptionEntry(
                    defined=True, is_list=True, items=[ExceptionEntry(True, False, "=") for _ in ex.fields.items]
                )
            if len(ex.fields.items) != len(ex.comps.items):
                raise fail("Fields and comps lists must have equal length", ex.context)
            for comp in ex.comps.items:
                comp.item = comp.item.strip(" \t\r\n")
                if comp.item not in SUPPORTED_OPERATORS and not is_operator_with_modifier(comp.item):
                    raise fail(f"'{comp.item}' is not a supported comparison operator", ex.context)
            if source is not None:
                for f in ex.fields.items:
                    if not self.is_valid_field(f.item, source):
                        raise fail(f"'{f.item}' is not a supported filter field", ex.context)
        else:
            if not ex.comps.defined:
                ex.comps = ExceptionEntry(defined=True, is_list=False, item="in")
            if ex.comps.is_list:
                raise fail("Fields and comps must both be strings", ex.context)
            ex.comps.item = ex.comps.item.strip(" \t\r\n")
            if ex.comps.item not in LIST_OPERATORS and not is_operator_with_modifier(ex.comps.item):
                raise fail(
                    "When fields is a single value, comps must be one of (in, pmatch, intersects) "
                    "or a modifier operator (e.g. startswith oneof)",
                    ex.context,
                )
            if source is not None and not self.is_valid_field(ex.fields.item, source):
                raise fail(f"'{ex.fields.item}' is not a supported filter field", ex.context)
