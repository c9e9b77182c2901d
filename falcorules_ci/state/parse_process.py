"""Event parsers that change processes and threads (libsinsp's ``parse_*_exit`` for clone, execve,
procexit, credential, cwd, capability and namespace syscalls).

Handlers read parameters by name; an absent parameter (older layouts, or empty in the capture)
leaves the state it would set untouched, as libsinsp does with empty parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from falcorules_ci.sources.event import Event
from falcorules_ci.state import constants as c
from falcorules_ci.state.paths import concatenate_paths
from falcorules_ci.state.threads import ThreadInfo, parse_cgroups_or_none
from falcorules_ci.state.values import as_int, as_strings, as_text, u32

if TYPE_CHECKING:
    from falcorules_ci.state.syscall_state import SyscallState

Params = dict[str, Any]
Handler = Callable[["SyscallState", Event, Params], None]


def _res(p: Params, key: str = "res") -> int:
    return as_int(p.get(key), 0)


# --- clone / fork / vfork / clone3 -----------------------------------------------------------


def parse_clone_exit(state: SyscallState, ev: Event, p: Params) -> None:
    child_tid = _res(p)
    if child_tid < 0:
        return
    if child_tid == 0:
        _clone_in_child(state, ev, p)
    else:
        _clone_in_caller(state, ev, p, child_tid)


def _clone_in_caller(state: SyscallState, ev: Event, p: Params, child_tid: int) -> None:
    caller_tid = ev.tid
    caller = state.get_thread(caller_tid)
    valid_caller = True
    if caller.is_invalid():
        # A placeholder caller learns its identity from the event.
        valid_caller = False
        caller.pid = as_int(p.get("pid"), -1)
        caller.ptid = as_int(p.get("ptid"), -1)
        if "vpid" in p:
            caller.vtid = as_int(p.get("vtid"), -1)
            caller.vpid = as_int(p.get("vpid"), -1)
        else:
            caller.vtid, caller.vpid = caller_tid, -1
        state.threads.link(caller)
    state.thread = caller
    flags = as_int(p.get("flags"))
    # A child in a pid namespace is created by its own clone exit (the caller cannot know its
    # host tid); vfork children may already be gone when the parent returns.
    if flags & (c.CL_CHILD_IN_PIDNS | c.CL_CLONE_NEWPID | c.CL_CLONE_PARENT) or caller_tid != caller.vtid:
        return
    if flags & c.CL_CLONE_VFORK or ev.name == "vfork":
        return
    if state.recently_exited(child_tid, caller_tid, ev.ts):
        return
    existing = state.threads.get(child_tid)
    if existing is not None:
        if existing.flags & c.CL_CLONE_INVERTED:
            return
        state.threads.remove(child_tid)
    child = ThreadInfo(child_tid)
    child.flags = flags
    if not flags & c.CL_CLONE_THREAD:
        if valid_caller:
            _copy_fds(caller, child)
            child.cwd = caller.get_cwd()
            child.set_env(caller.env)
        child.pid = child_tid
        child.ptid = caller.tid
    else:
        child.pid = caller.pid
        child.ptid = caller.ptid
        child.flags |= c.CL_CLONE_FILES
        child.lastexec_ts = caller.lastexec_ts
    child.vtid = child.tid
    child.vpid = child.pid
    _fill_child_from_event(child, ev, p)
    child.pidns_init_start_ts = state.boot_ts
    if valid_caller:
        _inherit(child, caller)
    else:
        caller.exe = child.exe
        caller.set_comm(child.comm)
        caller.set_args(child.args)
    state.threads.add(child)


def _clone_in_child(state: SyscallState, ev: Event, p: Params) -> None:
    child_tid = ev.tid
    current = state.thread
    if current is not None and current.clone_ts != 0:
        if ev.ts - current.clone_ts < c.CLONE_STALE_TIME_NS:
            return  # the caller's exit already created this thread
        state.threads.remove(child_tid)
        state.thread = None
    child = ThreadInfo(child_tid)
    child.pid = as_int(p.get("pid"), -1)
    child.ptid = as_int(p.get("ptid"), -1)
    if "vpid" in p:
        child.vtid = as_int(p.get("vtid"), -1)
        child.vpid = as_int(p.get("vpid"), -1)
    else:
        child.vtid, child.vpid = child_tid, -1
    child.flags = as_int(p.get("flags")) | c.CL_CLONE_INVERTED
    leader = not child.flags & c.CL_CLONE_THREAD
    if not leader:
        child.flags |= c.CL_CLONE_FILES
    lookup = state.get_thread(child.ptid if leader else child.pid)
    valid_lookup = True
    if lookup.is_invalid():
        valid_lookup = False
        if not leader:
            lookup.pid, lookup.ptid = child.pid, child.ptid
            lookup.vpid = child.vpid
            lookup.vtid = lookup.vpid
            state.threads.link(lookup)
    _fill_child_from_event(child, ev, p)
    if valid_lookup:
        _inherit(child, lookup)
        if leader:
            _copy_fds(lookup, child)
            child.cwd = lookup.get_cwd()
            child.set_env(lookup.env)
        else:
            child.lastexec_ts = lookup.lastexec_ts
    elif not leader:
        lookup.exe = child.exe
        lookup.set_comm(child.comm)
        lookup.set_args(child.args)
    if child.flags & (c.CL_CHILD_IN_PIDNS | c.CL_CLONE_NEWPID) or child.tid != child.vtid:
        start = p.get("pidns_init_start_ts")
        if isinstance(start, int):
            child.pidns_init_start_ts = start + state.boot_ts
    else:
        child.pidns_init_start_ts = state.boot_ts
    state.thread = state.threads.add(child)


def _fill_child_from_event(child: ThreadInfo, ev: Event, p: Params) -> None:
    child.exe = as_text(p.get("exe"))
    comm = p.get("comm")
    child.comm = as_text(comm) if comm is not None else child.exe
    child.set_args(as_strings(p.get("args")))
    child.fdlimit = as_int(p.get("fdlimit"), child.fdlimit)
    _memory(child, p)
    child.uid = u32(as_int(p.get("uid")))
    child.gid = u32(as_int(p.get("gid")))
    cgroups = parse_cgroups_or_none(as_strings(p.get("cgroups"))) if "cgroups" in p else None
    if cgroups is not None:
        child.cgroups = cgroups
    child.clone_ts = ev.ts


def _inherit(child: ThreadInfo, source: ThreadInfo) -> None:
    child.exepath = source.exepath
    child.exe_writable = source.exe_writable
    child.exe_upper_layer = source.exe_upper_layer
    child.exe_lower_layer = source.exe_lower_layer
    child.exe_from_memfd = source.exe_from_memfd
    child.root = source.root
    child.sid = source.sid
    child.vpgid = source.vpgid
    child.pgid = source.pgid
    child.tty = source.tty
    child.loginuid = source.loginuid
    child.cap_permitted = source.cap_permitted
    child.cap_inheritable = source.cap_inheritable
    child.cap_effective = source.cap_effective
    child.exe_ino = source.exe_ino
    child.exe_ino_ctime = source.exe_ino_ctime
    child.exe_ino_mtime = source.exe_ino_mtime
    child.exe_ino_ctime_duration_clone_ts = source.exe_ino_ctime_duration_clone_ts


def _copy_fds(source: ThreadInfo, child: ThreadInfo) -> None:
    table = source.fd_table()
    if table is None:
        return
    copied: dict[int, Any] = {}
    for fd, info in table.items():
        clone = info.clone()
        clone.flags |= 1 << 14  # cloned into a child
        copied[fd] = clone
    child.fds = copied


def _memory(thread: ThreadInfo, p: Params) -> None:
    if "vm_swap" in p:
        thread.pfmajor = as_int(p.get("pgft_maj"))
        thread.pfminor = as_int(p.get("pgft_min"))
        thread.vmsize = as_int(p.get("vm_size"))
        thread.vmrss = as_int(p.get("vm_rss"))
        thread.vmswap = as_int(p.get("vm_swap"))


# --- execve / execveat -----------------------------------------------------------------------


def parse_execve_exit(state: SyscallState, ev: Event, p: Params) -> None:
    # A failed execve changes nothing: rules see the caller's old identity.
    if _res(p) < 0:
        return
    t = state.thread
    if t is None:
        return
    if t.is_dead():
        t.flags &= ~c.CL_CLOSED
        if t.group is not None:
            t.group.alive += 1
    t.exe = as_text(p.get("exe"))
    t.lastexec_ts = ev.ts
    comm = p.get("comm")
    t.comm = as_text(comm) if comm is not None else t.exe
    t.set_args(as_strings(p.get("args")))
    t.pid = as_int(p.get("pid"), t.pid)
    if t.is_invalid():
        t.ptid = as_int(p.get("ptid"), t.ptid)
        if not t.flags & c.CL_CHILD_IN_PIDNS:
            t.vtid, t.vpid = t.tid, t.pid
        state.threads.link(t)
    t.fdlimit = as_int(p.get("fdlimit"), t.fdlimit)
    _memory(t, p)
    if "env" in p:
        t.set_env(as_strings(p.get("env")))
    if "cgroups" in p:
        cgroups = parse_cgroups_or_none(as_strings(p.get("cgroups")))
        if cgroups is not None:
            t.cgroups = cgroups
    if "tty" in p:
        t.tty = u32(as_int(p.get("tty")))
    trusted = p.get("trusted_exepath")
    if trusted is not None:
        t.exepath = as_text(trusted)
    else:
        _exepath_from_enter(state, ev, t)
    if "vpgid" in p:
        t.vpgid = as_int(p.get("vpgid"))
    if "loginuid" in p:
        t.loginuid = u32(as_int(p.get("loginuid")))
    if "flags" in p:
        flags = as_int(p.get("flags"))
        t.exe_writable = bool(flags & c.EXE_WRITABLE)
        t.exe_upper_layer = bool(flags & c.EXE_UPPER_LAYER)
        t.exe_from_memfd = bool(flags & c.EXE_FROM_MEMFD)
        t.exe_lower_layer = bool(flags & c.EXE_LOWER_LAYER)
    if "cap_effective" in p:
        t.cap_inheritable = as_int(p.get("cap_inheritable"))
        t.cap_permitted = as_int(p.get("cap_permitted"))
        t.cap_effective = as_int(p.get("cap_effective"))
    if "exe_ino_mtime" in p:
        t.exe_ino = as_int(p.get("exe_ino"))
        t.exe_ino_ctime = as_int(p.get("exe_ino_ctime"))
        t.exe_ino_mtime = as_int(p.get("exe_ino_mtime"))
        if t.clone_ts != 0:
            t.exe_ino_ctime_duration_clone_ts = t.clone_ts - t.exe_ino_ctime
        if t.pidns_init_start_ts != 0 and t.exe_ino_ctime > t.pidns_init_start_ts:
            t.exe_ino_ctime_duration_pidns_start = t.exe_ino_ctime - t.pidns_init_start_ts
    if "uid" in p:
        t.uid = u32(as_int(p.get("uid")))
    t.pgid = as_int(p.get("pgid"), -1)
    if "gid" in p:
        t.gid = u32(as_int(p.get("gid")))
    table = t.fd_table()
    if table is not None:
        for fd in [fd for fd, info in table.items() if info.is_close_on_exec()]:
            del table[fd]
    kept = t.flags & (c.CL_PIPE_SRC | c.CL_PIPE_DST | c.CL_IS_MAIN_THREAD | c.CL_CLONE_INVERTED)
    t.flags = c.CL_ACTIVE | kept | c.CL_NAME_CHANGED
    # execve leaves only the thread group leader alive.
    group = t.group
    if group is not None and group.alive > 1:
        for other in list(group.threads):
            if other.removed or other.is_main_thread() or other.tid == t.tid:
                continue
            state.threads.remove(other.tid)


def _exepath_from_enter(state: SyscallState, ev: Event, t: ThreadInfo) -> None:
    """Old execve layouts carry no exe path: rebuild it from the enter event, if kept."""
    enter = state.retrieve_enter(ev)
    if enter is None:
        return
    ep = enter.params
    if enter.name == "execve":
        filename = as_text(ep.get("filename"), "<NA>")
        t.exepath = "<NA>" if filename == "<NA>" else concatenate_paths(t.get_cwd(), filename)
        return
    dirfd = as_int(ep.get("dirfd"))
    flags = as_int(ep.get("flags"))
    pathname = as_text(ep.get("pathname"), "<NA>")
    sdir = state.parse_dirfd(pathname, dirfd)
    if sdir not in (".", "<UNKNOWN>"):
        state.fd = t.get_fd(dirfd)
    if (not flags & c.EXVAT_AT_EMPTY_PATH and pathname == "<NA>") or sdir == "<UNKNOWN>":
        t.exepath = "<NA>"
    elif flags & c.EXVAT_AT_EMPTY_PATH:
        t.exepath = concatenate_paths("", sdir)
    else:
        t.exepath = concatenate_paths(sdir, pathname)


# --- exit ------------------------------------------------------------------------------------


def parse_procexit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if t is None:
        return
    if t.group is not None and not t.is_dead():
        t.group.alive -= 1
    t.flags |= c.CL_CLOSED
    # Removed at the next event, so rules on procexit still see the thread.
    state.schedule_thread_removal(ev.tid)
    if not t.children:
        return
    reaper = p.get("reaper_tid")
    t.reaper_tid = reaper if isinstance(reaper, int) else -1


# --- credentials and session -----------------------------------------------------------------


def _set_user(state: SyscallState, p: Params, key: str) -> None:
    if _res(p) != 0:
        return
    value = p.get(key)
    if state.thread is not None and isinstance(value, int):
        state.thread.uid = u32(value)


def _set_group(state: SyscallState, p: Params, key: str) -> None:
    if _res(p) != 0:
        return
    value = p.get(key)
    if state.thread is not None and isinstance(value, int):
        state.thread.gid = u32(value)


def parse_setuid_exit(state: SyscallState, ev: Event, p: Params) -> None:
    _set_user(state, p, "uid")


def parse_setresuid_exit(state: SyscallState, ev: Event, p: Params) -> None:
    _set_user(state, p, "euid")


def parse_setgid_exit(state: SyscallState, ev: Event, p: Params) -> None:
    _set_group(state, p, "gid")


def parse_setresgid_exit(state: SyscallState, ev: Event, p: Params) -> None:
    _set_group(state, p, "egid")


def parse_setsid_exit(state: SyscallState, ev: Event, p: Params) -> None:
    res = _res(p)
    if res >= 0 and state.thread is not None:
        state.thread.sid = res


def parse_capset_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if _res(p) < 0 or t is None:
        return
    t.cap_inheritable = as_int(p.get("cap_inheritable"))
    t.cap_permitted = as_int(p.get("cap_permitted"))
    t.cap_effective = as_int(p.get("cap_effective"))


def parse_unshare_setns_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if _res(p) < 0 or t is None:
        return
    flags = as_int(p.get("flags" if ev.name == "unshare" else "nstype"))
    if flags & c.CL_CLONE_NEWUSER:
        # Entering a new user namespace grants every capability inside it.
        t.cap_inheritable = t.cap_permitted = t.cap_effective = c.MAX_CAPS


def parse_prctl_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if _res(p) < 0 or t is None or t.is_invalid() or t.group is None:
        return
    if as_int(p.get("option")) not in (c.PR_SET_CHILD_SUBREAPER, c.PR_GET_CHILD_SUBREAPER):
        return
    t.group.reaper = as_int(p.get("arg2_int")) != 0


# --- working directory and root --------------------------------------------------------------


def parse_chdir_exit(state: SyscallState, ev: Event, p: Params) -> None:
    if _res(p) >= 0 and state.thread is not None:
        state.thread.update_cwd(as_text(p.get("path")))


def parse_fchdir_exit(state: SyscallState, ev: Event, p: Params) -> None:
    if _res(p) >= 0 and state.fd is not None and state.thread is not None:
        state.thread.update_cwd(state.fd.name)


def parse_getcwd_exit(state: SyscallState, ev: Event, p: Params) -> None:
    if _res(p) >= 0 and state.thread is not None:
        state.thread.update_cwd(as_text(p.get("path")))


def parse_chroot_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if t is None or _res(p) != 0:
        return
    path = as_text(p.get("path"), "<NA>")
    if path.startswith("/") or not path or path == "<NA>":
        t.root = path
    else:
        t.root = concatenate_paths(t.get_cwd(), path)


# --- limits and memory -----------------------------------------------------------------------


def parse_rlimit_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if t is None or _res(p) < 0 or as_int(p.get("resource")) != c.RLIMIT_NOFILE:
        return
    cur = as_int(p.get("cur"), -1)
    main = t.main_thread()
    if cur != -1 and main is not None:
        main.fdlimit = cur


def parse_prlimit_exit(state: SyscallState, ev: Event, p: Params) -> None:
    if _res(p) != 0 or "resource" not in p or as_int(p.get("resource")) != c.RLIMIT_NOFILE:
        return
    newcur = as_int(p.get("newcur"), -1)
    if newcur == -1 or "pid" not in p:
        return
    tid = as_int(p.get("pid")) or ev.tid
    target = state.get_thread(tid)
    main = target.main_thread() if not target.is_invalid() else None
    if main is not None:
        main.fdlimit = newcur


def parse_memory_exit(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.thread
    if t is None:
        return
    if "vm_size" in p:
        t.vmsize = as_int(p.get("vm_size"))
    if "vm_swap" in p:
        t.vmrss = as_int(p.get("vm_rss"))
        t.vmswap = as_int(p.get("vm_swap"))


def parse_switch(state: SyscallState, ev: Event, p: Params) -> None:
    t = state.threads.get(ev.tid)
    if t is None or "vm_swap" not in p:
        return
    t.pfmajor = as_int(p.get("pgft_maj"))
    t.pfminor = as_int(p.get("pgft_min"))
    main = t.main_thread()
    if main is not None:
        main.vmsize = as_int(p.get("vm_size"))
        main.vmrss = as_int(p.get("vm_rss"))
        main.vmswap = as_int(p.get("vm_swap"))


# --- users and groups ------------------------------------------------------------------------


def parse_user_event(state: SyscallState, ev: Event, p: Params) -> None:
    # Container users are ignored (Falco resolves them from the container's filesystem).
    if as_text(p.get("container_id")):
        return
    uid = as_int(p.get("uid"))
    if ev.name == "useradded":
        name, home, shell = (as_text(p.get(k)) for k in ("name", "home", "shell"))
        state.users.add_user(uid, as_int(p.get("gid")), name, home, shell)
    else:
        state.users.remove_user(uid)


def parse_group_event(state: SyscallState, ev: Event, p: Params) -> None:
    if as_text(p.get("container_id")):
        return
    gid = as_int(p.get("gid"))
    if ev.name == "groupadded":
        state.users.add_group(gid, as_text(p.get("name")))
    else:
        state.users.remove_group(gid)


HANDLERS: dict[tuple[str, bool], Handler] = {
    ("clone", False): parse_clone_exit,
    ("fork", False): parse_clone_exit,
    ("vfork", False): parse_clone_exit,
    ("clone3", False): parse_clone_exit,
    ("execve", False): parse_execve_exit,
    ("execveat", False): parse_execve_exit,
    ("procexit", True): parse_procexit,
    ("setuid", False): parse_setuid_exit,
    ("setresuid", False): parse_setresuid_exit,
    ("setreuid", False): parse_setresuid_exit,
    ("setgid", False): parse_setgid_exit,
    ("setresgid", False): parse_setresgid_exit,
    ("setregid", False): parse_setresgid_exit,
    ("setsid", False): parse_setsid_exit,
    ("capset", False): parse_capset_exit,
    ("unshare", False): parse_unshare_setns_exit,
    ("setns", False): parse_unshare_setns_exit,
    ("prctl", False): parse_prctl_exit,
    ("chdir", False): parse_chdir_exit,
    ("fchdir", False): parse_fchdir_exit,
    ("getcwd", False): parse_getcwd_exit,
    ("chroot", False): parse_chroot_exit,
    ("getrlimit", False): parse_rlimit_exit,
    ("setrlimit", False): parse_rlimit_exit,
    ("prlimit", False): parse_prlimit_exit,
    ("brk", False): parse_memory_exit,
    ("mmap", False): parse_memory_exit,
    ("mmap2", False): parse_memory_exit,
    ("munmap", False): parse_memory_exit,
    ("switch", True): parse_switch,
    ("useradded", True): parse_user_event,
    ("userdeleted", True): parse_user_event,
    ("groupadded", True): parse_group_event,
    ("groupdeleted", True): parse_group_event,
}
