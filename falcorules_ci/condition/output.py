"""Rule output formats: tokens, validation and the ``output_fields`` keys, as libsinsp reads them.

A format is literal text with ``%`` tokens (libs ``eventformatter.cpp``): ``%`` then optional
digits (pad or truncate the value to that width) then a field or transformer
(``%proc.aname[2]``, ``%tolower(proc.name)``). The longest prefix of the rest of the format that
parses *and compiles* is the token, so in ``%ka.target.name/%ka.target.resource`` the ``/`` is
text, and ``%proc.namex`` is ``%proc.name`` followed by ``x``. There is no ``%%`` escape: a ``%``
that starts no field is an error, as is a trailing ``%``. A leading ``*`` means "print <NA> for
missing values" (Falco adds one to every rule output when formatting).

JSON ``output_fields`` hold the plain field tokens only, including the fields inside transformer
tokens (libsinsp leaves transformed values out unless told otherwise, and Falco does not).
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from falcorules_ci.condition.ast import FieldRef, Literal, Operand, Transformer, TransformerArg, TransformerList
from falcorules_ci.condition.lint import DEPRECATED_FIELD_NOTES, ConditionWarning
from falcorules_ci.condition.parser import parse_field_or_transformer
from falcorules_ci.condition.typecheck import TypedOperand, compile_operand
from falcorules_ci.errors import ConditionError
from falcorules_ci.fields.registry import FieldRegistry

OUTPUT_ERROR = "LOAD_ERR_COMPILE_OUTPUT"


@dataclass(frozen=True, slots=True)
class OutputToken:
    """One ``%`` token: the field or transformer, its libsinsp name and its width."""

    text: str  # as written after the % and width: "proc.aname[2]", "tolower(proc.name)"
    name: str  # libsinsp's canonical spelling; the output_fields key for a plain field
    width: int  # 0 when no width was given
    node: Operand
    index: int  # offset of the '%' in the format
    typed: TypedOperand | None  # the compiled operand, when a registry was given

    @property
    def is_transformer(self) -> bool:
        return isinstance(self.node, Transformer)


Segment = str | OutputToken


@dataclass(frozen=True, slots=True)
class OutputFormat:
    segments: tuple[Segment, ...]
    require_all_values: bool  # False when the format starts with '*'
    fields: tuple[str, ...]  # the output_fields keys, in first-seen order

    @property
    def tokens(self) -> tuple[OutputToken, ...]:
        return tuple(s for s in self.segments if isinstance(s, OutputToken))


def parse_output(fmt: str, registry: FieldRegistry | None = None, source: str = "syscall") -> OutputFormat:
    """Split ``fmt`` into text and tokens, compiling each token for ``source``.

    Without a registry every syntactically complete field is accepted (no compile check, so the
    longest-prefix rule only applies to syntax). Raises ConditionError with code
    LOAD_ERR_COMPILE_OUTPUT and the '%' offset.
    """
    if not fmt:
        raise ConditionError("empty formatting token", 0, OUTPUT_ERROR)
    offset, text = (1, fmt[1:]) if fmt[0] == "*" else (0, fmt)
    segments: list[Segment] = []
    fields: dict[str, None] = {}
    text_start = 0
    j, n = 0, len(text)
    while j < n:
        if text[j] != "%":
            j += 1
            continue
        percent = j
        if text_start != j:
            segments.append(text[text_start:j])
        if j == n - 1:
            raise ConditionError(
                "invalid formatting syntax: formatting cannot end with a %", offset + percent, OUTPUT_ERROR
            )
        width = 0
        if text[j + 1] in string.digits:
            width = _leading_int(text[j + 1 :])
            while True:
                if j == n - 1:
                    raise ConditionError(
                        "invalid formatting syntax: formatting cannot end with a number", offset + percent, OUTPUT_ERROR
                    )
                if text[j + 1] in string.digits:
                    j += 1
                    continue
                break
        node, typed, size = _longest_token(text, j + 1, registry, source, offset + percent)
        segments.append(OutputToken(text[j + 1 : j + 1 + size], as_libsinsp_string(node), width, node,
                                    offset + percent, typed))  # fmt: skip
        for name in _plain_field_names(node):
            fields.setdefault(name)
        j += size + 1
        text_start = j
    if text_start < n:
        segments.append(text[text_start:])
    return OutputFormat(tuple(segments), offset == 0, tuple(fields))


def validate_output(fmt: str, registry: FieldRegistry, source: str) -> OutputFormat:
    """``parse_output`` with a registry: what Falco's loader does to every rule output."""
    return parse_output(fmt, registry, source)


