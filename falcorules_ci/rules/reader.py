"""Reading one rules file into the collector, item by item, exactly as Falco's rule reader does:
the same item kinds, keys, decoding rules, error texts and warning codes."""

from __future__ import annotations

import re

import yaml

from falcorules_ci.errors import Severity
from falcorules_ci.rules.collector import CollectError, Collector, RuleUpdate, fail
from falcorules_ci.rules.model import (
    Context,
    ExceptionEntry,
    ExceptionInfo,
    ListInfo,
    Location,
    MacroInfo,
    PluginRequirement,
    PluginRequirementGroup,
    Priority,
    RuleInfo,
)
from falcorules_ci.rules.result import WARNING_APPEND, WARNING_ENABLED, LoadMessage
from falcorules_ci.rules.versions import Version
from falcorules_ci.rules.yamlsrc import (
    Budget,
    Source,
    YamlError,
    compose_documents,
    decode_bool,
    decode_uint,
    is_map,
    is_null,
    is_scalar,
    is_seq,
    key_text,
    mapping_get,
)

RGX_IDENTIFIER = "([a-zA-Z]+[a-zA-Z0-9_]*)"
RGX_BARESTR = "([^()\"'[:space:]=,]+)"
_IDENTIFIER = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
_BARESTR = re.compile(r"[^()\"'\s=,]+")

OVERRIDABLE_APPEND = ("condition", "output", "desc", "tags", "exceptions")
OVERRIDABLE_REPLACE = (
    "condition", "output", "desc", "priority", "capture", "capture_duration", "tags", "exceptions",
    "enabled", "warn_evttypes", "skip-if-unknown-filter",
)  # fmt: skip
RULE_KEYS = frozenset(
    {"rule", "condition", "output", "desc", "priority", "source", "enabled", "capture", "capture_duration",
     "warn_evttypes", "skip-if-unknown-filter", "tags", "exceptions", "override", "append"}
)  # fmt: skip


