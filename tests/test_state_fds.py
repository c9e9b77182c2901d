"""Fd table semantics: path resolution, sockets, close/dup, enter-event completion."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from _events import Replay, dir_fd, file_fd, header, ipv4_addr, ipv4_tuple, process

from falcorules_ci.sources.event import SockTuple
from falcorules_ci.state import constants as c
from falcorules_ci.state.fds import FdInfo


def _replay() -> Replay:
    fds = (file_fd(0, "/dev/pts/0"), dir_fd(3, "/var/log"))
    return Replay(header(process(100, "app", cwd="/srv/app", fds=fds)))


def _openat(r: Replay, name: str, dirfd: int = c.AT_FDCWD, fd: int = 7, flags: int = c.O_RDONLY) -> FdInfo | None:
    r("openat", 100, fd=fd, dirfd=dirfd, name=name, flags=flags, mode=0)
    return r.state.fd


@pytest.mark.parametrize(
    ("name", "dirfd", "expected"),
    [
        ("/etc/passwd", c.AT_FDCWD, "/etc/passwd"),
        ("conf/app.yaml", c.AT_FDCWD, "/srv/app/conf/app.yaml"),
        ("../../etc/./shadow", c.AT_FDCWD, "/etc/shadow"),
        ("../../../../../etc/shadow", c.AT_FDCWD, "/etc/shadow"),
        ("syslog", 3, "/var/log/syslog"),
        ("../run//x/", 3, "/var/run/x"),
        ("/abs/ignores/dirfd", 3, "/abs/ignores/dirfd"),
        ("x", 99, "<UNKNOWN>x"),
    ],
)
def test_openat_resolves_relative_paths(name: str, dirfd: int, expected: str) -> None:
    info = _openat(_replay(), name, dirfd)
    assert info is not None and info.name == expected and info.name_raw == name


def test_open_resolves_against_cwd_and_directory_flag_makes_a_directory() -> None:
    r = _replay()
    r("open", 100, fd=8, name="data", flags=c.O_RDONLY | c.O_DIRECTORY, mode=0)
    assert r.state.fd is not None and r.state.fd.name == "/srv/app/data"
    assert r.state.fd.fd_type == c.FD_DIRECTORY


def test_failed_open_adds_nothing() -> None:
    r = _replay()
    r("openat", 100, fd=-2, dirfd=c.AT_FDCWD, name="missing", flags=1, mode=0)
    assert r.state.fd is None and 7 not in r.state.threads.get(100).fds  # type: ignore[union-attr]


def test_enter_path_and_flags_win_over_a_swapped_exit_path() -> None:
    r = _replay()
    r("openat", 100, ">", dirfd=c.AT_FDCWD, name="/etc/shadow", flags=c.O_RDONLY, mode=0)
    r("openat", 100, fd=7, dirfd=c.AT_FDCWD, name="/tmp/harmless", flags=c.O_WRONLY | c.O_F_CREATED, mode=0)
    info = r.state.fd
    assert info is not None and info.name == "/etc/shadow"
    assert info.openflags == c.O_RDONLY | c.O_F_CREATED


def test_exit_missing_parameters_are_completed_from_the_enter_event() -> None:
    r = _replay()
    r("socket", 100, fd=4, domain=c.AF_INET, type=c.SOCK_STREAM, proto=0)
    r("connect", 100, ">", fd=4, addr=ipv4_addr("1.2.3.4", 80))
    ev = r("connect", 100, res=0, tuple=ipv4_tuple("10.0.0.2", 5000, "1.2.3.4", 80))
    assert ev.params["fd"] == 4 and ev.params["addr"].port == 80
    info = r.state.fd
    assert info is not None and info.name == "10.0.0.2:5000->1.2.3.4:80"
    assert info.is_role_client() and info.l4proto == c.L4_TCP


def test_connect_in_progress_counts_as_connected_and_failed_connect_does_not() -> None:
    r = _replay()
    r("socket", 100, fd=4, domain=c.AF_INET, type=c.SOCK_STREAM, proto=0)
    r("connect", 100, res=-111, tuple=ipv4_tuple("10.0.0.2", 5000, "1.2.3.4", 80), fd=4)
    assert r.state.fd is not None and r.state.fd.name == ""
    r("connect", 100, res=-c.EINPROGRESS, tuple=ipv4_tuple("10.0.0.2", 5000, "1.2.3.4", 80), fd=4)
    assert r.state.fd is not None and r.state.fd.dip == IPv4Address("1.2.3.4")


def test_accept_creates_a_server_side_socket() -> None:
    r = _replay()
    r("accept", 100, fd=9, tuple=ipv4_tuple("8.8.8.8", 50000, "10.0.0.2", 22))
    info = r.state.fd
    assert info is not None and info.is_role_server()
    assert info.name == "8.8.8.8:50000->10.0.0.2:22" and info.l4proto == c.L4_TCP


def test_bind_makes_a_server_socket() -> None:
    r = _replay()
    r("socket", 100, fd=4, domain=c.AF_INET, type=c.SOCK_STREAM, proto=c.IPPROTO_TCP)
    r("bind", 100, res=0, addr=ipv4_addr("0.0.0.0", 8080), fd=4)
    info = r.state.fd
    assert info is not None and info.fd_type == c.FD_IPV4_SERVSOCK
    assert (info.sport, info.name) == (8080, "0.0.0.0:8080")


def test_sendto_on_unknown_socket_infers_udp() -> None:
    r = _replay()
    r("sendto", 100, res=5, data=b"hello", fd=11, size=5, tuple=ipv4_tuple("10.0.0.2", 9999, "10.0.0.53", 53))
    info = r.state.fd
    assert info is not None and info.l4proto == c.L4_UDP and info.is_role_client()
    assert info.name == "10.0.0.2:9999->10.0.0.53:53"


def test_close_removes_the_fd_at_the_next_event() -> None:
    r = _replay()
    _openat(r, "/etc/hosts")
    r("close", 100, res=0, fd=7)
    assert r.state.fd is not None and r.state.fd.name == "/etc/hosts"
    r("getpid", 100)
    assert 7 not in r.state.threads.get(100).fds  # type: ignore[union-attr]


def test_dup_copies_the_fd_without_close_on_exec() -> None:
    r = _replay()
    _openat(r, "/etc/hosts", flags=c.O_WRONLY | c.O_CLOEXEC)
    r("dup2", 100, res=1, oldfd=7, newfd=1)
    info = r.state.threads.get(100).fds[1]  # type: ignore[union-attr]
    assert info.name == "/etc/hosts" and not info.openflags & c.O_CLOEXEC
    assert r.state.threads.get(100).flags & c.CL_PIPE_SRC  # type: ignore[union-attr]


def test_fcntl_dupfd_cloexec_and_pipe() -> None:
    r = _replay()
    _openat(r, "/etc/hosts")
    r("fcntl", 100, res=20, fd=7, cmd=c.FCNTL_F_DUPFD_CLOEXEC, arg=20)
    fds = r.state.threads.get(100).fds  # type: ignore[union-attr]
    assert fds[20].name == "/etc/hosts" and fds[20].openflags & c.O_CLOEXEC
    r("pipe2", 100, res=0, fd1=30, fd2=31, ino=77, flags=0)
    assert fds[30].fd_type == fds[31].fd_type == c.FD_FIFO


def test_unix_socket_connect_names_the_peer_path() -> None:
    r = _replay()
    r("socket", 100, fd=4, domain=c.AF_UNIX, type=c.SOCK_STREAM, proto=0)
    conn = SockTuple(family=c.AF_UNIX, unix_src=0xABC, unix_dst=0xDEF, dst_path="/var/run/docker.sock")
    r("connect", 100, res=0, tuple=conn, fd=4)
    assert r.state.fd is not None and r.state.fd.name == "abc->def /var/run/docker.sock"


def test_fd_name_changed_only_when_parsing_renamed_it() -> None:
    r = _replay()
    _openat(r, "/etc/hosts")
    assert r.state.fd_name_changed
    r("read", 100, res=1, data=b"x", fd=7, size=1)
    assert not r.state.fd_name_changed
