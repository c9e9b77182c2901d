"""Output formats: token splitting, the longest-compiling-prefix rule, errors, output_fields keys."""

from __future__ import annotations

import pytest

from falcorules_ci.condition.ast import FieldRef, Transformer
from falcorules_ci.condition.output import (
    OutputToken,
    format_fields,
    libsinsp_escape,
    output_deprecation_warnings,
    parse_output,
    validate_output,
)
from falcorules_ci.errors import ConditionError
from falcorules_ci.fields.registry import ArgKind, FieldInfo, FieldRegistry, FieldType

T = FieldType
REGISTRY = FieldRegistry(
    [
        FieldInfo("proc.name", T.CHARBUF, "syscall", "process"),
        FieldInfo("proc.aname", T.CHARBUF, "syscall", "process", arg=ArgKind.INDEX, no_transformer=True),
        FieldInfo("proc.args", T.CHARBUF, "syscall", "process"),
        FieldInfo("fd.num", T.INT64, "syscall", "fd"),
        FieldInfo("evt.arg", T.CHARBUF, "syscall", "evt", arg=ArgKind.INDEX, arg_required=True, dotted_arg=True),
        FieldInfo("ka.target.name", T.CHARBUF, "k8s_audit", "k8saudit", plugin="k8saudit"),
        FieldInfo("ka.target.resource", T.CHARBUF, "k8s_audit", "k8saudit", plugin="k8saudit"),
        FieldInfo("jevt.value", T.CHARBUF, "k8s_audit", "json", arg=ArgKind.KEY, plugin="json"),
    ]
)


def tokens(fmt: str, source: str = "syscall") -> list[str | tuple[str, int]]:
    """The format as text segments and (token, width) pairs."""
    out = parse_output(fmt, REGISTRY, source)
    return [s if isinstance(s, str) else (s.text, s.width) for s in out.segments]


@pytest.mark.parametrize(
    ("fmt", "source", "expected"),
    [
        ("Shell spawned (user=%proc.name cmd=%proc.args)", "syscall",
         ["Shell spawned (user=", ("proc.name", 0), " cmd=", ("proc.args", 0), ")"]),
        ("%ka.target.name/%ka.target.resource", "k8s_audit",
         [("ka.target.name", 0), "/", ("ka.target.resource", 0)]),
        ("%proc.namex", "syscall", [("proc.name", 0), "x"]),  # the longest prefix that compiles
        ("%proc.aname[2]%fd.num", "syscall", [("proc.aname[2]", 0), ("fd.num", 0)]),
        ("%proc.aname[x]", "syscall", [("proc.aname", 0), "[x]"]),
        ("[%20proc.name]", "syscall", ["[", ("proc.name", 20), "]"]),
        ("%tolower( proc.name )!", "syscall", [("tolower( proc.name )", 0), "!"]),
        ("%evt.arg.flags", "syscall", [("evt.arg.flags", 0)]),
        ("%jevt.value[/stage]", "k8s_audit", [("jevt.value[/stage]", 0)]),
        # the argument with a blank does not compile for a plugin field; the bare field does
        ('%jevt.value["/a b"]', "k8s_audit", [("jevt.value", 0), '["/a b"]']),
        ("*%proc.name", "syscall", [("proc.name", 0)]),
        ("no tokens", "syscall", ["no tokens"]),
    ],
)  # fmt: skip
def test_segments(fmt: str, source: str, expected: list[str | tuple[str, int]]) -> None:
    assert tokens(fmt, source) == expected


def test_token_details() -> None:
    out = parse_output("*a %tolower(proc.name) b", REGISTRY, "syscall")
    assert not out.require_all_values
    token = out.tokens[0]
    assert isinstance(token, OutputToken)
    assert token.index == 3 and token.is_transformer and token.name == "tolower(proc.name)"
    assert token.node == Transformer("tolower", (FieldRef("proc.name"),))
    assert token.typed is not None and token.typed.ptype == "CHARBUF"
    assert parse_output("%proc.name", REGISTRY, "syscall").require_all_values


@pytest.mark.parametrize(
    ("fmt", "message", "index"),
    [
        ("", "empty formatting token", 0),
        ("trailing %", "invalid formatting syntax: formatting cannot end with a %", 9),
        ("width %12", "invalid formatting syntax: formatting cannot end with a number", 6),
        ("100% sure", "unknown filter: unexpected token after '", 3),
        ("%%", "unknown filter: unexpected token after '", 0),
        ("x %val(proc.name)", "unknown filter: unexpected token after '", 2),
        ("*%proc.nme", "unknown filter: unexpected token after '", 1),
        ("%ka.target.name", "unknown filter: unexpected token after '", 0),  # wrong source
    ],
)
def test_errors(fmt: str, message: str, index: int) -> None:
    with pytest.raises(ConditionError) as info:
        validate_output(fmt, REGISTRY, "syscall")
    assert (info.value.message, info.value.index, info.value.code) == (message, index, "LOAD_ERR_COMPILE_OUTPUT")


def test_without_registry_only_syntax_counts() -> None:
    assert [s.text for s in parse_output("%proc.namex %no.such.field").tokens] == ["proc.namex", "no.such.field"]


def test_format_fields_are_falco_output_fields_keys() -> None:
    fmt = '%proc.name %proc.aname[2] %tolower(proc.args) %concat(proc.name, "x y") %proc.name %evt.arg[1]'
    assert format_fields(fmt, REGISTRY, "syscall") == ["proc.name", "proc.aname[2]", "proc.args", "evt.arg[1]"]
    assert format_fields('%jevt.value["a=b"]') == ['jevt.value["a=b"]']


def test_libsinsp_escape() -> None:
    assert libsinsp_escape("/stage") == "/stage"
    assert libsinsp_escape("a b") == '"a b"'
    assert libsinsp_escape("a'b") == '"a\'b"'
    assert libsinsp_escape('a"b\\c\n') == '"a\\"b\\\\c\\n"'


def test_output_deprecation_warnings_are_substring_matches() -> None:
    found = output_deprecation_warnings("lat=%evt.latency.ns dir=%evt.dir")
    assert [name for name, _ in found] == ["evt.dir", "evt.latency", "evt.latency.ns"]
    code, message, index = found[0][1]
    assert (code, message, index) == (
        "LOAD_DEPRECATED_ITEM",
        "usage of deprecated field 'evt.dir' has been detected in the rule output",
        0,
    )
