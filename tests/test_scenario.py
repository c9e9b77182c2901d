"""Hand-written scenarios: YAML and schema errors with positions, every action's events and
parameters, the header, and the synthetic benchmark stream."""

from __future__ import annotations

import re
import textwrap
import tracemalloc
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import INCUBATING, SANDBOX, STABLE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from falcorules_ci.errors import InputError, UsageError
from falcorules_ci.fields.event_table import event_table
from falcorules_ci.sources.event import Event, SockAddr, SockTuple
from falcorules_ci.sources.scenario import Scenario, generate_stream, load_scenario
from falcorules_ci.sources.scenario_emit import syscall_events

EXAMPLES = Path(__file__).parent / "scenarios" / "examples"
PPM_O_RDONLY, PPM_O_WRONLY, PPM_O_CREAT, PPM_O_TRUNC, PPM_O_F_CREATED = 1, 2, 4, 256, 1 << 14
PPM_FD_UPPER_LAYER, PPM_FD_LOWER_LAYER = 1 << 15, 1 << 16
PPM_CL_CLONE_THREAD, PPM_CL_CLONE_NEWPID, PPM_CL_CHILD_IN_PIDNS = 1 << 13, 1 << 6, 1 << 29
PPM_EXE_WRITABLE, PPM_EXE_UPPER_LAYER, PPM_EXE_FROM_MEMFD, PPM_EXE_LOWER_LAYER = 1, 2, 4, 8
CLONE_EXITS = {223, 225, 227, 335}
INT_TYPES = {"PT_INT8", "PT_INT16", "PT_INT32", "PT_INT64", "PT_UINT8", "PT_UINT16", "PT_UINT32", "PT_UINT64",
             "PT_FD", "PT_PID", "PT_ERRNO", "PT_UID", "PT_GID", "PT_MODE", "PT_FLAGS8", "PT_FLAGS16",
             "PT_FLAGS32", "PT_ENUMFLAGS8", "PT_ENUMFLAGS16", "PT_ENUMFLAGS32", "PT_SIGTYPE", "PT_RELTIME",
             "PT_ABSTIME", "PT_PORT", "PT_SYSCALLID", "PT_BOOL"}

SHELL_IN_CONTAINER = """\
scenario: shell reads shadow in container     # title
containers:
  - {id: 3ad7b26ded6d, name: web, image: docker.io/library/nginx:1.25, privileged: false,
     labels: {io.kubernetes.pod.name: web-0, io.kubernetes.pod.namespace: prod},
     mounts: [{source: /var/run/docker.sock, dest: /var/run/docker.sock}]}
users: [{uid: 1000, name: alice}]            # root is implicit
processes:                                     # already running when the scenario starts
  - {pid: 100, exe: /usr/sbin/nginx, args: [-g, daemon off;], container: web, user: root, cwd: /}
events:
  - {pid: 100, spawn: {pid: 200, exe: /bin/bash, args: [-i], tty: 34816}}   # clone + execve
  - {pid: 200, syscall: openat, args: {name: /etc/shadow, flags: O_RDONLY}, res: 3}
"""


def load(text: str) -> Scenario:
    return load_scenario(textwrap.dedent(text), name="t.yaml")


def events(text: str) -> list[Event]:
    return list(load(text).events())


def host(events_yaml: str, *, extra: str = "") -> str:
    """A scenario with a host shell (pid 10, alice on pts/0) and a root daemon (pid 20)."""
    return textwrap.dedent("""\
        scenario: t
        users: [{uid: 1000, name: alice}, {uid: 65534, name: nobody}]
        processes:
          - {pid: 10, exe: /bin/bash, user: alice, loginuid: alice, tty: pts/0, cwd: /home/alice}
          - {pid: 20, exe: /usr/sbin/sshd, args: [-D]}
        """) + textwrap.dedent(extra) + "events:\n" + textwrap.indent(textwrap.dedent(events_yaml), "  ")


def exits(evts: Iterable[Event], name: str) -> list[Event]:
    return [e for e in evts if e.name == name and e.direction == "<"]


def error_of(text: str) -> InputError:
    with pytest.raises(InputError) as info:
        load(text)
    return info.value


def check_well_formed(evts: list[Event]) -> None:
    """Enter events are followed by their exit on the same thread; params are the table's."""
    table = event_table()
    last_ts = 0
    for i, event in enumerate(evts):
        assert event.num == i + 1
        assert event.ts >= last_ts
        last_ts = event.ts
        info = table.by_code[event.code]
        assert (info.name, info.direction) == (event.name, event.direction)
        assert list(event.params) == [p.name for p in info.params], event
        for param in info.params:
            value = event.params[param.name]
            if param.type in INT_TYPES:
                assert isinstance(value, int) and not isinstance(value, bool), (event, param)
            elif param.type in ("PT_CHARBUF", "PT_FSPATH", "PT_FSRELPATH"):
                assert isinstance(value, str), (event, param)
            elif param.type in ("PT_BYTEBUF", "PT_DYN"):
                assert isinstance(value, bytes), (event, param)
            elif param.type == "PT_SOCKADDR":
                assert isinstance(value, SockAddr)
            elif param.type == "PT_SOCKTUPLE":
                assert isinstance(value, SockTuple)
        exit_info = table.by_code.get(event.code + 1)
        single = exit_info is None or exit_info.is_unused or exit_info.name != info.name
        if event.direction == ">" and not single:
            following = evts[i + 1]
            assert (following.tid, following.code) == (event.tid, event.code + 1), (event, following)
        if event.direction == "<":
            previous = evts[i - 1] if i else None
            paired = previous is not None and previous.tid == event.tid and previous.code == event.code - 1
            enter = table.by_code.get(event.code - 1)
            has_enter = enter is not None and enter.name == info.name and not enter.is_unused
            # The child's side of a clone is the one exit with no enter of its own.
            assert paired or not has_enter or (event.code in CLONE_EXITS and event.params["res"] == 0), event


# --- the shell-in-container example ---------------------------------------------------------

