"""The scenario timeline: each event entry is one action, expanded into the syscalls it takes.

- ``syscall: NAME`` with ``args`` by the event table's parameter names and ``res`` (an errno name
  like ``ENOENT``, a number, default success). Flags take names (``O_RDONLY|O_CREAT`` or a list),
  modes are octal text (``644``, ``04755``) or ``S_*`` names, addresses ``1.2.3.4:443``,
  ``[::1]:53`` or ``/unix/path``, tuples ``src->dst``, data text, ``{hex: ...}`` or ``!!binary``;
  dirfds default to ``AT_FDCWD``.
- ``spawn``: clone (or ``via: fork|vfork|clone3``) with the parent's and the child's exits, then
  execve in the child. Takes the process fields of a declaration (``exe``, ``args``, ``user``,
  ``tty``, ``container`` to start the child in a container, ...) plus ``pid``, ``thread: true``
  (a thread, no execve), ``flags``, ``res`` (a failed clone) and ``exec_res`` (a failed execve).
- ``exec``: execve in place (``via: execveat`` with ``dirfd``/``at_flags``); ``res`` fails it.
- ``exit``: procexit; a code, or ``{code, signal, core}``. A main thread takes its threads along.
- ``open``, ``read_file``, ``write_file``: a path or ``{path, flags, mode, via, dirfd, fd, res,
  data, append}``; the last two also read or write ``data`` and close the fd.
- ``connect``: ``host:port`` or ``{to, from, proto: tcp|udp, fd, res}`` (socket + connect).
  ``listen``: ``{addr, proto, fd, backlog}`` (socket + bind + listen). ``accept``: the client
  address or ``{from, fd, new_fd, via, res}``. ``send``/``recv``: ``{fd, data, to|from, via}``.
- ``close: FD``, ``dup: FD`` or ``{fd, to, via, flags}``, ``setuid``/``setgid: NAME``,
  ``chdir: PATH``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any

from falcorules_ci.fields.event_table import event_table
from falcorules_ci.sources.event import SockAddr, SockTuple
from falcorules_ci.sources.scenario_args import convert, parse_args
from falcorules_ci.sources.scenario_decl import container_cgroups, default_caps, resolve_gid, resolve_uid
from falcorules_ci.sources.scenario_emit import SyscallEvents, Timeline, single_event, syscall_events
from falcorules_ci.sources.scenario_procs import (
    THREAD_CLONE_FLAGS,
    apply_image,
    job_leader,
    pidns_start,
    read_image,
)
from falcorules_ci.sources.scenario_syscalls import Call, record
from falcorules_ci.sources.scenario_tables import (
    FLAG_TABLES,
    PPM_AF_UNIX,
    PPM_AT_FDCWD,
    PPM_CL_CHILD_IN_PIDNS,
    PPM_CL_CLONE_CHILD_CLEARTID,
    PPM_CL_CLONE_CHILD_SETTID,
    PPM_CL_CLONE_NEWCGROUP,
    PPM_CL_CLONE_NEWIPC,
    PPM_CL_CLONE_NEWNET,
    PPM_CL_CLONE_NEWNS,
    PPM_CL_CLONE_NEWPID,
    PPM_CL_CLONE_NEWUTS,
    PPM_CL_CLONE_PARENT_SETTID,
    PPM_CL_CLONE_SETTLS,
    PPM_CL_CLONE_SYSVSEM,
    PPM_CL_CLONE_VFORK,
    PPM_CL_CLONE_VM,
    PPM_O_APPEND,
    PPM_O_CREAT,
    PPM_O_RDONLY,
    PPM_O_TRUNC,
    PPM_O_WRONLY,
    SOCK_DGRAM,
    SOCK_STREAM,
)
from falcorules_ci.sources.scenario_values import (
    bytes_value,
    duration,
    endpoint,
    errno_value,
    fd_value,
    flags_value,
    int_value,
    mode_value,
    signal_value,
    time_or_offset,
    tty_value,
)
from falcorules_ci.sources.scenario_world import Thread, World
from falcorules_ci.sources.scenario_yaml import Cursor

# execve parameter names -> exec action keys.
_RAW_EXEC_ARGS = {
    "filename": "exe", "pathname": "exe", "dirfd": "dirfd", "flags": "at_flags", "args": "args", "env": "env",
    "exe": "argv0", "comm": "comm", "trusted_exepath": "exepath", "uid": "user", "gid": "group",
    "loginuid": "loginuid", "tty": "tty",
}
_CLONE_DEFAULTS = {
    "clone": PPM_CL_CLONE_CHILD_CLEARTID | PPM_CL_CLONE_CHILD_SETTID,
    "fork": 0,
    "vfork": PPM_CL_CLONE_VM | PPM_CL_CLONE_VFORK,
    "clone3": PPM_CL_CLONE_VM | PPM_CL_CLONE_VFORK,
}
_THREAD_FLAGS = THREAD_CLONE_FLAGS | PPM_CL_CLONE_SYSVSEM | PPM_CL_CLONE_SETTLS | PPM_CL_CLONE_PARENT_SETTID | (
    PPM_CL_CLONE_CHILD_CLEARTID)
_NEW_CONTAINER_FLAGS = PPM_CL_CLONE_NEWNS | PPM_CL_CLONE_NEWUTS | PPM_CL_CLONE_NEWIPC | PPM_CL_CLONE_NEWCGROUP


def nul_join(items: tuple[str, ...]) -> bytes:
    """libscap's list encoding: each string NUL-terminated."""
    return b"".join(item.encode("utf-8", "surrogateescape") + b"\x00" for item in items)


