"""Every declared syscall field has an extractor whose values have the declared type; values
render as libsinsp prints them."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest
from _events import DOCKER_ID, Replay, file_fd, header, ipv4_tuple, process

from falcorules_ci.extract.base import EitherEnd
from falcorules_ci.extract.syscall import (
    Ancestors,
    format_value,
    json_value,
    syscall_extractor,
    syscall_field_names,
    syscall_output_extractor,
)
from falcorules_ci.fields import default_registry
from falcorules_ci.fields.registry import ArgKind, FieldInfo, FieldType
from falcorules_ci.sources.event import Event
from falcorules_ci.sources.records import ContainerInfo

SYSCALL_FIELDS = [info for info in default_registry() if info.source == "syscall"]

_DOTTED_ARGS = {"evt.arg": "fd", "evt.rawarg": "fd", "evt.type.is": "openat", "thread.cgroup": "cpu",
                "evt.abspath": "src"}  # fmt: skip
_KEY_ARGS = {"container.label": "app", "k8s.pod.label": "app", "proc.env": "HOME", "proc.aenv": "HOME"}


def _arg(info: FieldInfo) -> str | None:
    if info.name in _DOTTED_ARGS:
        return _DOTTED_ARGS[info.name]
    if info.name.startswith("container.mount"):
        return "/proc*"
    if info.arg is ArgKind.INDEX:
        return "1"
    if info.arg in (ArgKind.KEY, ArgKind.INDEX_OR_KEY):
        return _KEY_ARGS.get(info.name, "app")
    return None


def _events() -> tuple[Replay, list[Event]]:
    info = ContainerInfo(id=DOCKER_ID[:12], name="web", labels={"app": "web"})
    bash = process(100, "bash", uid=1000, loginuid=1000, cwd="/home/alice", env=("HOME=/home/alice",),
                   fds=(file_fd(0, "/dev/pts/0"),), cgroups=(f"cpu=/docker/{DOCKER_ID}",))  # fmt: skip
    r = Replay(header(bash, containers=(info,)))
    evs = [r.spawn(100, 101), r.execve(101, "/bin/cat", "/etc/passwd")]
    evs.append(r("openat", 101, fd=3, dirfd=-100, name="/etc/passwd", flags=1, mode=0))
    evs.append(r("socket", 101, fd=4, domain=2, type=1, proto=0))
    evs.append(r("connect", 101, res=0, tuple=ipv4_tuple("10.0.0.2", 1234, "1.1.1.1", 53), fd=4))
    evs.append(r("openat", 101, ">", dirfd=-100, name="/x", flags=1, mode=0))
    evs.append(r("container", -1, ">", json='{"container": {"id": "abc"}}'))
    evs.append(r("read", 4242, res=0, fd=9, size=1))
    evs.append(r("procexit", 101, ">", status=0))
    return r, evs


_NUMERIC = {FieldType.INT16, FieldType.INT32, FieldType.INT64, FieldType.UINT32, FieldType.UINT64,
            FieldType.RELTIME, FieldType.ABSTIME, FieldType.PORT}  # fmt: skip


def _type_ok(info: FieldInfo, value: Any) -> bool:
    if value is None or info.name in ("evt.rawarg", "evt.around"):
        return True
    if isinstance(value, Ancestors | EitherEnd):
        return all(v is None or _type_ok(info, v) for v in value)
    if info.is_list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    t = info.type
    if t is FieldType.BOOL:
        return isinstance(value, bool)
    if t in _NUMERIC:
        return isinstance(value, int) and not isinstance(value, bool)
    if t is FieldType.DOUBLE:
        return isinstance(value, float)
    if t in (FieldType.IPADDR, FieldType.IPNET):
        return isinstance(value, IPv4Address | IPv6Address)
    if t is FieldType.BYTEBUF:
        return isinstance(value, bytes)
    return isinstance(value, str)


def test_every_declared_syscall_field_has_an_extractor() -> None:
    declared = {info.name for info in SYSCALL_FIELDS}
    assert declared, "the registry declares no syscall field"
    assert declared <= syscall_field_names(), sorted(declared - syscall_field_names())


@pytest.mark.parametrize("info", SYSCALL_FIELDS, ids=lambda info: info.name)
def test_extractors_run_on_every_kind_of_event_and_return_the_declared_type(info: FieldInfo) -> None:
    r, evs = _events()
    arg = _arg(info)
    for maker in (syscall_extractor, syscall_output_extractor):
        extract = maker(info.name, arg)
        for ev in evs:
            value = extract(ev, r.state)
            assert _type_ok(info, value), (info.name, ev.name, value)


def test_unknown_field_is_an_error() -> None:
    from falcorules_ci.errors import ConditionError

    with pytest.raises(ConditionError, match=r"nonexistent field proc\.nope"):
        syscall_extractor("proc.nope", None)


@pytest.mark.parametrize(
    ("value", "ftype", "fmt", "expected"),
    [
        (None, FieldType.CHARBUF, "PF_DEC", "<NA>"),
        (True, FieldType.BOOL, "PF_DEC", "true"),
        (False, FieldType.BOOL, "PF_DEC", "false"),
        (42, FieldType.INT64, "PF_DEC", "42"),
        (-1, FieldType.INT64, "PF_DEC", "-1"),
        (-1, FieldType.UINT32, "PF_DEC", "4294967295"),
        (0xFD01, FieldType.INT32, "PF_HEX", "FD01"),
        (5, FieldType.RELTIME, "PF_10_PADDED_DEC", "000000005"),
        (["file", "ipv4"], FieldType.CHARBUF, "PF_DEC", "(file,ipv4)"),
        (IPv4Address("10.0.0.1"), FieldType.IPADDR, "PF_DEC", "10.0.0.1"),
        (IPv6Address("::1"), FieldType.IPADDR, "PF_DEC", "::1"),
        (b"ab\x00\xffc", FieldType.BYTEBUF, "PF_DEC", "ab..c"),
        (12.345, FieldType.DOUBLE, "PF_DEC", "12.3"),
        ("caf\udce9", FieldType.CHARBUF, "PF_DEC", "caf\ufffd"),
        (Ancestors(["bash", "sshd"]), FieldType.CHARBUF, "PF_DEC", "bash sshd"),
    ],
)
def test_format_value(value: Any, ftype: FieldType, fmt: str, expected: str) -> None:
    assert format_value(value, ftype, fmt) == expected


def test_json_values() -> None:
    assert json_value(3, FieldType.INT64) == 3
    assert json_value(None, FieldType.CHARBUF) is None
    assert json_value(True, FieldType.BOOL) is True
    assert json_value(["a"], FieldType.CHARBUF) == ["a"]
    assert json_value(0xFD01, FieldType.INT32, "PF_HEX") == "FD01"
    assert json_value(IPv4Address("1.2.3.4"), FieldType.IPADDR) == "1.2.3.4"