def test_shell_in_container_events() -> None:
    scenario = load(SHELL_IN_CONTAINER)
    evts = list(scenario.events())
    check_well_formed(evts)
    assert [(e.tid, e.name, e.direction) for e in evts] == [
        (100, "clone", ">"), (100, "clone", "<"), (200, "clone", "<"),
        (200, "execve", ">"), (200, "execve", "<"), (200, "openat", ">"), (200, "openat", "<"),
    ]
    parent_exit, child_exit = evts[1], evts[2]
    assert parent_exit.params["res"] == 200 and parent_exit.params["comm"] == "nginx"
    assert child_exit.params["res"] == 0 and child_exit.params["ptid"] == 100
    assert evts[3].params == {"filename": "/bin/bash"}
    execve = evts[4].params
    assert len(execve) == 31
    assert (execve["res"], execve["exe"], execve["args"], execve["comm"]) == (0, "/bin/bash", b"-i\x00", "bash")
    assert (execve["tty"], execve["ptid"], execve["uid"], execve["loginuid"]) == (34816, 100, 0, 0xFFFFFFFF)
    assert execve["trusted_exepath"] == "/bin/bash" and execve["filename"] == "/bin/bash"
    assert execve["flags"] == PPM_EXE_WRITABLE | PPM_EXE_LOWER_LAYER  # root runs a root-owned image file
    full_id = scenario.header.containers[0].full_id
    assert f"cpuset=/docker/{full_id}".encode() + b"\x00" in execve["cgroups"]
    assert execve["cap_effective"] == 0xA80425FB  # the runtime's default set for root
    assert evts[5].params == {"dirfd": -100, "name": "/etc/shadow", "flags": PPM_O_RDONLY, "mode": 0}
    openat = evts[6].params
    # Only the exit reports the overlay layer: /etc/shadow comes from the image.
    assert (openat["fd"], openat["name"], openat["flags"]) == (3, "/etc/shadow", PPM_O_RDONLY | PPM_FD_LOWER_LAYER)
    assert openat["ino"] > 0 and evts[6].ts > evts[5].ts


def test_shell_in_container_header() -> None:
    scenario = load(SHELL_IN_CONTAINER)
    (container,) = scenario.header.containers
    assert (container.id, container.name, container.image_repository, container.image_tag) == (
        "3ad7b26ded6d", "web", "docker.io/library/nginx", "1.25")
    assert len(container.full_id) == 64 and container.full_id.startswith("3ad7b26ded6d")
    assert container.labels["io.kubernetes.pod.namespace"] == "prod"
    assert container.mounts[0].dest == "/var/run/docker.sock" and not container.privileged
    procs = {p.tid: p for p in scenario.header.processes}
    nginx = procs[100]
    assert (nginx.comm, nginx.exe, nginx.args, nginx.vpid) == ("nginx", "/usr/sbin/nginx", ("-g", "daemon off;"), 1)
    assert procs[nginx.ptid].comm == "containerd-shim" and procs[1].comm == "systemd"
    assert [f.fd for f in nginx.fds] == [0, 1, 2]
    names = {(u.name, u.container_id) for u in scenario.header.users}
    assert {("root", ""), ("alice", ""), ("root", "3ad7b26ded6d")} <= names
    assert scenario.title == "shell reads shadow in container"
    assert scenario.stats.events == 7 and scenario.stats.bytes == len(SHELL_IN_CONTAINER)