def process_values(thread: Thread) -> dict[str, Any]:
    """The process parameters clone and execve exits carry, from the thread's current state."""
    return {
        "exe": thread.argv0, "args": nul_join(thread.args), "tid": thread.tid, "pid": thread.pid,
        "ptid": thread.ptid, "cwd": thread.cwd, "fdlimit": thread.fdlimit, "pgft_maj": 0,
        "pgft_min": thread.pgft_min, "vm_size": thread.vm_size, "vm_rss": thread.vm_rss, "vm_swap": 0,
        "comm": thread.comm, "cgroups": nul_join(thread.cgroups), "env": nul_join(thread.env), "tty": thread.tty,
        "vpgid": thread.vpgid, "loginuid": thread.loginuid, "flags": thread.exe_flags,
        "cap_inheritable": thread.cap_inheritable, "cap_permitted": thread.cap_permitted,
        "cap_effective": thread.cap_effective, "exe_ino": thread.exe_ino, "exe_ino_ctime": thread.exe_ctime,
        "exe_ino_mtime": thread.exe_mtime, "uid": thread.uid, "trusted_exepath": thread.exepath,
        "pgid": thread.pgid, "gid": thread.gid, "vtid": thread.vtid, "vpid": thread.vpid,
        "pidns_init_start_ts": thread.pidns_init_start_ts,
    }