class Reader:
    """Reads the items of one file into a collector; ``read`` reports the first error."""

    def __init__(self, source: Source, collector: Collector) -> None:
        self.source = source
        self.collector = collector
        self.root = Context(
            (Location("rules content", "", source.name, 0, 0, 0),), source.span(None), source.text
        )
        self.budget = Budget(source)

    # -- contexts ------------------------------------------------------------------------------
    def ctx(self, parent: Context, node: yaml.Node | None, item_type: str, item_name: str = "") -> Context:
        offset, line, col = self.source.position(node)
        loc = Location(item_type, item_name, self.source.name, line, col, offset)
        return Context(parent.locations + (loc,), self.source.span(node), self.source.text)

    def warn(self, code: str, message: str, context: Context) -> None:
        self.collector.warn(code, message, context)

    # -- entry point ---------------------------------------------------------------------------
    def read(self) -> LoadMessage | None:
        try:
            docs = compose_documents(self.source)
        except YamlError as exc:
            ctx = self.root
            if exc.span is not None and exc.span.offset is not None:
                loc = Location("value for", "", self.source.name, exc.span.line - 1, exc.span.col - 1,
                               exc.span.offset)  # fmt: skip
                ctx = Context(self.root.locations + (loc,), exc.span, self.source.text)
            return LoadMessage(Severity.ERROR, "LOAD_ERR_YAML_PARSE", exc.message, ctx)
        for doc in docs:
            if is_null(doc):
                continue
            try:
                if not is_map(doc) and not is_seq(doc):
                    raise fail("Rules content is not yaml", self.root, "LOAD_ERR_YAML_VALIDATE")
                if not is_seq(doc):
                    raise fail("Rules content is not yaml array of objects", self.root, "LOAD_ERR_YAML_VALIDATE")
                assert isinstance(doc, yaml.SequenceNode)
                for item in doc.value:
                    self.budget.spend(item)
                    if not is_null(item):
                        self.read_item(item)
            except CollectError as exc:
                return LoadMessage(Severity.ERROR, exc.code, exc.message, exc.context)
            except YamlError as exc:
                ctx = self.root if exc.span is None else Context(self.root.locations, exc.span, self.source.text)
                return LoadMessage(Severity.ERROR, "LOAD_ERR_YAML_PARSE", exc.message, ctx)
        return None

    # -- decoding helpers (yaml-cpp semantics) --------------------------------------------------
    def _scalar(self, item: yaml.Node, key: str, ctx: Context, *, optional: bool, can_be_empty: bool = False
                ) -> tuple[str | None, yaml.Node | None]:  # fmt: skip
        val = mapping_get(item, key)
        if val is None:
            if optional:
                return None, None
            raise yaml_fail(f"Item has no mapping for key '{key}'", ctx)
        if is_null(val):
            if can_be_empty:
                return None, val
            raise yaml_fail(f"Mapping for key '{key}' is empty", ctx)
        valctx = self.ctx(ctx, val, "value for", key)
        if not is_scalar(val):
            raise yaml_fail("Value is not a scalar value", valctx)
        text = str(val.value)
        if not text:
            if can_be_empty:
                return "", val
            raise yaml_fail("Value must be non-empty", valctx)
        return text, val

    def decode_str(self, item: yaml.Node, key: str, ctx: Context, *, optional: bool = False,
                   can_be_empty: bool = False) -> str | None:  # fmt: skip
        return self._scalar(item, key, ctx, optional=optional, can_be_empty=can_be_empty)[0]

    def decode_bool(self, item: yaml.Node, key: str, ctx: Context, *, optional: bool = False) -> bool | None:
        text, node = self._scalar(item, key, ctx, optional=optional)
        if text is None:
            return None
        value = decode_bool(text)
        if value is None:
            raise yaml_fail("Can't decode YAML scalar value", self.ctx(ctx, node, "value for", key))
        return value

    def decode_uint(self, item: yaml.Node, key: str, ctx: Context, bits: int, *, optional: bool = False
                    ) -> int | None:  # fmt: skip
        text, node = self._scalar(item, key, ctx, optional=optional)
        if text is None:
            return None
        value = decode_uint(text, bits)
        if value is None:
            raise yaml_fail("Can't decode YAML scalar value", self.ctx(ctx, node, "value for", key))
        return value

    def decode_seq(self, item: yaml.Node, key: str, ctx: Context, *, optional: bool) -> list[str] | None:
        val = mapping_get(item, key)
        if val is None:
            if optional:
                return None
            raise yaml_fail(f"Item has no mapping for key '{key}'", ctx)
        valctx = self.ctx(ctx, val, "value for", key)
        if not is_seq(val):
            raise yaml_fail("Value is not a sequence", valctx)
        out: list[str] = []
        for v in val.value:
            self.budget.spend(v)
            if not isinstance(v, yaml.ScalarNode):
                raise yaml_fail("sequence value is not scalar", self.ctx(valctx, v, "list item"))
            out.append(str(v.value) if not is_null(v) else "")
        return out

    def decode_overrides(self, item: yaml.Node, append_ok: tuple[str, ...], replace_ok: tuple[str, ...],
                         ctx: Context) -> tuple[set[str], set[str]]:  # fmt: skip
        val = mapping_get(item, "override")
        out_append: set[str] = set()
        out_replace: set[str] = set()
        if val is None:
            return out_append, out_replace
        octx = self.ctx(ctx, item, "overrides")
        if not is_map(val):
            raise yaml_fail("Value is not a map", octx)
        assert isinstance(val, yaml.MappingNode)
        for knode, vnode in val.value:
            key = key_text(knode)
            operation = str(vnode.value) if isinstance(vnode, yaml.ScalarNode) else ""
            kctx = self.ctx(octx, knode, "overrides", key)
            if operation == "append":
                if key not in append_ok:
                    raise yaml_fail(f"Key '{key}' cannot be appended to, use 'replace' instead", kctx)
                out_append.add(key)
            elif operation == "replace":
                if key not in replace_ok:
                    raise yaml_fail(f"Key '{key}' cannot be replaced", kctx)
                out_replace.add(key)
            else:
                allowed = ("append " if key in append_ok else "") + ("replace " if key in replace_ok else "")
                raise yaml_fail(
                    f"Invalid override operation for key '{key}': '{operation}'. Allowed values are: {allowed}",
                    self.ctx(octx, vnode, "value for", key),
                )
        return out_append, out_replace

    def warn_unknown_keys(self, item: yaml.Node, expected: frozenset[str], ctx: Context) -> None:
        assert isinstance(item, yaml.MappingNode)
        for knode, _ in item.value:
            key = key_text(knode)
            if key not in expected:
                self.warn("LOAD_UNKNOWN_KEY", f"Unknown key '{key}'. The key will be ignored.", ctx)

    # -- items ---------------------------------------------------------------------------------
    def read_item(self, item: yaml.Node) -> None:
        if not is_map(item):
            raise yaml_fail(
                "Unexpected element type. Each element should be a yaml associative array.",
                self.ctx(self.root, item, "rules content item"),
            )
        if mapping_get(item, "required_engine_version") is not None:
            self.read_engine_version(item)
        elif mapping_get(item, "required_plugin_versions") is not None:
            self.read_plugin_versions(item)
        elif mapping_get(item, "list") is not None:
            self.read_list(item)
        elif mapping_get(item, "macro") is not None:
            self.read_macro(item)
        elif mapping_get(item, "rule") is not None:
            self.read_rule(item)
        else:
            self.warn("LOAD_UNKNOWN_ITEM", "Unknown top level item", self.ctx(self.root, item, "rules content item"))

    def read_engine_version(self, item: yaml.Node) -> None:
        ctx = self.ctx(self.root, item, "required_engine_version")
        text = self.decode_str(item, "required_engine_version", ctx)
        assert text is not None
        as_int = decode_uint(text, 32)
        if as_int is not None:
            version = Version(0, as_int, 0)
        else:
            parsed = Version.parse(text)
            if parsed is None:
                raise yaml_fail(
                    f"Unable to parse engine version '{text}' as a semver string. Expected \"x.y.z\" semver format.",
                    ctx,
                )
            version = parsed
        self.collector.require_engine(version, ctx)
        self.warn_unknown_keys(item, frozenset({"required_engine_version"}), ctx)

    def read_plugin_versions(self, item: yaml.Node) -> None:
        val = mapping_get(item, "required_plugin_versions")
        ctx = self.ctx(self.root, val, "required plugin versions")
        if not is_seq(val):
            raise yaml_fail("Value of required_plugin_versions must be a sequence", ctx)
        assert isinstance(val, yaml.SequenceNode)
        for plugin in val.value:
            tmp = self.ctx(ctx, plugin, "required plugin versions entry")
            if not is_map(plugin):
                raise yaml_fail("Plugin version must be a mapping", tmp)
            name = self.decode_str(plugin, "name", tmp) or ""
            pctx = self.ctx(ctx, plugin, "required plugin versions entry", name)
            version = self.decode_str(plugin, "version", pctx) or ""
            reqs = [PluginRequirement(name, version)]
            alternatives = mapping_get(plugin, "alternatives")
            if alternatives is not None:
                if not is_seq(alternatives):
                    raise yaml_fail("Value of plugin version alternatives must be a sequence", pctx)
                assert isinstance(alternatives, yaml.SequenceNode)
                for req in alternatives.value:
                    actx = self.ctx(pctx, req, "required plugin versions alternative")
                    if not is_map(req):
                        raise yaml_fail("Plugin version alternative must be a mapping", actx)
                    alt_name = self.decode_str(req, "name", actx) or ""
                    actx = self.ctx(pctx, req, "required plugin versions alternative", alt_name)
                    reqs.append(PluginRequirement(alt_name, self.decode_str(req, "version", actx) or ""))
            self.collector.require_plugins(PluginRequirementGroup(tuple(reqs), pctx))
        self.warn_unknown_keys(item, frozenset({"required_plugin_versions"}),
                               self.ctx(self.root, item, "required plugin versions"))  # fmt: skip

    def read_list(self, item: yaml.Node) -> None:
        name = self.decode_str(item, "list", self.ctx(self.root, item, "list")) or ""
        ctx = self.ctx(self.root, item, "list", name)
        if not _BARESTR.fullmatch(name):
            self.warn(
                "LOAD_INVALID_LIST_NAME",
                f"List has an invalid name. List names should match a regular expression: {RGX_BARESTR}",
                ctx,
            )
        items = self.decode_seq(item, "items", ctx, optional=False) or []
        append = bool(self.decode_bool(item, "append", ctx, optional=True))
        if append:
            self.warn("LOAD_DEPRECATED_ITEM", WARNING_APPEND, ctx)
        ov_append, ov_replace = self.decode_overrides(item, ("items",), ("items",), ctx)
        if append and (ov_append or ov_replace):
            raise yaml_fail(ERROR_OVERRIDE_APPEND, ctx)
        info = ListInfo(name, items, ctx)
        if append or "items" in ov_append:
            self.collector.append_list(info)
        else:
            self.collector.define_list(info)
        self.warn_unknown_keys(item, frozenset({"list", "items", "append", "override"}), ctx)

    def read_macro(self, item: yaml.Node) -> None:
        name = self.decode_str(item, "macro", self.ctx(self.root, item, "macro")) or ""
        ctx = self.ctx(self.root, item, "macro", name)
        if not _IDENTIFIER.fullmatch(name):
            self.warn(
                "LOAD_INVALID_MACRO_NAME",
                f"Macro has an invalid name. Macro names should match a regular expression: {RGX_IDENTIFIER}",
                ctx,
            )
        cond, cond_node = self._scalar(item, "condition", ctx, optional=False)
        assert cond is not None
        cond_ctx = self.ctx(ctx, cond_node, "macro condition")
        append = bool(self.decode_bool(item, "append", ctx, optional=True))
        if append:
            self.warn("LOAD_DEPRECATED_ITEM", WARNING_APPEND, ctx)
        ov_append, ov_replace = self.decode_overrides(item, ("condition",), ("condition",), ctx)
        if append and (ov_append or ov_replace):
            raise yaml_fail(ERROR_OVERRIDE_APPEND, ctx)
        info = MacroInfo(name, cond, ctx, cond_ctx, cond_node, self.source)
        if append or "condition" in ov_append:
            self.collector.append_macro(info)
        else:
            self.collector.define_macro(info)
        self.warn_unknown_keys(item, frozenset({"macro", "condition", "append", "override"}), ctx)

    def read_rule(self, item: yaml.Node) -> None:
        name = self.decode_str(item, "rule", self.ctx(self.root, item, "rule")) or ""
        ctx = self.ctx(self.root, item, "rule", name)
        source = self.decode_str(item, "source", ctx, optional=True, can_be_empty=True) or ""
        has_append = bool(self.decode_bool(item, "append", ctx, optional=True))
        if has_append:
            self.warn("LOAD_DEPRECATED_ITEM", WARNING_APPEND, ctx)
        ov_append, ov_replace = self.decode_overrides(item, OVERRIDABLE_APPEND, OVERRIDABLE_REPLACE, ctx)
        if has_append and (ov_append or ov_replace):
            raise yaml_fail(ERROR_OVERRIDE_APPEND, ctx)
        if ov_append or ov_replace:
            self._read_rule_overrides(item, name, source, ctx, ov_append, ov_replace)
        elif has_append:
            update = RuleUpdate(name, ctx, source=source)
            if mapping_get(item, "condition") is not None:
                update.condition, update.cond_node = self._scalar(item, "condition", ctx, optional=False)
                update.cond_source = self.source
            if mapping_get(item, "exceptions") is not None:
                update.exceptions = self.read_exceptions(item, ctx, append=True)
            self.collector.append_rule(update)
        else:
            self._read_rule_definition(item, name, ctx)
        self.warn_unknown_keys(item, RULE_KEYS, ctx)

    def _read_rule_definition(self, item: yaml.Node, name: str, ctx: Context) -> None:
        if all(mapping_get(item, k) is None for k in ("condition", "output", "desc", "priority")):
            enabled = self.decode_bool(item, "enabled", ctx)
            self.warn("LOAD_DEPRECATED_ITEM", WARNING_ENABLED, ctx)
            self.collector.enable_rule(name, bool(enabled), ctx)
            return
        cond, cond_node = self._scalar(item, "condition", ctx, optional=False)
        output, output_node = self._scalar(item, "output", ctx, optional=False)
        desc = self.decode_str(item, "desc", ctx) or ""
        priority_text, priority_node = self._scalar(item, "priority", ctx, optional=False)
        rule = RuleInfo(name, ctx, condition=cond or "", output=(output or "").strip(" \t\n\r\f\v"), desc=desc)
        rule.cond_context = self.ctx(ctx, cond_node, "rule condition")
        rule.output_context = self.ctx(ctx, output_node, "rule output")
        rule.cond_node, rule.cond_source = cond_node, self.source
        priority = Priority.parse(priority_text or "")
        if priority is None:
            raise yaml_fail("Invalid priority", self.ctx(ctx, priority_node, "rule priority"))
        rule.priority = priority
        src = self.decode_str(item, "source", ctx, optional=True)
        if src is not None:
            rule.source = src
        for key, attr in (("enabled", "enabled"), ("capture", "capture"), ("warn_evttypes", "warn_evttypes"),
                          ("skip-if-unknown-filter", "skip_if_unknown_filter")):  # fmt: skip
            value = self.decode_bool(item, key, ctx, optional=True)
            if value is not None:
                setattr(rule, attr, value)
        duration = self.decode_uint(item, "capture_duration", ctx, 64, optional=True)
        if duration is not None:
            rule.capture_duration = duration
        rule.tags = set(self.decode_seq(item, "tags", ctx, optional=True) or ())
        rule.exceptions = self.read_exceptions(item, ctx, append=False)
        self.collector.define_rule(rule)

    def _read_rule_overrides(self, item: yaml.Node, name: str, source: str, ctx: Context,
                             ov_append: set[str], ov_replace: set[str]) -> None:  # fmt: skip
        expected = {k for k in (*OVERRIDABLE_APPEND, *OVERRIDABLE_REPLACE) if mapping_get(item, k) is not None}

        def take(ops: set[str], kind: str, key: str) -> bool:
            if key not in ops:
                return False
            if key not in expected:
                raise yaml_fail(f"An {kind} override for '{key}' was specified but '{key}' is not defined", ctx)
            expected.discard(key)
            return True

        for kind, ops in (("append", ov_append), ("replace", ov_replace)):
            if not ops:
                continue
            update = RuleUpdate(name, ctx)
            if take(ops, kind, "condition"):
                update.source = source
                update.condition, update.cond_node = self._scalar(item, "condition", ctx, optional=False)
                update.cond_source = self.source
            if take(ops, kind, "exceptions"):
                update.exceptions = self.read_exceptions(item, ctx, append=kind == "append")
            if take(ops, kind, "output"):
                update.output = self.decode_str(item, "output", ctx)
            if take(ops, kind, "desc"):
                update.desc = self.decode_str(item, "desc", ctx)
            if take(ops, kind, "tags"):
                update.tags = set(self.decode_seq(item, "tags", ctx, optional=True) or ())
            if kind == "append":
                self.collector.append_rule(update)
                continue
            if take(ops, kind, "priority"):
                text, node = self._scalar(item, "priority", ctx, optional=False)
                parsed = Priority.parse(text or "")
                if parsed is None:
                    raise yaml_fail("Invalid priority", self.ctx(ctx, node, "rule priority"))
                update.priority = parsed
            if take(ops, kind, "capture"):
                update.capture = self.decode_bool(item, "capture", ctx)
            if take(ops, kind, "capture_duration"):
                update.capture_duration = self.decode_uint(item, "capture_duration", ctx, 64)
            if take(ops, kind, "enabled"):
                update.enabled = self.decode_bool(item, "enabled", ctx)
            if take(ops, kind, "warn_evttypes"):
                update.warn_evttypes = self.decode_bool(item, "warn_evttypes", ctx)
            if take(ops, kind, "skip-if-unknown-filter"):
                update.skip_if_unknown_filter = self.decode_bool(item, "skip-if-unknown-filter", ctx)
            self.collector.replace_rule(update)
        for key in sorted(expected):
            raise yaml_fail(
                f"Unexpected key '{key}': no corresponding entry under 'override' is defined.",
                self.ctx(ctx, mapping_get(item, key), "overrides", key),
            )

    # -- exceptions ----------------------------------------------------------------------------
    def read_exceptions(self, item: yaml.Node, parent: Context, *, append: bool) -> list[ExceptionInfo]:
        exs = mapping_get(item, "exceptions")
        out: list[ExceptionInfo] = []
        if exs is None or is_null(exs):
            return out
        exs_ctx = self.ctx(parent, exs, "exceptions")
        if not is_seq(exs):
            raise yaml_fail("Rule exceptions must be a sequence", exs_ctx)
        assert isinstance(exs, yaml.SequenceNode)
        for ex in exs.value:
            tmp = self.ctx(exs_ctx, ex, "exception")
            if not is_map(ex):
                raise yaml_fail("Rule exception must be a mapping", tmp)
            name = self.decode_str(ex, "name", tmp) or ""
            ex_ctx = self.ctx(parent, ex, "exception", name)
            info = ExceptionInfo(name, ex_ctx)
            if any(e.name == name for e in out):
                self.warn("LOAD_EXCEPTION_NAME_NOT_UNIQUE",
                          f"Multiple definitions of exception '{name}' in the same rule", ex_ctx)  # fmt: skip
            info.fields = self._entry(mapping_get(ex, "fields"), "fields", ex_ctx, optional=append)
            info.comps = self._entry(mapping_get(ex, "comps"), "comps", ex_ctx, optional=True)
            values = mapping_get(ex, "values")
            if values is not None:
                vctx = self.ctx(ex_ctx, values, "exception values")
                if not is_seq(values):
                    raise yaml_fail("Rule exception values must be a sequence", vctx)
                assert isinstance(values, yaml.SequenceNode)
                for v in values.value:
                    info.values.append(self._entry(v, "", self.ctx(vctx, v, "exception value"), optional=False))
            elif append:
                self.warn("LOAD_APPEND_NO_VALUES", "Overriding/appending exception with no values", ex_ctx)
            out.append(info)
        return out

    def _entry(self, val: yaml.Node | None, key: str, ctx: Context, *, optional: bool) -> ExceptionEntry:
        if val is None:
            if optional:
                return ExceptionEntry()
            raise yaml_fail(f"Item has no mapping for key '{key}'", ctx)
        self.budget.spend(val)
        valctx = self.ctx(ctx, val, "value for", key)
        entry = ExceptionEntry(defined=True)
        if isinstance(val, yaml.ScalarNode):
            text = "" if is_null(val) else str(val.value)
            if not text:
                raise yaml_fail("Value must be non-empty", valctx)
            entry.item = text
        elif isinstance(val, yaml.SequenceNode):
            entry.is_list = True
            for v in val.value:
                entry.items.append(self._entry(v, "", self.ctx(valctx, v, "exception"), optional=False))
        return entry


ERROR_OVERRIDE_APPEND = (
    "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. "
    "'condition: append') under 'override' instead."
)


def yaml_fail(message: str, context: Context) -> CollectError:
    return CollectError("LOAD_ERR_YAML_VALIDATE", message, context)
