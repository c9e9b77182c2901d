"""Writing ``.scap`` captures from header records and events, for sysdig 0.29.3 and current Falco.

>>> stats = write_capture(scenario.header, scenario.events(), "shell.scap")   # compat="sysdig-0.29"
>>> compile_scenario("shell.yaml", "shell.scap")                             # the same, from a file

A capture is written in libscap's order (``scap_setup_dump``): section header, machine info,
interface list, user list (host users), proc list, one fd list per thread with fds, then the
events. Container metadata goes first among the events as ``PPME_CONTAINER_JSON_2_E`` events
(tid -1), which sysdig 0.29.3 and the container plugin of current Falco both read, followed by
``PPME_USER_ADDED_E`` / ``PPME_GROUP_ADDED_E`` for users and groups that belong to a container
(current libs look users of container processes up in the container's own table). These metadata
events take the timestamp of the first event.

Which codes and parameter counts the events get is decided by the compatibility target
(:mod:`falcorules_ci.sources.scap.writer_compat`); :func:`as_written` shows the result as events
without writing anything. Writing streams: events are encoded one at a time into a 1 MiB buffer,
so memory does not grow with the number of events. The file appears under its name only once it
is complete (it is written next to it first). A path ending in ``.gz`` is gzip-compressed.
"""

from __future__ import annotations

import gzip
import os
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final

from falcorules_ci.errors import InputError
from falcorules_ci.fields.event_table import EventInfo, event_table
from falcorules_ci.sources.event import Event
from falcorules_ci.sources.records import CaptureHeader
from falcorules_ci.sources.scap.writer_compat import (
    COMPAT_MODES,
    COMPAT_SYSDIG,
    SYSDIG_EVENT_MAX,
    Compat,
    CompatStream,
    EventPlan,
    PlannedEvent,
    for_sysdig,
)
from falcorules_ci.sources.scap.writer_header import (
    Note,
    container_json,
    fd_lists,
    header_records_as_written,
    host_tables,
    interface_list,
    machine_info,
    proc_list,
    section_header,
    user_list,
)
from falcorules_ci.sources.scap.writer_params import EventEncoder, param_encoder
from falcorules_ci.sources.scenario import load_scenario

__all__ = ["WriteStats", "as_written", "compile_scenario", "header_as_written", "write_capture"]

_FLUSH_AT: Final = 1 << 20
_CONTAINER_JSON_2_E: Final = "PPME_CONTAINER_JSON_2_E"
_USER_ADDED_E: Final = "PPME_USER_ADDED_E"
_GROUP_ADDED_E: Final = "PPME_GROUP_ADDED_E"
_METADATA_TID: Final = -1
_ENCODING_ERRORS: Final = (TypeError, ValueError, OverflowError, struct.error, OSError, AttributeError)


@dataclass(frozen=True, slots=True)
class WriteStats:
    """What :func:`write_capture` wrote.

    ``events_written`` counts every event block: the input events, the enter events added for
    exits that had none (``enters_added``) and the container/user/group metadata events
    (``metadata_events``). ``not_for_sysdig`` counts written events sysdig 0.29.3 skips, by name;
    ``mapped`` counts events written with an older code; ``notes`` lists other adjustments (cut
    strings, fd types, timestamps going backwards). ``bytes_written`` is the file size (compressed
    when gzip'd); ``seconds`` the time spent.
    """

    path: str
    compat: Compat
    events_in: int
    events_written: int
    metadata_events: int
    enters_added: int
    bytes_written: int
    seconds: float
    compressed: bool = False
    mapped: dict[str, int] = field(default_factory=dict)
    not_for_sysdig: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def sysdig_events(self) -> int:
        """How many events sysdig 0.29.3 reads (and numbers) from this capture."""
        return self.events_written - sum(self.not_for_sysdig.values())


def _metadata(header: CaptureHeader) -> Iterator[tuple[EventInfo, dict[str, Any]]]:
    """The container, container user and container group events, in that order."""
    by_enum = {info.enum: info for info in event_table().by_code.values()}
    for container in header.containers:
        yield by_enum[_CONTAINER_JSON_2_E], {"json": container_json(container)}
    for user in header.users:
        if user.container_id:
            yield by_enum[_USER_ADDED_E], {"uid": user.uid, "gid": user.gid, "name": user.name, "home": user.home,
                                           "shell": user.shell, "container_id": user.container_id}  # fmt: skip
    for group in header.groups:
        if group.container_id:
            yield by_enum[_GROUP_ADDED_E], {"gid": group.gid, "name": group.name, "container_id": group.container_id}


