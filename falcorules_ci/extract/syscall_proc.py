"""Extractors for ``proc.*``, ``thread.*``, ``user.*`` and ``group.*`` (libsinsp's process, user and
group field classes).

Ancestor fields (``proc.aname`` and friends) without an index behave differently in a condition
and in an output: in a condition they yield an :class:`Ancestors` list (the parent first, up the
``ptid`` chain) that the evaluator must match with *any* semantics; in an output they are the
ancestors' values joined by spaces (``proc.apid`` is then the process's own pid).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from falcorules_ci.extract.base import Extractor
from falcorules_ci.extract.syscall_tables import CAPABILITY_NAMES
from falcorules_ci.sources.event import Event
from falcorules_ci.state.syscall_state import SyscallState
from falcorules_ci.state.threads import ThreadInfo

Factory = Callable[[str | None], Extractor]
UINT32_MAX = 0xFFFFFFFF


class Ancestors(list[Any]):
    """Values of a process's ancestors, parent first, for an ancestor field used without an index
    in a condition: the comparison is true if it holds for *any* element (for every operator,
    ``!=`` included). An empty list never occurs: no ancestors means no value (None)."""

    __slots__ = ()


def caps_text(caps: int) -> str:
    return " ".join(name for bit, name in enumerate(CAPABILITY_NAMES) if caps >> bit & 1)


def _xid(value: int) -> int | None:
    # Ids outside [-1, 2^32) come from sources without real pids and are not shown.
    return value if -1 <= value <= UINT32_MAX else None


def _thread_field(getter: Callable[[ThreadInfo], Any]) -> Factory:
    def factory(arg: str | None) -> Extractor:
        def extract(ev: Event, st: SyscallState) -> Any:
            t = st.thread
            return None if t is None else getter(t)

        return extract

    return factory


def _with_state(getter: Callable[[ThreadInfo, Event, SyscallState], Any]) -> Factory:
    def factory(arg: str | None) -> Extractor:
        def extract(ev: Event, st: SyscallState) -> Any:
            t = st.thread
            return None if t is None else getter(t, ev, st)

        return extract

    return factory


def _args_text(t: ThreadInfo) -> str:
    return " ".join(t.args)


_ANCESTOR_VALUES: dict[str, Callable[[ThreadInfo], Any]] = {
    "proc.aname": lambda t: t.comm,
    "proc.aexe": lambda t: t.exe,
    "proc.aexepath": lambda t: t.exepath,
    "proc.acmdline": lambda t: t.cmdline,
    "proc.apid": lambda t: t.pid,
    "proc.aargs": _args_text,
    "proc.aenv": lambda t: t.process_env_text(),
}


def _ancestor_index(arg: str | None) -> int | None:
    if arg is None or not arg.lstrip("-").isdigit():
        return None
    return int(arg)


def _ancestor(name: str, *, output: bool) -> Factory:
    value_of = _ANCESTOR_VALUES[name]

    def factory(arg: str | None) -> Extractor:
        index = _ancestor_index(arg)
        if index is not None and index >= 0:
            level = index

            def at_level(ev: Event, st: SyscallState) -> Any:
                t = st.thread
                if t is None:
                    return None
                found = st.threads.ancestor(t, level)
                if found is None:
                    return None
                value = value_of(found)
                return _xid(value) if name == "proc.apid" else value

            return at_level
        if name == "proc.apid" and output:
            return at_level_zero_pid
        if output:

            def joined(ev: Event, st: SyscallState) -> Any:
                t = st.thread
                main = t.main_thread() if t is not None else None
                if main is None:
                    return None
                text = " ".join(str(value_of(a)) for a in st.threads.ancestors(main))
                return text or None

            return joined

        def each(ev: Event, st: SyscallState) -> Any:
            t = st.thread
            main = t.main_thread() if t is not None else None
            if main is None:
                return None
            values = Ancestors(value_of(a) for a in st.threads.ancestors(main))
            return values or None

        return each

    return factory


def at_level_zero_pid(ev: Event, st: SyscallState) -> Any:
    t = st.thread
    main = t.main_thread() if t is not None else None
    return None if main is None else _xid(main.pid)


def _proc_args(arg: str | None) -> Extractor:
    index = _ancestor_index(arg)

    def extract(ev: Event, st: SyscallState) -> Any:
        t = st.thread
        if t is None:
            return None
        if index is not None and index >= 0:
            return t.args[index] if index < len(t.args) else ""
        return _args_text(t)

    return extract


def _proc_env(arg: str | None) -> Extractor:
    key = arg if arg is not None and not arg.isdigit() else None

    def extract(ev: Event, st: SyscallState) -> Any:
        t = st.thread
        if t is None:
            return None
        return t.env_value(key) if key is not None else t.process_env_text()

    return extract


def _proc_aenv(*, output: bool) -> Factory:
    def factory(arg: str | None) -> Extractor:
        key = arg if arg is not None and arg and not arg.isdigit() else None
        level = int(arg) if arg is not None and arg.isdigit() else -1
        if key is None and not output:
            # Without an env name, a condition matches any ancestor's whole environment.
            return _ancestor("proc.aenv", output=False)(None)

        def extract(ev: Event, st: SyscallState) -> Any:
            t = st.thread
            if t is None:
                return None
            if key is None and level < 1:
                return t.process_env_text()
            current = t.main_thread()
            if current is None:
                return ""
            if key is not None:
                for _ in range(20):
                    current = st.threads.get(current.ptid)
                    if current is None:
                        break
                    value = current.env_value(key)
                    if value:
                        return value
                return ""
            for _ in range(level):
                current = st.threads.get(current.ptid)
                if current is None:
                    return None
            return current.process_env_text()

        return extract

    return factory


def _parent_field(getter: Callable[[ThreadInfo], Any]) -> Factory:
    def factory(arg: str | None) -> Extractor:
        def extract(ev: Event, st: SyscallState) -> Any:
            t = st.thread
            parent = st.threads.ancestor(t, 1) if t is not None else None
            return None if parent is None else getter(parent)

        return extract

    return factory


def _leader_field(key: str, virtual: bool, getter: Callable[[ThreadInfo], str]) -> Factory:
    def factory(arg: str | None) -> Extractor:
        def extract(ev: Event, st: SyscallState) -> Any:
            t = st.thread
            if t is None:
                return None
            leader = st.threads.oldest_matching(t, key, virtual)
            return getter(leader) if leader is not None else ""

        return extract

    return factory


def _loginshellid(t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
    main = t.main_thread()
    if main is None:
        return None
    found: int | None = None
    for candidate in (main, *st.threads.ancestors(main)):
        if candidate.comm.endswith("sh") and len(candidate.comm) >= 2:
            found = candidate.pid
    return found


def _fd_count(t: ThreadInfo) -> int:
    main = t.main_thread()
    return len(main.fds) if main is not None else 0


def _fd_limit(t: ThreadInfo) -> int:
    main = t.main_thread()
    return main.fdlimit if main is not None else 0


def _fd_usage(t: ThreadInfo) -> float:
    limit = _fd_limit(t)
    if limit <= 0:
        return 0.0
    count = _fd_count(t)
    return count * 100 / limit if count <= limit else 100.0


def _ppid_duration(t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
    parent = st.threads.ancestor(t, 1)
    if parent is None:
        return None
    if parent.clone_ts != 0:
        return ev.ts - parent.clone_ts
    # libsinsp falls through to the next field here (the process's open fd count).
    return _fd_count(t)


def _nonzero(getter: Callable[[ThreadInfo], int]) -> Callable[[ThreadInfo], Any]:
    return lambda t: getter(t) or None


def _not_minus_one(getter: Callable[[ThreadInfo], int]) -> Callable[[ThreadInfo], Any]:
    def value(t: ThreadInfo) -> Any:
        v = getter(t)
        return None if v == -1 else v

    return value


def _std_fd(fd: int, kind: str) -> Factory:
    def getter(t: ThreadInfo) -> Any:
        table = t.fd_table()
        info = table.get(fd) if table is not None else None
        if info is None:
            return None
        return info.typestring if kind == "type" else info.name

    return _thread_field(getter)


def _nthreads(t: ThreadInfo) -> int:
    return t.group.alive if t.group is not None else 0


def _nchilds(t: ThreadInfo) -> int:
    group = t.group
    if group is None:
        return 0
    main = t.main_thread()
    if main is not None and not main.is_dead():
        return group.alive - 1
    return group.alive


def _cgroups_text(t: ThreadInfo) -> Any:
    if not t.cgroups:
        return None
    return " ".join(f"{name}={path}" for name, path in t.cgroups)


def _thread_cgroup(arg: str | None) -> Extractor:
    def extract(ev: Event, st: SyscallState) -> Any:
        t = st.thread
        return None if t is None or arg is None else t.cgroup(arg)

    return extract


def _exectime(total: bool) -> Factory:
    def factory(arg: str | None) -> Extractor:
        last_by_cpu: dict[int, int] = {}
        totals: dict[int, int] = {}

        def extract(ev: Event, st: SyscallState) -> Any:
            delta = 0
            if ev.name == "switch":
                last = last_by_cpu.get(ev.cpu, 0)
                delta = ev.ts - last if last else 0
                last_by_cpu[ev.cpu] = ev.ts
            if not total:
                return delta
            t = st.thread
            if t is None:
                return None
            totals[t.tid] = totals.get(t.tid, 0) + delta
            return totals[t.tid]

        return extract

    return factory


def _thread_cpu(user: bool, system: bool) -> Factory:
    """``thread.cpu*``: on a procinfo event, the thread's cpu time (the event's user and/or system
    ticks) minus what this field saw on the thread's previous procinfo, capped at 100; 0 the
    first time. libsinsp keeps the last value in a per-filtercheck dynamic field of the thread
    (sinsp_filtercheck_thread.cpp extract_thread_cpu), so each use of the field counts alone."""

    def factory(arg: str | None) -> Extractor:
        last: dict[int, tuple[ThreadInfo, int]] = {}

        def extract(ev: Event, st: SyscallState) -> Any:
            t = st.thread
            if t is None or ev.name != "procinfo":
                return None
            ticks = 0
            for wanted, key in ((user, "cpu_usr"), (system, "cpu_sys")):
                value = ev.params.get(key)
                if wanted and isinstance(value, int):
                    ticks += value
            ticks &= 0xFFFFFFFFFFFFFFFF
            seen = last.get(t.tid)
            # A thread entry replaced since (same tid, new entry) starts again from nothing.
            before = seen[1] if seen is not None and seen[0] is t else 0
            last[t.tid] = (t, ticks)
            if not before:
                return 0.0
            return float(min((ticks - before) & 0xFFFFFFFFFFFFFFFF, 100))

        return extract

    return factory


def _user_field(kind: str) -> Factory:
    def getter(t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
        users = st.users
        if kind == "name":
            return users.user_name(t.container_id, t.uid)
        if kind == "homedir":
            return users.user_home(t.container_id, t.uid)
        if kind == "shell":
            return users.user_shell(t.container_id, t.uid)
        return users.user_name(t.container_id, t.loginuid)

    return _with_state(getter)


def _group_name(t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
    return st.users.group_name(t.container_id, t.gid)


def _thread_tid(arg: str | None) -> Extractor:
    return lambda ev, st: _xid(ev.tid)


def _pvpid(t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
    parent = st.threads.get(t.ptid)
    return None if parent is None else parent.vpid


def _ppid_ts(t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
    parent = st.threads.get(t.ptid)
    return None if parent is None else parent.clone_ts


def _duration(t: ThreadInfo, ev: Event, st: SyscallState) -> Any:
    return ev.ts - t.clone_ts if t.clone_ts != 0 else None


_F = _thread_field

FACTORIES: dict[str, Factory] = {
    "thread.tid": _thread_tid,
    "proc.pid": _F(lambda t: _xid(t.pid)),
    "proc.sid": _F(lambda t: t.sid),
    "proc.vpgid": _F(lambda t: t.vpgid),
    "proc.pgid": _F(lambda t: t.pgid),
    "proc.sname": _leader_field("sid", True, lambda t: t.comm),
    "proc.sid.exe": _leader_field("sid", True, lambda t: t.exe),
    "proc.sid.exepath": _leader_field("sid", True, lambda t: t.exepath),
    "proc.vpgid.name": _leader_field("vpgid", True, lambda t: t.comm),
    "proc.vpgid.exe": _leader_field("vpgid", True, lambda t: t.exe),
    "proc.vpgid.exepath": _leader_field("vpgid", True, lambda t: t.exepath),
    "proc.pgid.name": _leader_field("pgid", False, lambda t: t.comm),
    "proc.pgid.exe": _leader_field("pgid", False, lambda t: t.exe),
    "proc.pgid.exepath": _leader_field("pgid", False, lambda t: t.exepath),
    "proc.tty": _F(lambda t: t.tty),
    "proc.name": _F(lambda t: t.comm),
    "proc.exe": _F(lambda t: t.exe),
    "proc.exepath": _F(lambda t: t.exepath),
    "proc.args": _proc_args,
    "proc.env": _proc_env,
    "proc.aenv": _proc_aenv(output=False),
    "proc.cmdline": _F(lambda t: t.cmdline),
    "proc.exeline": _F(lambda t: t.exe + " " + _args_text(t)),
    "proc.cwd": _F(lambda t: t.get_cwd()),
    "proc.nthreads": _F(_nthreads),
    "proc.nchilds": _F(_nchilds),
    "thread.ismain": _F(lambda t: t.is_main_thread()),
    "thread.exectime": _exectime(False),
    "thread.totexectime": _exectime(True),
    "proc.ppid": _parent_field(lambda t: _xid(t.pid)),
    "proc.pname": _parent_field(lambda t: t.comm),
    "proc.pcmdline": _parent_field(lambda t: t.cmdline),
    "proc.pexe": _parent_field(lambda t: t.exe),
    "proc.pexepath": _parent_field(lambda t: t.exepath),
    "proc.aname": _ancestor("proc.aname", output=False),
    "proc.aexe": _ancestor("proc.aexe", output=False),
    "proc.aexepath": _ancestor("proc.aexepath", output=False),
    "proc.acmdline": _ancestor("proc.acmdline", output=False),
    "proc.apid": _ancestor("proc.apid", output=False),
    # proc.aargs has no "any ancestor" comparison: conditions see the joined text too.
    "proc.aargs": _ancestor("proc.aargs", output=True),
    "proc.loginshellid": _with_state(_loginshellid),
    "proc.duration": _with_state(_duration),
    "proc.ppid.duration": _with_state(_ppid_duration),
    "proc.fdopencount": _F(_fd_count),
    "proc.fdlimit": _F(_fd_limit),
    "proc.fdusage": _F(_fd_usage),
    "proc.vmsize": _F(lambda t: t.vmsize),
    "proc.vmrss": _F(lambda t: t.vmrss),
    "proc.vmswap": _F(lambda t: t.vmswap),
    "thread.vmsize": _F(lambda t: t.vmsize if t.is_main_thread() else 0),
    "thread.vmrss": _F(lambda t: t.vmrss if t.is_main_thread() else 0),
    "thread.vmsize.b": _F(lambda t: t.vmsize * 1024 if t.is_main_thread() else 0),
    "thread.vmrss.b": _F(lambda t: t.vmrss * 1024 if t.is_main_thread() else 0),
    "thread.pfmajor": _F(lambda t: t.pfmajor),
    "thread.pfminor": _F(lambda t: t.pfminor),
    "thread.cgroups": _F(_cgroups_text),
    "thread.cgroup": _thread_cgroup,
    "thread.vtid": _F(_not_minus_one(lambda t: t.vtid)),
    "proc.vpid": _F(_not_minus_one(lambda t: t.vpid)),
    "thread.cpu": _thread_cpu(True, True),
    "thread.cpu.user": _thread_cpu(True, False),
    "thread.cpu.system": _thread_cpu(False, True),
    "thread.nametid": _with_state(lambda t, ev, st: t.comm + str(ev.tid)),
    "proc.is_exe_writable": _F(lambda t: t.exe_writable),
    "proc.is_exe_upper_layer": _F(lambda t: t.exe_upper_layer),
    "proc.is_exe_lower_layer": _F(lambda t: t.exe_lower_layer),
    "proc.is_exe_from_memfd": _F(lambda t: t.exe_from_memfd),
    "proc.is_sid_leader": _F(lambda t: t.sid == t.vpid),
    "proc.is_vpgid_leader": _F(lambda t: t.vpgid == t.vpid),
    "proc.is_pgid_leader": _F(lambda t: t.pgid == t.pid),
    "thread.cap_permitted": _F(lambda t: caps_text(t.cap_permitted)),
    "thread.cap_inheritable": _F(lambda t: caps_text(t.cap_inheritable)),
    "thread.cap_effective": _F(lambda t: caps_text(t.cap_effective)),
    "proc.cmdnargs": _F(lambda t: len(t.args)),
    "proc.cmdlenargs": _F(lambda t: sum(len(a) for a in t.args)),
    "proc.pvpid": _with_state(_pvpid),
    "proc.exe_ino": _F(_nonzero(lambda t: t.exe_ino)),
    "proc.exe_ino.ctime": _F(_nonzero(lambda t: t.exe_ino_ctime)),
    "proc.exe_ino.mtime": _F(_nonzero(lambda t: t.exe_ino_mtime)),
    "proc.exe_ino.ctime_duration_proc_start": _F(_nonzero(lambda t: t.exe_ino_ctime_duration_clone_ts)),
    "proc.exe_ino.ctime_duration_pidns_start": _F(_nonzero(lambda t: t.exe_ino_ctime_duration_pidns_start)),
    "proc.pidns_init_start_ts": _F(_nonzero(lambda t: t.pidns_init_start_ts)),
    "proc.pid.ts": _F(_nonzero(lambda t: t.clone_ts)),
    "proc.ppid.ts": _with_state(_ppid_ts),
    "proc.stdin.type": _std_fd(0, "type"),
    "proc.stdout.type": _std_fd(1, "type"),
    "proc.stderr.type": _std_fd(2, "type"),
    "proc.stdin.name": _std_fd(0, "name"),
    "proc.stdout.name": _std_fd(1, "name"),
    "proc.stderr.name": _std_fd(2, "name"),
    "user.uid": _F(lambda t: t.uid),
    "user.name": _user_field("name"),
    "user.homedir": _user_field("homedir"),
    "user.shell": _user_field("shell"),
    "user.loginuid": _F(lambda t: t.loginuid if t.loginuid < UINT32_MAX else -1),
    "user.loginname": _user_field("loginname"),
    "group.gid": _F(lambda t: t.gid),
    "group.name": _with_state(_group_name),
}

# Fields whose output value differs from what a condition compares.
OUTPUT_FACTORIES: dict[str, Factory] = {
    name: _ancestor(name, output=True)
    for name in ("proc.aname", "proc.aexe", "proc.aexepath", "proc.acmdline", "proc.apid")
}
OUTPUT_FACTORIES["proc.aenv"] = _proc_aenv(output=True)
