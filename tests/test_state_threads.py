"""Thread table semantics: clone, execve, exit, reaping, placeholders, credentials."""

from __future__ import annotations

from _events import DOCKER_ID, Replay, file_fd, header, process

from falcorules_ci.state import constants as c


def _bash_tree() -> Replay:
    """init(1) -> bash(100, alice, cwd /home/alice, fd 0 and a CLOEXEC fd 5)."""
    fds = (file_fd(0, "/dev/pts/0"), file_fd(5, "/etc/secret", flags=c.O_RDONLY | c.O_CLOEXEC))
    bash = process(100, "bash", uid=1000, gid=1000, loginuid=1000, cwd="/home/alice",
                   env=("HOME=/home/alice", "LANG=C"), fds=fds, tty=34816)  # fmt: skip
    return Replay(header(bash))


def test_header_processes_are_linked_to_parents_and_groups() -> None:
    r = _bash_tree()
    bash = r.state.threads.get(100)
    assert bash is not None and bash.group is not None
    assert r.state.threads.parent(bash) is r.state.threads.get(1)
    assert bash.get_cwd() == "/home/alice/"
    assert bash.cmdline == "bash"


def test_clone_in_caller_then_child_inherits_process_state() -> None:
    r = _bash_tree()
    r.spawn(100, 101)
    child = r.state.threads.get(101)
    assert child is not None and r.state.thread is child
    assert child.ptid == 100 and child.pid == 101
    assert sorted(child.fds) == [0, 5]
    assert child.get_cwd() == "/home/alice/"
    assert child.env == ("HOME=/home/alice", "LANG=C")
    assert (child.uid, child.loginuid, child.tty) == (1000, 1000, 34816)
    assert child.exepath == "/usr/bin/bash"
    assert r.state.threads.parent(child) is r.state.threads.get(100)


def test_clone_child_first_with_unknown_parent_gets_placeholder_parent() -> None:
    r = Replay(header())
    r("clone", 300, res=0, exe="x", args=b"", tid=300, pid=300, ptid=299, cwd="", fdlimit=1,
      comm="x", flags=0, uid=0, gid=0)  # fmt: skip
    child = r.state.threads.get(300)
    placeholder = r.state.threads.get(299)
    assert child is not None and placeholder is not None
    assert placeholder.comm == "<NA>" and placeholder.is_invalid()
    # An invalid parent is not linked: the child's parent becomes 0, which no thread has.
    assert child.ptid == 0 and r.state.threads.parent(child) is None


def test_execve_replaces_identity_and_drops_cloexec_fds() -> None:
    r = _bash_tree()
    r.spawn(100, 101)
    r.execve(101, "/usr/bin/cat", "/etc/shadow")
    t = r.state.thread
    assert t is not None
    assert (t.comm, t.exe, t.exepath, t.cmdline) == ("cat", "/usr/bin/cat", "/usr/bin/cat", "cat /etc/shadow")
    assert t.args == ("/etc/shadow",)
    assert sorted(t.fds) == [0]


def test_failed_execve_keeps_the_old_identity() -> None:
    r = _bash_tree()
    r.spawn(100, 101)
    r.execve(101, "/usr/bin/nope", "x", res=-2)
    t = r.state.thread
    assert t is not None and (t.comm, t.cmdline) == ("bash", "bash")
    assert sorted(t.fds) == [0, 5]


def test_old_execve_layout_leaves_missing_state_and_rebuilds_exepath_from_enter() -> None:
    r = _bash_tree()
    bash = r.state.threads.get(100)
    assert bash is not None
    bash.cap_effective = 0x20
    r("execve", 100, ">", filename="../bin/ls")
    # An execve exit without the newer parameters (no caps, no trusted exe path, no cwd use).
    r("execve", 100, res=0, exe="ls", args=b"-l\0", tid=100, pid=100, ptid=1, cwd="/elsewhere",
      fdlimit=1024, comm="ls")  # fmt: skip
    assert bash.comm == "ls" and bash.args == ("-l",)
    assert bash.cap_effective == 0x20
    assert bash.get_cwd() == "/home/alice/"
    assert bash.exepath == "/home/bin/ls"


def test_procexit_keeps_thread_for_its_own_event_then_reparents_children_to_init() -> None:
    r = _bash_tree()
    r.spawn(100, 101)
    r.spawn(101, 102)
    r("procexit", 101, ">", status=0)
    assert r.state.thread is r.state.threads.get(101)
    r("getpid", 102)
    assert r.state.threads.get(101) is None
    orphan = r.state.threads.get(102)
    assert orphan is not None and orphan.ptid == 1


def test_orphan_without_reaper_has_no_parent() -> None:
    r = Replay(header(process(100, "bash", ptid=50), with_init=False))
    r.spawn(100, 101)
    r("procexit", 100, ">", status=0)
    r("getpid", 101)
    orphan = r.state.threads.get(101)
    assert orphan is not None and orphan.ptid == 0
    assert r.state.threads.parent(orphan) is None


