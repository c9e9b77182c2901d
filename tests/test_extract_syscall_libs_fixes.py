"""Field values the sysdig differential showed were not libsinsp 0.25's, pinned after their fixes."""

from __future__ import annotations

from typing import Any

from _events import Replay, header, process

from falcorules_ci.engine.core import EmbeddedEngine
from falcorules_ci.engine.options import EngineOptions
from falcorules_ci.extract.syscall import print_format, syscall_extractor, syscall_output_extractor
from falcorules_ci.sources.event import SYSCALL_SOURCE, Event
from falcorules_ci.sources.records import InterfaceInfo


def get(r: Replay, ev: Event, name: str, arg: str | None = None) -> Any:
    return syscall_extractor(name, arg)(ev, r.state)


def out(r: Replay, ev: Event, name: str, arg: str | None = None) -> Any:
    return syscall_output_extractor(name, arg)(ev, r.state)


def printed(r: Replay, ev: Event, fmt: str) -> str:
    """``fmt`` as the embedded engine's formatter prints it for an event the state already saw."""
    runtime = EmbeddedEngine([], EngineOptions(timezone="UTC")).runtime(SYSCALL_SOURCE)
    runtime.values.reset(ev, r.state)
    return runtime.formatter.compile(fmt).render(ev, runtime.values, runtime.utc_offset)


def _replay() -> Replay:
    return Replay(header(process(100, "bash")))


def _dyn(index: int, value: int, size: int = 8, signed: bool = False) -> bytes:
    return bytes([index]) + value.to_bytes(size, "little", signed=signed)


def test_type_is_prints_no_value_in_outputs() -> None:
    # evt.type.is is PF_NA: rawval_to_string has no text for it, while conditions compare 0/1.
    r = _replay()
    ev = r("open", 100, fd=3, name="/x", flags=1, mode=0)
    assert print_format("evt.type.is") == "PF_NA"
    assert get(r, ev, "evt.type.is", "open") == 1
    assert printed(r, ev, "%evt.type.is.open") == "<NA>"


def test_generic_event_syscall_id_resolves_to_its_name() -> None:
    r = _replay()
    enter = r("syscall", 100, ">", ID=75, nativeID=10)
    assert get(r, enter, "evt.arg", "0") == "mprotect"
    assert get(r, enter, "evt.arg", "ID") == "mprotect"
    # Only the generic exit hides its arguments.
    assert get(r, enter, "evt.args") == "ID=75(mprotect) nativeID=10"
    exit_ = r("syscall", 100, "<", ID=75)
    assert get(r, exit_, "evt.args") == ""
    unknown = r("syscall", 100, ">", ID=0, nativeID=221)
    assert get(r, unknown, "evt.arg", "ID") == "unknown"


def test_dynamic_parameters_print_as_their_own_type() -> None:
    r = _replay()
    r("ptrace", 100, ">", request=16, pid=200)
    ev = r("ptrace", 100, "<", res=0, addr=_dyn(0, 0x7FFE), data=_dyn(1, 9, size=1))
    assert get(r, ev, "evt.arg", "addr") == "7FFE"  # PT_UINT64 with the parameter's PF_HEX
    assert get(r, ev, "evt.arg", "data") == "SIGKILL"  # PT_SIGTYPE, resolved
    assert get(r, ev, "evt.args").startswith("res=0 addr=7FFE data=9(SIGKILL)")
    bad = r("ptrace", 100, "<", res=0, addr=_dyn(7, 1), data=_dyn(0, 0))
    assert get(r, bad, "evt.arg", "addr") == "INVALID DYNAMIC PARAMETER"
    assert get(r, bad, "evt.arg", "data") == "0"


def test_buffer_of_empty_and_dynamic_data() -> None:
    r = _replay()
    r("openat", 100, fd=3, dirfd=-100, name="/tmp/f", flags=1, mode=0)
    # The reader leaves zero-length parameters out: the event still has an (empty) data parameter.
    empty = r("read", 100, res=0, fd=3, size=10)
    assert get(r, empty, "evt.buffer") == b""
    assert out(r, empty, "evt.buffer") == b"NULL"
    assert printed(r, empty, "%evt.buffer") == "NULL"
    r("ptrace", 100, ">", request=1, pid=200)
    peek = r("ptrace", 100, "<", res=0, addr=_dyn(0, 16), data=_dyn(0, 0))
    assert get(r, peek, "evt.buffer") == _dyn(0, 0)  # conditions see the raw bytes, type byte included
    assert printed(r, peek, "%evt.buffer") == "0"
    close = r("close", 100, res=0)
    assert get(r, close, "evt.buffer") is None


def test_old_bpf_exit_converted_as_libscap_does() -> None:
    # BPF_X's dynamic res_or_fd is copied into BPF_2_X's 8-byte fd: the type byte, then the value's
    # low 7 bytes.
    r = _replay()
    r("bpf", 100, ">", cmd=5)
    ev = r("bpf", 100, "<", code=297, res_or_fd=_dyn(0, 5, signed=True))
    assert ev.params["fd"] == 5 << 8
    assert get(r, ev, "evt.rawres") == 5 << 8
    assert get(r, ev, "evt.args") == "fd=1280(<b>) cmd=5(BPF_PROG_LOAD)"
    r("bpf", 100, ">", cmd=0)
    failed = r("bpf", 100, "<", code=297, res_or_fd=_dyn(1, -1, signed=True))
    assert failed.params["fd"] == int.from_bytes(b"\x01" + b"\xff" * 7, "little", signed=True)


def test_thread_cpu_is_the_cpu_time_since_the_last_procinfo() -> None:
    r = _replay()
    cpu = syscall_extractor("thread.cpu")
    user = syscall_extractor("thread.cpu.user")
    first = r("procinfo", 100, ">", cpu_usr=10, cpu_sys=5)
    assert (cpu(first, r.state), user(first, r.state)) == (0.0, 0.0)
    second = r("procinfo", 100, ">", cpu_usr=30, cpu_sys=8)
    assert (cpu(second, r.state), user(second, r.state)) == (23.0, 20.0)
    third = r("procinfo", 100, ">", cpu_usr=500, cpu_sys=8)
    assert cpu(third, r.state) == 100.0  # capped
    other = r("getpid", 100)
    assert cpu(other, r.state) is None
    # Each use of the field keeps its own last value.
    assert syscall_extractor("thread.cpu")(third, r.state) == 0.0


def test_raw_arguments_print_in_the_parameters_own_format() -> None:
    r = _replay()
    ev = r("openat", 100, fd=3, dirfd=-100, name="/tmp/f", flags=65537, mode=0o755)
    assert get(r, ev, "evt.rawarg", "mode") == 0o755
    assert out(r, ev, "evt.rawarg", "mode") == "755"  # PF_OCT
    assert out(r, ev, "evt.rawarg", "flags") == "10001"  # PF_HEX
    assert out(r, ev, "evt.rawarg", "fd") == 3


def test_fresh_ipv6_socket_counts_as_server_when_a_local_address_shares_its_prefix() -> None:
    # libsinsp's socket info starts all zeros, and ipv6addr::in_subnet compares the first 64 bits:
    # :: and ::1 share them.
    head = header(process(100, "curl"))
    head.interfaces.append(InterfaceInfo("lo", 10, "::1"))
    r = Replay(head)
    ev = r("socket", 100, fd=3, domain=10, type=2, proto=0)
    assert get(r, ev, "fd.type") == "ipv6"
    assert get(r, ev, "fd.is_server") is True
