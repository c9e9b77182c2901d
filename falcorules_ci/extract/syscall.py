"""Field extraction for the syscall source: every field libsinsp (libs 0.25) and the container
plugin define, with their exact semantics.

``syscall_extractor(name, arg)`` builds, once per field use, a closure ``(event, state) -> value``
that reads the :class:`~falcorules_ci.state.SyscallState` after it was updated with the event.
Values follow :mod:`falcorules_ci.extract.base`, with these additions:

- ancestor fields without an index (``proc.aname``, ``proc.aexe``, ``proc.aexepath``,
  ``proc.acmdline``, ``proc.apid``, ``proc.aenv``) return an :class:`Ancestors` list in a
  condition: the operator is true if it holds for *any* ancestor, ``!=`` included. Outputs use
  :func:`syscall_output_extractor`, which joins the ancestors' values with spaces
  (``proc.apid``: the process's own pid);
- IPNET fields (``fd.net``, ``fd.cnet``, ``fd.snet``, ``fd.lnet``, ``fd.rnet``) return the
  *address* (an ``IPv4Address``/``IPv6Address``, or an ``EitherEnd`` of them for ``fd.net``); a
  condition compares it with the network literal by membership;
- ``fd.cip.name``/``fd.sip.name``/``fd.lip.name``/``fd.rip.name`` are an ``EitherEnd`` of the
  host names that resolve to the address (libsinsp's domain comparison: ``=``/``in`` when the
  literal is one of them, ``!=`` when it is not); outputs print the first of them;
- ``evt.type.is`` is an integer 0/1, ``fd.types`` a list, ``evt.buffer`` bytes;
- ``evt.around[T]`` is an :class:`AroundWindow`: ``evt.around[T]=D`` holds when
  ``window.matches(D)``.

:func:`format_value` renders a value as libsinsp prints it in an output.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from falcorules_ci.errors import ConditionError
from falcorules_ci.extract import syscall_container, syscall_evt, syscall_evt_output, syscall_fd, syscall_proc
from falcorules_ci.extract.base import EitherEnd, Extractor
from falcorules_ci.extract.syscall_evt import AroundWindow
from falcorules_ci.extract.syscall_params import printable
from falcorules_ci.extract.syscall_proc import Ancestors
from falcorules_ci.fields.registry import FieldType

Factory = Callable[[str | None], Extractor]

_FACTORIES: dict[str, Factory] = {
    **syscall_evt.FACTORIES,
    **syscall_proc.FACTORIES,
    **syscall_fd.FACTORIES,
    **syscall_container.FACTORIES,
}
_OUTPUT_FACTORIES: dict[str, Factory] = {
    **_FACTORIES,
    **syscall_evt_output.OUTPUT_FACTORIES,
    **syscall_proc.OUTPUT_FACTORIES,
    **syscall_fd.OUTPUT_FACTORIES,
}

# Numeric fields libsinsp prints in another format than plain decimal.
_PRINT_FORMATS = {
    "fd.dev": "PF_HEX",
    "evt.rawtime.ns": "PF_10_PADDED_DEC",
    "evt.reltime": "PF_10_PADDED_DEC",
    "evt.reltime.ns": "PF_10_PADDED_DEC",
    "evt.latency.ns": "PF_10_PADDED_DEC",
    "evt.deltatime.ns": "PF_10_PADDED_DEC",
    # Declared PF_NA: an unsigned integer with no print format prints <NA> in outputs.
    "evt.type.is": "PF_NA",
}


def syscall_extractor(name: str, arg: str | None = None) -> Extractor:
    """The extractor for a syscall field (as compared in a condition)."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ConditionError(f"filter_check called with nonexistent field {name}")
    return factory(arg)


def syscall_output_extractor(name: str, arg: str | None = None) -> Extractor:
    """The extractor for a syscall field as an output prints it (differs for ancestor fields
    used without an index)."""
    factory = _OUTPUT_FACTORIES.get(name)
    if factory is None:
        raise ConditionError(f"invalid formatting token {name}")
    return factory(arg)


