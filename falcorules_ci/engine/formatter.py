"""Rule output formats rendered as libsinsp's event formatter renders them.

Text: each ``%field`` becomes the value as ``rawval_to_string`` prints it (``<NA>`` when missing,
Falco formats every output with a leading ``*``), padded or cut to ``%N`` bytes; lists print as
``(a,b)``, booleans as ``true``/``false``, IP networks as ``<IPNET>``, numbers in the field's print
format. Strings of the syscall source are sanitised as libsinsp 0.25's extractors do before
printing. JSON: ``output_fields`` maps each plain field of the format (also those inside
transformers; transformed values themselves are left out) to a number, bool, string, list or
null. The event time fields print in the engine's time zone and are the timestamp in ns in JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from falcorules_ci.condition.output import OutputFormat, as_libsinsp_string, parse_output
from falcorules_ci.condition.typecheck import (
    TypedField,
    TypedOperand,
    TypedTransform,
    plain_fields,
)
from falcorules_ci.engine.compare import EQ_ONLY_TYPES
from falcorules_ci.engine.matching import from_bytes, sanitize, to_bytes
from falcorules_ci.engine.operands import Operand, field_type
from falcorules_ci.engine.predicate import EventValues, Slots
from falcorules_ci.engine.timefmt import time_field_text
from falcorules_ci.fields.registry import FieldRegistry, FieldType
from falcorules_ci.sources.event import SYSCALL_SOURCE, Event

NA: Final = "<NA>"
STRING_STORAGE: Final = 1024  # libsinsp's STRPROPERTY_STORAGE_SIZE

TIME_FIELDS: Final = frozenset({"evt.time", "evt.time.s", "evt.time.iso8601", "evt.datetime", "evt.datetime.s"})

_BITS: Final = {
    FieldType.INT8: (8, True), FieldType.INT16: (16, True), FieldType.INT32: (32, True),
    FieldType.INT64: (64, True), FieldType.PID: (64, True), FieldType.FD: (64, True), FieldType.ERRNO: (64, True),
    FieldType.UINT8: (8, False), FieldType.FLAGS8: (8, False), FieldType.ENUMFLAGS8: (8, False),
    FieldType.L4PROTO: (8, False), FieldType.UINT16: (16, False), FieldType.FLAGS16: (16, False),
    FieldType.ENUMFLAGS16: (16, False), FieldType.PORT: (16, False), FieldType.UINT32: (32, False),
    FieldType.FLAGS32: (32, False), FieldType.ENUMFLAGS32: (32, False), FieldType.UID: (32, False),
    FieldType.GID: (32, False), FieldType.MODE: (32, False), FieldType.UINT64: (64, False),
    FieldType.RELTIME: (64, False), FieldType.ABSTIME: (64, False),
}  # fmt: skip
# Types whose rawval_to_string knows the 10-digit padded format.
_PADDED_OK: Final = frozenset({FieldType.INT64, FieldType.PID, FieldType.FD, FieldType.ERRNO, FieldType.UINT64,
                               FieldType.RELTIME, FieldType.ABSTIME})  # fmt: skip


# -- values ------------------------------------------------------------------------------------


def _dots(data: bytes) -> str:
    # binary_buffer_to_string_dots into a 1023-byte buffer: printable ASCII kept, the rest '.'.
    text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in data)
    return text if len(text) <= STRING_STORAGE - 2 else text[: STRING_STORAGE - 3]


def number_text(value: int, ftype: FieldType, print_fmt: str) -> str | None:
    """An integer as ``rawval_to_string`` prints it: cast to the type's width, in the field's
    print format; None (printed ``<NA>``) for a format the type does not support."""
    bits, signed = _BITS.get(ftype, (64, True))
    value &= (1 << bits) - 1
    if signed and value >> (bits - 1):
        value -= 1 << bits
    if print_fmt in ("PF_DEC", "PF_ID"):
        return str(value)
    if print_fmt == "PF_HEX":
        return f"{value & ((1 << bits) - 1):X}"
    if print_fmt == "PF_OCT":
        return f"{value & ((1 << bits) - 1):o}"
    if print_fmt == "PF_10_PADDED_DEC":
        if ftype not in _PADDED_OK:
            return None
        return f"{value:09d}"
    if ftype in (FieldType.INT64, FieldType.PID, FieldType.FD, FieldType.ERRNO):
        return str(value)  # the signed 64-bit case prints decimal for any other format
    return None


def scalar_text(value: Any, ftype: FieldType, print_fmt: str, clean: bool) -> str:
    """One value as ``rawval_to_string`` prints it."""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return sanitize(value) if clean else value
    if isinstance(value, bytes):
        return _dots(value)
    if ftype in EQ_ONLY_TYPES:
        return "<IPNET>"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, int) and ftype.is_numeric:
        text = number_text(value, ftype, print_fmt)
        return NA if text is None else text
    return str(value)


def value_text(value: Any, ftype: FieldType, print_fmt: str, clean: bool) -> str:
    if value is None:
        return NA
    if isinstance(value, list | tuple):
        text = "(" + ",".join(scalar_text(v, ftype, print_fmt, clean) for v in value) + ")"
        # The list is copied into libsinsp's fixed 1024-byte property storage.
        raw = to_bytes(text)
        return text if len(raw) < STRING_STORAGE else from_bytes(raw[: STRING_STORAGE - 1])
    return scalar_text(value, ftype, print_fmt, clean)


def scalar_json(value: Any, ftype: FieldType, print_fmt: str, clean: bool) -> Any:
    """One value as ``rawval_to_json`` gives it: numbers in decimal format and bools native, the
    rest as the text ``rawval_to_string`` prints."""
    if value is True or value is False:
        return bool(value)
    if isinstance(value, int) and ftype.is_numeric and ftype not in EQ_ONLY_TYPES:
        if print_fmt == "PF_NA":  # rawval_to_json has no rendering for it
            return None
        if print_fmt in ("PF_DEC", "PF_ID"):
            bits, signed = _BITS.get(ftype, (64, True))
            value &= (1 << bits) - 1
            if signed and value >> (bits - 1):
                value -= 1 << bits
            return value
        return scalar_text(value, ftype, print_fmt, clean)
    if isinstance(value, float):
        return int(value) if print_fmt == "PF_DEC" else value
    return scalar_text(value, ftype, print_fmt, clean)


def value_json(value: Any, ftype: FieldType, print_fmt: str, clean: bool) -> Any:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [scalar_json(v, ftype, print_fmt, clean) for v in value]
    return scalar_json(value, ftype, print_fmt, clean)


def fit_width(text: str, width: int) -> str:
    """``std::string::resize(width, ' ')``: pad or cut to ``width`` bytes."""
    if not width:
        return text
    raw = to_bytes(text)
    if len(raw) >= width:
        return from_bytes(raw[:width])
    return text + " " * (width - len(raw))


# -- compiled formats ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Value:
    """A token or output field: its name, how to get its value, how libsinsp prints it."""

    name: str
    operand: Operand | None  # None for the event time fields, rendered by the engine
    slot: int
    width: int
    ftype: FieldType
    print_fmt: str


@dataclass(frozen=True, slots=True)
class CompiledFormat:
    """A parsed and compiled output format, ready to render events."""

    text: str
    parts: tuple[str | _Value, ...]
    json_fields: tuple[_Value, ...]
    clean: bool  # sanitise strings (syscall source)

    def render(self, event: Event, values: EventValues, offset: int) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            if part.operand is None:
                text = time_field_text(part.name, event.ts, offset)
            else:
                text = value_text(values[part.slot], part.ftype, part.print_fmt, self.clean)
            out.append(fit_width(text, part.width))
        return "".join(out)

    def fields(self, event: Event, values: EventValues) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for f in self.json_fields:
            if f.operand is None:
                result[f.name] = event.ts
            else:
                result[f.name] = value_json(values[f.slot], f.ftype, f.print_fmt, self.clean)
        return result


def _base_field(typed: TypedOperand) -> TypedField | None:
    while isinstance(typed, TypedTransform):
        typed = typed.operand
    return typed if isinstance(typed, TypedField) else None


class Formatter:
    """Compiles output formats of one source against its operand slots, caching by text."""

    def __init__(self, slots: Slots, registry: FieldRegistry, source: str) -> None:
        self.slots = slots
        self.registry = registry
        self.source = source
        self.clean = source == SYSCALL_SOURCE
        self._cache: dict[str, CompiledFormat] = {}

    def compile(self, fmt: str) -> CompiledFormat:
        """Compile a format as Falco does: a leading ``*`` is added when missing."""
        found = self._cache.get(fmt)
        if found is None:
            star = fmt if fmt.startswith("*") else "*" + fmt
            found = self._compile(fmt, parse_output(star, self.registry, self.source))
            self._cache[fmt] = found
        return found

    def print_format(self, typed: TypedOperand) -> str:
        """The print format libsinsp uses for an operand: the bottom field's own (transformers
        keep it, so ``len()`` of a string field prints ``<NA>``), PF_NA for non-numeric fields."""
        base = _base_field(typed)
        if base is None or not field_type(base.ptype).is_numeric:
            return "PF_NA"
        if self.source == SYSCALL_SOURCE:
            from falcorules_ci.extract.syscall import print_format

            return print_format(base.match.info.name)
        return "PF_DEC"

    def _value(self, typed: TypedOperand | None, name: str, width: int = 0) -> _Value:
        if name in TIME_FIELDS or typed is None:
            return _Value(name, None, -1, width, FieldType.CHARBUF, "PF_NA")
        operand = self.slots.output_operands.compile(typed)
        return _Value(name, operand, self.slots.slot(operand), width, operand.ftype, self.print_format(typed))

    def _compile(self, fmt: str, parsed: OutputFormat) -> CompiledFormat:
        parts: list[str | _Value] = []
        json_fields: dict[str, _Value] = {}
        for segment in parsed.segments:
            if isinstance(segment, str):
                parts.append(segment)
                continue
            parts.append(self._value(segment.typed, segment.name, segment.width))
            if segment.typed is None:
                continue
            for typed_field in plain_fields(segment.typed):
                key = as_libsinsp_string(typed_field.node)
                if key not in json_fields:
                    json_fields[key] = self._value(typed_field, key)
        return CompiledFormat(fmt, tuple(parts), tuple(json_fields.values()), self.clean)

    def raw_field(self, name: str) -> Callable[[Event, EventValues], Any]:
        """The JSON value of one field (``append_output`` raw ``extra_fields``)."""
        compiled = self.compile("%" + name)

        def value(event: Event, values: EventValues) -> Any:
            result = compiled.fields(event, values)
            if name in result:
                return result[name]
            return next(iter(result.values()), None)

        return value
