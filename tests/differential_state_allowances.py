"""Allowances where the two libs versions keep different state: threads, fds, containers,
numbering (see tests/differential_allowances.py)."""

from __future__ import annotations

import re

from differential_base import (
    ADDRESS_FIELDS,
    CLONE_EXITS,
    CONTAINER_METADATA,
    DEPRECATED_CONTAINER_FIELDS,
    FD_FLAG_GAINED,
    NA,
    NEW_FLAG_NAMES,
    CaptureFacts,
    allowance,
    arg_index,
    int_or_none,
    param_field,
)

from falcorules_ci.engine.matching import sanitize
from falcorules_ci.engine.sysdig_diff import FieldDisagreement

_TUPLE = re.compile(r"^(?P<local>.+:\d+)->(?P<remote>.+:\d+)$")


@allowance(
    "evt-num-counts-events-sysdig-reads",
    "sysdig 0.29.3's libscap skips event codes >= 336 (memfd_create, useradded, ...), so its evt.num "
    "counts fewer events than ours from the first such event on (the engine maps its numbers to ours)",
)
def _evt_num(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field == "evt.num" and d.ours == str(d.evt_num) and d.sysdig == str(d.sysdig_num)


@allowance(
    "container-metadata-left-empty",
    "the container plugin keeps an entry for the host and for containers known only from their cgroups, "
    "with empty metadata, and returns it ('' / false; plugins container/src/caps/extract/extract.cpp); "
    "sysdig 0.29.3 returns no value for missing metadata",
)
def _empty_container(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return (d.field in CONTAINER_METADATA and d.sysdig == NA and d.ours in ("", "false")
            and d.ours_row.get("container.id") == d.sysdig_row.get("container.id") != NA)  # fmt: skip


@allowance(
    "deprecated-container-fields-extract-nothing",
    "the container plugin declares the health-check and probe fields but extracts nothing for them "
    "(extract.cpp: 'Deprecated fields don't extract anything'); 0.29.3 printed NONE / false",
)
def _deprecated_container(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field in DEPRECATED_CONTAINER_FIELDS and d.ours == NA


def _converter_completed(d: FieldDisagreement) -> bool:
    if d.evt_dir != "<" or d.sysdig != NA or d.ours == NA:
        return False
    if d.field.startswith(("evt.arg.", "evt.rawarg.")):
        return d.field.split(".", 2)[2] not in d.stored
    index = arg_index(d.field)
    return index is not None and index >= len(d.stored)


@allowance(
    "converter-completed-exit-parameters",
    "libscap's converter (libs >= 0.20) completes old exit layouts with their enter event's parameters "
    "and with empty ones printed <NA> (scap-format.md §5; libsinsp event.cpp get_param_as_str); "
    "sysdig 0.29.3 shows only the stored parameters",
)
def _converter(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return _converter_completed(d)


@allowance(
    "vpid-of-threads-first-seen-at-execve",
    "current libs give a thread first seen at its execve its tid/pid as vtid/vpid outside pid namespaces "
    "(parsers.cpp parse_execve_exit, 'we recover also vtid and vpid'); 0.29.3 leaves them unknown",
)
def _vpid(d: FieldDisagreement, f: CaptureFacts) -> bool:
    key = {"proc.vpid": "proc.pid", "thread.vtid": "thread.tid"}.get(d.field)
    return key is not None and d.sysdig == NA and d.ours == d.ours_row.get(key) == d.sysdig_row.get(key)


@allowance(
    "session-leader-lookup",
    "current libs find the session leader by id outside pid namespaces, else among the ancestors only, "
    "and give '' when the id is unknown (-1) or not found (thread_manager.cpp get_oldest_matching_"
    "ancestor); 0.29.3 falls back to the thread's own process and its ancestors with the same sid",
)
def _sname(d: FieldDisagreement, f: CaptureFacts) -> bool:
    if d.field != "proc.sname" or d.ours != "" or d.sysdig in ("", NA):
        return False
    row = d.ours_row
    # Only where current libs cannot look the id up directly (an unknown sid, a pid namespace, a
    # thread whose ancestors, not itself, are searched) or where 0.29.3's fallback landed on the
    # process itself (its leader is not in the table).
    return (row.get("proc.sid") == "-1" or row.get("proc.vpid") != row.get("proc.pid")
            or row.get("thread.tid") != row.get("proc.pid")
            or (d.sysdig == d.sysdig_row.get("proc.name") and row.get("proc.sid") != row.get("proc.pid")))  # fmt: skip


@allowance(
    "fd-of-events-that-gained-ef-uses-fd",
    "mmap, mmap2, sendmmsg, recvmmsg, symlinkat, unlinkat, mkdirat, fchmodat and fchmod have EF_USES_FD "
    "in current event tables (not in e5c53d64's), so current libs resolve their fd and 0.29.3 does not",
)
def _fd_flags(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field.startswith("fd.") and d.evt_type in FD_FLAG_GAINED and d.sysdig == NA


@allowance(
    "group-gid-read-as-64-bit",
    "sysdig 0.29.3 declares group.gid PT_UINT64 but extracts the 32-bit m_gid, so the upper half is "
    "whatever follows it in memory (filterchecks.cpp sinsp_filter_check_group)",
    kind="run",
)
def _gid(d: FieldDisagreement, f: CaptureFacts) -> bool:
    ours, theirs = int_or_none(d.ours), int_or_none(d.sysdig)
    return d.field == "group.gid" and ours is not None and theirs is not None and theirs & 0xFFFFFFFF == ours


@allowance(
    "typechar-guess-of-old-open-and-accept",
    "without an fd, current libs guess fd.typechar only for openat_2/openat2/creat/socket/accept_5/"
    "accept4_6/pipe/... exits (event.h extract_typechar) and answer 'o' for open and old accepts; "
    "0.29.3 guessed 'f' / '4' for them",
)
def _typechar(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field == "fd.typechar" and d.ours == "o" and d.evt_type in ("open", "accept", "accept4")


def flags_added(ours: str, theirs: str) -> bool:
    mine = set(ours.split("|"))
    if theirs.isdigit():
        return mine <= NEW_FLAG_NAMES
    other = set(theirs.split("|"))
    return other <= mine and mine - other <= NEW_FLAG_NAMES


@allowance(
    "flag-names-added-after-0.29.3",
    "flag names added to driver/flags_table.c after e5c53d64 (CLONE_CHILD_IN_PIDNS, EXE_UPPER_LAYER, "
    "EXE_LOWER_LAYER, EXE_FROM_MEMFD, O_F_CREATED, FD_UPPER_LAYER, FD_LOWER_LAYER, ...)",
)
def _flags(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return param_field(d, "flags") and flags_added(d.ours, d.sysdig)


@allowance(
    "thread-parent-is-the-process-parent",
    "current libs give a thread created with CLONE_THREAD its caller's parent as parent (parsers.cpp "
    "parse_clone_exit_caller, 'The parent is the parent of the calling process'); 0.29.3 gave the caller",
)
def _thread_parent(d: FieldDisagreement, f: CaptureFacts) -> bool:
    mine, theirs = d.ours_row, d.sysdig_row
    if mine.get("thread.tid") == mine.get("proc.pid"):
        return False
    own = {"proc.pname": "proc.name", "proc.pcmdline": "proc.cmdline", "proc.ppid": "proc.pid",
           "proc.apid[1]": "proc.pid"}.get(d.field)  # fmt: skip
    if own is not None:
        return d.sysdig == theirs.get(own)
    m = re.fullmatch(r"proc\.a(name|pid)\[(\d+)\]", d.field)
    if m and int(m[2]) >= 2:
        return d.sysdig == mine.get(f"proc.a{m[1]}[{int(m[2]) - 1}]")
    return False


@allowance(
    "proclist-written-by-libs-0.10-or-later",
    "the capture's proc list has the libs >= 0.10 entry tail (pidns_init_start_ts and tty before "
    "loginuid): sysdig 0.29.3 reads loginuid from the wrong bytes and has no tty (scap-format.md §1)",
)
def _tail(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return f.current_proclist_tail and d.field in ("user.loginuid", "user.loginname", "proc.tty")


@allowance(
    "thread-unseen-before-an-enter-event",
    "current libs parse no enter events but open/creat/openat/openat2/execve/execveat/connect (the "
    "converter keeps the others), so a thread first seen on another enter event has no entry yet; "
    "0.29.3 creates one on any event",
)
def _unseen(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.evt_dir == ">" and d.ours_row.get("proc.pid") == NA and d.sysdig_row.get("proc.pid") != NA


PLACEHOLDER_FIELDS = frozenset({"proc.pid", "proc.ppid", "proc.cwd", "proc.sname", "thread.ismain", "proc.fdlimit",
                                "proc.nthreads", "proc.nchilds", "proc.fdopencount", "proc.fdusage", "proc.apid[0]",
                                "proc.vpgid", "proc.loginshellid", "evt.count.procinfo"})  # fmt: skip


@allowance(
    "placeholder-thread-defaults",
    "a thread missing from the proc list gets a placeholder entry: pid -1, no parent, cwd './', no thread "
    "group (so no threads, no open fds through its main thread) in current libs (threadinfo.cpp get_cwd, "
    "get_num_threads, get_main_thread; falco-observed-behaviour.md 'A thread never seen before'); "
    "pid = tid, ptid -1, cwd '' in 0.29.3",
)
def _placeholder(d: FieldDisagreement, f: CaptureFacts) -> bool:
    mine, theirs = d.ours_row, d.sysdig_row
    if mine.get("proc.pid") != "-1" or theirs.get("proc.pid") != theirs.get("thread.tid"):
        return False
    return d.field in PLACEHOLDER_FIELDS


@allowance(
    "child-created-by-its-own-clone-exit",
    "current libs create a child in a new pid namespace, made with CLONE_PARENT or by vfork only at its own "
    "clone exit, reading its cgroups and time there (parsers.cpp parse_clone_exit_caller returns early); "
    "0.29.3 created it at the caller's exit from the caller's state, so until the child's execve its "
    "container, cgroups, k8s metadata and proc.duration differ, and the caller's 'res' has no comm yet",
)
def _clone_child(d: FieldDisagreement, f: CaptureFacts) -> bool:
    on_child = (d.evt_type in CLONE_EXITS and d.evt_dir == "<") or (d.evt_type in ("execve", "execveat")
                                                                      and d.evt_dir == ">")  # fmt: skip
    if not on_child:
        return False
    if d.field.startswith(("container.", "k8s.", "thread.cgroup")):
        return d.sysdig_row.get("container.id") == "host" and d.ours_row.get("container.id") not in ("host", NA)
    return False


@allowance(
    "child-clone-time",
    "proc.duration counts from the child's creation: its own clone exit in current libs, the caller's "
    "(slightly earlier) in 0.29.3 (see child-created-by-its-own-clone-exit); off by that delay (< 1 ms)",
)
def _clone_time(d: FieldDisagreement, f: CaptureFacts) -> bool:
    ours, theirs = int_or_none(d.ours), int_or_none(d.sysdig)
    return d.field == "proc.duration" and ours is not None and theirs is not None and 0 < theirs - ours <= 1_000_000


@allowance(
    "udp-socket-reconnected",
    "a connect on an already connected UDP socket replaces its remote end in current libs "
    "(parsers.cpp fill_client_socket_info); 0.29.3 only fills an empty remote end "
    "(set_ipv4/ipv6_addresses_and_ports), so the socket keeps its first destination there",
)
def reconnected(d: FieldDisagreement, f: CaptureFacts) -> bool:
    if (d.field not in ADDRESS_FIELDS and not param_field(d, "fd")) or d.ours_row.get("fd.l4proto") != "udp":
        return False
    mine, theirs = _TUPLE.match(d.ours_row.get("fd.name", "")), _TUPLE.match(d.sysdig_row.get("fd.name") or "")
    return bool(mine and theirs and mine["local"] == theirs["local"] and mine["remote"] != theirs["remote"])


@allowance(
    "fd-inferred-from-send-tuple",
    "current libs build a missing socket fd from the tuple of send/sendto/sendmsg exits (parsers.cpp "
    "parse_write_exit, infer_send_sendto_sendmsg_fdinfo); 0.29.3 only did it for sendto enter events",
)
def _send_infer(d: FieldDisagreement, f: CaptureFacts) -> bool:
    fd_field = d.field.startswith(("fd.", "evt.buflen")) or d.field == "evt.category" or param_field(d, "fd")
    return (fd_field and d.sysdig_row.get("fd.type") == NA and d.ours_row.get("fd.type") in ("ipv4", "ipv6")
            and d.evt_type in ("send", "sendto", "sendmsg"))  # fmt: skip


@allowance(
    "failed-connect-without-status-tracking",
    "sysdig tracks connection status and names the socket even when connect fails; Falco does not track "
    "it, so a failed connect leaves the fd as it was (parsers.cpp parse_connect_exit)",
)
def _failed_connect(d: FieldDisagreement, f: CaptureFacts) -> bool:
    res = d.ours_row.get("evt.res", "")
    unnamed = d.ours in ("", NA) or (d.field == "fd.containername" and d.ours.endswith(":"))
    return (d.evt_type == "connect" and d.evt_dir == "<" and res not in ("SUCCESS", "EINPROGRESS", NA)
            and d.field in ADDRESS_FIELDS | {"fd.directory", "fd.filename"} and unnamed)  # fmt: skip


@allowance(
    "fd-created-by-events-sysdig-skips",
    "the fd was created by an event sysdig 0.29.3 skips (codes >= 336: memfd_create, ...) or does not "
    "parse as creating one (userfaultfd, the converted bpf exit), so it has no entry for it",
)
def _skipped_creator(d: FieldDisagreement, f: CaptureFacts) -> bool:
    fd_field = d.field.startswith(("fd.", "evt.buflen")) or param_field(d, "fd")
    unknown_there = (d.sysdig_row.get("fd.type") == NA
                     and d.ours_row.get("fd.type") in ("memfd", "userfaultfd", "pidfd", "bpf", "io_uring"))  # fmt: skip
    if fd_field and unknown_there:
        return True
    # Counted among the process's open fds: one more than sysdig's on the creating event, at most
    # one more per such event of the capture later on.
    if d.field in ("proc.fdopencount", "proc.fdusage"):
        if d.field == "proc.fdusage":
            return (unknown_there or f.skipped_fd_creators > 0) and float(d.ours) > float(d.sysdig)
        ours, theirs = int_or_none(d.ours), int_or_none(d.sysdig)
        most = 1 if unknown_there else f.skipped_fd_creators
        return ours is not None and theirs is not None and 0 < ours - theirs <= most
    return False


@allowance(
    "output-strings-sanitised",
    "libsinsp 0.25's extractors replace control characters and invalid UTF-8 by U+FFFD in printed "
    "strings (see falcorules_ci/engine/formatter.py); 0.29.3 prints the raw bytes",
)
def _sanitised(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.ours != d.sysdig and sanitize(d.sysdig) == d.ours


@allowance(
    "empty-environment-entries-kept",
    "current libs keep empty entries of a proc-list environment and join them with blanks; 0.29.3 "
    "drops them (observed on the sample captures)",
)
def _empty_env(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field == "proc.env" and d.ours.startswith(d.sysdig) and d.ours[len(d.sysdig) :].strip(" ") == ""


@allowance(
    "client-port-falls-through",
    "in 0.29.3 fd.cport has no 'break' and falls through into fd.cproto (filterchecks.cpp TYPE_CLIENTPORT), "
    "printing 0 or leftover memory for sockets without a client port; current libs return no value",
    kind="run",
)
def _cport(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field == "fd.cport" and d.ours == NA and int_or_none(d.sysdig) is not None


@allowance(
    "ppid-of-a-parent-not-in-the-table",
    "current libs print proc.ppid only for a parent found in the thread table (sinsp_filtercheck_"
    "thread.cpp TYPE_PPID, get_ancestor_process); 0.29.3 printed the recorded parent id (0, -1)",
)
def _ppid(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field == "proc.ppid" and d.ours == NA and int_or_none(d.sysdig) is not None


@allowance(
    "return-value-of-exits-stored-without-it",
    "an exit stored without a 'res' parameter (an old layout, or bpf's res_or_fd): current libs read the "
    "first parameter the converter put there, 0 when empty (event.h get_syscall_return_value); 0.29.3 "
    "looks for a parameter named res (or fd) and finds none",
)
def _no_res(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return (d.field in ("evt.res", "evt.rawres") and d.evt_dir == "<" and "res" not in d.stored
            and d.sysdig == NA and d.ours != NA)  # fmt: skip


@allowance(
    "enum-aliases-printed", "AF_LOCAL and AF_UNIX are the same value; current libs print every name of an enum value"
)
def _aliases(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return param_field(d, "domain") and d.ours == "AF_LOCAL|AF_UNIX" and d.sysdig == "AF_LOCAL"


@allowance(
    "mount-argument-is-a-regex",
    "the container plugin looks container.mount.*[ARG] up with ARG as a regular expression searched in "
    "the mount's source (container_info.cpp mount_by_source, reflex find), so '/' finds any mount; "
    "0.29.3 matched ARG against the path itself",
)
def _mount_regex(d: FieldDisagreement, f: CaptureFacts) -> bool:
    return d.field.startswith("container.mount.") and "[" in d.field and d.sysdig == NA and d.ours != NA


@allowance(
    "generic-event-of-an-unknown-syscall",
    "a generic event whose syscall id has no name is called 'syscall' (the generic event's table name) "
    "by current libs and '<unknown>' by 0.29.3; its id 0 resolves to libscap's ppm_sc name 'unknown' "
    "(ppm_sc_names.c) where 0.29.3's syscall table says '<unknown>'",
)
def _generic(d: FieldDisagreement, f: CaptureFacts) -> bool:
    if d.field in ("evt.type", "syscall.type"):
        return d.ours == "syscall" and d.sysdig == "<unknown>"
    return param_field(d, "ID") and d.ours == "unknown" and d.sysdig == "<unknown>"


@allowance(
    "connect-enter-named-the-socket-in-0.29.3",
    "0.29.3 named a unix socket from the connect enter event's address (parsers.cpp parse_connect_"
    "enter); current libs only store the enter event and name the socket at the exit",
)
def connect_enter_named(d: FieldDisagreement, f: CaptureFacts) -> bool:
    if d.evt_type != "connect" or d.evt_dir != ">" or d.sysdig_row.get("fd.name") in ("", NA):
        return False
    return d.ours_row.get("fd.name") == "" and (d.field in ("fd.name", "fd.name_changed", "fd.containername")
                                                 or param_field(d, "fd"))  # fmt: skip
