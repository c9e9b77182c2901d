"""Load results in Falco's terms: error and warning codes, their texts, and the JSON shape that
``falco -V`` prints with ``json_output``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from falcorules_ci.errors import Diagnostic, Severity
from falcorules_ci.rules.model import Context

ERROR_DESCRIPTIONS = {
    "LOAD_ERR_FILE_READ": "File read error",
    "LOAD_ERR_YAML_PARSE": "YAML parse error",
    "LOAD_ERR_YAML_VALIDATE": "Error validating internal structure of YAML file",
    "LOAD_ERR_COMPILE_CONDITION": "Error compiling condition",
    "LOAD_ERR_COMPILE_OUTPUT": "Error compiling output",
    "LOAD_ERR_VALIDATE": "Error validating rule/macro/list/exception objects",
    "LOAD_ERR_EXTENSION": "Error in extension item",
}

WARNING_TITLES = {
    "LOAD_UNKNOWN_SOURCE": "Unknown event source",
    "LOAD_UNSAFE_NA_CHECK": "Unsafe <NA> comparison in condition",
    "LOAD_NO_EVTTYPE": "Condition has no event-type restriction",
    "LOAD_UNKNOWN_FILTER": "Unknown field or event-type in condition or output",
    "LOAD_UNUSED_MACRO": "Unused macro",
    "LOAD_UNUSED_LIST": "Unused list",
    "LOAD_UNKNOWN_ITEM": "Unknown rules file item",
    "LOAD_DEPRECATED_ITEM": "Used deprecated item",
    "LOAD_WARNING_EXTENSION": "Warning in extension item",
    "LOAD_APPEND_NO_VALUES": "Overriding/appending with no values",
    "LOAD_EXCEPTION_NAME_NOT_UNIQUE": "Multiple exceptions defined with the same name",
    "LOAD_INVALID_MACRO_NAME": "Invalid macro name",
    "LOAD_INVALID_LIST_NAME": "Invalid list name",
    "LOAD_COMPILE_CONDITION": "Warning in rule condition",
    "LOAD_UNKNOWN_KEY": "Unknown key in item definition",
}

# Falco's own texts for the deprecated-item warnings (rule_loading_messages.h).
WARNING_APPEND = (
    "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under "
    "'override' instead."
)
WARNING_ENABLED = (
    "The standalone 'enabled' key usage is deprecated. The correct approach requires also a "
    "'replace' entry under the 'override' key (i.e. 'enabled: replace')."
)


@dataclass(frozen=True, slots=True)
class LoadMessage:
    """One error or warning of a load, with Falco's code and context chain."""

    severity: Severity
    code: str
    message: str
    context: Context
    deprecated_field: str | None = None

    @property
    def title(self) -> str:
        if self.severity is Severity.ERROR:
            return ERROR_DESCRIPTIONS.get(self.code, self.code)
        text = WARNING_TITLES.get(self.code, self.code)
        if self.deprecated_field:
            text += f": field '{self.deprecated_field}'"
        return text

    @property
    def item_type(self) -> str:
        return self.context.locations[-1].item_type if self.context.locations else ""

    @property
    def item_name(self) -> str:
        for loc in reversed(self.context.locations):
            if loc.item_name and loc.item_type in ("rule", "macro", "list"):
                return loc.item_name
        return ""

    def diagnostic(self) -> Diagnostic:
        return Diagnostic(
            severity=self.severity,
            code=self.code,
            message=self.message,
            span=self.context.span,
            item_type=self.item_type,
            item_name=self.item_name,
            snippet=snippet(self.context),
        )

    def as_json(self) -> dict[str, Any]:
        ctx: dict[str, Any] = {
            "locations": [
                {
                    "item_type": loc.item_type,
                    "item_name": loc.item_name,
                    "position": {
                        "name": loc.name,
                        "line": loc.line,
                        "column": loc.column,
                        "offset": loc.offset,
                    },
                }
                for loc in self.context.locations
            ],
            "snippet": falco_snippet(self.context),
        }
        out: dict[str, Any] = {"context": ctx, "code": self.code, "codedesc": self.title.split(":")[0]}
        if self.severity is Severity.ERROR:
            out["codedesc"] = ERROR_DESCRIPTIONS.get(self.code, self.code)
        else:
            out["codedesc"] = WARNING_TITLES.get(self.code, self.code)
        out["message"] = self.message
        if self.deprecated_field:
            out["deprecated_field"] = self.deprecated_field
        return out


@dataclass(slots=True)
class FileResult:
    """The result of loading one rules file on top of the files before it."""

    name: str
    errors: list[LoadMessage] = field(default_factory=list)
    warnings: list[LoadMessage] = field(default_factory=list)

    @property
    def successful(self) -> bool:
        return not self.errors

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "successful": self.successful,
            "errors": [e.as_json() for e in self.errors],
            "warnings": [w.as_json() for w in self.warnings],
        }

    def summary(self) -> str:
        """Falco's one-line summary: ``name: Ok``, ``Ok, with warnings`` or ``Invalid``."""
        if not self.successful:
            return f"{self.name}: Invalid"
        return f"{self.name}: Ok" + (", with warnings" if self.warnings else "")


def falco_snippet(context: Context, width: int = 160) -> str:
    """The snippet Falco prints: the line around the position, cut to ``width``, with a caret."""
    text = context.snippet_source
    if not context.locations or not text:
        return "<No context available>\n"
    pos = context.locations[-1].offset
    while pos > 0 and (pos >= len(text) or text[pos] == "\n"):
        pos -= 1
    start = pos
    while start > 0 and text[start] != "\n" and (pos - start) < width // 2:
        start -= 1
    end = pos
    while end < len(text) - 1 and text[end] != "\n" and (end - pos) < width // 2:
        end += 1
    if start < len(text) and text[start] == "\n":
        start += 1
    if end < len(text) and text[end] == "\n":
        end -= 1
    line = text[start : end + 1]
    if not line:
        return "<No context available>\n"
    if pos - start >= width // 2:
        line = "..." + line[3:]
    if end - pos >= width // 2:
        line = line[:-3] + "..."
    out = line + "\n"
    if pos - start <= len(line) - 1:
        out += " " * (pos - start) + "^\n"
    return out


def snippet(context: Context) -> str:
    """Our human snippet: the source line at the 1-based span with a caret under the column."""
    span = context.span
    text = context.snippet_source
    if not text or span.offset is None:
        return ""
    start = text.rfind("\n", 0, span.offset) + 1
    end = text.find("\n", span.offset)
    line = text[start : end if end >= 0 else len(text)]
    col = span.offset - start
    if len(line) > 160:
        cut = max(0, col - 80)
        line = line[cut : cut + 160]
        col -= cut
    return f"{line}\n{' ' * col}^"
