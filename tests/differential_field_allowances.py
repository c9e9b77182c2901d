"""Allowances where the two libs versions extract or print a field differently, found when every
field both know was compared (see tests/differential_allowances.py)."""

from __future__ import annotations

import re

# The state allowances register first: where both could explain a disagreement, they claim it.
import differential_state_allowances  # noqa: F401
from differential_base import (
    CLONE_EXITS,
    ERROR_COUNTS,
    FILE_FD_TYPES,
    LATENCY_FIELDS,
    NA,
    NS,
    CaptureFacts,
    allowance,
    int_or_none,
    param_field,
)

from falcorules_ci.engine.sysdig_diff import FieldDisagreement
from falcorules_ci.state.layouts import layout_of


@allowance(
    "latency-fields-fixed-at-zero",
    "current libs no longer pair exits with enters for latency: evt.latency* and evt.wait_latency are "
    "hard-coded to 0 and evt.latency.human to '0ns' (sinsp_filtercheck_event.cpp extract_single, "
    "'Hardcoded value to 0'); 0.29.3 measured them from the enter event",
)
def _latency(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field in LATENCY_FIELDS and d.ours in ("0", "000000000", "0ns")


def _reltime_text(field: str, delta: int) -> str:
    if field == "evt.reltime.s":
        return str(delta // NS)
    return f"{(delta % NS if field == 'evt.reltime.ns' else delta):09d}"


@allowance(
    "relative-time-counts-from-the-first-non-meta-event",
    "current libs start evt.reltime at the first event that is not a meta event (sinsp.cpp next, "
    "!is_metaevent: procinfo, container and async events do not count; before it the base is 0); "
    "0.29.3 at the first event but container JSON",
)
def _reltime(d: FieldDisagreement, f: CaptureFacts) -> bool:
    ts = int_or_none(d.ours_row.get("evt.rawtime"))
    if not d.field.startswith("evt.reltime") or ts is None:
        return False
    base = f.first_ts_current if f.first_num_current and d.evt_num >= f.first_num_current else 0
    return d.ours == _reltime_text(d.field, ts - base) and d.sysdig == _reltime_text(d.field, ts - f.first_ts_0293)


@allowance(
    "failed-only-with-a-return-value",
    "current libs give evt.failed only for events with a return value (sinsp_filtercheck_event.cpp "
    "extract_error_count, has_return_value); 0.29.3 answered false for every event without 'res'",
)
def _failed(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field == "evt.failed" and d.ours == NA and d.sysdig == "false" and d.ours_row.get("evt.res") == NA


@allowance(
    "error-counts-zero-on-success",
    "current libs count a successful syscall as 0 errors (extract_error_count returns 0 or 1 for any "
    "event with a return value); 0.29.3 returned no value unless the syscall failed",
)
def _error_counts(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field in ERROR_COUNTS and d.ours == "0" and d.sysdig == NA and d.ours_row.get("evt.failed") == "false"


@allowance(
    "procinfo-counts-zero-elsewhere",
    "evt.count.procinfo/threadinfo are 0 on other events and on procinfo events of secondary threads "
    "in current libs (sinsp_filtercheck_event.cpp TYPE_COUNT_PROCINFO); 0.29.3 returned no value there",
)
def _procinfo_counts(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field in ("evt.count.procinfo", "evt.count.threadinfo") and d.ours == "0" and d.sysdig == NA


@allowance(
    "category-from-the-event-table",
    "current libs take evt.category from the event table only, with EC_INTERNAL named 'internal' "
    "(event.cpp get_category, 'We always search the category inside the event table'): a generic event "
    "is 'other', procinfo 'internal'; 0.29.3 used the syscall table's category for generic events "
    "(event.cpp e5c53d64 get_category) and had no name for EC_INTERNAL ('unknown')",
)
def _category(d: FieldDisagreement, f: CaptureFacts) -> bool:
    if d.field != "evt.category":
        return False
    return (d.code in (0, 1) and d.ours == "other") or (d.ours == "internal" and d.sysdig == "unknown")


@allowance(
    "syscall-type-of-tracepoint-events",
    "syscall.type names only syscall events in current libs (TYPE_SYSCALL_TYPE, is_syscall_event): "
    "procexit is a tracepoint; 0.29.3 named any event without EF_UNUSED",
)
def _syscall_type(d: FieldDisagreement, f: CaptureFacts) -> bool:
    layout = layout_of(d.code)
    return (d.field == "syscall.type" and d.ours == NA and d.sysdig == d.evt_type and layout is not None
            and not layout.is_syscall)  # fmt: skip


@allowance(
    "nchilds-counts-threads-not-children",
    "proc.nchilds is the number of the process's threads other than its leader in current libs "
    "(TYPE_NCHILDS, get_num_not_leader_threads); 0.29.3 counted the children cloned in the capture",
)
def _nchilds(d: FieldDisagreement, f: CaptureFacts) -> bool:
    ours, threads = int_or_none(d.ours), int_or_none(d.ours_row.get("proc.nthreads"))
    # Ours is the thread count less the leader (or all of them when the leader is gone).
    return (d.field == "proc.nchilds" and ours is not None and threads is not None and ours in (threads - 1, threads)
            and int_or_none(d.sysdig) is not None)  # fmt: skip


@allowance(
    "generic-enter-arguments-printed",
    "current libs hide the arguments of the generic exit only (TYPE_ARGS: PPME_GENERIC_X), so a generic "
    "enter shows its syscall id and native id; 0.29.3 hid both directions",
)
def generic_args(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return (d.field in ("evt.args", "evt.info") and d.code == 0 and d.sysdig == ""
            and d.ours.startswith("ID="))  # fmt: skip


@allowance(
    "container-users-looked-up-per-container",
    "current libs look a container thread's user up in that container's own user list, read from its "
    "/etc/passwd on the machine running Falco (user.cpp add_container_user), which a replay does not "
    "have; 0.29.3 used the host's list for every thread",
)
def _container_user(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return (d.field in ("user.shell", "user.homedir", "user.name", "user.loginname") and d.ours in (NA, "root",
            "/root") and d.ours_row.get("container.id") not in ("host", "", NA))  # fmt: skip


@allowance(
    "dev-read-only-with-the-inode",
    "current libs read an openat exit's dev only when its ino is there too (parsers.cpp "
    "parse_open_openat_creat_exit, 'If one the previous parameters is present, so is for the other "
    "one'); 0.29.3 read dev alone",
)
def _dev_without_ino(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return (d.field.startswith("fd.dev") and d.ours == "0" and d.ours_row.get("fd.type") in FILE_FD_TYPES
            and int_or_none(d.sysdig, 16 if d.field == "fd.dev" else 10) is not None)  # fmt: skip


@allowance(
    "fd-dev-left-from-another-fd",
    "0.29.3's fdinfo reset() does not clear m_dev and its parsers reuse one scratch fdinfo, so a socket "
    "or pipe shows the dev of whatever fd used that memory before (fdinfo.cpp e5c53d64 reset); current "
    "libs start every fdinfo at 0",
    kind="run",
)
def _dev_leftover(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field.startswith("fd.dev") and d.ours == "0" and d.ours_row.get("fd.type") not in FILE_FD_TYPES


@allowance(
    "exe-writable-never-initialised",
    "0.29.3's sinsp_threadinfo::init() never sets m_exe_writable, so a thread that is neither in the proc "
    "list nor cloned from one shows leftover memory (threadinfo.cpp e5c53d64); current libs start "
    "it false",
    kind="run",
)
def _exe_writable(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field == "proc.is_exe_writable" and d.ours == "false" and d.sysdig == "true"


@allowance(
    "fdlist-of-poll-exits-only",
    "current libs fill fdlist.* from poll/ppoll exits only (sinsp_filtercheck_fdlist.cpp "
    "extract_single); 0.29.3 also read the fds of the enter events",
)
def _fdlist(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field.startswith("fdlist.") and d.evt_dir == ">" and d.ours == NA


@allowance(
    "rawarg-printed-with-one-type-and-no-format",
    "0.29.3 gives evt.rawarg.NAME the type of the first event declaring NAME and the field's own print "
    "format PF_NA (filterchecks.cpp parse_field_name TYPE_ARGRAW sets only m_customfield.m_type), so "
    "unsigned values print <NA> and a hex parameter prints as signed decimal; current libs take the "
    "event's own parameter type and format (sinsp_filtercheck_event.cpp extract_argraw)",
)
def _rawarg(d: FieldDisagreement, f: CaptureFacts) -> bool:
    if not d.field.startswith("evt.rawarg.") or d.ours == NA:
        return False
    if d.sysdig == NA:
        return True
    layout = layout_of(d.code)
    name = d.field.split(".", 2)[2]
    index = layout.index.get(name) if layout is not None else None
    if layout is None or index is None:
        return False
    fmt = layout.info.params[index].fmt
    base = 16 if fmt == "PF_HEX" else 8 if fmt == "PF_OCT" else 10
    ours, theirs = int_or_none(d.ours, base), int_or_none(d.sysdig)
    return ours is not None and theirs is not None and ours & 0xFFFFFFFFFFFFFFFF == theirs & 0xFFFFFFFFFFFFFFFF


@allowance(
    "type-is-misparsed-by-0.29.3-formatter",
    "0.29.3's output formatter consumes none of 'evt.type.is.NAME' and prints <NA> followed by the field "
    "name as text; current libs print <NA> (the field is PF_NA, which rawval_to_string has no text for), "
    "and their formatter reads tokens with the filter parser, whose field names have no part starting with "
    "a digit, so '%evt.type.is.5' is evt.type followed by the text '.is.5' (eventformatter.cpp, "
    "parser.cpp RGX_FIELDNAME)",
)
def _type_is(d: FieldDisagreement, f: CaptureFacts) -> bool:
    if not d.field.startswith("evt.type.is.") or d.sysdig != NA + d.field:
        return False
    suffix = d.field[len("evt.type") :]
    return d.ours == NA or (suffix[len(".is.") :][:1].isdigit() and d.ours == d.ours_row.get("evt.type", "") + suffix)


@allowance(
    "env-argument-unknown-to-0.29.3",
    "proc.env[NAME] returns one variable in current libs (sinsp_filtercheck_thread.cpp TYPE_ENV with an "
    "argument); 0.29.3 takes no argument: it prints the whole environment followed by '[NAME]'",
)
def _env_arg(d: FieldDisagreement, f: CaptureFacts) -> bool:
    m = re.fullmatch(r"proc\.env\[(.+)\]", d.field)
    if m is None or not d.sysdig.endswith(f"[{m[1]}]"):
        return False
    env = d.sysdig[: -len(m[1]) - 2]
    if d.ours in ("", NA):
        return f"{m[1]}=" not in env
    return f"{m[1]}={d.ours}" in env


@allowance(
    "empty-buffer-printed-null",
    "current libs print an empty buffer parameter as NULL (event.cpp get_param_as_str, 'keep pushing "
    "NULL'), and evt.buffer prints that text (TYPE_BUFFER uses get_param_value_str; its length is then "
    "the last rendered buffer's, m_rawbuf_str_len, which no event resets); 0.29.3 prints nothing",
)
def _empty_buffer(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return (d.field == "evt.buffer" or param_field(d, "data", "args", "env")) and d.ours == "NULL" and d.sysdig == ""


@allowance(
    "mmap-res-became-errno", "mmap's res changed from PT_UINT64 (printed in hex) to PT_ERRNO (decimal in evt.arg)"
)
def _mmap_res(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return (param_field(d, "res") and d.evt_type in ("mmap", "mmap2")
            and int_or_none(d.sysdig, 16) == int_or_none(d.ours))  # fmt: skip


@allowance(
    "buffer-cut-for-display",
    "sysdig cuts long buffer parameters at its display length and adds '...' (observed); Falco prints them whole",
)
def _cut_buffer(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field.startswith("evt.arg") and d.sysdig.endswith("...") and d.ours.startswith(d.sysdig[:-3])


@allowance(
    "exited-thread-no-longer-counted",
    "current libs mark a thread dead when its procexit is parsed and take it out of its group's thread "
    "count (parsers.cpp parse_thread_exit, decrement_thread_count), so the procexit itself sees one "
    "thread fewer; 0.29.3 removed the thread only after the event",
)
def _exited(d: FieldDisagreement, f: CaptureFacts) -> bool:
    ours, theirs = int_or_none(d.ours), int_or_none(d.sysdig)
    return (d.field == "proc.nthreads" and d.evt_type == "procexit" and ours is not None and theirs is not None
            and theirs - ours == 1)  # fmt: skip


_OLD_BPF_ARGS = re.compile(r"res_or_fd=(-?\d+) ?")
_NEW_BPF_ARGS = re.compile(r"fd=(-?\d+)(\(.*\))? cmd=.*")


@allowance(
    "old-bpf-exit-converted",
    "libscap's converter turns the old bpf exit (a dynamic res_or_fd: a type byte, then 8 value bytes) "
    "into the current one by copying that parameter's first 8 bytes into 'fd' and taking 'cmd' from the "
    "enter (converter/table.cpp BPF_X, FROM_OLD 0; converter.cpp push_parameter caps the length to "
    "the new type's), so fd is the value shifted up a byte with the type byte below; 0.29.3 shows "
    "res_or_fd decoded",
)
def bpf_args(d: FieldDisagreement, f: CaptureFacts) -> bool:
    if d.field not in ("evt.args", "evt.info") or d.evt_type != "bpf" or d.evt_dir != "<":
        return False
    old, new = _OLD_BPF_ARGS.fullmatch(d.sysdig), _NEW_BPF_ARGS.fullmatch(d.ours)
    if old is None or new is None:
        return False
    value = int(old[1]) & 0xFFFFFFFFFFFFFF
    fd = int(new[1]) & 0xFFFFFFFFFFFFFFFF
    return fd in (value << 8, value << 8 | 1)


@allowance(
    "pid-parameter-without-comm",
    "the caller's clone/vfork exit names a child current libs have not created yet (see "
    "child-created-by-its-own-clone-exit), so its res prints as the number",
)
def _res_comm(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return param_field(d, "res") and d.evt_type in CLONE_EXITS and d.ours.isdigit() and not d.sysdig.isdigit()
