"""Thread records and the thread table, following libsinsp's thread manager.

Threads of a process share a thread group; the main thread (tid == pid) owns the fd table, cwd
and environment that the other threads use. A thread that exits is marked dead and removed on
the next event; a dead main thread stays while other threads of its group live. Children of a
removed thread are handed to a reaper (another live thread of its group, then the nearest
ancestor group marked as reaper: pid 1, a namespace init, or a prctl child subreaper); without one
their parent becomes 0, which no thread has, so ``proc.pname`` then has no value.

Threads the capture never introduced are placeholders: pid and ptid -1, name and exe ``<NA>``,
uid/gid/loginuid 4294967295, no thread group, their own empty fd table and cwd ``./``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from falcorules_ci.state import constants as c
from falcorules_ci.state.fds import FdInfo
from falcorules_ci.state.paths import concatenate_paths

NA = "<NA>"


class ThreadGroup:
    """The threads of one process (main thread first when present) and their live count."""

    __slots__ = ("alive", "pid", "reaper", "threads")

    def __init__(self, pid: int, reaper: bool, first: ThreadInfo) -> None:
        self.pid = pid
        self.reaper = reaper
        self.alive = 1
        self.threads: list[ThreadInfo] = [first]

    def add(self, thread: ThreadInfo, main: bool) -> None:
        if main:
            self.threads.insert(0, thread)
        else:
            self.threads.append(thread)
        self.alive += 1

    def first(self) -> ThreadInfo | None:
        for thread in self.threads:
            return thread
        return None


class ThreadInfo:
    """One thread as libsinsp's thread table keeps it (mutable: parsers update it in place)."""

    __slots__ = (
        "args", "cap_effective", "cap_inheritable", "cap_permitted", "cgroups", "children",
        "clone_ts", "cmdline", "comm", "container_id", "cwd", "env", "env_text", "exe",
        "exe_from_memfd", "exe_ino", "exe_ino_ctime", "exe_ino_ctime_duration_clone_ts",
        "exe_ino_ctime_duration_pidns_start", "exe_ino_mtime", "exe_lower_layer",
        "exe_upper_layer", "exe_writable", "exepath", "fdlimit", "fds", "flags", "gid", "group",
        "lastevent_fd", "lastevent_type", "lastexec_ts", "loginuid", "pfmajor", "pfminor",
        "pgid", "pid", "pidns_init_start_ts", "ptid", "reaper_tid", "removed", "root", "sid",
        "stored_enter", "tid", "tty", "uid", "vmrss", "vmsize", "vmswap", "vpgid", "vpid", "vtid",
    )  # fmt: skip

    def __init__(self, tid: int) -> None:
        self.tid = tid
        self.pid = -1
        self.ptid = -1
        self.sid = -1
        self.vpgid = -1
        self.pgid = -1
        self.vtid = -1
        self.vpid = -1
        self.comm = ""
        self.exe = ""
        self.exepath = ""
        self.args: tuple[str, ...] = ()
        self.cmdline = ""
        self.env: tuple[str, ...] = ()
        self.env_text = ""
        self.cwd = ""
        self.root = ""
        self.uid = c.UID_NONE
        self.gid = c.UID_NONE
        self.loginuid = c.UID_NONE
        self.flags = c.CL_NAME_CHANGED
        self.tty = 0
        self.fdlimit = -1
        self.vmsize = self.vmrss = self.vmswap = 0
        self.pfmajor = self.pfminor = 0
        self.cap_inheritable = self.cap_permitted = self.cap_effective = 0
        self.exe_writable = self.exe_upper_layer = self.exe_lower_layer = False
        self.exe_from_memfd = False
        self.exe_ino = self.exe_ino_ctime = self.exe_ino_mtime = 0
        self.exe_ino_ctime_duration_clone_ts = 0
        self.exe_ino_ctime_duration_pidns_start = 0
        self.clone_ts = 0
        self.lastexec_ts = 0
        self.pidns_init_start_ts = 0
        self.cgroups: tuple[tuple[str, str], ...] = ()
        self.container_id = ""
        self.fds: dict[int, FdInfo] = {}
        self.group: ThreadGroup | None = None
        self.children: dict[int, ThreadInfo] = {}
        self.reaper_tid = -1
        self.lastevent_fd = 0
        self.lastevent_type = ""
        self.stored_enter: object | None = None
        self.removed = False

    # --- identity ---------------------------------------------------------------------------

    def is_main_thread(self) -> bool:
        return self.tid == self.pid or bool(self.flags & c.CL_IS_MAIN_THREAD)

    def is_invalid(self) -> bool:
        return self.tid < 0 or self.pid < 0 or self.ptid < 0

    def is_dead(self) -> bool:
        return bool(self.flags & c.CL_CLOSED)

    def is_in_pid_namespace(self) -> bool:
        return bool(self.flags & c.CL_CHILD_IN_PIDNS) or (self.tid != self.vtid and self.vtid >= 0)

    def main_thread(self) -> ThreadInfo | None:
        if self.tid == self.pid or self.flags & c.CL_IS_MAIN_THREAD:
            return self
        group = self.group
        if group is None:
            return None
        first = group.first()
        if first is None or not first.is_main_thread():
            return None
        return first

    # --- command line and environment ------------------------------------------------------

    def set_args(self, args: tuple[str, ...]) -> None:
        self.args = args
        self._refresh_cmdline()

    def set_comm(self, comm: str) -> None:
        self.comm = comm
        self._refresh_cmdline()

    def _refresh_cmdline(self) -> None:
        # proc.cmdline is the name followed by the arguments, computed once per change.
        self.cmdline = " ".join((self.comm, *self.args)) if self.args else self.comm

    def set_env(self, env: tuple[str, ...]) -> None:
        self.env = env
        self.env_text = " ".join(env)

    def process_env(self) -> tuple[str, ...]:
        main = self.main_thread()
        return main.env if main is not None else self.env

    def process_env_text(self) -> str:
        main = self.main_thread()
        return main.env_text if main is not None else self.env_text

    def env_value(self, name: str) -> str:
        """The value of one environment variable (trimmed of spaces), ``""`` when unset."""
        prefix = name + "="
        for item in self.process_env():
            if len(item) > len(prefix) and item.startswith(prefix):
                return item[len(prefix) :].strip(" ")
        return ""

    # --- fds and cwd -----------------------------------------------------------------------

    def fd_table(self) -> dict[int, FdInfo] | None:
        if not self.flags & c.CL_CLONE_FILES:
            return self.fds
        main = self.main_thread()
        return main.fds if main is not None else None

    def get_fd(self, fd: int) -> FdInfo | None:
        if fd < 0:
            return None
        table = self.fd_table()
        if table is None:
            return None
        info = table.get(fd)
        if info is not None:
            # Its current name is its "old" name for this event's name_changed check.
            info.oldname = info.name
        return info

    def add_fd(self, fd: int, info: FdInfo) -> FdInfo | None:
        table = self.fd_table()
        if table is None:
            return None
        table[fd] = info
        self.lastevent_fd = fd
        return info

    def get_cwd(self) -> str:
        main = self.main_thread()
        return main.cwd if main is not None else "./"

    def update_cwd(self, path: str) -> None:
        main = self.main_thread()
        if main is None:
            return
        # libsinsp joins against this thread's own cwd field, then stores it on the main thread.
        cwd = concatenate_paths(self.cwd, path)
        if not cwd or cwd[-1] != "/":
            cwd += "/"
        main.cwd = cwd

    def cgroup(self, subsys: str) -> str | None:
        for name, path in self.cgroups:
            if name == subsys:
                return path
        return None

    def __repr__(self) -> str:
        return f"ThreadInfo(tid={self.tid}, pid={self.pid}, ptid={self.ptid}, comm={self.comm!r})"


