"""Hand-written syscall scenarios: a short YAML description of what a detection showed, turned into
the initial state and the events a real kernel and libscap would have recorded.

A scenario (schema: ``falcorules_ci/schemas/scenario.schema.json``)::

    scenario: shell reads shadow in container
    containers:
      - {id: 3ad7b26ded6d, name: web, image: docker.io/library/nginx:1.25}
    users: [{uid: 1000, name: alice}]             # root is implicit
    processes:                                    # already running when the scenario starts
      - {pid: 100, exe: /usr/sbin/nginx, args: [-g, daemon off;], container: web}
    events:
      - {pid: 100, spawn: {pid: 200, exe: /bin/bash, args: [-i], tty: pts/0}}   # clone + execve
      - {pid: 200, syscall: openat, args: {name: /etc/shadow, flags: O_RDONLY}, res: 3}

Top level: ``scenario`` (title, required), ``description``, ``events`` (required) and

- ``time``: ``start`` (RFC 3339, default 2025-01-01T00:00:00Z), ``step`` between event entries
  (1ms), ``latency`` from a syscall's enter to its exit (10us). Durations are ``250ms``, ``1.5s``,
  ``2m``, ``10us`` or seconds.
- ``host``: ``hostname``, ``ip``, ``ip6``, ``cpus``, ``memory``, ``boot``. ``snaplen``: bytes of
  I/O data kept per event (80, Falco's default). ``dns``: host name -> address(es).
- ``containers``: ``id`` (12 or 64 hex digits, quoted or not) and/or ``name``, ``image``,
  ``runtime`` (docker, containerd, cri-o, podman: picks the cgroup layout), ``privileged``,
  ``labels``, ``pod`` (``name``, ``namespace``, ``uid`` -> the io.kubernetes.* labels),
  ``mounts`` (``src:dest[:ro]``, a bind mount: ``rprivate`` under Docker and Podman, ``private``
  and no mode through CRI; or mappings), ``ip``, ``host_pid``/``host_network``/``host_ipc``,
  ``cap_add``/``cap_drop``, ``created``, ``cgroup``.
- ``users`` (``uid``, ``name``, ``gid``, ``home``, ``shell``, ``container``) and ``groups``
  (``gid``, ``name``, ``container``); root is implicit.
- ``files``: inodes that are not root-owned 0755 system files: ``path``, ``container``,
  ``owner``, ``group``, ``mode``, ``mtime``, ``ctime``. Files the events create belong to their
  creator; writes, chmod, chown and renames update them. Whether an exec reports
  ``EXE_WRITABLE`` follows from the owner, the mode and the caller's capabilities.
- ``processes``, running when the scenario starts: ``pid``, ``ppid`` (or ``parent``; default 1,
  or the container runtime's shim), ``exe`` (the path given to execve), ``argv0``, ``exepath``,
  ``comm``, ``args`` (list, or a string split like a shell), ``cwd``, ``env`` (mapping or
  ``K=V`` list), ``user``/``group``/``loginuid`` (names or numbers), ``tty`` (``pts/0`` or the
  device number), ``container``, ``caps`` (names, ``all``, or ``{effective, permitted,
  inheritable}``), ``exe_flags`` (``upper_layer``, ``lower_layer``, ``writable``, ``memfd``;
  overrides what the files and the exec path imply: ``/proc/self/fd/N`` on a memfd is ``memfd``),
  ``sid``/``pgid``/``vpgid`` (a pid or ``self``), ``vpid``, ``started``, ``threads`` (tids),
  ``fds`` (``{fd: 3, file: /path}``, ``dir``, ``tcp``/``udp: local->remote``, ``listen``,
  ``unix``, ``pipe``, ``memfd``, ``event``), ``fdlimit``, ``root``, ``cgroup``.

Each event entry names its thread (``pid`` or ``tid``), optionally when it happens (``at``: an
offset from the start or an absolute time; ``after``: a delay after the previous entry), and one
action; see :mod:`falcorules_ci.sources.scenario_actions`.

Every syscall becomes an enter event followed by its exit on the same thread, with exactly the
parameters libs HEAD's event table lists for those codes; a clone also has the child's exit and a
process exit is a single ``procexit``. Values the scenario leaves out get what the kernel would
report: the lowest free fd, the caller's argv, cgroups, capabilities and tty, the socket's local
address, stable inode numbers, overlay layers, and so on.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from falcorules_ci.errors import InputError, Span
from falcorules_ci.sources.event import Event
from falcorules_ci.sources.records import (
    CaptureHeader,
    ContainerInfo,
    GroupInfo,
    InterfaceInfo,
    MachineInfo,
    ProcessInfo,
    SourceStats,
    UserInfo,
)
from falcorules_ci.sources.scenario_actions import Builder
from falcorules_ci.sources.scenario_decl import read_containers, read_host, read_users
from falcorules_ci.sources.scenario_emit import Timeline
from falcorules_ci.sources.scenario_files import read_files
from falcorules_ci.sources.scenario_procs import declare_processes
from falcorules_ci.sources.scenario_stream import generate_stream
from falcorules_ci.sources.scenario_values import duration, endpoint, int_value, timestamp
from falcorules_ci.sources.scenario_world import Thread, World
from falcorules_ci.sources.scenario_yaml import Cursor, Document, validate_document

DEFAULT_START = "2025-01-01T00:00:00Z"
DEFAULT_STEP = "1ms"
DEFAULT_LATENCY = "10us"
DEFAULT_SNAPLEN = 80
MAX_PID = 4194304

__all__ = ["Scenario", "generate_stream", "load_scenario"]


@dataclass(slots=True)
class Scenario:
    """A loaded scenario: its initial state (``header``), its events and what was read."""

    title: str
    path: str
    header: CaptureHeader
    stats: SourceStats
    start_ts: int
    description: str = ""
    dns: dict[str, tuple[str, ...]] = field(default_factory=dict)  # host name -> addresses
    _events: list[Event] = field(default_factory=list, repr=False)

    def events(self) -> Iterator[Event]:
        """The events in time order; each call yields fresh copies a consumer may modify."""
        for event in self._events:
            yield dataclasses.replace(event, params=dict(event.params))

    def __len__(self) -> int:
        return len(self._events)


def load_scenario(path_or_text: str | os.PathLike[str], *, name: str | None = None) -> Scenario:
    """Load a scenario from a file path or from YAML text; bad input raises :class:`InputError`."""
    text, source = _read(path_or_text, name)
    doc = Document(source, text)
    if not isinstance(doc.data, dict):
        raise InputError("a scenario is a YAML mapping with at least 'scenario' and 'events'", Span(source, 1, 1))
    validate_document(doc)
    root = doc.root()
    world, timeline = _setup(root)
    world.dns = _dns(root.get("dns"))
    read_containers(world, root.get("containers"))
    read_users(world, root.get("users"), root.get("groups"))
    read_files(world, root.get("files"))
    _reserve_spawned_pids(world, root.get("events"))
    declare_processes(world, root.get("processes"))
    initial = [thread.process_info() for _, thread in sorted(world.threads.items())]
    Builder(world, timeline).run(root.get("events"))
    header = _header(world, initial)
    stats = SourceStats(events=len(timeline.events), bytes=len(text.encode("utf-8", "surrogateescape")))
    description = root.get("description")
    return Scenario(title=root.child("scenario").text, path=source, header=header, stats=stats,
                    start_ts=timeline.start_ts, description=description.text if description else "",
                    dns=dict(world.dns), _events=timeline.events)


def _read(path_or_text: str | os.PathLike[str], name: str | None) -> tuple[str, str]:
    is_path = isinstance(path_or_text, os.PathLike) or (
        "\n" not in path_or_text and len(path_or_text) < 4096 and os.path.isfile(path_or_text))
    if not is_path:
        return str(path_or_text), name or "<scenario>"
    path = Path(path_or_text)
    try:
        return path.read_text(encoding="utf-8"), name or str(path)
    except OSError as exc:
        raise InputError(f"cannot read scenario: {exc.strerror or exc}", Span(str(path))) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"scenario is not UTF-8 text: {exc.reason}", Span(str(path))) from None


def _setup(root: Cursor) -> tuple[World, Timeline]:
    time = root.get("time")
    start_cur = time.get("start") if time else None
    start = timestamp(start_cur) if start_cur else timestamp(Cursor(DEFAULT_START, (), root.doc))
    step = duration(time.child("step")) if time and time.has("step") else duration(Cursor(DEFAULT_STEP, (), root.doc))
    latency = duration(time.child("latency")) if time and time.has("latency") else duration(
        Cursor(DEFAULT_LATENCY, (), root.doc))
    for key, value in (("step", step), ("latency", latency)):
        if value < 0:
            root.child("time").child(key).fail(f"time.{key}: must not be negative")
    host = read_host(root.get("host"), start)
    snaplen = int_value(root.child("snaplen"), minimum=0) if root.has("snaplen") else DEFAULT_SNAPLEN
    world = World(start_ts=start, boot_ts=host.boot, hostname=host.hostname, host_ip=host.ip, host_ip6=host.ip6,
                  num_cpus=host.cpus, memory_bytes=host.memory, snaplen=snaplen)
    return world, Timeline(start, step, latency, world.num_cpus)


def _dns(cur: Cursor | None) -> dict[str, tuple[str, ...]]:
    names: dict[str, tuple[str, ...]] = {}
    for name, item in cur.items() if cur else ():
        entries = list(item.elements()) if isinstance(item.value, list) else [item]
        names[name] = tuple(endpoint(entry, default_port=0)[1] for entry in entries)
    return names


def _reserve_spawned_pids(world: World, events: Cursor | None) -> None:
    """Keep the pids that spawns name away from the implicit processes the builder invents."""
    for entry in events.elements() if events else ():
        spawn = entry.get("spawn")
        if spawn is not None and isinstance(spawn.value, dict):
            for key in ("pid", "tid"):
                value = spawn.value.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    world.reserved_pids.add(value)


def _header(world: World, initial: list[ProcessInfo]) -> CaptureHeader:
    machine = MachineInfo(hostname=world.hostname, num_cpus=world.num_cpus, memory_bytes=world.memory_bytes,
                          max_pid=MAX_PID, boot_ts=world.boot_ts)
    interfaces = [
        InterfaceInfo("lo", 2, "127.0.0.1", "255.0.0.0", "127.255.255.255"),
        InterfaceInfo("eth0", 2, world.host_ip, "255.255.255.0", _broadcast(world.host_ip)),
        InterfaceInfo("lo", 10, "::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        InterfaceInfo("eth0", 10, world.host_ip6, "ffff:ffff:ffff:ffff::"),
    ]
    users, groups = _user_tables(world)
    containers: list[ContainerInfo] = [
        dataclasses.replace(c.info, created_ts=c.created_ts or world.start_ts) for c in world.containers
    ]
    return CaptureHeader(machine=machine, interfaces=interfaces, users=users, groups=groups,
                         processes=initial, containers=containers, dns=dict(world.dns))


def _broadcast(ip: str) -> str:
    parts = ip.split(".")
    return ".".join([*parts[:3], "255"]) if len(parts) == 4 else ""


def _user_tables(world: World) -> tuple[list[UserInfo], list[GroupInfo]]:
    """The host tables plus, per container, root and every host user its processes ran as: a
    container's processes are looked up in its own table (current libs), not the host's."""
    users = list(world.users)
    groups = list(world.groups)
    for container in world.containers:
        cid = container.info.id
        threads: list[Thread] = [t for t in world.threads.values() if t.container is container]
        uids = {0} | {t.uid for t in threads} | {t.loginuid for t in threads if t.loginuid >= 0}
        gids = {0} | {t.gid for t in threads}
        for uid in sorted(uids):
            if any(u.uid == uid and u.container_id == cid for u in users):
                continue
            host_user = next((u for u in world.users if u.uid == uid and not u.container_id), None)
            if host_user is not None:
                users.append(dataclasses.replace(host_user, container_id=cid))
        for gid in sorted(gids):
            if any(g.gid == gid and g.container_id == cid for g in groups):
                continue
            host_group = next((g for g in world.groups if g.gid == gid and not g.container_id), None)
            if host_group is not None:
                groups.append(dataclasses.replace(host_group, container_id=cid))
    return users, groups
