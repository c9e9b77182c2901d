"""Output-side extractors of ``evt.*`` fields whose printed value is not what a condition compares
(libsinsp extracts them differently when formatting, ``m_is_compare`` false)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from falcorules_ci.errors import ConditionError
from falcorules_ci.extract.base import Extractor
from falcorules_ci.extract.syscall_params import render
from falcorules_ci.sources.event import Event
from falcorules_ci.state.layouts import layout_of
from falcorules_ci.state.syscall_state import SyscallState

Factory = Callable[[str | None], Extractor]


def _evt_buffer_output(ev: Event, st: SyscallState) -> Any:
    """In an output: the ``data`` parameter as ``get_param_as_str`` prints it (``NULL`` when empty,
    a dynamic parameter as its value). libsinsp then prints that text over the length of the
    last buffer it rendered (``m_rawbuf_str_len`` is not reset per event), which for a real buffer
    is its own length; for the other cases that length is an accident of history and is not
    modelled."""
    layout = layout_of(ev.code)
    index = layout.index.get("data") if layout is not None else None
    if layout is None or index is None:
        return None
    data = ev.params.get("data")
    if isinstance(data, bytes | bytearray) and layout.info.params[index].type == "PT_BYTEBUF":
        return bytes(data)
    plain, _ = render(layout, index, ev, st)
    return plain.encode("utf-8", "surrogateescape")


# rawval_to_string's text for an integer parameter in an octal or hex print format (the other
# formats print the number in decimal, as the plain value already does).
_RAW_WIDTHS = {"PT_UINT8": 8, "PT_FLAGS8": 8, "PT_ENUMFLAGS8": 8, "PT_UINT16": 16, "PT_FLAGS16": 16,
               "PT_ENUMFLAGS16": 16, "PT_PORT": 16, "PT_UINT32": 32, "PT_FLAGS32": 32, "PT_ENUMFLAGS32": 32,
               "PT_UID": 32, "PT_GID": 32, "PT_INT8": 8, "PT_INT16": 16, "PT_INT32": 32}  # fmt: skip


def _evt_rawarg_output(arg: str | None) -> Extractor:
    """``evt.rawarg.NAME`` in an output: printed with the parameter's own type and print format,
    as libsinsp sets them per event (sinsp_filtercheck_event.cpp extract_argraw)."""
    if arg is None:
        raise ConditionError("evt.arg fields must be expressed explicitly")

    def extract(ev: Event, st: SyscallState) -> Any:
        value = ev.params.get(arg)
        if isinstance(value, str):
            return value.split("\0", 1)[0]
        layout = layout_of(ev.code)
        index = layout.index.get(arg) if layout is not None else None
        if not isinstance(value, int) or isinstance(value, bool) or layout is None or index is None:
            return value
        pinfo = layout.info.params[index]
        if pinfo.fmt not in ("PF_OCT", "PF_HEX"):
            return value
        number = value & ((1 << _RAW_WIDTHS.get(pinfo.type, 64)) - 1)
        return f"{number:o}" if pinfo.fmt == "PF_OCT" else f"{number:X}"

    return extract


# Fields whose output value differs from what a condition compares.
OUTPUT_FACTORIES: dict[str, Factory] = {
    "evt.buffer": lambda arg: _evt_buffer_output,
    "evt.rawarg": _evt_rawarg_output,
}