def format_fields(fmt: str, registry: FieldRegistry | None = None, source: str = "syscall") -> list[str]:
    """The ``output_fields`` keys Falco's JSON alerts carry for ``fmt`` (``evt.time`` aside)."""
    return list(parse_output(fmt, registry, source).fields)


def output_deprecation_warnings(fmt: str) -> list[tuple[str, ConditionWarning]]:
    """Falco's check of rule outputs for deprecated fields: a plain substring search.

    Returns (deprecated field, warning) pairs in Falco's order.
    """
    found: list[tuple[str, ConditionWarning]] = []
    for name in DEPRECATED_FIELD_NOTES:
        if name in fmt:
            message = f"usage of deprecated field '{name}' has been detected in the rule output"
            found.append((name, ConditionWarning("LOAD_DEPRECATED_ITEM", message, 0)))
    return found


def _longest_token(
    text: str, start: int, registry: FieldRegistry | None, source: str, index: int
) -> tuple[Operand, TypedOperand | None, int]:
    size = len(text) - start
    while True:
        consumed = 0
        try:
            node, consumed = parse_field_or_transformer(text[start : start + size])
            typed = compile_operand(node, registry, source) if registry is not None else None
            return node, typed, consumed
        except ConditionError as exc:
            # Every size between the parsed length and the current one parses to the same token,
            # so a token that parsed but did not compile can skip straight below its length.
            size = min(size, consumed) - 1 if consumed else size - 1
            if size <= 0:
                raise ConditionError(f"unknown filter: {exc.message}", index, OUTPUT_ERROR) from None


def _leading_int(text: str) -> int:
    digits = text[: len(text) - len(text.lstrip(string.digits))]
    value = min(int(digits), 2**63 - 1) % 2**32
    return value


def _plain_field_names(node: TransformerArg) -> list[str]:
    if isinstance(node, FieldRef):
        return [as_libsinsp_string(node)]
    if isinstance(node, Transformer):
        return [name for arg in node.args for name in _plain_field_names(arg)]
    if isinstance(node, TransformerList):
        return [name for item in node.values for name in _plain_field_names(item)]
    return []


def as_libsinsp_string(node: TransformerArg) -> str:
    """libsinsp's ``ast::as_string`` for a field or transformer: the output_fields key spelling."""
    if isinstance(node, FieldRef):
        return node.name + _arg_string(node.arg)
    if isinstance(node, Literal):
        return libsinsp_escape(node.value)
    if isinstance(node, TransformerList):
        return "(" + ",".join(as_libsinsp_string(v) for v in node.values) + ")"
    args = ",".join(as_libsinsp_string(a) for a in node.args)
    return f"{node.name}({args}){_arg_string(node.arg)}"


def _arg_string(arg: str | None) -> str:
    if arg is None:
        return ""
    return '[""]' if not arg else f"[{libsinsp_escape(arg)}]"


_ESCAPED = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\", '"': '\\"'}
_QUOTE_TRIGGERS = frozenset(_ESCAPED) | {" ", "=", "'"}


def libsinsp_escape(value: str) -> str:
    """libsinsp's ``escape_str``: quote when the value holds blanks, '=', quotes or backslashes."""
    if not any(c in _QUOTE_TRIGGERS for c in value):
        return value
    return '"' + "".join(_ESCAPED.get(c, c) for c in value) + '"'


__all__ = [
    "OUTPUT_ERROR",
    "OutputFormat",
    "OutputToken",
    "Segment",
    "as_libsinsp_string",
    "format_fields",
    "libsinsp_escape",
    "output_deprecation_warnings",
    "parse_output",
    "validate_output",
]
