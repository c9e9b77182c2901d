"""The one error root of falcorules-ci, and the source positions every diagnostic carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True, slots=True)
class Span:
    """Where something is: a file and a 1-based line and column, or a byte offset for captures."""

    path: str
    line: int = 0
    col: int = 0
    offset: int | None = None

    def __str__(self) -> str:
        if self.offset is not None and not self.line:
            return f"{self.path}:@{self.offset}"
        if self.line:
            return f"{self.path}:{self.line}:{self.col}"
        return self.path

    def shifted(self, text: str, index: int) -> Span:
        """The span of character ``index`` of ``text`` when ``text`` starts at this span."""
        before = text[:index]
        newlines = before.count("\n")
        if newlines:
            return Span(self.path, self.line + newlines, index - before.rfind("\n"))
        return Span(self.path, self.line, self.col + index)


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One error or warning with Falco's code (``LOAD_ERR_*``, ``LOAD_*``) and message text."""

    severity: Severity
    code: str
    message: str
    span: Span | None = None
    item_type: str = ""
    item_name: str = ""
    snippet: str = field(default="", compare=False)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.span}: " if self.span else ""
        return f"{where}{self.severity.value} {self.code}: {self.message}"


class FalcoRulesError(Exception):
    """Root of every error falcorules-ci raises on bad input or failed checks."""

    def __init__(self, message: str, span: Span | None = None, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.code = code

    def __str__(self) -> str:
        where = f"{self.span}: " if self.span else ""
        code = f"{self.code} " if self.code else ""
        return f"{where}{code}{self.message}"


class RulesLoadError(FalcoRulesError):
    """A rules file could not be loaded; ``diagnostics`` holds every error and warning found."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        first = next((d for d in diagnostics if d.is_error), diagnostics[0])
        super().__init__(first.message, first.span, first.code)
        self.diagnostics = diagnostics


class ConditionError(FalcoRulesError):
    """A condition or output format failed to parse or compile.

    ``index`` is the character position inside the condition text; the loader turns it into a
    file position by adding it to the YAML scalar's own position.
    """

    def __init__(self, message: str, index: int = 0, code: str = "LOAD_ERR_COMPILE_CONDITION") -> None:
        super().__init__(message, None, code)
        self.index = index


class InputError(FalcoRulesError):
    """A fixture, scenario, capture or audit file is malformed."""


class UsageError(FalcoRulesError):
    """Options or arguments that do not fit together."""
