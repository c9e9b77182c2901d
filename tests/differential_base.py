"""The machinery of the differential allowances: what is known about a capture, the allowance
registry, and helpers the allowance catalogues share (tests/differential_allowances.py explains
the kinds)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from falcorules_ci.engine.sysdig_diff import FieldDisagreement
from falcorules_ci.fields.event_table import event_table
from falcorules_ci.sources.scap import read_capture
from falcorules_ci.sources.scap.writer_compat import SYSDIG_EVENT_MAX
from falcorules_ci.state.layouts import layout_of

NA = "<NA>"
NS = 1_000_000_000


# -- what the allowances know about a capture --------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaptureFacts:
    """What the allowances need to know about a capture as a whole."""

    # The proc list was written by libs >= 0.10, whose entry tail puts pidns_init_start_ts and
    # tty before loginuid: sysdig 0.29.3 reads loginuid from the wrong bytes and never reads tty.
    current_proclist_tail: bool = False
    # Where evt.reltime counts from: the first event sysdig 0.29.3 reads that is not a container
    # event; in current libs the first event that is not a meta event (before it, from 0).
    first_ts_0293: int = 0
    first_ts_current: int = 0
    first_num_current: int = 0
    # Exit events creating an fd that sysdig 0.29.3 skips (codes >= 336: memfd_create, ...).
    skipped_fd_creators: int = 0


def facts_of(capture: str) -> CaptureFacts:
    opened = read_capture(capture)
    container_codes = {code for code, info in event_table().by_code.items()
                       if info.enum in ("PPME_CONTAINER_JSON_E", "PPME_CONTAINER_JSON_2_E")}  # fmt: skip
    first_0293 = first_current = first_num = skipped = 0
    for event in opened.events(decode=lambda code: False, spans=False):
        if not first_0293 and event.code < SYSDIG_EVENT_MAX and event.code not in container_codes:
            first_0293 = event.ts
        layout = layout_of(event.code)
        if not first_current and layout is not None and not layout.is_meta:
            first_current, first_num = event.ts, event.num
        if event.code >= SYSDIG_EVENT_MAX and layout is not None and layout.creates_fd and not layout.is_enter:
            skipped += 1
    tail = any(p.pidns_init_start_ts or p.tty for p in opened.header.processes)
    return CaptureFacts(tail, first_0293, first_current, first_num, skipped)


# -- the field allowances ----------------------------------------------------------------------


Check = Callable[[FieldDisagreement, CaptureFacts], bool]


@dataclass(frozen=True, slots=True)
class Allowance:
    name: str
    why: str
    applies: Check
    kind: str = "0.29.3"  # or "run": sysdig 0.29.3 prints memory it never initialised


ALLOWANCES: list[Allowance] = []


def allowance(name: str, why: str, kind: str = "0.29.3") -> Callable[[Check], Check]:
    def register(test: Check) -> Check:
        ALLOWANCES.append(Allowance(name, why, test, kind))
        return test

    return register


def int_or_none(text: str | None, base: int = 10) -> int | None:
    try:
        return int(text or "", base)
    except ValueError:
        return None


def arg_index(field: str) -> int | None:
    m = re.fullmatch(r"evt\.arg\[(\d+)\]", field)
    return int(m[1]) if m else None


def param_field(d: FieldDisagreement, *names: str) -> bool:
    """Whether the field shows one of these parameters (``evt.arg.NAME`` or ``evt.arg[N]``)."""
    if d.field in {f"evt.arg.{n}" for n in names}:
        return True
    index = arg_index(d.field)
    layout = layout_of(d.code)
    return index is not None and layout is not None and index < len(layout.params) and layout.params[index] in names


CONTAINER_METADATA = frozenset({
    "container.image", "container.image.repository", "container.image.tag", "container.image.id",
    "container.image.digest", "container.mounts", "container.privileged", "container.type", "k8s.pod.labels",
})  # fmt: skip
DEPRECATED_CONTAINER_FIELDS = frozenset({
    "container.healthcheck", "container.liveness_probe", "container.readiness_probe",
    "proc.is_container_healthcheck", "proc.is_container_liveness_probe", "proc.is_container_readiness_probe",
})  # fmt: skip
LATENCY_FIELDS = frozenset({"evt.latency", "evt.latency.s", "evt.latency.ns", "evt.latency.quantized",
                            "evt.latency.human", "evt.wait_latency"})  # fmt: skip
ERROR_COUNTS = frozenset({"evt.count.error", "evt.count.error.file", "evt.count.error.net", "evt.count.error.memory",
                          "evt.count.error.other"})  # fmt: skip
MEMORY_COUNTERS = frozenset({"proc.vmsize", "proc.vmrss", "proc.vmswap", "thread.vmsize", "thread.vmrss",
                             "thread.vmsize.b", "thread.vmrss.b", "thread.pfmajor", "thread.pfminor"})  # fmt: skip
FD_FLAG_GAINED = frozenset({"sendmmsg", "recvmmsg", "mmap", "mmap2", "symlinkat", "unlinkat", "mkdirat", "fchmodat",
                            "fchmod"})  # fmt: skip
# Flag names libs added to driver/flags_table.c after e5c53d64 (sysdig 0.29.3 prints the number
# or leaves them out).
NEW_FLAG_NAMES = frozenset({
    "CLONE_CHILD_IN_PIDNS", "EXE_FROM_MEMFD", "EXE_LOWER_LAYER", "EXE_UPPER_LAYER", "FD_LOWER_LAYER",
    "FD_LOWER_LAYER_CREAT", "FD_UPPER_LAYER", "FD_UPPER_LAYER_CREAT", "O_F_CREATED",
})  # fmt: skip
CLONE_EXITS = frozenset({"clone", "clone3", "fork", "vfork"})
ADDRESS_FIELDS = frozenset({"fd.name", "fd.sip", "fd.rip", "fd.sport", "fd.rport", "fd.cip", "fd.lip", "fd.cport",
                            "fd.cproto", "fd.sproto", "fd.lproto", "fd.rproto",
                            "fd.lport", "fd.sip.name", "fd.rip.name", "fd.cip.name", "fd.lip.name", "evt.arg.fd",
                            "fd.name_changed", "fd.containername", "fd.is_server"})  # fmt: skip
FILE_FD_TYPES = frozenset({"file", "directory"})