def placeholder_thread(tid: int) -> ThreadInfo:
    """The entry libsinsp invents for a thread it never saw (no /proc in replay)."""
    thread = ThreadInfo(tid)
    thread.comm = NA
    thread.exe = NA
    thread.cmdline = NA
    thread.reaper_tid = -1
    return thread


def parse_cgroups(items: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``subsys=path`` entries as libsinsp stores them (subsystem aliases normalised).

    An entry without ``=`` makes libsinsp drop the whole list it was given, keeping the old one;
    that is reported as ``None`` by :func:`parse_cgroups_or_none`.
    """
    result = parse_cgroups_or_none(items)
    return result if result is not None else ()


def parse_cgroups_or_none(items: tuple[str, ...]) -> tuple[tuple[str, str], ...] | None:
    pairs: list[tuple[str, str]] = []
    for item in items:
        eq = item.find("=")
        if eq < 0:
            return None
        subsys, path = item[:eq], item[eq + 1 :]
        subsys = subsys.replace("_cgroup", "", 1)
        if subsys == "perf":
            subsys = "perf_event"
        elif subsys == "mem":
            subsys = "memory"
        elif subsys == "io":
            subsys = "blkio"
        pairs.append((subsys, path))
    return tuple(pairs)


class ThreadTable:
    """All known threads by tid, with thread groups, parent links and reaping."""

    def __init__(self) -> None:
        self.threads: dict[int, ThreadInfo] = {}
        self.groups: dict[int, ThreadGroup] = {}

    def __len__(self) -> int:
        return len(self.threads)

    def get(self, tid: int) -> ThreadInfo | None:
        return self.threads.get(tid)

    def add(self, thread: ThreadInfo, with_dependencies: bool = True) -> ThreadInfo:
        if with_dependencies:
            self.link(thread)
        old = self.threads.get(thread.tid)
        if old is not None and old is not thread:
            old.removed = True
        self.threads[thread.tid] = thread
        return thread

    def link(self, thread: ThreadInfo) -> None:
        """Join the thread to its group and its parent (``create_thread_dependencies``)."""
        if thread.is_invalid() or thread.group is not None:
            return
        group = self.groups.get(thread.pid)
        if group is None or not group.threads:
            group = ThreadGroup(thread.pid, thread.pid == 1 or thread.vpid == 1, thread)
            self.groups[thread.pid] = group
        else:
            group.add(thread, thread.is_main_thread())
        thread.group = group
        if thread.pid == 1:
            return
        parent = self.threads.get(thread.ptid)
        if parent is None or parent.is_invalid():
            thread.ptid = 0
            return
        adopt(parent, thread)

    def remove(self, tid: int) -> None:
        """Remove a thread, reparenting its children (``remove_thread``)."""
        thread = self.threads.get(tid)
        if thread is None:
            return
        group = thread.group
        if thread.is_invalid() or group is None:
            self._erase(tid)
            return
        if not thread.is_dead():
            group.alive -= 1
            thread.flags |= c.CL_CLOSED
        if thread.children:
            reaper: ThreadInfo | None = None
            if thread.reaper_tid > 0:
                reaper = self.threads.get(thread.reaper_tid)
            if reaper is None or reaper.is_invalid():
                reaper = self.find_new_reaper(thread)
            if reaper is not None:
                thread.reaper_tid = reaper.tid
                if reaper.pid != thread.pid and reaper.group is not None:
                    reaper.group.reaper = True
            for child in list(thread.children.values()):
                if child.removed:
                    continue
                if reaper is None:
                    child.ptid = 0
                else:
                    adopt(reaper, child)
            thread.children.clear()
        if group.alive == 0:
            self.groups.pop(thread.pid, None)
            main = self.threads.get(thread.pid)
            if main is not None and main.group is group:
                self._erase(thread.pid)
        if not thread.is_main_thread():
            self._erase(tid)

    def _erase(self, tid: int) -> None:
        thread = self.threads.pop(tid, None)
        if thread is None:
            return
        thread.removed = True
        # Children lists hold weak references in libsinsp: an erased thread simply vanishes.
        self._drop_child_link(thread)
        group = thread.group
        if group is not None:
            with contextlib.suppress(ValueError):
                group.threads.remove(thread)

    def _drop_child_link(self, thread: ThreadInfo) -> None:
        parent = self.threads.get(thread.ptid)
        if parent is not None and parent.children.get(thread.tid) is thread:
            del parent.children[thread.tid]

    def find_new_reaper(self, thread: ThreadInfo) -> ThreadInfo | None:
        group = thread.group
        if group is not None and group.alive > 0:
            for other in group.threads:
                if not other.removed and not other.is_dead() and other is not thread:
                    return other
        seen = {thread.tid}
        parent = self.threads.get(thread.ptid)
        while parent is not None:
            if parent.tid in seen:
                break
            seen.add(parent.tid)
            if parent.is_in_pid_namespace() != thread.is_in_pid_namespace():
                break
            pgroup = parent.group
            if pgroup is not None and pgroup.reaper and pgroup.alive > 0:
                for other in pgroup.threads:
                    if not other.removed and not other.is_dead():
                        return other
            parent = self.threads.get(parent.ptid)
        return None

    def ancestor(self, thread: ThreadInfo, level: int) -> ThreadInfo | None:
        """The main thread ``level`` generations up (0 is the process itself)."""
        current = thread.main_thread()
        for _ in range(level):
            if current is None:
                return None
            parent = self.threads.get(current.ptid)
            if parent is None:
                return None
            current = parent.main_thread()
        return current

    def parent(self, thread: ThreadInfo) -> ThreadInfo | None:
        return self.ancestor(thread, 1)

    def ancestors(self, thread: ThreadInfo) -> Iterator[ThreadInfo]:
        """The parent chain by ``ptid`` (not main threads), stopping at a loop, as libsinsp's
        ``traverse_parent_state`` walks it."""
        slow = self.threads.get(thread.ptid)
        fast = self.threads.get(slow.ptid) if slow is not None else None
        while slow is not None and slow.tid != -1:
            yield slow
            slow = self.threads.get(slow.ptid)
            for _ in range(2):
                fast = self.threads.get(fast.ptid) if fast is not None else None
                if slow is not None and (slow is fast or slow.tid == slow.ptid):
                    return

    def oldest_matching(self, thread: ThreadInfo, key: str, virtual: bool) -> ThreadInfo | None:
        """The session/group leader for ``sid``/``vpgid``/``pgid`` fields
        (``get_oldest_matching_ancestor``)."""
        wanted = getattr(thread, key)
        if wanted == -1:
            return None
        if not virtual or not thread.is_in_pid_namespace():
            leader = self.threads.get(wanted)
            if leader is not None:
                return leader
        found: ThreadInfo | None = None
        for ancestor in self.ancestors(thread):
            if getattr(ancestor, key) != wanted:
                break
            found = ancestor
        return found


def adopt(parent: ThreadInfo, child: ThreadInfo) -> None:
    parent.children[child.tid] = child
    child.ptid = parent.tid