def test_events_are_fresh_copies() -> None:
    scenario = load(SHELL_IN_CONTAINER)
    first = next(scenario.events())
    first.params["x"] = 1
    assert "x" not in next(scenario.events()).params


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_examples_load_and_are_well_formed(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.path == str(path) and len(scenario) > 0
    check_well_formed(list(scenario.events()))


# --- actions ------------------------------------------------------------------------------

def test_spawn_failed_clone_and_failed_exec() -> None:
    evts = events(host("""\
        - {pid: 10, spawn: {pid: 30, exe: /bin/ls, res: EAGAIN}}
        - {pid: 10, spawn: {pid: 31, exe: /nope, args: [x], exec_res: ENOENT}}
        - {pid: 31, exit: 127}
        """))
    check_well_formed(evts)
    assert [e.params["res"] for e in exits(evts, "clone")] == [-11, 31, 0]
    failed = exits(evts, "execve")[0].params
    assert (failed["res"], failed["exe"], failed["args"], failed["filename"]) == (-2, "/nope", b"x\x00", "/nope")
    assert failed["comm"] == "bash" and failed["trusted_exepath"] == "/bin/bash"  # the image did not change
    procexit = evts[-1]
    assert (procexit.name, procexit.params["status"], procexit.params["ret"]) == ("procexit", 127 << 8, 127)


def test_spawn_inherits_and_job_control() -> None:
    evts = events(host("""\
        - {pid: 10, spawn: {pid: 30, exe: /usr/bin/id}}
        - {pid: 20, spawn: {pid: 40, exe: /bin/sh, args: "-c 'echo hi'", env: {LANG: C}}}
        """))
    shell_child, daemon_child = (e.params for e in exits(evts, "execve"))
    assert (shell_child["uid"], shell_child["loginuid"], shell_child["tty"], shell_child["cwd"]) == (
        1000, 1000, 34816, "/home/alice")
    assert shell_child["pgid"] == 30 and shell_child["vpgid"] == 30  # a job of the interactive shell
    assert shell_child["cap_effective"] == 0
    assert daemon_child["args"] == b"-c\x00echo hi\x00" and daemon_child["env"] == b"LANG=C\x00"
    assert daemon_child["pgid"] == 20 and daemon_child["cap_effective"] == (1 << 41) - 1


def test_spawn_thread() -> None:
    evts = events(host("- {pid: 20, spawn: {tid: 21, thread: true}}\n- {tid: 21, syscall: read, args: {fd: 0}}\n"))
    check_well_formed(evts)
    parent, child = exits(evts, "clone")
    assert parent.params["flags"] & PPM_CL_CLONE_THREAD and child.params["pid"] == 20
    assert (child.tid, child.params["tid"], child.params["ptid"]) == (21, 21, 1)
    assert not exits(evts, "execve") and evts[-1].tid == 21


def test_spawn_into_container_starts_its_pid_namespace() -> None:
    evts = events(host("""\
        - {pid: 20, spawn: {pid: 50, container: box, exe: /bin/sh}}
        - {pid: 50, spawn: {pid: 51, exe: /bin/ps}}
        """, extra="containers: [{name: box, image: busybox, privileged: true}]\n"))
    check_well_formed(evts)
    parent, child, inner_parent, inner_child = exits(evts, "clone")
    assert parent.params["flags"] & PPM_CL_CLONE_NEWPID and not parent.params["flags"] & PPM_CL_CHILD_IN_PIDNS
    assert child.params["flags"] & PPM_CL_CHILD_IN_PIDNS and child.params["vpid"] == 1
    assert b"/docker/" in child.params["cgroups"] and b"/docker/" not in parent.params["cgroups"]
    assert inner_child.params["vpid"] == 2 and inner_parent.params["flags"] & PPM_CL_CHILD_IN_PIDNS
    sh, ps = exits(evts, "execve")
    assert sh.params["cap_effective"] == (1 << 41) - 1 and sh.params["vpgid"] == 1
    assert ps.params["ptid"] == 50


def test_exec_in_place_and_execveat() -> None:
    evts = events(host("""\
        - {pid: 10, exec: /usr/bin/vim}
        - {pid: 10, exec: {exe: /proc/self/fd/3, via: execveat, dirfd: 3, at_flags: AT_EMPTY_PATH,
                           exepath: /memfd:x, exe_flags: [memfd], argv0: x}}
        - {pid: 10, syscall: execve, args: {filename: /bin/true, args: [a, b]}}
        """))
    check_well_formed(evts)
    vim, true = exits(evts, "execve")
    assert vim.params["comm"] == "vim" and vim.params["uid"] == 1000 and vim.params["filename"] == "/usr/bin/vim"
    enter, fileless = [e for e in evts if e.name == "execveat"]
    assert enter.params == {"dirfd": 3, "pathname": "/proc/self/fd/3", "flags": 1}
    assert fileless.params["flags"] == PPM_EXE_FROM_MEMFD and fileless.params["trusted_exepath"] == "/memfd:x"
    assert len(fileless.params) == 30 and fileless.params["exe"] == "x" and fileless.params["comm"] == "3"
    assert true.params["args"] == b"a\x00b\x00" and true.params["comm"] == "true"


def test_exit_of_a_multithreaded_process_and_events_after_exit() -> None:
    text = host("- {pid: 20, exit: {signal: SIGSEGV, core: true}}\n", extra="")
    text = text.replace("exe: /usr/sbin/sshd, args: [-D]", "exe: /usr/sbin/sshd, args: [-D], threads: [21, 22]")
    evts = events(text)
    assert [(e.tid, e.name) for e in evts] == [(21, "procexit"), (22, "procexit"), (20, "procexit")]
    assert evts[-1].params["status"] == 11 | 0x80 and evts[-1].params["sig"] == 11 and evts[-1].params["core"] == 1
    assert [e.params["reaper_tid"] for e in evts] == [0, 0, 0]  # no children to hand over
    error = error_of(text + "  - {pid: 20, open: /x}\n")
    assert "process 20 has already exited" in error.message and error.span and error.span.line == 8


def test_open_variants() -> None:
    evts = events(host("""\
        - {pid: 10, open: {path: /dev/x, flags: [O_WRONLY, O_CREAT], mode: 755}}
        - {pid: 10, open: {path: notes.txt, via: open}}
        - {pid: 10, open: {path: /etc, flags: O_RDONLY|O_DIRECTORY, fd: 9}}
        - {pid: 10, open: {path: passwd, dirfd: 9, via: openat2}}
        - {pid: 10, open: {path: /missing, res: ENOENT}}
        - {pid: 10, open: {path: /tmp/c, via: creat}}
        """))
    check_well_formed(evts)
    created, relative, directory, at, missing, creat = (e.params for e in evts if e.direction == "<")
    assert (created["fd"], created["flags"], created["mode"]) == (
        3, PPM_O_WRONLY | PPM_O_CREAT | PPM_O_F_CREATED, 0o755)
    assert evts[0].params["flags"] == PPM_O_WRONLY | PPM_O_CREAT
    assert relative["name"] == "notes.txt" and relative["fd"] == 4 and "dirfd" not in relative
    assert directory["fd"] == 9 and directory["flags"] == PPM_O_RDONLY | (1 << 10)
    assert (at["dirfd"], at["name"], at["fd"], at["resolve"]) == (9, "passwd", 5, 0)
    assert (missing["fd"], missing["dev"], missing["ino"]) == (-2, 0, 0)
    assert creat["fd"] == 6 and creat["mode"] == 0o666
    assert at["ino"] == events(host("- {pid: 10, open: /etc/passwd}\n"))[1].params["ino"]


def test_read_and_write_file() -> None:
    evts = events(host("""\
        - {pid: 10, read_file: {path: /etc/shadow, data: "root:x:0:0"}}
        - {pid: 10, write_file: {path: /root/.bashrc, data: {hex: 00ff}, append: true}}
        """, extra="snaplen: 4\n"))
    check_well_formed(evts)
    assert [e.name for e in evts if e.direction == "<"] == ["openat", "read", "close", "openat", "write", "close"]
    read = exits(evts, "read")[0].params
    assert (read["fd"], read["res"], read["data"], read["size"]) == (3, 10, b"root", 4096)
    opened = exits(evts, "openat")[1].params
    assert opened["flags"] == PPM_O_WRONLY | PPM_O_CREAT | 8 | PPM_O_F_CREATED and opened["mode"] == 0o644
    write = exits(evts, "write")[0].params
    assert (write["data"], write["size"], write["res"]) == (b"\x00\xff", 2, 2)


def test_connect_listen_accept_send_recv() -> None:
    evts = events(host("""\
        - {pid: 20, connect: "93.184.216.34:443"}
        - {pid: 20, connect: {to: "[2001:db8::1]:53", proto: udp}}
        - {pid: 20, send: {fd: 4, data: q}}
        - {pid: 20, listen: "0.0.0.0:8080"}
        - {pid: 20, accept: "203.0.113.9:50000"}
        - {pid: 20, recv: {fd: 6, data: GET}}
        - {pid: 20, connect: {to: /run/docker.sock}}
        - {pid: 20, connect: {to: "10.0.0.1:80", res: ECONNREFUSED}}
        """, extra="host: {ip: 10.1.2.3, ip6: 'fd00::5'}\n"))
    check_well_formed(evts)
    sockets = [e.params for e in exits(evts, "socket")]
    assert [(s["domain"], s["type"]) for s in sockets] == [(2, 1), (10, 2), (2, 1), (1, 1), (2, 1)]
    tcp, udp, unix, refused = (e.params for e in exits(evts, "connect"))
    assert tcp["tuple"] == SockTuple(2, "10.1.2.3", 40000, "93.184.216.34", 443)
    assert tcp["addr"] == SockAddr(2, "93.184.216.34", 443) and tcp["fd"] == 3
    assert udp["tuple"] == SockTuple(10, "fd00::5", 40001, "2001:db8::1", 53)
    assert exits(evts, "sendto")[0].params["tuple"] == udp["tuple"]
    assert unix["addr"] == SockAddr(1, path="/run/docker.sock") and unix["tuple"].family == 1
    assert refused["res"] == -111
    bind = exits(evts, "bind")[0].params
    assert bind["addr"] == SockAddr(2, "0.0.0.0", 8080) and exits(evts, "listen")[0].params["backlog"] == 4096
    accept = exits(evts, "accept")[0].params
    assert accept["fd"] == 6 and accept["tuple"] == SockTuple(2, "203.0.113.9", 50000, "10.1.2.3", 8080)
    recv = exits(evts, "recvfrom")[0].params
    assert recv["tuple"] == SockTuple(2, "203.0.113.9", 50000, "10.1.2.3", 8080) and recv["res"] == 3


def test_dup_close_setuid_chdir() -> None:
    evts = events(host("""\
        - {pid: 10, connect: "1.2.3.4:4444"}
        - {pid: 10, dup: {fd: 3, to: 1}}
        - {pid: 10, dup: 3}
        - {pid: 10, close: 4}
        - {pid: 10, chdir: /tmp}
        - {pid: 10, setuid: nobody}
        - {pid: 10, spawn: {pid: 11, exe: ./run.sh}}
        """))
    check_well_formed(evts)
    assert exits(evts, "dup2")[0].params == {"res": 1, "oldfd": 3, "newfd": 1}
    assert exits(evts, "dup")[0].params == {"res": 4, "oldfd": 3}
    assert next(e.params for e in evts if e.name == "dup") == {"fd": 3}
    assert exits(evts, "setuid")[0].params == {"res": 0, "uid": 65534}
    child = exits(evts, "execve")[0].params
    assert (child["cwd"], child["uid"], child["trusted_exepath"], child["comm"]) == (
        "/tmp", 65534, "/tmp/run.sh", "run.sh")


def test_raw_syscalls_by_table_names() -> None:
    evts = events(host("""\
        - {pid: 20, syscall: chmod, args: {filename: /tmp/x, mode: S_ISUID|S_IXUSR}}
        - {pid: 20, syscall: fchmodat, args: {filename: /tmp/y, mode: 4755}}
        - {pid: 20, syscall: renameat2, args: {oldpath: a, newpath: b, flags: RENAME_NOREPLACE}}
        - {pid: 20, syscall: socket, args: {domain: AF_PACKET, type: SOCK_RAW, proto: 768}}
        - {pid: 20, syscall: ptrace, args: {request: PTRACE_ATTACH, pid: 10}, res: EPERM}
        - {pid: 20, syscall: setns, args: {fd: 0, nstype: CLONE_NEWNET}}
        - {pid: 20, syscall: kill, args: {pid: 10, sig: SIGTERM}}
        - {pid: 20, syscall: bpf, args: {cmd: BPF_PROG_LOAD}}
        - {pid: 20, syscall: finit_module, args: {fd: 4, uargs: "", flags: 0}}
        - {pid: 20, syscall: pipe2, args: {flags: O_CLOEXEC}}
        - {pid: 20, syscall: mmap, args: {length: 4096, prot: PROT_READ|PROT_EXEC, flags: MAP_PRIVATE}}
        - {pid: 20, syscall: close_range, args: {first: 5, last: 6}}
        """))
    check_well_formed(evts)
    by_name = {e.name: e.params for e in evts if e.direction == "<"}
    assert by_name["chmod"]["mode"] == (1 << 11) | (1 << 6)
    assert by_name["fchmodat"] == {"res": 0, "dirfd": -100, "filename": "/tmp/y", "mode": 0o4755}
    assert by_name["renameat2"]["flags"] == 1 and by_name["renameat2"]["olddirfd"] == -100
    assert (by_name["socket"]["domain"], by_name["socket"]["type"], by_name["socket"]["fd"]) == (17, 3, 3)
    assert by_name["ptrace"]["res"] == -1 and by_name["ptrace"]["request"] == 11
    assert by_name["kill"]["sig"] == 15 and by_name["bpf"] == {"fd": 4, "cmd": 5}
    assert (by_name["pipe2"]["fd1"], by_name["pipe2"]["fd2"]) == (5, 6)
    assert by_name["mmap"]["fd"] == -1 and by_name["mmap"]["prot"] == 5
    assert "close_range" in by_name and next(e for e in evts if e.name == "close_range").direction == "<"


def test_data_forms_and_flag_numbers() -> None:
    evts = events(host("""\
        - {pid: 20, syscall: write, args: {fd: 1, data: !!binary "yv66vg=="}}
        - {pid: 20, syscall: write, args: {fd: 1, data: {base64: "yv66vg=="}}}
        - {pid: 20, syscall: openat, args: {name: /x, flags: 0x104}}
        - {pid: 20, syscall: epoll_wait, args: {maxevents: 8}, res: 2}
        """))
    first, second = (e.params["data"] for e in exits(evts, "write"))
    assert first == second == b"\xca\xfe\xba\xbe"
    assert [e.params["flags"] for e in evts if e.name == "openat"] == [0x104, 0x104 | PPM_O_F_CREATED]
    assert exits(evts, "epoll_wait")[0].params["res"] == 2


def test_container_files_overlay_layers_and_dropped_binaries() -> None:
    evts = events("""\
        scenario: t
        containers: [{name: c, image: alpine, mounts: ["/srv:/data"]}]
        processes: [{pid: 5, exe: /bin/sh, container: c}]
        events:
          - {pid: 5, write_file: {path: /tmp/dropper, data: x, mode: 0755}}
          - {pid: 5, open: /tmp/dropper}
          - {pid: 5, open: /etc/os-release}
          - {pid: 5, open: /proc/1/environ}
          - {pid: 5, open: {path: /data/f, flags: O_RDWR}}
          - {pid: 5, spawn: {pid: 6, exe: /tmp/dropper}}
          - {pid: 5, spawn: {pid: 7, exe: /bin/ls}}
        """)
    opened = [e.params["flags"] & (PPM_FD_UPPER_LAYER | PPM_FD_LOWER_LAYER) for e in exits(evts, "openat")]
    assert opened == [PPM_FD_UPPER_LAYER, PPM_FD_UPPER_LAYER, PPM_FD_LOWER_LAYER, 0, 0]
    dropped, image = exits(evts, "execve")
    assert dropped.params["flags"] == PPM_EXE_UPPER_LAYER | PPM_EXE_WRITABLE
    assert dropped.params["exe_ino"] == exits(evts, "openat")[0].params["ino"]
    assert image.params["flags"] == PPM_EXE_LOWER_LAYER | PPM_EXE_WRITABLE


def test_raw_exec_arguments() -> None:
    evts = events(host("- {pid: 10, syscall: execve, args: {filename: /bin/su, exe: su, uid: root, tty: 0}}\n"))
    params = exits(evts, "execve")[0].params
    assert (params["exe"], params["uid"], params["tty"], params["comm"]) == ("su", 0, 0, "su")
    error = error_of(host("- {pid: 10, syscall: execve, args: {filename: /bin/su, vm_rss: 5}}\n"))
    assert "execve takes filename" in error.message and error.span and error.span.line == 7


def test_time_start_step_at_and_after() -> None:
    scenario = load(host("""\
        - {pid: 10, open: /a}
        - {pid: 10, open: /b}
        - {pid: 10, open: /c, at: 1s}
        - {pid: 10, open: /d, after: 500ms}
        """, extra="time: {start: '2024-05-01T12:00:00.5Z', step: 2ms, latency: 1us}\n"))
    evts = list(scenario.events())
    assert scenario.start_ts == 1714564800_500000000
    starts = [e.ts - scenario.start_ts for e in evts if e.direction == ">"]
    assert starts == [0, 2_000_000, 1_000_000_000, 1_500_001_001]
    assert evts[1].ts - evts[0].ts == 1_000


def test_declared_fds_threads_and_header() -> None:
    scenario = load(host("- {tid: 21, syscall: read, args: {fd: 3, data: x}}\n- {pid: 20, close: 4}\n").replace(
        "args: [-D]}", "args: [-D], threads: [21], started: -2h, fds: [{fd: 3, listen: '0.0.0.0:22'}, "
                       "{fd: 4, tcp: '10.0.0.2:22->10.0.0.9:5000'}, {fd: 5, file: /var/log/auth.log, "
                       "flags: O_WRONLY}]}"))
    procs = {p.tid: p for p in scenario.header.processes}
    sshd = procs[20]
    assert [f.fd for f in sshd.fds] == [0, 1, 2, 3, 4, 5] and procs[21].pid == 20
    assert sshd.fds[3].fd_type == 5 and sshd.fds[4].name == "10.0.0.2:22->10.0.0.9:5000"
    assert sshd.fds[5].open_flags == PPM_O_WRONLY and sshd.clone_ts == scenario.start_ts - 7200 * 10**9
    assert procs[10].tty == 34816 and procs[10].sid == 10 and procs[10].loginuid == 1000
    assert scenario.header.machine is not None and scenario.header.machine.hostname == "scenario-host"
    assert any(i.name == "eth0" for i in scenario.header.interfaces)


def test_dns_and_custom_container_runtime() -> None:
    scenario = load("""\
        scenario: t
        dns: {kubernetes.default.svc.cluster.local: 10.96.0.1, pool.example: [203.0.113.5, 203.0.113.6]}
        containers:
          - {name: c, image: "quay.io/x/y", runtime: cri-o, cap_add: [SYS_ADMIN], cap_drop: all, host_network: true}
        processes: [{pid: 5, exe: /bin/sh, container: c}]
        events:
          - {pid: 5, connect: "pool.example:3333"}
        """)
    connect = [e for e in scenario.events() if e.name == "connect"][-1].params
    assert connect["addr"] == SockAddr(2, "203.0.113.5", 3333)
    assert connect["tuple"].src_addr == "192.168.10.20"  # host network: the host's address
    assert scenario.dns == {"kubernetes.default.svc.cluster.local": ("10.96.0.1",),
                            "pool.example": ("203.0.113.5", "203.0.113.6")}
    (container,) = scenario.header.containers
    assert container.runtime == "cri-o" and container.image_tag == "latest"
    sh = next(p for p in scenario.header.processes if p.tid == 5)
    assert "crio-" in sh.cgroups[0] and sh.cap_effective == 0
    assert next(p for p in scenario.header.processes if p.tid == sh.ptid).comm == "conmon"


def test_dns_reaches_the_header() -> None:
    scenario = load("scenario: t\ndns: {api.example: [10.96.0.1, '2001:db8::1']}\nevents: []\n")
    assert scenario.header.dns == {"api.example": ("10.96.0.1", "2001:db8::1")}


def exe_flags_of(text: str) -> list[int]:
    return [e.params["flags"] for e in exits(events(text), "execve")]


def test_exe_writable_follows_owner_mode_and_capabilities() -> None:
    flags = exe_flags_of(host("""\
        - {pid: 20, spawn: {exe: /bin/ls}}                        # root, root's file
        - {pid: 10, spawn: {exe: /usr/bin/vim}}                   # alice, root's 0755 file
        - {pid: 10, spawn: {exe: /opt/shared/run}}                # alice, declared 0757
        - {pid: 10, spawn: {exe: /opt/team/run}}                  # alice, group-writable, her group
        - {pid: 20, spawn: {exe: /opt/team/run}}                  # root: CAP_DAC_OVERRIDE
        - {pid: 20, spawn: {exe: /opt/team/run, caps: [CAP_KILL]}}  # not owner, no override caps
        """, extra="""\
        files:
          - {path: /opt/shared/run, mode: 757}
          - {path: /opt/team/run, owner: nobody, group: 1000, mode: 0775}
        """))
    assert flags == [PPM_EXE_WRITABLE, 0, PPM_EXE_WRITABLE, PPM_EXE_WRITABLE, PPM_EXE_WRITABLE, 0]


def test_files_written_chowned_chmoded_and_renamed_keep_their_owner_and_times() -> None:
    scenario = load(host("""\
        - {pid: 10, write_file: {path: /tmp/tool, data: x, mode: 0700}}
        - {pid: 10, spawn: {pid: 30, exe: /tmp/tool}}
        - {pid: 20, syscall: chown, args: {path: /tmp/tool, uid: 0, gid: 0}}
        - {pid: 10, spawn: {pid: 31, exe: /tmp/tool}}
        - {pid: 20, syscall: chmod, args: {filename: /tmp/tool, mode: 4757}}
        - {pid: 10, spawn: {pid: 32, exe: /tmp/tool}}
        - {pid: 20, syscall: rename, args: {oldpath: /tmp/tool, newpath: /usr/local/bin/tool}}
        - {pid: 10, spawn: {pid: 33, exe: /usr/local/bin/tool}}
        """))
    evts = list(scenario.events())
    written = exits(evts, "write")[0].ts
    chown, chmod, rename = (exits(evts, name)[0].ts for name in ("chown", "chmod", "rename"))
    runs = exits(evts, "execve")
    assert [e.params["flags"] for e in runs] == [PPM_EXE_WRITABLE, 0, PPM_EXE_WRITABLE, PPM_EXE_WRITABLE]
    times = [(e.params["exe_ino_mtime"], e.params["exe_ino_ctime"]) for e in runs]
    assert times == [(written, written), (written, chown), (written, chmod), (written, rename)]
    procs = {p.tid: p for p in scenario.header.processes}
    assert procs[20].exe_writable and not procs[10].exe_writable and procs[1].exe_writable


def test_executing_a_memfd_through_proc_self_fd() -> None:
    evts = events("""\
        scenario: t
        containers: [{name: c, image: alpine}]
        users: [{uid: 1000, name: app}]
        processes: [{pid: 5, exe: /usr/bin/python3, user: app, container: c}]
        events:
          - {pid: 5, syscall: memfd_create, args: {name: x, flags: MFD_CLOEXEC}}
          - {pid: 5, syscall: write, args: {fd: 3, data: x}}
          - {pid: 5, spawn: {pid: 6, exe: /proc/self/fd/3}}
          - {pid: 5, exec: {exe: /dev/fd/3}}
        """)
    written = exits(evts, "write")[0].ts
    for run in exits(evts, "execve"):
        # Not on the overlay, writable by anyone (0777), reported at its real path and times.
        assert run.params["flags"] == PPM_EXE_FROM_MEMFD | PPM_EXE_WRITABLE
        assert run.params["trusted_exepath"] == "/memfd:x (deleted)" and run.params["comm"] == "3"
        assert run.params["exe_ino_mtime"] == run.params["exe_ino_ctime"] == written


def test_container_ids_of_digits_and_bind_mounts() -> None:
    scenario = load("""\
        scenario: t
        containers:
          - {id: 112233445566, name: a, mounts: ["/srv:/data:ro", "/etc:/host/etc"]}
          - {id: 012345670123, runtime: containerd, mounts: ["/srv:/data:ro"]}
        processes: [{pid: 5, exe: /bin/sh, container: 112233445566}, {pid: 6, exe: /bin/sh, container: 012345670123}]
        events: []
        """)
    first, second = scenario.header.containers
    assert (first.id, second.id) == ("112233445566", "012345670123")
    procs = {p.tid: p for p in scenario.header.processes}
    assert "112233445566" in procs[5].cgroups[0] and "012345670123" in procs[6].cgroups[0]
    # Docker reports a bind mount's -v mode and rprivate; CRI has no mode and defaults to private.
    assert [(m.mode, m.rw, m.propagation) for m in first.mounts] == [("ro", False, "rprivate"), ("", True, "rprivate")]
    assert [(m.mode, m.rw, m.propagation) for m in second.mounts] == [("", False, "private")]
    error = error_of("scenario: t\ncontainers:\n  - {id: 12345, name: a}\nevents: []\n")
    assert "12 or 64 hex digits" in error.message and error.span and error.span.line == 3


@pytest.mark.parametrize(("files", "message"), [
    ("[{path: tmp/x}]", "does not match"),
    ("[{path: /x, container: nope}]", "no container 'nope'"),
    ("[{path: /x}, {path: /x/}]", "declared twice"),
    ("[{path: /x, owner: mallory}]", "unknown user 'mallory'"),
])
def test_file_declaration_errors(files: str, message: str) -> None:
    error = error_of(f"scenario: t\nfiles: {files}\nevents: []\n")
    assert message in error.message and error.span and error.span.line == 2


def test_every_upstream_syscall_rule_event_is_expressible(upstream: Path) -> None:
    """Each evt.type an upstream syscall rule (or macro) names has an event pair a scenario can
    record: directly with ``syscall:``, or through spawn/exec for clone and execve."""
    names: set[str] = set()
    for path in (STABLE, INCUBATING, SANDBOX):
        for item in yaml.safe_load(path.read_text()):
            condition = str(item.get("condition", "")) if isinstance(item, dict) else ""
            for match in re.finditer(r"evt\.type\s*(?:=|!=|in)\s*(\([^)]*\)|[\w-]+)", condition):
                names.update(n.strip() for n in match.group(1).strip("()").split(",") if n.strip())
    assert {"execve", "connect", "openat", "ptrace", "finit_module"} <= names
    assert sorted(n for n in names if syscall_events(n) is None) == []


# --- errors with positions ----------------------------------------------------------------

@pytest.mark.parametrize(("events_yaml", "line", "at", "message"), [
    ("- {pid: 10, syscall: opnat}\n", 7, "opnat", "did you mean openat"),
    ("- {pid: 10, syscall: getpid}\n", 7, "getpid", "no event of its own"),
    ("- {pid: 10, syscall: openat, args: {nmae: /x}}\n", 7, "nmae", "no parameter 'nmae'"),
    ("- {pid: 10, syscall: openat, args: {name: /x, flags: O_READ}}\n", 7, "O_READ", "unknown name 'O_READ'"),
    ("- {pid: 10, syscall: read, args: {fd: 7}}\n", 7, "7}", "fd 7 is not open"),
    ("- {pid: 10, syscall: close, args: {fd: 7}, res: EBADF}\n- {pid: 99, open: /x}\n", 8, "99", "no process 99"),
    ("- {pid: 10, syscall: openat, args: {name: /x}, res: EWHAT}\n", 7, "EWHAT", "unknown errno"),
    ("- {pid: 10, syscall: clone}\n", 7, "clone", "use a spawn action"),
    ("- {pid: 10, setuid: mallory}\n", 7, "mallory", "unknown user 'mallory'"),
    ("- {pid: 10, connect: 'example.com:80'}\n", 7, "'example", "not an IP address"),
    ("- {pid: 10, spawn: {pid: 20, exe: /bin/x}}\n", 7, "20", "pid 20 is already running"),
    ("- {pid: 10, open: /a, at: 2s}\n- {pid: 10, open: /b, at: 1s}\n", 8, "1s", "time order"),
    ("- {pid: 10, syscall: openat}\n", 7, "{pid", "needs args.name"),
    ("- {pid: 10, syscall: connect, args: {fd: 0}}\n", 7, "{fd", "needs args.addr"),
    ("- {pid: 10, dup: {fd: 9, to: 1}}\n", 7, "{fd", "fd 9 is not open"),
    ("- {pid: 10, open: /a, after: -1s}\n", 7, "-1s", "cannot be negative"),
    ("- {pid: 10, open: /a, after: 1s, at: 2s}\n", 7, "{pid", "at or after, not both"),
    ("- {pid: 10, accept: '1.2.3.4:5'}\n", 7, "'1.2", "no listening socket"),
    ("- {pid: 10, send: {fd: 1, data: x}}\n", 7, "{fd", "not a socket"),
])
def test_semantic_errors_point_at_the_node(events_yaml: str, line: int, at: str, message: str) -> None:
    text = host(events_yaml)
    error = error_of(text)
    assert message in error.message
    col = text.splitlines()[line - 1].index(at) + 1
    assert error.span is not None and (error.span.path, error.span.line, error.span.col) == ("t.yaml", line, col)
    assert str(error).startswith(f"t.yaml:{line}:{col}: ")


def test_undefined_parent_and_cycles() -> None:
    error = error_of("""\
        scenario: t
        processes:
          - {pid: 5, exe: /bin/a}
          - {pid: 6, ppid: 77, exe: /bin/b}
        events: []
        """)
    assert "undefined parent process 77" in error.message and error.span and error.span.line == 4
    error = error_of("""\
        scenario: t
        processes:
          - {pid: 5, ppid: 6, exe: /bin/a}
          - {pid: 6, ppid: 5, exe: /bin/b}
        events: []
        """)
    assert "its own ancestor" in error.message


@pytest.mark.parametrize(("text", "line", "message"), [
    ("scenario: t\nevents: []\nhots: {}\n", 3, "unknown key 'hots'"),
    ("scenario: t\nevents:\n  - {pid: abc, open: /x}\n", 3, "'abc' is not of type 'integer'"),
    ("scenario: t\nevents:\n  - {pid: 1, open: /x, close: 3}\n", 3, "exactly one action, found open, close"),
    ("scenario: t\nevents:\n  - {pid: 1}\n", 3, "needs one action key"),
    ("scenario: t\nevents:\n  - {pid: 1,\n     opne: /x}\n", 4, "unknown key 'opne'"),
    ("scenario: t\ncontainers:\n  - {id: xyz, name: a}\nevents: []\n", 3, "does not match"),
    ("scenario: t\nprocesses:\n  - {pid: 1, exe: /x, ppid: 0, parent: 0}\nevents: []\n", 3, "ppid or parent"),
    ("scenario: t\nprocesses:\n  - {pid: 2, exe: /x, colour: red}\nevents: []\n", 3, "unknown key 'colour'"),
    ("scenario: t\nevents:\n  - {pid: 1, open: /x, args: {}}\n", 3, "syscall"),
    ("events: []\n", 1, "'scenario' is a required property"),
    ("scenario: t\nevents:\n  - {open: /x}\n", 3, "needs pid or tid"),
    ("scenario: t\ncontainers: [{image: x}]\nevents: []\n", 2, "needs id or name"),
])
def test_schema_errors_carry_line_numbers(text: str, line: int, message: str) -> None:
    error = error_of(text)
    assert message in error.message, error.message
    assert error.span is not None and error.span.line == line


def test_yaml_errors() -> None:
    error = error_of("scenario: t\nevents: [\n  {pid: 1\n")
    assert error.message.startswith("invalid YAML") and error.span and error.span.line >= 3
    error = error_of("scenario: t\nscenario: u\nevents: []\n")
    assert "duplicate key 'scenario'" in error.message and error.span and error.span.line == 2
    assert "mapping" in error_of("- 1\n- 2\n").message


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")
    path = tmp_path / "s.yaml"
    path.write_text(SHELL_IN_CONTAINER)
    assert load_scenario(str(path)).path == str(path)
    assert load_scenario(path, name="x").path == "x"


# --- random valid scenarios -----------------------------------------------------------------

_PATHS = st.sampled_from(["/etc/shadow", "/tmp/a b", "rel/file", "/dev/shm/x", "/root/.ssh/authorized_keys"])
_ACTIONS = st.one_of(
    st.builds(lambda p: {"open": p}, _PATHS),
    st.builds(lambda p, d: {"read_file": {"path": p, "data": d}}, _PATHS, st.text(max_size=100)),
    st.builds(lambda p, d: {"write_file": {"path": p, "data": d}}, _PATHS, st.binary(max_size=100)),
    st.builds(lambda ip, port: {"connect": f"{ip}:{port}"}, st.ip_addresses(v=4).map(str),
              st.integers(1, 65535)),
    st.builds(lambda e: {"exec": {"exe": e, "args": ["-c", "x"]}}, st.sampled_from(["/bin/sh", "/usr/bin/id"])),
    st.just({"spawn": {"exe": "/bin/sh", "args": ["-i"]}}),
    st.just({"spawn": {"thread": True}}),
    st.just({"chdir": "/tmp"}),
    st.builds(lambda m: {"syscall": "chmod", "args": {"filename": "/tmp/x", "mode": m}},
              st.sampled_from(["644", "4755", "S_IXUSR"])),
    st.builds(lambda n: {"syscall": "unlinkat", "args": {"name": n}}, _PATHS),
    st.builds(lambda r: {"open": {"path": "/nope", "res": r}}, st.sampled_from(["ENOENT", "EACCES", -13])),
    st.just({"syscall": "socket", "args": {"domain": "AF_INET6", "type": "SOCK_DGRAM"}}),
    st.just({"listen": "0.0.0.0:0"}),
    st.just({"syscall": "rename", "args": {"oldpath": "/tmp/a b", "newpath": "/tmp/c"}}),
    st.just({"syscall": "fchown", "args": {"fd": 0, "uid": 0, "gid": -1}}),
    st.just({"exec": {"exe": "/proc/self/fd/0"}}),
)


_STEPS = st.one_of(_ACTIONS, st.sampled_from(["exit", "listen+accept", "connect+send"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 5), _STEPS), max_size=12), st.booleans())
def test_random_scenarios_are_well_formed(steps: list[tuple[int, Any]], in_container: bool) -> None:
    processes: list[dict[str, Any]] = [{"pid": 100, "exe": "/usr/sbin/nginx", "tty": "pts/3"},
                                       {"pid": 101, "ppid": 100, "exe": "/bin/bash", "user": 1000}]
    if in_container:
        for proc in processes:
            proc["container"] = "c"
    alive = [100, 101]
    process_of = {100: 100, 101: 101}  # tid -> the pid of its process
    entries: list[dict[str, Any]] = []
    next_pid = 200
    for who, step in steps:
        pid = alive[who % len(alive)]
        if step == "exit":
            if pid != 100:  # keep one process alive
                entries.append({"pid": pid, "exit": who})
                # A main thread's exit takes the process's other threads along.
                alive = [t for t in alive if t != pid and (process_of[pid] != pid or process_of[t] != pid)]
        elif step == "listen+accept":
            entries += [{"pid": pid, "listen": "0.0.0.0:8080"}, {"pid": pid, "accept": "192.0.2.1:40000"}]
        elif step == "connect+send":
            entries.append({"pid": pid, "connect": {"to": "192.0.2.7:443", "fd": 50}})
            entries.append({"pid": pid, "send": {"fd": 50, "data": "x"}})
            entries.append({"pid": pid, "close": 50})
        elif "spawn" in step:
            entries.append({"pid": pid, "spawn": {**step["spawn"], "pid": next_pid}})
            alive.append(next_pid)
            process_of[next_pid] = process_of[pid] if step["spawn"].get("thread") else next_pid
            next_pid += 1
        else:
            entries.append({"pid": pid, **step})
    doc = {"scenario": "random", "containers": [{"name": "c", "image": "x"}], "processes": processes,
           "events": entries}
    scenario = load_scenario(yaml.safe_dump(doc, allow_unicode=True), name="random.yaml")
    evts = list(scenario.events())
    check_well_formed(evts)
    assert scenario.stats.events == len(evts)
    gone: set[int] = set()
    for event in evts:  # nothing happens on a thread after its procexit
        assert event.tid not in gone
        if event.name == "procexit":
            gone.add(event.tid)