def test_prctl_child_subreaper_adopts_orphans() -> None:
    r = _bash_tree()
    r.spawn(100, 101)
    r.spawn(101, 102)
    r("prctl", 100, res=0, option=c.PR_SET_CHILD_SUBREAPER, arg2_int=1)
    r("procexit", 101, ">", status=0)
    r("getpid", 102)
    orphan = r.state.threads.get(102)
    assert orphan is not None and orphan.ptid == 100


def test_unknown_thread_gets_placeholder_entry() -> None:
    r = Replay(header())
    r("read", 4242, res=0, fd=0, size=1)
    t = r.state.thread
    assert t is not None and t.tid == 4242
    assert (t.comm, t.exe, t.uid, t.loginuid, t.pid, t.ptid) == ("<NA>", "<NA>", 2**32 - 1, 2**32 - 1, -1, -1)
    assert t.get_cwd() == "./"


def test_clone_exit_and_procexit_do_not_invent_threads() -> None:
    r = Replay(header())
    r("procexit", 4242, ">", status=0)
    assert r.state.thread is None and r.state.threads.get(4242) is None


def test_setuid_applies_before_rules_and_only_on_success() -> None:
    r = _bash_tree()
    r("setuid", 100, res=0, uid=0)
    assert r.state.threads.get(100).uid == 0  # type: ignore[union-attr]
    r("setuid", 100, res=-1, uid=1000)
    assert r.state.threads.get(100).uid == 0  # type: ignore[union-attr]
    r("setresuid", 100, res=0, ruid=5, euid=7, suid=9)
    r("setresgid", 100, res=0, rgid=5, egid=8, sgid=9)
    bash = r.state.threads.get(100)
    assert bash is not None and (bash.uid, bash.gid) == (7, 8)


def test_unshare_newuser_grants_all_capabilities_only_when_it_succeeds() -> None:
    r = _bash_tree()
    r("unshare", 100, res=-1, flags=c.CL_CLONE_NEWUSER)
    bash = r.state.threads.get(100)
    assert bash is not None and bash.cap_effective == 0
    r("unshare", 100, res=0, flags=c.CL_CLONE_NEWUSER)
    assert bash.cap_effective == bash.cap_permitted == c.MAX_CAPS


def test_chdir_relative_and_fchdir() -> None:
    r = _bash_tree()
    r("chdir", 100, res=0, path="../bob/./docs/")
    bash = r.state.threads.get(100)
    assert bash is not None and bash.get_cwd() == "/home/bob/docs/"
    r("openat", 100, fd=7, dirfd=-100, name="/tmp", flags=c.O_DIRECTORY, mode=0)
    r("fchdir", 100, res=0, fd=7)
    assert bash.get_cwd() == "/tmp/"


def test_threads_share_the_main_thread_fd_table_and_die_with_execve() -> None:
    r = _bash_tree()
    flags = c.CL_CLONE_THREAD | c.CL_CLONE_FILES
    r.spawn(100, 110, flags=flags)
    thread = r.state.threads.get(110)
    assert thread is not None and thread.pid == 100 and thread.fd_table() is r.state.threads.get(100).fds  # type: ignore[union-attr]
    r("openat", 110, fd=9, dirfd=-100, name="/tmp/x", flags=1, mode=0)
    assert 9 in r.state.threads.get(100).fds  # type: ignore[union-attr]
    r.execve(100, "/bin/true")
    assert r.state.threads.get(110) is None


def test_child_exit_before_caller_return_is_not_readded() -> None:
    r = _bash_tree()
    common = dict(exe="bash", args=b"", pid=101, ptid=100, cwd="", fdlimit=1, comm="bash",
                  flags=0, uid=1000, gid=1000)  # fmt: skip
    r("clone", 101, res=0, tid=101, **common)
    r("procexit", 101, ">", status=0)
    r("clone", 100, res=101, tid=100, **dict(common, pid=100, ptid=1))
    assert r.state.threads.get(101) is None


def test_container_id_from_cgroups_on_process_events() -> None:
    shim = process(200, "runc", cgroups=(f"cpu=/docker/{DOCKER_ID}",))
    r = Replay(header(shim))
    assert r.state.threads.get(200).container_id == DOCKER_ID[:12]  # type: ignore[union-attr]
    r.spawn(200, 201, cgroups=b"cpu=/docker/" + DOCKER_ID.encode() + b"\0")
    assert r.state.threads.get(201).container_id == DOCKER_ID[:12]  # type: ignore[union-attr]


def test_thread_table_stays_flat_over_many_short_processes() -> None:
    r = _bash_tree()
    before = len(r.state.threads)
    for i in range(2000):
        tid = 1000 + i
        r.spawn(100, tid)
        r.execve(tid, "/bin/true")
        r("procexit", tid, ">", status=0)
    r("getpid", 100)
    assert len(r.state.threads) == before
    bash = r.state.threads.get(100)
    assert bash is not None and not bash.children
    assert len(r.state._enter_slots) == 0