def _header_blocks(header: CaptureHeader, compat: Compat, note: Note) -> Iterator[bytes]:
    sysdig = for_sysdig(compat)
    yield section_header()
    if header.machine is not None:
        yield machine_info(header.machine, note)
    if header.interfaces:
        yield interface_list(header.interfaces, note)
    host_users, host_groups = host_tables(header, sysdig)
    moved = (
        len(host_users)
        + len(host_groups)
        - sum(1 for u in header.users if not u.container_id)
        - sum(1 for g in header.groups if not g.container_id)
    )
    if moved:
        note("container-only users/groups also listed in the user list block (sysdig 0.29.3 looks there)")
    if host_users or host_groups:
        yield user_list(host_users, host_groups, note)
    if header.processes:
        yield proc_list(header.processes, not sysdig, note)
        yield from fd_lists(header.processes, sysdig, note)


class _Output:
    """Buffered, optionally gzip'd output to a temporary name, renamed into place on success."""

    def __init__(self, path: str, compress: bool) -> None:
        self.path = path
        self.partial = f"{path}.partial-{os.getpid()}"
        try:
            self._raw: BinaryIO = open(self.partial, "wb")  # noqa: SIM115 - closed in finish/abort
        except OSError as exc:
            raise InputError(f"cannot write capture {path}: {exc.strerror or exc}") from None
        self._gzip = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0) if compress else None
        self._chunks: list[bytes] = []
        self._pending = 0
        self.uncompressed = 0

    def write(self, data: bytes) -> None:
        self._chunks.append(data)
        self._pending += len(data)
        if self._pending >= _FLUSH_AT:  # read at call time, so tests can lower it
            self.flush()

    def flush(self) -> None:
        if self._chunks:
            (self._gzip or self._raw).write(b"".join(self._chunks))
            self.uncompressed += self._pending
            self._chunks.clear()
            self._pending = 0

    def finish(self) -> int:
        self.flush()
        if self._gzip is not None:
            self._gzip.close()
        self._raw.close()
        os.replace(self.partial, self.path)
        return os.path.getsize(self.path)

    def abort(self) -> None:
        try:
            if self._gzip is not None:
                self._gzip.close()
            self._raw.close()
        finally:
            if os.path.exists(self.partial):
                os.remove(self.partial)


def _encoding_error(plan: EventPlan, params: Any, event: Event, exc: Exception) -> InputError:
    """Name the parameter whose value could not be written."""
    for param in plan.target.params[: plan.nparams]:
        value = params.get(param.name)
        if value is None:
            continue
        try:
            param_encoder(param.type)(value)
        except _ENCODING_ERRORS as inner:
            return InputError(f"cannot write event #{event.num} ({plan.target.enum}): parameter {param.name!r} "
                              f"({param.type}) has value {value!r}: {inner}", event.span)  # fmt: skip
    return InputError(f"cannot write event #{event.num} ({plan.target.enum}): {exc}", event.span)


def write_capture(
    header: CaptureHeader,
    events: Iterable[Event],
    path: str | os.PathLike[str],
    *,
    compat: Compat = COMPAT_SYSDIG,
    compress: bool | None = None,
) -> WriteStats:
    """Write ``header`` and ``events`` as a capture at ``path``; returns what was written.

    ``compat`` picks the target (see :mod:`~falcorules_ci.sources.scap.writer_compat`);
    ``compress`` gzips the file (default: when ``path`` ends in ``.gz``). ``events`` are consumed
    once, lazily. Raises :class:`InputError` for an event the table does not know, a parameter the
    event does not have or a value its type cannot hold (naming the event), for a capture without
    events (libscap refuses those) and when the file cannot be written.
    """
    started = time.perf_counter()
    text = os.fspath(path)
    stream = CompatStream(compat, text)
    planned = stream.events(events)
    first = next(planned, None)
    if first is None and not header.containers:
        raise InputError(f"cannot write capture {text}: no events (libscap refuses a capture without events)")
    first_ts = first[1] if first is not None else header.machine.boot_ts if header.machine else 0
    compressed = text.endswith(".gz") if compress is None else compress
    output = _Output(text, compressed)
    encoders: dict[int, EventEncoder] = {}
    written = 0
    metadata = 0
    try:
        for block in _header_blocks(header, compat, stream.note):
            output.write(block)
        for info, params in _metadata(header):
            encoder = encoders.get(info.code) or encoders.setdefault(info.code, EventEncoder(info, len(info.params)))
            output.write(encoder.encode(first_ts, _METADATA_TID, 0, 0, params))
            metadata += 1
            if info.code >= SYSDIG_EVENT_MAX:
                stream.not_for_sysdig[info.name] = stream.not_for_sysdig.get(info.name, 0) + 1
        if first is not None:
            written = _write_events(first, planned, encoders, output)
        size = output.finish()
    except BaseException:
        output.abort()
        raise
    for encoder in encoders.values():
        if encoder.truncations:
            stream.note(f"{encoder.code}: parameter values cut to 65535 bytes", encoder.truncations)
    return WriteStats(path=text, compat=compat, events_in=stream.events_in, events_written=written + metadata,
                      metadata_events=metadata, enters_added=stream.enters_added, bytes_written=size,
                      seconds=time.perf_counter() - started, compressed=compressed,
                      mapped=dict(stream.mapped), not_for_sysdig=dict(stream.not_for_sysdig),
                      notes=dict(stream.notes))  # fmt: skip


