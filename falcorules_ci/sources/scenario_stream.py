"""A synthetic event stream for benchmarks: a realistic mix of syscalls from a few busy processes.

Most events are of types no upstream rule indexes (read, write, futex, epoll_wait, fstat, mmap,
...), with a sprinkling of opens, execs, connects and accepts, like a real host. The stream is
self-contained (its processes are spawned at the start), deterministic for a seed, and produced
lazily with bounded state, so a million events cost no more memory than ten.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from falcorules_ci.errors import UsageError
from falcorules_ci.fields.event_table import EventInfo
from falcorules_ci.sources.event import Event, SockAddr, SockTuple
from falcorules_ci.sources.scenario_emit import full_params, single_event, syscall_events
from falcorules_ci.sources.scenario_tables import (
    PPM_AF_INET,
    PPM_AT_FDCWD,
    PPM_CL_CLONE_CHILD_CLEARTID,
    PPM_CL_CLONE_CHILD_SETTID,
    PPM_O_CLOEXEC,
    PPM_O_RDONLY,
)

DEFAULT_MIX: Mapping[str, float] = {
    "read": 26, "write": 17, "futex": 12, "epoll_wait": 8, "fstat": 7, "recvfrom": 4, "sendto": 4,
    "mmap": 3.5, "lseek": 3, "nanosleep": 2, "getdents64": 1.5, "open": 6, "close": 5, "connect": 1,
    "accept": 0.6, "exec": 0.4,
}
START_TS = 1_735_689_600_000_000_000  # 2025-01-01T00:00:00Z
_PROGRAMS = (
    ("/usr/sbin/nginx", ("-g", "daemon off;")), ("/usr/bin/python3", ("app.py",)),
    ("/usr/lib/jvm/java-17/bin/java", ("-jar", "svc.jar")), ("/usr/bin/redis-server", ("*:6379",)),
    ("/usr/local/bin/node", ("server.js",)), ("/usr/bin/postgres", ("-D", "/var/lib/postgresql/data")),
)
_FILES = ("/etc/hosts", "/etc/resolv.conf", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/var/log/app.log",
          "/proc/self/stat", "/etc/ld.so.cache", "/srv/data/cache.db", "/tmp/session.tmp")
_CHILDREN = (("/bin/sh", ("-c", "date")), ("/usr/bin/id", ()), ("/usr/bin/curl", ("-s", "http://10.0.0.9/health")))
_MAX_FDS = 24


class _Worker:
    __slots__ = ("args", "comm", "exe", "files", "listen_fd", "pid", "sockets")

    def __init__(self, pid: int, exe: str, args: tuple[str, ...]) -> None:
        self.pid = pid
        self.exe = exe
        self.args = args
        self.comm = exe.rsplit("/", 1)[-1][:15]
        self.files: dict[int, str] = {}
        self.sockets: dict[int, SockTuple] = {}
        self.listen_fd = 3

    def free_fd(self) -> int:
        fd = 4
        while fd in self.files or fd in self.sockets:
            fd += 1
        return fd


class _Stream:
    def __init__(self, mix: Mapping[str, float], seed: int, workers: int) -> None:
        unknown = sorted(set(mix) - set(DEFAULT_MIX))
        if unknown:
            raise UsageError(f"unknown stream actions: {', '.join(unknown)} (known: {', '.join(DEFAULT_MIX)})")
        if not any(weight > 0 for weight in mix.values()):
            raise UsageError("the stream mix needs a positive weight")
        self.rng = random.Random(seed)
        self.actions = [name for name, weight in mix.items() if weight > 0]
        self.weights = [mix[name] for name in self.actions]
        self.ts = START_TS
        self.num = 0
        self.next_pid = 2000
        self.workers = [_Worker(1000 + i, *_PROGRAMS[i % len(_PROGRAMS)]) for i in range(workers)]
        self.pairs = {name: syscall_events(name) for name in (
            "read", "write", "futex", "epoll_wait", "fstat", "recvfrom", "sendto", "mmap", "lseek", "nanosleep",
            "getdents64", "openat", "close", "socket", "connect", "accept", "clone", "execve")}
        self.procexit = single_event("procexit")
        self.signal = single_event("signaldeliver")
        self.handlers: dict[str, Callable[[_Worker], list[tuple[int, EventInfo, dict[str, Any]]]]] = {
            "read": self._read, "write": self._write, "futex": self._futex, "epoll_wait": self._epoll,
            "fstat": self._fstat, "recvfrom": self._recv, "sendto": self._send, "mmap": self._mmap,
            "lseek": self._lseek, "nanosleep": self._sleep, "getdents64": self._getdents, "open": self._open,
            "close": self._close, "connect": self._connect, "accept": self._accept, "exec": self._exec,
        }

    def events(self, n_events: int) -> Iterator[Event]:
        pending: list[tuple[int, EventInfo, dict[str, Any]]] = []
        for worker in self.workers:
            pending.extend(self._spawn(1, worker.pid, worker.exe, worker.args))
        while self.num < n_events:
            if not pending:
                worker = self.workers[self.rng.randrange(len(self.workers))]
                pending = self.handlers[self.rng.choices(self.actions, self.weights)[0]](worker)
            if len(pending) > n_events - self.num:
                # Never cut a pair: finish with a one-event signal delivery instead.
                target = self.workers[0].pid
                pending = [(target, self.signal, {"spid": 0, "dpid": target, "sig": 17})]
            for tid, info, params in pending:
                self.num += 1
                self.ts += self.rng.randrange(2_000, 40_000) if info.direction == ">" else self.rng.randrange(
                    500, 20_000)
                yield Event(num=self.num, ts=self.ts, tid=tid, code=info.code, name=info.name,
                            direction=info.direction, params=params, cpu=tid % 4)
                if self.num >= n_events:
                    return
            pending = []

    # Each action returns its events as (tid, event info, full parameters).
    def _pair(self, name: str, tid: int, values: dict[str, Any]) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        pair = self.pairs[name]
        assert pair is not None
        out = []
        if pair.enter is not None:
            out.append((tid, pair.enter, full_params(pair.enter, values)))
        out.append((tid, pair.exit, full_params(pair.exit, values)))
        return out

    def _any_fd(self, worker: _Worker) -> int:
        fds = list(worker.files) or [0, 1, 2]
        return fds[self.rng.randrange(len(fds))]

    def _read(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        n = self.rng.randrange(0, 80)
        return self._pair("read", w.pid, {"fd": self._any_fd(w), "size": 4096, "res": n, "data": b"r" * n})

    def _write(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        n = self.rng.randrange(1, 80)
        fd = self.rng.choice((1, 2, self._any_fd(w)))
        return self._pair("write", w.pid, {"fd": fd, "size": n, "res": n, "data": b"w" * n})

    def _futex(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        return self._pair("futex", w.pid, {"addr": 0x7F0000001000 + self.rng.randrange(64) * 8, "op": 128 | 1,
                                           "val": 1, "res": 0})

    def _epoll(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        return self._pair("epoll_wait", w.pid, {"maxevents": 64, "res": self.rng.randrange(0, 4)})

    def _fstat(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        return self._pair("fstat", w.pid, {"fd": self._any_fd(w), "res": 0})

    def _mmap(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        return self._pair("mmap", w.pid, {"addr": 0, "length": 1 << 20, "prot": 3, "flags": 2 | 8, "fd": -1,
                                          "offset": 0, "res": 0x7F0000000000, "vm_size": 90000, "vm_rss": 20000})

    def _lseek(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        return self._pair("lseek", w.pid, {"fd": self._any_fd(w), "offset": 0, "whence": 0, "res": 0})

    def _sleep(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        return self._pair("nanosleep", w.pid, {"interval": 1_000_000, "res": 0})

    def _getdents(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        return self._pair("getdents64", w.pid, {"fd": self._any_fd(w), "res": 0})

    def _recv(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        if not w.sockets:
            return self._connect(w)
        fd, tup = next(iter(w.sockets.items()))
        n = self.rng.randrange(1, 80)
        inbound = SockTuple(tup.family, tup.dst_addr, tup.dst_port, tup.src_addr, tup.src_port)
        return self._pair("recvfrom", w.pid, {"fd": fd, "size": 4096, "res": n, "data": b"i" * n, "tuple": inbound})

    def _send(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        if not w.sockets:
            return self._connect(w)
        fd, tup = next(iter(w.sockets.items()))
        n = self.rng.randrange(1, 80)
        return self._pair("sendto", w.pid, {"fd": fd, "size": n, "res": n, "data": b"o" * n, "tuple": tup})

    def _open(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        if len(w.files) + len(w.sockets) >= _MAX_FDS:
            return self._close(w)
        path = self.rng.choice(_FILES)
        fd = w.free_fd()
        w.files[fd] = path
        return self._pair("openat", w.pid, {"fd": fd, "dirfd": PPM_AT_FDCWD, "name": path,
                                            "flags": PPM_O_RDONLY | PPM_O_CLOEXEC, "mode": 0, "dev": 0xFD01,
                                            "ino": 1000 + _FILES.index(path)})

    def _close(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        if w.sockets and (not w.files or self.rng.random() < 0.3):
            fd = next(iter(w.sockets))
            del w.sockets[fd]
        elif w.files:
            fd = next(iter(w.files))
            del w.files[fd]
        else:
            return self._open(w)
        return self._pair("close", w.pid, {"fd": fd, "res": 0})

    def _connect(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        if len(w.files) + len(w.sockets) >= _MAX_FDS:
            return self._close(w)
        fd = w.free_fd()
        remote = (f"10.0.{self.rng.randrange(4)}.{self.rng.randrange(2, 250)}", self.rng.choice((443, 5432, 6379)))
        tup = SockTuple(PPM_AF_INET, "172.17.0.2", 40000 + self.num % 20000, *remote)
        w.sockets[fd] = tup
        return [*self._pair("socket", w.pid, {"fd": fd, "domain": PPM_AF_INET, "type": 1, "proto": 0,
                                              "flags": 0}),
                *self._pair("connect", w.pid, {"fd": fd, "res": 0, "tuple": tup,
                                               "addr": SockAddr(PPM_AF_INET, remote[0], remote[1])})]

    def _accept(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        if len(w.files) + len(w.sockets) >= _MAX_FDS:
            return self._close(w)
        fd = w.free_fd()
        tup = SockTuple(PPM_AF_INET, f"10.1.0.{self.rng.randrange(2, 250)}", self.rng.randrange(30000, 60000),
                        "172.17.0.2", 8080)
        w.sockets[fd] = SockTuple(PPM_AF_INET, tup.dst_addr, tup.dst_port, tup.src_addr, tup.src_port)
        return self._pair("accept", w.pid, {"fd": fd, "tuple": tup, "queuepct": 0, "queuelen": 0,
                                            "queuemax": 4096})

    def _exec(self, w: _Worker) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        exe, args = self.rng.choice(_CHILDREN)
        child = self.next_pid
        self.next_pid = 2000 if child >= 30000 else child + 1
        events = self._spawn(w.pid, child, exe, args, parent=w)
        events.append((child, self.procexit, full_params(self.procexit, {"status": 0, "ret": 0, "sig": 0,
                                                                         "core": 0, "reaper_tid": 0})))
        return events

    def _spawn(self, ppid: int, pid: int, exe: str, args: tuple[str, ...],
               parent: _Worker | None = None) -> list[tuple[int, EventInfo, dict[str, Any]]]:
        clone = self.pairs["clone"]
        execve = self.pairs["execve"]
        assert clone is not None and execve is not None and clone.enter is not None and execve.enter is not None
        p_exe, p_args, p_comm = (parent.exe, parent.args, parent.comm) if parent else ("/sbin/init", (), "systemd")
        base = {"cwd": "/", "fdlimit": 1024, "cgroups": b"cpu=/\x00memory=/\x00", "uid": 0, "gid": 0,
                "env": b"PATH=/usr/bin:/bin\x00", "loginuid": 0xFFFFFFFF, "vm_size": 9000, "vm_rss": 2000}
        flags = PPM_CL_CLONE_CHILD_CLEARTID | PPM_CL_CLONE_CHILD_SETTID
        parent_values = {**base, "res": pid, "exe": p_exe, "args": _nul(p_args), "tid": ppid, "pid": ppid,
                         "ptid": 1 if ppid != 1 else 0, "comm": p_comm, "flags": flags, "vtid": ppid, "vpid": ppid}
        child_values = {**parent_values, "res": 0, "tid": pid, "pid": pid, "ptid": ppid, "vtid": pid, "vpid": pid}
        exec_values = {**base, "res": 0, "exe": exe, "args": _nul(args), "tid": pid, "pid": pid, "ptid": ppid,
                       "comm": exe.rsplit("/", 1)[-1][:15], "vpgid": pid, "pgid": pid, "trusted_exepath": exe,
                       "filename": exe, "exe_ino": 5000 + len(exe), "cap_permitted": (1 << 41) - 1,
                       "cap_effective": (1 << 41) - 1}
        return [
            (ppid, clone.enter, full_params(clone.enter, {})),
            (ppid, clone.exit, full_params(clone.exit, parent_values)),
            (pid, clone.exit, full_params(clone.exit, child_values)),
            (pid, execve.enter, full_params(execve.enter, {"filename": exe})),
            (pid, execve.exit, full_params(execve.exit, exec_values)),
        ]


def _nul(items: tuple[str, ...]) -> bytes:
    return b"".join(item.encode() + b"\x00" for item in items)


def generate_stream(n_events: int, mix: Mapping[str, float] | None = None, *, seed: int = 0,
                    workers: int = 8) -> Iterator[Event]:
    """``n_events`` events of a busy host: ``mix`` weighs the actions (keys of :data:`DEFAULT_MIX`);
    the same seed gives the same stream. Pairs are never cut: a stream that would end inside one
    ends with a one-event signal delivery instead."""
    if n_events < 0:
        raise UsageError("n_events must not be negative")
    if workers < 1:
        raise UsageError("a stream needs at least one worker process")
    return _Stream(DEFAULT_MIX if mix is None else mix, seed, workers).events(n_events)