def syscall_field_names() -> frozenset[str]:
    """Every field name this module extracts (arguments not included)."""
    return frozenset(_FACTORIES)


def print_format(name: str) -> str:
    """The print format libsinsp uses for a field (``PF_DEC`` unless listed)."""
    return _PRINT_FORMATS.get(name, "PF_DEC")


_MASKS = {
    FieldType.UINT8: 0xFF, FieldType.UINT16: 0xFFFF, FieldType.UINT32: 0xFFFFFFFF,
    FieldType.UINT64: 0xFFFFFFFFFFFFFFFF, FieldType.PORT: 0xFFFF, FieldType.UID: 0xFFFFFFFF,
    FieldType.GID: 0xFFFFFFFF, FieldType.FLAGS8: 0xFF, FieldType.FLAGS16: 0xFFFF,
    FieldType.FLAGS32: 0xFFFFFFFF, FieldType.ABSTIME: 0xFFFFFFFFFFFFFFFF,
    FieldType.RELTIME: 0xFFFFFFFFFFFFFFFF, FieldType.L4PROTO: 0xFF, FieldType.MODE: 0xFFFFFFFF,
}  # fmt: skip


def format_value(value: Any, field_type: FieldType, print_fmt: str = "PF_DEC") -> str:
    """A value as libsinsp prints it in an output (``<NA>`` for no value)."""
    if value is None:
        return "<NA>"
    if isinstance(value, list) and not isinstance(value, Ancestors):
        return "(" + ",".join(format_value(v, field_type, print_fmt) for v in value) + ")"
    if isinstance(value, tuple):  # EitherEnd: filter-only fields, shown as their first end
        return format_value(value[0], field_type, print_fmt) if value else "<NA>"
    if isinstance(value, Ancestors):
        return " ".join(format_value(v, field_type, print_fmt) for v in value)
    if isinstance(value, bool) or field_type is FieldType.BOOL:
        return "true" if value else "false"
    if isinstance(value, IPv4Address | IPv6Address):
        return "<IPNET>" if field_type is FieldType.IPNET else str(value)
    if isinstance(value, bytes):
        return printable(value)
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, int):
        return _format_int(value, field_type, print_fmt)
    if isinstance(value, str):
        return sanitize(value)
    return str(value)


def _format_int(value: int, field_type: FieldType, print_fmt: str) -> str:
    mask = _MASKS.get(field_type)
    number = value & mask if mask is not None else value
    if print_fmt == "PF_HEX":
        return f"{number & 0xFFFFFFFFFFFFFFFF:X}"
    if print_fmt == "PF_OCT":
        return f"{number & 0xFFFFFFFFFFFFFFFF:o}"
    if print_fmt == "PF_10_PADDED_DEC":
        return f"{number:09d}"
    if print_fmt == "PF_NA" and mask is not None:
        return "<NA>"  # rawval_to_string has no text for an unsigned value without a format
    return str(number)


def sanitize(text: str) -> str:
    """Invalid UTF-8 (kept by sources as surrogate escapes) shown as U+FFFD, as libsinsp does."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def json_value(value: Any, field_type: FieldType, print_fmt: str = "PF_DEC") -> Any:
    """A value as Falco's JSON ``output_fields`` carry it: numbers for numeric fields printed in
    decimal, booleans, strings otherwise, a list for list fields, None for no value."""
    if value is None:
        return None
    if isinstance(value, list) and not isinstance(value, Ancestors):
        return [json_value(v, field_type, print_fmt) for v in value]
    if isinstance(value, bool) or field_type is FieldType.BOOL:
        return bool(value)
    if isinstance(value, int) and not isinstance(value, EitherEnd) and print_fmt == "PF_DEC":
        mask = _MASKS.get(field_type)
        return value & mask if mask is not None else value
    if isinstance(value, float):
        return value
    return format_value(value, field_type, print_fmt)


__all__ = [
    "Ancestors",
    "AroundWindow",
    "EitherEnd",
    "format_value",
    "json_value",
    "print_format",
    "sanitize",
    "syscall_extractor",
    "syscall_field_names",
    "syscall_output_extractor",
]