# --- the benchmark stream -------------------------------------------------------------------

def _signature(evts: Iterable[Event]) -> list[tuple[int, int, int, tuple[Any, ...]]]:
    return [(e.ts, e.tid, e.code, tuple(e.params.values())) for e in evts]


def test_stream_is_deterministic_and_well_formed() -> None:
    first = list(generate_stream(3000, seed=7))
    assert len(first) == 3000
    assert _signature(first) == _signature(generate_stream(3000, seed=7))
    assert _signature(first) != _signature(generate_stream(3000, seed=8))
    check_well_formed(first)
    unindexed = {"read", "write", "futex", "epoll_wait", "fstat", "mmap", "lseek", "nanosleep", "getdents64",
                 "close", "recvfrom", "sendto"}
    share = sum(e.name in unindexed for e in first) / len(first)
    assert 0.7 < share < 0.97
    assert {"openat", "execve", "connect", "accept"} <= {e.name for e in first}


def test_stream_mix_and_exact_counts() -> None:
    evts = list(generate_stream(102, mix={"read": 1}, workers=1))
    # One spawn (5 events), 48 read pairs, and a signal delivery rather than half a pair.
    assert len(evts) == 102 and evts[-1].name == "signaldeliver"
    assert {e.name for e in evts[5:-1]} == {"read"}
    check_well_formed(evts)
    assert [e.name for e in generate_stream(101, mix={"read": 1}, workers=1)][-2:] == ["read", "read"]
    with pytest.raises(UsageError):
        generate_stream(10, mix={"teleport": 1})
    assert list(generate_stream(0)) == []


def test_stream_memory_is_flat() -> None:
    tracemalloc.start()
    try:
        for _ in generate_stream(30_000, seed=3):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # keeping the events would take over ten megabytes
