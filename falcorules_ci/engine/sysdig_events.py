"""sysdig's event numbers mapped onto ours, and alert texts built from the values sysdig prints.

**Numbering.** sysdig 0.29.3 numbers the events it reads from 1, like our reader, but its libscap
skips event codes it does not know (``>= 336``: ``memfd_create``, ``finit_module``,
``useradded``, ...), so after the first such event its ``evt.num`` runs behind ours.
:class:`CaptureEvents` walks the capture's event headers with our reader (no parameter decoding)
and keeps, for every event sysdig reads, our number, timestamp and code; sysdig's number ``n`` is
the ``n``-th of them. The printed ``evt.rawtime`` of every matched event is checked against the
timestamp found there, so a wrong alignment fails loudly instead of mislabelling alerts.

**Texts.** :class:`SysdigFormat` renders a rule's output format from sysdig's printed values the
way our formatter renders it from ours: each ``%field`` is replaced by sysdig's text (padded or
cut to its ``%N`` width), fields sysdig cannot print become ``<NA>``, and the time fields are
rendered by us from the event timestamp in the engine's time zone (sysdig would print its own
process's local time; the text is otherwise identical). ``output_fields`` hold JSON values
converted from sysdig's text: numbers for numeric fields printed in decimal, booleans, strings,
``None`` for ``<NA>``; list-valued fields keep sysdig's text (0.29.3 has no list fields).
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from falcorules_ci.condition.output import as_libsinsp_string, parse_output
from falcorules_ci.condition.typecheck import plain_fields
from falcorules_ci.engine.formatter import TIME_FIELDS, fit_width
from falcorules_ci.engine.operands import field_type
from falcorules_ci.engine.sysdig_filters import printable_by_sysdig
from falcorules_ci.engine.sysdig_runner import SysdigError
from falcorules_ci.engine.timefmt import time_field_text
from falcorules_ci.errors import Span
from falcorules_ci.fields.registry import FieldRegistry, FieldType
from falcorules_ci.sources.scap import read_capture
from falcorules_ci.sources.scap.writer_compat import SYSDIG_EVENT_MAX

NA: Final = "<NA>"


class CaptureEvents:
    """The events of one capture that sysdig 0.29.3 reads, in its numbering (1-based)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.nums = array("q")  # ours, per sysdig number - 1
        self.ts = array("q")
        self.codes = array("H")
        self.total = 0  # every event our reader yields
        capture = read_capture(self.path)
        for event in capture.events(decode=lambda code: False, spans=False):
            self.total += 1
            if event.code < SYSDIG_EVENT_MAX:
                self.nums.append(event.num)
                self.ts.append(event.ts)
                self.codes.append(event.code)

    def __len__(self) -> int:
        return len(self.nums)

    @property
    def unread_by_sysdig(self) -> int:
        """Events our reader yields and sysdig skips."""
        return self.total - len(self.nums)

    def ours(self, sysdig_num: int) -> int:
        """Our evt.num for sysdig's."""
        if not 1 <= sysdig_num <= len(self.nums):
            raise SysdigError(f"sysdig reported event {sysdig_num}, but it reads only {len(self.nums)} events here",
                              Span(self.path))  # fmt: skip
        return self.nums[sysdig_num - 1]

    def code(self, sysdig_num: int) -> int:
        return self.codes[sysdig_num - 1]

    def check(self, sysdig_num: int, rawtime: str) -> int:
        """The event's timestamp, after checking sysdig printed the same one for it."""
        ts = self.ts[sysdig_num - 1]
        if rawtime != str(ts):
            raise SysdigError(
                f"cannot align sysdig's event {sysdig_num} (time {rawtime}) with the capture's event "
                f"{self.ours(sysdig_num)} (time {ts})",
                Span(self.path),
            )
        return ts


# -- values ---------------------------------------------------------------------------------------


def json_from_text(text: str, ftype: FieldType, decimal: bool) -> Any:
    """A JSON ``output_fields`` value from the text sysdig printed."""
    if text == NA:
        return None
    if ftype is FieldType.BOOL:
        return text == "true"
    if decimal and ftype.is_numeric:
        try:
            return int(text)
        except ValueError:
            return text
    return text


@dataclass(frozen=True, slots=True)
class _Token:
    name: str  # the output_fields key ("" for a transformer token)
    width: int
    printable: bool
    time: bool


@dataclass(frozen=True, slots=True)
class _JsonField:
    name: str
    ftype: FieldType
    decimal: bool
    printable: bool
    time: bool


class SysdigFormat:
    """One output format, rendered from sysdig's printed values (``values`` map field names as
    ``output_fields`` keys them to sysdig's text)."""

    def __init__(self, fmt: str, registry: FieldRegistry, source: str) -> None:
        from falcorules_ci.extract.syscall import print_format

        star = fmt if fmt.startswith("*") else "*" + fmt
        parsed = parse_output(star, registry, source)
        parts: list[str | _Token] = []
        fields: dict[str, _JsonField] = {}
        for segment in parsed.segments:
            if isinstance(segment, str):
                parts.append(segment)
                continue
            plain = list(plain_fields(segment.typed))
            is_field = len(plain) == 1 and plain[0] is segment.typed
            name = as_libsinsp_string(plain[0].node) if is_field else ""
            parts.append(_Token(name, segment.width, is_field and (name in TIME_FIELDS or printable_by_sysdig(
                plain[0].match)), name in TIME_FIELDS))
            for typed in plain:
                key = as_libsinsp_string(typed.node)
                if key in fields:
                    continue
                ftype = field_type(typed.ptype)
                decimal = print_format(typed.match.info.name) in ("PF_DEC", "PF_ID")
                fields[key] = _JsonField(key, ftype, decimal, printable_by_sysdig(typed.match), key in TIME_FIELDS)
        self.text = fmt
        self.parts = tuple(parts)
        self.json_fields = tuple(fields.values())

    @property
    def printed(self) -> tuple[str, ...]:
        """The fields sysdig must print for this format."""
        names = [t.name for t in self.parts if isinstance(t, _Token) and t.printable and not t.time]
        names += [f.name for f in self.json_fields if f.printable and not f.time]
        return tuple(dict.fromkeys(names))

    def render(self, values: Mapping[str, str], ts: int, offset: int) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif part.time:
                out.append(fit_width(time_field_text(part.name, ts, offset), part.width))
            else:
                text = values.get(part.name, NA) if part.printable else NA
                out.append(fit_width(text, part.width))
        return "".join(out)

    def fields(self, values: Mapping[str, str], ts: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for f in self.json_fields:
            if f.time:
                result[f.name] = ts
            elif f.printable:
                result[f.name] = json_from_text(values.get(f.name, NA), f.ftype, f.decimal)
            else:
                result[f.name] = None
        return result


__all__ = ["CaptureEvents", "SysdigFormat", "json_from_text"]
