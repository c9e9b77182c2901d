"""Syscall field values as libsinsp extracts them, after the state saw the event."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from _events import DOCKER_ID, Replay, file_fd, header, ipv4_addr, ipv4_tuple, process

from falcorules_ci.extract.base import EitherEnd
from falcorules_ci.extract.syscall import Ancestors, syscall_extractor, syscall_output_extractor
from falcorules_ci.sources.event import Event
from falcorules_ci.sources.records import ContainerInfo
from falcorules_ci.state import constants as c


def get(r: Replay, ev: Event, name: str, arg: str | None = None) -> Any:
    return syscall_extractor(name, arg)(ev, r.state)


def out(r: Replay, ev: Event, name: str, arg: str | None = None) -> Any:
    return syscall_output_extractor(name, arg)(ev, r.state)


def _tree() -> Replay:
    """systemd(1) -> sshd(50) -> bash(100, alice) -> child 101 running `cat /etc/shadow`."""
    sshd = process(50, "sshd", ptid=1, exe="/usr/sbin/sshd", exepath="/usr/sbin/sshd")
    bash = process(100, "bash", ptid=50, uid=1000, gid=1000, loginuid=1000, cwd="/home/alice",
                   env=("HOME=/home/alice", "TERM=xterm"), fds=(file_fd(0, "/dev/pts/0"),))  # fmt: skip
    r = Replay(header(sshd, bash))
    r.spawn(100, 101)
    r.execve(101, "/usr/bin/cat", "/etc/shadow")
    return r


def test_process_fields() -> None:
    r = _tree()
    ev = r("getpid", 101)
    assert get(r, ev, "proc.name") == "cat"
    assert get(r, ev, "proc.cmdline") == "cat /etc/shadow"
    assert get(r, ev, "proc.args") == "/etc/shadow"
    assert get(r, ev, "proc.args", "0") == "/etc/shadow"
    assert get(r, ev, "proc.args", "5") == ""
    assert get(r, ev, "proc.exeline") == "/usr/bin/cat /etc/shadow"
    assert get(r, ev, "proc.pname") == "bash"
    assert get(r, ev, "proc.pcmdline") == "bash"
    assert get(r, ev, "proc.ppid") == 100
    assert get(r, ev, "proc.cwd") == "/home/alice/"
    assert get(r, ev, "proc.env") == "PATH=/bin"
    assert get(r, ev, "proc.env", "PATH") == "/bin"
    assert get(r, ev, "proc.env", "HOME") == ""
    assert get(r, ev, "proc.aenv", "HOME") == "/home/alice"
    assert get(r, ev, "proc.vpid") == 101
    assert get(r, ev, "thread.ismain") is True
    assert get(r, ev, "proc.duration") == ev.ts - r.state.threads.get(101).clone_ts  # type: ignore[union-attr]
    assert get(r, ev, "proc.is_exe_writable") is False
    assert get(r, ev, "thread.tid") == 101


def test_ancestor_fields_with_and_without_index() -> None:
    r = _tree()
    ev = r("getpid", 101)
    assert get(r, ev, "proc.aname", "0") == "cat"
    assert get(r, ev, "proc.aname", "1") == "bash"
    assert get(r, ev, "proc.aname", "2") == "sshd"
    assert get(r, ev, "proc.aname", "3") == "systemd"
    assert get(r, ev, "proc.aname", "4") is None
    assert get(r, ev, "proc.aexepath", "2") == "/usr/sbin/sshd"
    assert get(r, ev, "proc.apid", "2") == 50
    anywhere = get(r, ev, "proc.aname")
    assert isinstance(anywhere, Ancestors) and anywhere == ["bash", "sshd", "systemd"]
    assert get(r, ev, "proc.apid") == [100, 50, 1]
    assert get(r, ev, "proc.acmdline") == ["bash", "sshd", "systemd"]
    assert out(r, ev, "proc.aname") == "bash sshd systemd"
    assert out(r, ev, "proc.apid") == 101
    assert out(r, ev, "proc.aname", "1") == "bash"
    init_ev = r("getpid", 1)
    assert get(r, init_ev, "proc.aname") is None
    assert get(r, init_ev, "proc.pname") is None


def test_user_and_group_fields() -> None:
    r = _tree()
    ev = r("getpid", 101)
    assert (get(r, ev, "user.uid"), get(r, ev, "user.name"), get(r, ev, "user.homedir")) == (
        1000, "alice", "/home/alice",
    )  # fmt: skip
    assert get(r, ev, "user.loginuid") == 1000 and get(r, ev, "user.loginname") == "alice"
    assert get(r, ev, "group.name") == "alice"
    r("setuid", 101, res=0, uid=4321)
    assert get(r, ev, "user.name") == "<NA>" and get(r, ev, "user.shell") == "<NA>"
    r("setuid", 101, res=0, uid=0)
    assert get(r, ev, "user.name") == "root"
    init_ev = r("getpid", 1)
    # An unset loginuid (4294967295) reads -1.
    assert get(r, init_ev, "user.loginuid") == -1
    assert get(r, init_ev, "user.loginname") == "<NA>"
    unknown = r("getpid", 777)
    assert get(r, unknown, "user.loginuid") == -1
    assert get(r, unknown, "user.uid") == 4294967295 and get(r, unknown, "user.name") == "<NA>"
    assert get(r, unknown, "proc.name") == "<NA>"


def test_container_users_resolve_only_root() -> None:
    info = ContainerInfo(id=DOCKER_ID[:12], name="c", image="i")
    sh = process(200, "sh", uid=1000, cgroups=(f"cpu=/docker/{DOCKER_ID}",))
    r = Replay(header(sh, containers=(info,)))
    ev = r("getpid", 200)
    assert get(r, ev, "user.name") == "<NA>"
    r("setuid", 200, res=0, uid=0)
    assert get(r, ev, "user.name") == "root"


def test_missing_values() -> None:
    r = _tree()
    meta = r("container", -1, ">", json='{"container": {"id": "abc", "name": "x"}}')
    assert get(r, meta, "proc.name") is None
    assert get(r, meta, "user.name") is None
    assert get(r, meta, "container.name") == "x"
    nofd = r("kill", 101, res=0, pid=100, sig=9)
    assert get(r, nofd, "fd.name") is None and get(r, nofd, "fd.num") is None
    assert get(r, nofd, "evt.res") == "SUCCESS"
    assert get(r, nofd, "evt.arg", "sig") == "SIGKILL" and get(r, nofd, "evt.arg", "pid") == "bash"
    generic = r("getpid", 101)
    # Generic syscall events carry no return value.
    assert get(r, generic, "evt.res") is None and get(r, generic, "evt.type") == "getpid"
    enter = r("openat", 101, ">", dirfd=-100, name="/x", flags=1, mode=0)
    assert get(r, enter, "evt.res") is None and get(r, enter, "evt.dir") == ">"
    unknown_fd = r("read", 101, res=1, data=b"z", fd=42, size=1)
    # An unknown fd still has a number, an (empty) name and a guessed type character.
    assert get(r, unknown_fd, "fd.num") == 42
    assert get(r, unknown_fd, "fd.name") == ""
    assert get(r, unknown_fd, "fd.directory") == "/"
    assert get(r, unknown_fd, "fd.typechar") == "o"
    assert get(r, unknown_fd, "fd.type") is None


def test_open_fields_and_event_arguments() -> None:
    r = _tree()
    ev = r("openat", 101, fd=3, dirfd=-100, name="../../etc/shadow", flags=c.O_RDONLY | c.O_CLOEXEC, mode=0)
    assert get(r, ev, "fd.name") == "/etc/shadow"
    assert (get(r, ev, "fd.directory"), get(r, ev, "fd.filename")) == ("/etc", "shadow")
    assert get(r, ev, "fd.nameraw") == "../../etc/shadow"
    assert get(r, ev, "fd.typechar") == "f" and get(r, ev, "fd.type") == "file"
    assert get(r, ev, "fd.num") == 3
    assert get(r, ev, "evt.is_open_read") is True and get(r, ev, "evt.is_open_write") is False
    assert get(r, ev, "evt.arg", "flags") == "O_RDONLY|O_CLOEXEC"
    assert get(r, ev, "evt.arg", "fd") == "<f>/etc/shadow"
    assert get(r, ev, "evt.arg", "dirfd") == "AT_FDCWD"
    assert get(r, ev, "evt.arg", "name") == "/etc/shadow"
    assert get(r, ev, "evt.arg", "2") == "/etc/shadow"
    assert get(r, ev, "evt.arg", "nonexistent") is None
    assert get(r, ev, "evt.rawarg", "flags") == c.O_RDONLY | c.O_CLOEXEC
    assert get(r, ev, "evt.rawarg", "name") == "../../etc/shadow"
    assert get(r, ev, "evt.arg", "mode") == "0"
    assert get(r, ev, "evt.args").startswith("fd=3(<f>/etc/shadow) dirfd=-100(AT_FDCWD) name=../../etc/shadow")
    assert get(r, ev, "evt.type") == "openat" and get(r, ev, "syscall.type") == "openat"
    assert get(r, ev, "evt.category") == "file"
    assert get(r, ev, "fs.path.name") == "/etc/shadow"
    assert get(r, ev, "fs.path.nameraw") == "../../etc/shadow"
    failed = r("openat", 101, fd=-2, dirfd=-100, name="missing", flags=c.O_RDONLY, mode=0)
    assert get(r, failed, "evt.res") == "ENOENT" and get(r, failed, "evt.rawres") == -2
    assert get(r, failed, "evt.failed") is True
    assert get(r, failed, "fd.name") == "/home/alice/missing"
    assert get(r, failed, "fd.num") == -1
    assert get(r, failed, "evt.arg", "fd") == "ENOENT"


def test_is_open_exec_and_creat_flags() -> None:
    r = _tree()
    ev = r("openat", 101, fd=4, dirfd=-100, name="/tmp/run.sh", flags=c.O_WRONLY | c.O_CREAT, mode=0o755)
    assert get(r, ev, "evt.is_open_exec") is True and get(r, ev, "evt.is_open_write") is True
    creat = r("creat", 101, fd=5, name="/tmp/x", mode=0o644, dev=0, ino=1)
    # creat() carries no open flags: the open_read/open_write tests never hold for it.
    assert get(r, creat, "evt.is_open_write") is False and get(r, creat, "evt.is_open_exec") is False
    assert get(r, creat, "fd.name") == "/tmp/x"


def test_network_fields() -> None:
    r = _tree()
    r("socket", 101, fd=4, domain=c.AF_INET, type=c.SOCK_STREAM, proto=0)
    ev = r("connect", 101, res=0, tuple=ipv4_tuple("10.0.0.2", 40000, "8.8.8.8", 443), fd=4,
           addr=ipv4_addr("8.8.8.8", 443))  # fmt: skip
    assert get(r, ev, "fd.name") == "10.0.0.2:40000->8.8.8.8:443"
    assert get(r, ev, "fd.sip") == IPv4Address("8.8.8.8")
    assert get(r, ev, "fd.cip") == IPv4Address("10.0.0.2")
    assert (get(r, ev, "fd.lip"), get(r, ev, "fd.rip")) == (IPv4Address("10.0.0.2"), IPv4Address("8.8.8.8"))
    assert (get(r, ev, "fd.sport"), get(r, ev, "fd.cport"), get(r, ev, "fd.lport"), get(r, ev, "fd.rport")) == (
        443, 40000, 40000, 443,
    )  # fmt: skip
    assert get(r, ev, "fd.sproto") == "443"
    ends = get(r, ev, "fd.ip")
    assert isinstance(ends, EitherEnd) and ends == (IPv4Address("10.0.0.2"), IPv4Address("8.8.8.8"))
    assert get(r, ev, "fd.port") == (40000, 443)
    assert get(r, ev, "fd.snet") == IPv4Address("8.8.8.8")
    assert get(r, ev, "fd.l4proto") == "tcp" and get(r, ev, "fd.sockfamily") == "ip"
    assert get(r, ev, "fd.typechar") == "4" and get(r, ev, "fd.connected") is True
    assert get(r, ev, "fd.is_server") is False
    assert get(r, ev, "evt.arg", "fd") == "<4t>10.0.0.2:40000->8.8.8.8:443"
    assert get(r, ev, "evt.arg", "addr") == "8.8.8.8:443"
    # Nothing resolves in a replay without DNS answers: no name matches, none is printed.
    assert get(r, ev, "fd.sip.name") == EitherEnd(()) and out(r, ev, "fd.sip.name") is None


def test_ip_name_fields_use_the_inputs_dns_answers() -> None:
    head = header(process(100, "curl", uid=1000, gid=1000), containers=())
    head.dns = {"api.example.com": ("8.8.8.8",), "dns.google": ("8.8.4.4", "8.8.8.8"), "bad": ("not-an-ip",)}
    r = Replay(head)
    r("socket", 100, fd=4, domain=c.AF_INET, type=c.SOCK_STREAM, proto=0)
    ev = r("connect", 100, res=0, tuple=ipv4_tuple("10.0.0.2", 40000, "8.8.8.8", 443), fd=4,
           addr=ipv4_addr("8.8.8.8", 443))  # fmt: skip
    # Every name that resolves to the address, in the order the answers list them.
    for name in ("fd.sip.name", "fd.rip.name"):
        value = get(r, ev, name)
        assert isinstance(value, EitherEnd) and value == ("api.example.com", "dns.google")
        assert out(r, ev, name) == "api.example.com"
    # The client end is this machine's address, which no name resolves to.
    for name in ("fd.cip.name", "fd.lip.name"):
        assert get(r, ev, name) == EitherEnd(()) and out(r, ev, name) is None
    listener = r("socket", 100, fd=5, domain=c.AF_INET, type=c.SOCK_STREAM, proto=0)
    assert get(r, listener, "fd.sip.name") is None  # no role yet: no value
    opened = r("openat", 100, fd=6, dirfd=c.AT_FDCWD, name="/etc/hosts", flags=1, mode=0, dev=0, ino=0)
    assert get(r, opened, "fd.sip.name") is None and out(r, opened, "fd.rip.name") is None
    # A listening socket has a server name only when one resolves to its address.
    r("bind", 100, res=0, fd=5, addr=ipv4_addr("8.8.4.4", 53))
    listening = r("listen", 100, res=0, fd=5, backlog=5)
    assert get(r, listening, "fd.sip.name") == ("dns.google",) and out(r, listening, "fd.sip.name") == "dns.google"
    assert get(r, listening, "fd.cip.name") is None and get(r, listening, "fd.rip.name") is None
    r("bind", 100, res=0, fd=6, addr=ipv4_addr("10.0.0.2", 80))
    unnamed = r("listen", 100, res=0, fd=6, backlog=5)
    assert get(r, unnamed, "fd.sip.name") is None


def test_socket_before_connect_has_no_role_so_no_endpoints() -> None:
    r = _tree()
    ev = r("socket", 101, fd=4, domain=c.AF_INET, type=c.SOCK_STREAM, proto=0)
    assert get(r, ev, "fd.sip") is None and get(r, ev, "fd.l4proto") == "<NA>"
    # libsinsp compares the zeroed addresses of a socket that has none yet
    assert get(r, ev, "fd.typechar") == "4" and get(r, ev, "fd.ip") == (IPv4Address(0), IPv4Address(0))


def test_setuid_arguments_resolve_user_names() -> None:
    r = _tree()
    ev = r("setuid", 101, res=0, uid=1000)
    assert get(r, ev, "evt.arg", "uid") == "alice"
    assert get(r, ev, "evt.rawarg", "uid") == 1000
    none = r("setresuid", 101, res=0, ruid=0xFFFFFFFF, euid=0xFFFFFFFF, suid=0xFFFFFFFF)
    assert get(r, none, "evt.arg", "euid") == "<NONE>"


def test_container_and_k8s_fields() -> None:
    info = ContainerInfo(
        id=DOCKER_ID[:12], full_id=DOCKER_ID, name="web", image="nginx:1.25", image_repository="nginx",
        image_tag="1.25", privileged=True, runtime="cri",
        labels={"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "prod", "app": "web"},
    )  # fmt: skip
    from falcorules_ci.sources.records import MountInfo

    info2 = ContainerInfo(id="b" * 12, mounts=(MountInfo("/proc", "/host/proc"), MountInfo("/etc", "/h/etc")))
    web = process(300, "nginx", cgroups=(f"cpuset=/kubepods/besteffort/pod1/{DOCKER_ID}",))
    other = process(301, "sh", cgroups=(f"cpuset=/docker/{'b' * 64}",))
    bare = process(302, "sh", cgroups=(f"cpuset=/docker/{'c' * 64}",))
    r = Replay(header(web, other, bare, containers=(info, info2)))
    ev = r("getpid", 300)
    assert get(r, ev, "container.id") == DOCKER_ID[:12]
    assert get(r, ev, "container.name") == "web" and get(r, ev, "container.privileged") is True
    assert get(r, ev, "container.image.repository") == "nginx" and get(r, ev, "container.type") == "cri"
    assert get(r, ev, "k8s.pod.name") == "web-0" and get(r, ev, "k8s.ns.name") == "prod"
    assert get(r, ev, "container.label", "app") == "web" and get(r, ev, "container.labels") == "app:web"
    assert get(r, ev, "k8s.pod.uid") is None
    mounts = r("getpid", 301)
    assert get(r, mounts, "container.mount.dest", "/proc*") == "/host/proc"
    assert get(r, mounts, "container.mount.source", "/h/") == "/etc"
    assert get(r, mounts, "container.mount.dest", "/var/run/docker.sock") is None
    assert get(r, mounts, "container.mount", "1") == "/etc:/h/etc::true:"
    unknown = r("getpid", 302)
    assert get(r, unknown, "container.id") == "c" * 12 and get(r, unknown, "container.name") is None
    host = r("getpid", 1)
    assert (get(r, host, "container.id"), get(r, host, "container.name"), get(r, host, "container.image")) == (
        "host", "host", "",
    )  # fmt: skip
    assert get(r, host, "container.privileged") is False and get(r, host, "k8s.pod.name") is None


def test_time_and_numbering_fields() -> None:
    r = _tree()
    ev = r("getpid", 101)
    assert get(r, ev, "evt.num") == ev.num
    assert get(r, ev, "evt.rawtime") == ev.ts
    assert get(r, ev, "evt.time.iso8601").endswith("+0000")
    text = get(r, ev, "evt.time")
    assert len(text) == len("HH:MM:SS.nnnnnnnnn") and text.endswith(f"{ev.ts % 10**9:09d}")
    assert get(r, ev, "evt.reltime") == ev.ts - r.state.first_ts
    assert get(r, ev, "evt.hostname") == "fixture-host"
    assert get(r, ev, "evt.source") == "syscall" and get(r, ev, "evt.is_async") is False


def test_evt_type_is_and_around() -> None:
    r = _tree()
    ev = r("open", 101, fd=3, name="/x", flags=1, mode=0)
    assert get(r, ev, "evt.type.is", "open") == 1
    # libsinsp picks the first event code named like the argument: the old openat pair.
    openat = r("openat", 101, fd=4, dirfd=-100, name="/y", flags=1, mode=0)
    assert get(r, openat, "evt.type.is", "openat") == 0
    window = get(r, ev, "evt.around", str(ev.ts))
    assert window.matches(0) and not get(r, ev, "evt.around", str(ev.ts - 5_000_000)).matches(4)


def test_buffer_and_io_fields() -> None:
    r = _tree()
    r("openat", 101, fd=3, dirfd=-100, name="/tmp/f", flags=c.O_WRONLY, mode=0)
    ev = r("write", 101, res=6, data=b"hi\x00\nyo", fd=3, size=6)
    assert get(r, ev, "evt.buffer") == b"hi\x00\nyo"
    assert get(r, ev, "evt.arg", "data") == "hi..yo"
    assert get(r, ev, "evt.is_io_write") is True and get(r, ev, "evt.io_dir") == "write"
    assert get(r, ev, "evt.buflen") == 6 and get(r, ev, "evt.buflen.file.out") == 6
    assert get(r, ev, "evt.buflen.net") is None


def test_fs_path_and_abspath_fields() -> None:
    r = _tree()
    ren = r("rename", 101, res=0, oldpath="notes.txt", newpath="/tmp/../var/x")
    assert get(r, ren, "fs.path.source") == "/home/alice/notes.txt"
    assert get(r, ren, "fs.path.target") == "/var/x"
    assert get(r, ren, "fs.path.targetraw") == "/tmp/../var/x"
    assert get(r, ren, "fs.path.name") is None
    failed = r("unlink", 101, res=-13, path="/etc/passwd")
    assert get(r, failed, "fs.path.name") is None
    r("openat", 101, fd=6, dirfd=-100, name="/srv", flags=c.O_DIRECTORY, mode=0)
    at = r("renameat", 101, res=0, olddirfd=6, oldpath="a", newdirfd=-100, newpath="b")
    assert get(r, at, "evt.abspath", "src") == "/srv/a"
    assert get(r, at, "evt.abspath", "dst") == "/home/alice/b"
    assert get(r, at, "evt.arg", "oldpath") == "/srv/a"


def test_fdlist_fields_on_poll() -> None:
    r = _tree()
    r("openat", 101, fd=3, dirfd=-100, name="/tmp/f", flags=1, mode=0)
    ev = r("poll", 101, res=1, fds=((3, 1), (0, 1), (9, 4)), timeout=10)
    assert get(r, ev, "fdlist.nums") == "3,0,9"
    assert get(r, ev, "fdlist.names") == "/tmp/f,/dev/pts/0,<NA>"
    assert get(r, ev, "fdlist.sips") is None
    assert get(r, ev, "evt.arg", "fds") == "3:f1 0:f1 9:?4"


def test_environment_of_ancestors() -> None:
    r = _tree()
    ev = r("getpid", 101)
    assert out(r, ev, "proc.aenv") == "PATH=/bin"
    assert get(r, ev, "proc.aenv") == ["HOME=/home/alice TERM=xterm", "", ""]
    assert get(r, ev, "proc.aenv", "TERM") == "xterm"
    assert get(r, ev, "proc.aenv", "NOPE") == ""