class Builder:
    """Runs a scenario's events against its world, appending to the timeline."""

    def __init__(self, world: World, timeline: Timeline) -> None:
        self.world = world
        self.timeline = timeline
        self._actions: dict[str, Callable[[Thread, Cursor, Cursor], None]] = {
            "syscall": self._syscall, "spawn": self._spawn, "exec": self._exec, "exit": self._exit,
            "open": self._open, "read_file": self._read_file, "write_file": self._write_file,
            "connect": self._connect, "listen": self._listen, "accept": self._accept, "send": self._send,
            "recv": self._recv, "close": self._close, "dup": self._dup, "setuid": self._setuid,
            "setgid": self._setgid, "chdir": self._chdir,
        }

    # --- the event entry -------------------------------------------------------------------
    def run(self, events: Cursor | None) -> None:
        for entry in events.elements() if events else ():
            self.event(entry)

    def event(self, entry: Cursor) -> None:
        thread = self._thread(entry)
        self._begin(entry)
        actions = [key for key in self._actions if entry.has(key)]
        if len(actions) != 1:
            entry.fail(f"{entry.where}: an event takes exactly one action ({', '.join(self._actions)})")
        action = actions[0]
        if action != "syscall" and (entry.has("args") or entry.has("res")):
            entry.fail(f"{entry.where}: args and res belong to syscall events; put them inside {action}")
        self._actions[action](thread, entry, entry.child(action))

    def _thread(self, entry: Cursor) -> Thread:
        key = entry.get("tid") or entry.get("pid")
        if key is None:
            entry.fail(f"{entry.where}: an event needs the pid (or tid) that makes it")
        tid = int_value(key, minimum=1)
        thread = self.world.threads.get(tid)
        if thread is None:
            key.fail(f"{key.where}: no process {tid} at this point; declare it under processes or spawn it")
        if not thread.alive:
            key.fail(f"{key.where}: process {tid} has already exited")
        return thread

    def _begin(self, entry: Cursor) -> None:
        at: int | None = None
        if entry.has("at"):
            at = time_or_offset(entry.child("at"), self.timeline.start_ts)
            if at < self.timeline.now:
                entry.child("at").fail(f"{entry.where}.at: events must be in time order; this one is before "
                                       "the previous event")
        if entry.has("after"):
            if at is not None:
                entry.fail(f"{entry.where}: give at or after, not both")
            delay = duration(entry.child("after"))
            if delay < 0:
                entry.child("after").fail(f"{entry.where}.after: a delay cannot be negative")
            at = self.timeline.now + delay
        self.timeline.begin(at)

    def _call(self, thread: Thread, name: str, cur: Cursor, values: dict[str, Any] | None = None,
              res: int | None = None) -> Call:
        events = syscall_events(name)
        assert events is not None, name
        return Call(self.world, thread, events, dict(values or {}), res, cur, cur.span)

    def _record(self, call: Call) -> Call:
        record(call, self.timeline)
        return call

    # --- syscall ---------------------------------------------------------------------------
    def _syscall(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        name = body.text.strip()
        if name in ("clone", "fork", "vfork", "clone3"):
            body.fail(f"{body.where}: use a spawn action for {name} (it records the parent and child sides)")
        if name == "procexit":
            body.fail(f"{body.where}: use an exit action for procexit")
        if name in ("execve", "execveat"):
            self._raw_exec(thread, entry, name)
            return
        events = syscall_events(name)
        if events is None:
            body.fail(f"{body.where}: {_unknown_syscall(name)}")
        values = parse_args(self.world, thread, events, entry.get("args"))
        res = self._res(thread, events, entry)
        self._record(Call(self.world, thread, events, values, res, entry, entry.span))

    def _res(self, thread: Thread, events: SyscallEvents, entry: Cursor) -> int | None:
        res_cur = entry.get("res")
        if res_cur is None:
            return None
        first = events.exit.params[0] if events.exit.params else None
        if first is None or first.type in ("PT_ERRNO", "PT_FD", "PT_PID") or isinstance(res_cur.value, str):
            return errno_value(res_cur)
        value = convert(self.world, thread, events.name, first.name, first.type, res_cur)
        return int(value)

    def _raw_exec(self, thread: Thread, entry: Cursor, name: str) -> None:
        """``syscall: execve`` with table parameter names, recorded like an exec action."""
        args = entry.get("args")
        fake: dict[str, Any] = {"via": name}
        for key, item in args.items() if args else ():
            target = "exe_flags" if (key, name) == ("flags", "execve") else _RAW_EXEC_ARGS.get(key)
            if target is None or (key == "dirfd" and name == "execve"):
                known = ", ".join(k for k in _RAW_EXEC_ARGS if name == "execveat" or k != "dirfd")
                item.fail(f"{item.where}: {name} takes {known} here (use an exec action for more)", key=True)
            fake[target] = item.value
        if "exe" not in fake:
            (args or entry).fail(f"{(args or entry).where}: {name} needs args.filename")
        if entry.has("res"):
            fake["res"] = entry.child("res").value
        self._do_exec(thread, Cursor(fake, (*entry.path, "args"), entry.doc))

    # --- processes -------------------------------------------------------------------------
    def _spawn(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        if not isinstance(body.value, dict):
            body.fail(f"{body.where}: spawn takes a mapping with at least exe (or thread: true)")
        as_thread = bool(body.value.get("thread", False))
        via = body.child("via").text if body.has("via") else "clone"
        if via not in _CLONE_DEFAULTS:
            body.child("via").fail(f"{body.where}.via: one of {', '.join(_CLONE_DEFAULTS)}")
        events = syscall_events(via)
        assert events is not None
        flags = _THREAD_FLAGS if as_thread else _CLONE_DEFAULTS[via]
        if body.has("flags"):
            flags = flags_value(body.child("flags"), FLAG_TABLES["clone_flags"])
        target = self._target_container(thread, body)
        if target is not thread.container and target is not None:
            flags |= _NEW_CONTAINER_FLAGS | (0 if target.info.host_network else PPM_CL_CLONE_NEWNET) | (
                0 if target.info.host_pid else PPM_CL_CLONE_NEWPID)
        parent_values = process_values(thread)
        parent_values["flags"] = flags | (PPM_CL_CHILD_IN_PIDNS if thread.in_pidns else 0)
        if body.has("res"):
            res = errno_value(body.child("res"))
            if res >= 0:
                body.child("res").fail(f"{body.where}.res: give the error of a failed clone, e.g. EAGAIN")
            parent_values["res"] = res
            self.timeline.pair(thread, events, parent_values, body.span)
            return
        child = self._clone(thread, body, as_thread, target, flags)
        parent_values["res"] = child.tid
        self.timeline.pair(thread, events, parent_values, body.span)
        child_values = process_values(child)
        child_values.update(res=0, flags=flags | (PPM_CL_CHILD_IN_PIDNS if child.in_pidns else 0))
        self.timeline.emit(child.tid, events.exit, child_values, body.span)
        if not as_thread:
            if not body.has("exe"):
                body.fail(f"{body.where}: spawn needs exe (or thread: true)")
            self._do_exec(child, body, res_key="exec_res")

    def _target_container(self, thread: Thread, body: Cursor) -> Any:
        if not body.has("container"):
            return thread.container
        key = body.child("container")
        if key.text in ("host", ""):
            return None
        container = self.world.container(key.text)
        if container is None:
            key.fail(f"{key.where}: no container {key.text!r} is declared")
        return container

    def _clone(self, parent: Thread, body: Cursor, as_thread: bool, target: Any, flags: int) -> Thread:
        world = self.world
        tid = int_value(body.child("pid"), minimum=1) if body.has("pid") else (
            int_value(body.child("tid"), minimum=1) if body.has("tid") else world.free_pid(
                max(world.threads) + 1))
        existing = world.threads.get(tid)
        if existing is not None and existing.alive:
            (body.get("pid") or body.get("tid") or body).fail(f"{body.where}: pid {tid} is already running")
        now = self.timeline.now
        child = dataclasses.replace(
            parent, tid=tid, pid=parent.pid if as_thread else tid, ptid=parent.ptid if as_thread else parent.pid,
            fds=parent.fds if as_thread else dict(parent.fds), clone_ts=now, clone_flags=flags, alive=True,
            env=parent.env, args=parent.args)
        new_session = body.has("tty") and tty_value(body.child("tty")) not in (0, parent.tty)
        if target is not parent.container:
            child.container = target
            child.cgroups = container_cgroups(target)
            if target is not None and not target.created_ts:
                target.created_ts = now
            child.cap_inheritable, child.cap_permitted, child.cap_effective = default_caps(child.uid, target)
            new_session = True
        if not as_thread and (new_session or job_leader(parent)):
            child.pgid = tid
            if new_session:
                child.sid = tid
        container = child.container
        if container is not None and container.own_pidns:
            child.vtid = container.take_vpid()
            if not as_thread:
                child.vpid = child.vtid
                if child.vpid == 1:
                    container.init_pid = tid
        else:
            child.vtid = tid
            child.vpid = child.pid if as_thread else tid
        if child.pgid == tid:
            child.vpgid = child.vpid
        child.pidns_init_start_ts = pidns_start(world, container)
        if body.has("cwd") and not as_thread:
            child.cwd = body.child("cwd").text
        world.threads[tid] = child
        world.exited.pop(tid, None)
        return child

    def _exec(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        if isinstance(body.value, str):
            body = Cursor({"exe": body.value}, body.path, body.doc)
        self._do_exec(thread, body)

    def _do_exec(self, thread: Thread, body: Cursor, res_key: str = "res") -> None:
        via = body.child("via").text if body.has("via") and body.child("via").text in ("execve", "execveat") \
            else "execve"
        events = syscall_events(via)
        assert events is not None
        image = read_image(self.world, body, thread)
        res = errno_value(body.child(res_key)) if body.has(res_key) else 0
        enter: dict[str, Any] = {"filename": image.filename}
        if via == "execveat":
            dirfd = fd_value(body.child("dirfd")) if body.has("dirfd") else PPM_AT_FDCWD
            at_flags = flags_value(body.child("at_flags"), FLAG_TABLES["execveat_flags"]) if body.has(
                "at_flags") else 0
            enter = {"dirfd": dirfd, "pathname": image.filename, "flags": at_flags}
        if res < 0:
            values = process_values(thread)
            values.update(exe=image.argv0, args=nul_join(image.args), env=nul_join(image.env))
        else:
            apply_image(self.world, thread, body, image, self.timeline.now)
            values = process_values(thread)
        values.update(res=res, filename=image.filename)
        call = Call(self.world, thread, events, values, res, body, body.span)
        record(call, self.timeline, enter_values=enter)

    def _exit(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        code, sig, core = 0, 0, False
        if isinstance(body.value, dict):
            code = int_value(body.child("code"), minimum=0) if body.has("code") else 0
            sig = signal_value(body.child("signal")) if body.has("signal") else 0
            core = bool(body.value.get("core", False))
        elif body.value is not None:
            code = int_value(body, minimum=0)
        status = sig | (0x80 if core else 0) if sig else (code & 0xFF) << 8
        group = [thread] if thread.tid != thread.pid else [
            t for t in self.world.threads.values() if t.pid == thread.pid and t.alive and t.tid != thread.tid
        ] + [thread]
        info = single_event("procexit")
        for dying in group:
            reaper = self._reaper(dying)
            values = {"status": status, "ret": (status >> 8) & 0xFF, "sig": sig, "core": int(core),
                      "reaper_tid": reaper}
            self.timeline.emit(dying.tid, info, values, body.span)
            dying.alive = False
            self.world.exited[dying.tid] = self.timeline.now
            for child in self.world.threads.values():
                if child.ptid == dying.tid and child.alive and child.pid != dying.pid:
                    child.ptid = reaper or 1

    def _reaper(self, dying: Thread) -> int:
        siblings = [t for t in self.world.threads.values() if t.pid == dying.pid and t.alive and t is not dying]
        children = [t for t in self.world.threads.values() if t.ptid == dying.tid and t.alive and t.pid != dying.pid]
        # The drivers only look for a reaper when the dying task has children to hand over.
        if not children:
            return 0
        if siblings:
            return siblings[0].tid
        container = dying.container
        if container is not None and container.own_pidns and container.init_pid and container.init_pid != dying.pid:
            return container.init_pid
        return 1

    # --- files -----------------------------------------------------------------------------
    def _open_values(self, body: Cursor, default_flags: int) -> tuple[str, dict[str, Any], int | None]:
        if isinstance(body.value, str):
            return "openat", {"name": body.value, "flags": default_flags}, None
        if not isinstance(body.value, dict) or not body.has("path"):
            body.fail(f"{body.where}: give a path, or a mapping with path")
        via = body.child("via").text if body.has("via") else "openat"
        if via not in ("open", "openat", "openat2", "creat"):
            body.child("via").fail(f"{body.where}.via: one of open, openat, openat2, creat")
        values: dict[str, Any] = {"name": body.child("path").text}
        if via != "creat":
            values["flags"] = flags_value(body.child("flags"), FLAG_TABLES["file_flags"]) if body.has(
                "flags") else default_flags
        if body.has("mode"):
            values["mode"] = mode_value(body.child("mode"))
        if body.has("dirfd") and via in ("openat", "openat2"):
            values["dirfd"] = fd_value(body.child("dirfd"))
        res = None
        if body.has("res"):
            res = errno_value(body.child("res"))
        elif body.has("fd"):
            res = int_value(body.child("fd"), minimum=0)
        return via, values, res

    def _open(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        via, values, res = self._open_values(body, PPM_O_RDONLY)
        self._record(self._call(thread, via, body, values, res))

    def _read_file(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        via, values, res = self._open_values(body, PPM_O_RDONLY)
        opened = self._record(self._call(thread, via, body, values, res))
        if not opened.ok:
            return
        data = bytes_value(body.child("data")) if body.has("data") else b""
        self._record(self._call(thread, "read", body, {"fd": opened.result, "data": data}))
        self._record(self._call(thread, "close", body, {"fd": opened.result}))

    def _write_file(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        append = isinstance(body.value, dict) and bool(body.value.get("append", False))
        default = PPM_O_WRONLY | PPM_O_CREAT | (PPM_O_APPEND if append else PPM_O_TRUNC)
        via, values, res = self._open_values(body, default)
        if via != "creat" and values["flags"] & PPM_O_CREAT:
            values.setdefault("mode", 0o644)
        opened = self._record(self._call(thread, via, body, values, res))
        if not opened.ok:
            return
        data = bytes_value(body.child("data")) if body.has("data") else b""
        self._record(self._call(thread, "write", body, {"fd": opened.result, "data": data}))
        self._record(self._call(thread, "close", body, {"fd": opened.result}))

    def _close(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        self._record(self._call(thread, "close", body, {"fd": fd_value(body)}))

    def _chdir(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        self._record(self._call(thread, "chdir", body, {"path": body.text}))

    def _setuid(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        uid = resolve_uid(self.world, body, thread.container)
        self._record(self._call(thread, "setuid", body, {"uid": uid}))

    def _setgid(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        gid = resolve_gid(self.world, body, thread.container)
        self._record(self._call(thread, "setgid", body, {"gid": gid}))

    def _dup(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        if not isinstance(body.value, dict):
            body = Cursor({"fd": body.value}, body.path, body.doc)
        old = fd_value(body.child("fd"))
        if body.has("to"):
            via = body.child("via").text if body.has("via") else "dup2"
            if via not in ("dup2", "dup3"):
                body.child("via").fail(f"{body.where}.via: dup2 or dup3 when duplicating onto an fd")
            values: dict[str, Any] = {"oldfd": old, "newfd": fd_value(body.child("to"))}
            if body.has("flags"):
                values["flags"] = flags_value(body.child("flags"), FLAG_TABLES["file_flags"])
            self._record(self._call(thread, via, body, values))
        else:
            self._record(self._call(thread, "dup", body, {"oldfd": old}))

    # --- network ---------------------------------------------------------------------------
    def _socket(self, thread: Thread, body: Cursor, family: int, udp: bool, fd: int | None) -> int:
        if fd is not None and fd in thread.fds:
            if not thread.fds[fd].is_socket:
                body.fail(f"{body.where}: fd {fd} is not a socket")
            return fd
        values = {"domain": family, "type": SOCK_DGRAM if udp else SOCK_STREAM, "proto": 0}
        return self._record(self._call(thread, "socket", body, values, fd)).result

    def _endpoint(self, body: Cursor, key: str) -> tuple[int, str, int, str]:
        cur = body if not isinstance(body.value, dict) else body.child(key)
        return endpoint(cur, names=self.world.dns)

    def _udp(self, body: Cursor) -> bool:
        proto = body.child("proto").text.lower() if isinstance(body.value, dict) and body.has("proto") else "tcp"
        if proto not in ("tcp", "udp"):
            body.child("proto").fail(f"{body.where}.proto: tcp or udp")
        return proto == "udp"

    def _opt_fd(self, body: Cursor, key: str = "fd") -> int | None:
        return fd_value(body.child(key)) if isinstance(body.value, dict) and body.has(key) else None

    def _connect(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        family, addr, port, path = self._endpoint(body, "to")
        fd = self._socket(thread, body, family, self._udp(body), self._opt_fd(body))
        if isinstance(body.value, dict) and body.has("from"):
            _, laddr, lport, _ = endpoint(body.child("from"), names=self.world.dns)
            thread.fds[fd].local = (laddr, lport)
        res = errno_value(body.child("res")) if isinstance(body.value, dict) and body.has("res") else None
        sockaddr = SockAddr(family=family, addr=addr, port=port, path=path)
        self._record(self._call(thread, "connect", body, {"fd": fd, "addr": sockaddr}, res))

    def _listen(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        family, addr, port, path = self._endpoint(body, "addr")
        udp = self._udp(body)
        fd = self._socket(thread, body, family, udp, self._opt_fd(body))
        sockaddr = SockAddr(family=family, addr=addr, port=port, path=path)
        self._record(self._call(thread, "bind", body, {"fd": fd, "addr": sockaddr}))
        if not udp:
            backlog = int_value(body.child("backlog")) if isinstance(body.value, dict) and body.has(
                "backlog") else 4096
            self._record(self._call(thread, "listen", body, {"fd": fd, "backlog": backlog}))

    def _accept(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        family, addr, port, path = self._endpoint(body, "from")
        listening = self._opt_fd(body)
        if listening is None:
            candidates = [fd for fd, e in sorted(thread.fds.items()) if e.listening and e.family == family]
            if not candidates:
                body.fail(f"{body.where}: pid {thread.pid} has no listening socket; add a listen action first")
            listening = candidates[-1]
        server = thread.fds.get(listening)
        if server is None or not server.listening:
            body.fail(f"{body.where}: fd {listening} is not a listening socket of pid {thread.pid}")
        assert server.local is not None or server.family == PPM_AF_UNIX
        via = body.child("via").text if isinstance(body.value, dict) and body.has("via") else "accept"
        if via not in ("accept", "accept4"):
            body.child("via").fail(f"{body.where}.via: accept or accept4")
        if family == PPM_AF_UNIX:
            tup = SockTuple(PPM_AF_UNIX, src_path=path, dst_path=server.unix_path)
        else:
            local_addr, local_port = server.local or ("0.0.0.0", 0)
            if local_addr in ("0.0.0.0", "::"):
                local_addr = self.world.local_ip(thread, family)
            tup = SockTuple(family, addr, port, local_addr, local_port)
        res = None
        if isinstance(body.value, dict) and body.has("res"):
            res = errno_value(body.child("res"))
        elif isinstance(body.value, dict) and body.has("new_fd"):
            res = int_value(body.child("new_fd"), minimum=0)
        self._record(self._call(thread, via, body, {"tuple": tup, "flags": 0}, res))

    def _send(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        self._transfer(thread, body, "sendto", "to")

    def _recv(self, thread: Thread, entry: Cursor, body: Cursor) -> None:
        self._transfer(thread, body, "recvfrom", "from")

    def _transfer(self, thread: Thread, body: Cursor, default_via: str, peer_key: str) -> None:
        if not isinstance(body.value, dict):
            body.fail(f"{body.where}: a mapping with fd and data")
        fd = fd_value(body.child("fd"))
        via = body.child("via").text if body.has("via") else default_via
        allowed = ("sendto", "sendmsg", "write") if default_via == "sendto" else ("recvfrom", "recvmsg", "read")
        if via not in allowed:
            body.child("via").fail(f"{body.where}.via: one of {', '.join(allowed)}")
        values: dict[str, Any] = {"fd": fd, "data": bytes_value(body.child("data")) if body.has("data") else b""}
        entry = thread.fds.get(fd)
        if body.has(peer_key) and via not in ("write", "read"):
            family, addr, port, _ = endpoint(body.child(peer_key), names=self.world.dns)
            if entry is None:
                body.child("fd").fail(f"{body.where}.fd: fd {fd} is not open in pid {thread.pid}")
            local = entry.local
            if local is None or local[1] == 0:
                local = (self.world.local_ip(thread, family), self.world.ephemeral_port())
                entry.local = local
            outbound = default_via == "sendto"
            values["tuple"] = SockTuple(family, local[0], local[1], addr, port) if outbound else SockTuple(
                family, addr, port, local[0], local[1])
        self._record(self._call(thread, via, body, values))


def _unknown_syscall(name: str) -> str:
    table = event_table()
    if name in table.syscall_names:
        return (f"{name} has no event of its own in libscap (drivers record it as a generic 'syscall' "
                "event), so a scenario cannot express it")
    known = sorted({info.name for info in table.by_code.values() if syscall_events(info.name) is not None})
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown syscall {name!r}{hint}"