def _write_events(first: PlannedEvent, rest: Iterator[PlannedEvent], encoders: dict[int, EventEncoder],
                  output: _Output) -> int:  # fmt: skip
    """The event loop; returns how many events it wrote."""
    write = output.write
    count = 0
    for planned in _chain(first, rest):
        plan, ts, tid, cpu, flags, params, event = planned
        encoder = encoders.get(plan.target.code)
        if encoder is None or encoder.nparams != plan.nparams:
            encoder = encoders[plan.target.code] = EventEncoder(plan.target, plan.nparams)
        try:
            block = encoder.encode(ts, tid, cpu, flags, params)  # type: ignore[arg-type]
        except _ENCODING_ERRORS as exc:
            raise _encoding_error(plan, params, event, exc) from None
        write(block)
        count += 1
    return count


def _chain(first: PlannedEvent, rest: Iterator[PlannedEvent]) -> Iterator[PlannedEvent]:
    yield first
    yield from rest


def as_written(header: CaptureHeader, events: Iterable[Event], *, compat: Compat = COMPAT_SYSDIG) -> Iterator[Event]:
    """The events a capture written from ``header`` and ``events`` holds, in file order, numbered from 1.

    Codes are the written ones (older equivalents under ``sysdig-0.29``), parameters are the
    written ones by their names in the written code's table entry, and a parameter written empty
    (``None``, empty byte strings) is absent, as the reader reports it. Values are as given: the
    reader returns numbers normalized to their type's range, as scenarios already give them.
    Nothing is written; errors are those :func:`write_capture` would raise.
    """
    stream = CompatStream(compat, "<as written>")
    planned = stream.events(events)
    first = next(planned, None)
    first_ts = first[1] if first is not None else header.machine.boot_ts if header.machine else 0
    num = 0
    for info, params in _metadata(header):
        num += 1
        yield Event(num=num, ts=first_ts, tid=_METADATA_TID, code=info.code, name=info.name,
                    direction=info.direction, params=_written_params(info, len(info.params), params))  # fmt: skip
    if first is None:
        return
    for plan, ts, tid, cpu, flags, values, _event in _chain(first, planned):
        num += 1
        target = plan.target
        yield Event(num=num, ts=ts, tid=tid, code=target.code, name=target.name, direction=target.direction,
                    params=_written_params(target, plan.nparams, values), cpu=cpu, flags=flags)  # fmt: skip


def _written_params(info: EventInfo, nparams: int, params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for param in info.params[:nparams]:
        value = params.get(param.name)
        if value is not None and param_encoder(param.type)(value):
            out[param.name] = value
    return out


def header_as_written(header: CaptureHeader, *, compat: Compat = COMPAT_SYSDIG) -> CaptureHeader:
    """The header records :func:`~falcorules_ci.sources.scap.read_capture` returns for a capture
    written from ``header`` (see :func:`~falcorules_ci.sources.scap.writer_header.header_records_as_written`)."""
    if compat not in COMPAT_MODES:
        raise InputError(f"unknown capture compatibility {compat!r} (known: {', '.join(COMPAT_MODES)})")
    return header_records_as_written(header, for_sysdig(compat))


def compile_scenario(
    scenario_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    compat: Compat = COMPAT_SYSDIG,
    compress: bool | None = None,
) -> WriteStats:
    """Load a scenario YAML file and write it as a capture (see :func:`write_capture`)."""
    scenario = load_scenario(scenario_path)
    return write_capture(scenario.header, scenario.events(), out_path, compat=compat, compress=compress)
