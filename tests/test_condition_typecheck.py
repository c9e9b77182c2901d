"""Compiling conditions against a field registry: types, literals, operators, errors, warnings."""

from __future__ import annotations

import ipaddress
import socket
import time
from pathlib import Path

import pytest
import yaml

from falcorules_ci.condition.ast import Node
from falcorules_ci.condition.lists import expand_list_items, substitute_lists
from falcorules_ci.condition.macros import resolve_macros
from falcorules_ci.condition.parser import parse_condition
from falcorules_ci.condition.printer import quote
from falcorules_ci.condition.typecheck import (
    ConditionWarning,
    TypedCheck,
    TypedConst,
    TypedConstList,
    TypedField,
    TypedMultiTransform,
    TypedNot,
    TypedTransform,
    deprecated_fields,
    fields_used,
    lint_condition,
    typecheck,
)
from falcorules_ci.condition.values import c_scan, parse_value
from falcorules_ci.errors import ConditionError
from falcorules_ci.fields.registry import ArgKind, FieldInfo, FieldRegistry, FieldType

T = FieldType


def _field(name: str, ftype: FieldType, source: str = "syscall", **flags: object) -> FieldInfo:
    return FieldInfo(name=name, type=ftype, source=source, field_class=name.split(".")[0], **flags)  # type: ignore[arg-type]


def _plugin(name: str, ftype: FieldType = T.CHARBUF, **flags: object) -> FieldInfo:
    return _field(name, ftype, "k8s_audit", plugin="k8saudit", **flags)


REGISTRY = FieldRegistry(
    [
        _field("proc.name", T.CHARBUF),
        _field("proc.pname", T.CHARBUF),
        _field("proc.args", T.CHARBUF),
        _field("proc.aname", T.CHARBUF, arg=ArgKind.INDEX, no_transformer=True, no_rhs=True),
        _field("fd.name", T.FSPATH),
        _field("fd.num", T.INT64),
        _field("fd.lport", T.PORT),
        _field("fd.ip", T.IPADDR, no_transformer=True, no_rhs=True),
        _field("fd.net", T.IPNET, no_transformer=True, no_rhs=True),
        _field("fd.types", T.CHARBUF, is_list=True),
        _field("fd.nums", T.INT64, is_list=True),
        _field("evt.type", T.CHARBUF),
        _field("evt.num", T.UINT64),
        _field("evt.dir", T.CHARBUF),
        _field("evt.is_open_read", T.BOOL),
        _field("evt.buffer", T.BYTEBUF),
        _field("evt.arg", T.CHARBUF, arg=ArgKind.INDEX, arg_required=True, dotted_arg=True),
        _field("evt.rawarg", T.DYN, arg_required=True, dotted_arg=True, no_rhs=True, no_transformer=True),
        _field("user.uid", T.UINT32),
        _field("proc.sockfamily", T.SOCKFAMILY),
        _plugin("ka.verb"),
        _plugin("ka.uri.param", arg=ArgKind.KEY, arg_required=True),
        _plugin("ka.index", arg=ArgKind.INDEX),
        _plugin("ka.req.pod.containers.image", is_list=True),
        _plugin("jevt.value", arg=ArgKind.KEY),
    ]
)


def check(text: str, source: str = "syscall") -> TypedCheck:
    root = typecheck(parse_condition(text), REGISTRY, source).root
    assert isinstance(root, TypedCheck)
    return root


def compile_error(text: str, source: str = "syscall") -> tuple[str, int]:
    with pytest.raises(ConditionError) as info:
        typecheck(parse_condition(text), REGISTRY, source)
    assert info.value.code == "LOAD_ERR_COMPILE_CONDITION"
    return info.value.message, info.value.index


# -- literals typed by the left-hand field --------------------------------------------------------

VALUES: list[tuple[str, object]] = [
    ("fd.num = 3", 3),
    ('fd.num = "3"', 3),  # quoting never changes the type
    ("fd.num = -1", -1),
    ("fd.num = +7", 7),
    ("user.uid = -1", 2**32 - 1),  # %u wraps like C
    ("user.uid = 4294967296", 0),
    ("evt.num = 99999999999999999999999", 2**64 - 1),  # strtoul saturates
    ("fd.lport = 8080", 8080),
    ("fd.lport = 70000", 70000 % 2**16),
    ("evt.is_open_read = true", True),
    ("evt.is_open_read = false", False),
    ("fd.ip = 10.0.0.1", ipaddress.IPv4Address("10.0.0.1")),
    ("fd.ip = ::1", ipaddress.IPv6Address("::1")),
    ("fd.net = 10.1.2.3/8", ipaddress.IPv4Network("10.0.0.0/8")),
    ("fd.net = 10.0.0.0/288", ipaddress.IPv4Network("10.0.0.0/32")),  # the mask is a uint8 in C
    ("fd.net = fe80::1/10", ipaddress.IPv6Network("fe80::/10")),
    ("evt.buffer = abc", b"abc"),
    ("evt.buffer bcontains CAFEbabe", b"\xca\xfe\xba\xbe"),
    ("proc.name = 'a b'", "a b"),
    ("fd.name = /etc", "/etc"),
    ("proc.sockfamily exists", None),
]


@pytest.mark.parametrize(("text", "value"), VALUES, ids=[t for t, _ in VALUES])
def test_literal_parsed_by_left_type(text: str, value: object) -> None:
    typed = check(text)
    assert typed.values == (() if value is None else (value,))


def test_port_service_names() -> None:
    try:
        expected = socket.getservbyname("ssh")
    except OSError:
        pytest.skip("no services database on this machine")
    assert check("fd.lport in (ssh, 22)").values == (expected, 22)


# -- errors: libsinsp's messages, at the check's index ---------------------------------------------

ERRORS: list[tuple[str, str, str]] = [
    ("proc.nme = x", "syscall", "filter_check called with nonexistent field proc.nme"),
    ("proc.name[1] = x", "syscall", "filter_check called with nonexistent field proc.name[1]"),
    ("proc.aname[x] = x", "syscall", "filter_check called with nonexistent field proc.aname[x]"),
    ("evt.arg exists", "syscall", "filter syntax error: evt.arg"),
    ("evt.arg[x] exists", "syscall", "x is not a valid number"),
    ("evt.arg.nosuchparam exists", "syscall", "unknown event argument nosuchparam"),
    ("ka.verb = x", "syscall", "filter_check called with nonexistent field ka.verb"),
    ("ka.uri.param = x", "k8s_audit", "filter 'ka.uri.param': ka.uri.param requires an argument but none provided"),
    (
        "ka.verb[1] = x",
        "k8s_audit",
        "filter 'ka.verb[1]': ka.verb does not allow nor require an argument but one is provided: 1",
    ),
    ("ka.index[01] = x", "k8s_audit", "filter ka.index[01] ka.index has an invalid index argument starting with 0: 01"),
    ('jevt.value["/a b"] = x', "k8s_audit", "filter 'jevt.value[/a': jevt.value has unbalanced argument brackets"),
    ("fd.num = 0x1", "syscall", "0x1 is not a valid number"),
    ("fd.num = 1.5", "syscall", "1.5 is not a valid number"),
    ("fd.num in (1, x)", "syscall", "x is not a valid number"),
    ("fd.num = ' 1 '", "syscall", " 1  is not a valid number"),
    ("fd.lport = no-such-service", "syscall", "unrecognized protocol no-such-service"),
    ("fd.lport = 99999999999", "syscall", "stoi"),
    ("evt.is_open_read = True", "syscall", "filter error: unrecognized boolean value True"),
    ("fd.ip = 1.2.3", "syscall", "unrecognized IPv4 address 1.2.3"),
    ("fd.ip = fe80::1%eth0", "syscall", "unrecognized IPv6 address fe80::1%eth0"),
    ("fd.net = 10.0.0.0", "syscall", "unrecognized IP network 10.0.0.0"),
    ("fd.net = 10.0.0/8", "syscall", "unrecognized IP address 10.0.0/8"),
    ("fd.net = 10.0.0.0/33", "syscall", "invalid netmask 33"),
    ("fd.net = 10.0.0.0/x", "syscall", "x is not a valid number"),
    ("fd.net = fe80::", "syscall", "invalid v6 netmask: fe80::"),
    ("fd.net = fe80::/0", "syscall", "invalid v6 netmask 0"),
    (
        "evt.buffer bcontains abc",
        "syscall",
        "filter error: bcontains and bstartswith operator support hex strings only",
    ),
    ("evt.type = nosuchevent", "syscall", "unknown event type nosuchevent"),
    ("evt.type in (open, nope)", "syscall", "unknown event type nope"),
    ("proc.name regex 'a['", "syscall", "invalid regex pattern: missing closing ]: ["),
    ("proc.name regex '(a'", "syscall", "invalid regex pattern: missing ): (a"),
    ("proc.name regex '*a'", "syscall", "invalid regex pattern: missing argument to repetition operator: *"),
    ("proc.name regex '\\\\d+'", "syscall", "invalid regex pattern: invalid escape sequence: \\d"),
    ("proc.name regex '(?i)a'", "syscall", "invalid regex pattern: missing argument to repetition operator: ?"),
    # operators per type
    ("fd.num contains 1", "syscall", "filter error: 'contains' operator not supported for numeric filters"),
    ("evt.is_open_read > 1", "syscall", "filter error: '>' operator not supported for numeric filters"),
    ("proc.name bcontains 00", "syscall", "filter error: 'bcontains' operator not supported for string filters"),
    ("evt.buffer glob x", "syscall", "filter error: 'glob' operator not supported for buffer filters"),
    (
        "fd.ip startswith 1",
        "syscall",
        "filter error: 'startswith' operator not supported for ip address and network filters",
    ),
    (
        "fd.ip contains oneof (1.2.3.4)",
        "syscall",
        "filter error: 'contains' with modifier not supported for ip address and network filters",
    ),
    ("fd.types = x", "syscall", "filter error: '=' operator not supported list filters"),
    ("fd.types startswith oneof (x)", "syscall", "filter error: 'startswith' operator not supported list filters"),
    ("fd.nums in (1)", "syscall", "filter error: list filters are not supported for type 'INT64'"),
    ("proc.sockfamily = 1", "syscall", "filter error: '=' operator not supported for type 'SOCKFAMILY'"),
    ("fd.num == x", "syscall", "x is not a valid number"),
    # transformers
    (
        "tolower(fd.num) = 1",
        "syscall",
        "can't add field transformer: type 'INT64' is not supported by 'tolower' transformer applied on field 'fd.num'",
    ),
    (
        "b64(fd.nums) exists",
        "syscall",
        "can't add field transformer: type 'INT64' is not supported by 'b64' transformer applied on list field 'fd.nums'",
    ),
    ("tolower(fd.ip) exists", "syscall", "field 'fd.ip' does not support transformers"),
    (
        "toupper(len(proc.name)) exists",
        "syscall",
        "can't add field transformer: type 'UINT64' is not supported by 'toupper' transformer applied on field 'proc.name'",
    ),
    ("tolower(proc.name)[x] = y", "syscall", "filter error: transformer 'tolower' does not support field arguments"),
    ("join(proc.name) = x", "syscall", "unknown field transfomer 'join'"),
    ("tolower(proc.name, proc.pname) = x", "syscall", "unknown multivalue transformer"),
    ("join(',', proc.args) = x", "syscall", "join() second argument must be a list"),
    ("join(fd.types, fd.types) = x", "syscall", "join() first argument (separator) must be a single value, not a list"),
    ("join(',', fd.types, proc.name) = x", "syscall", "join() requires exactly 2 arguments: separator and list"),
    ("join(',', fd.types)[a] = x", "syscall", "transformer 'join' does not support field arguments"),
    ("concat(proc.name, fd.name) = x", "syscall", "concat() arguments must be strings"),
    ("concat(proc.name, fd.types) = x", "syscall", "concat() arguments must be strings"),
    ("getopt(proc.args, 'ab') exists", "syscall", "getopt() first argument must be a list"),
    ("getopt(fd.types, fd.types) exists", "syscall", "getopt() second argument (optstring) must be a single value"),
    ("getopt(fd.types, 'ab')[ab] exists", "syscall", "getopt() field argument must be a single option character"),
    # right-hand fields
    (
        "proc.name = val(fd.num)",
        "syscall",
        "field 'proc.name' has type 'CHARBUF' while the right-hand side field 'fd.num' has incompatible type 'INT64'",
    ),
    (
        "proc.name = val(fd.name)",
        "syscall",
        "field 'proc.name' has type 'CHARBUF' while the right-hand side field 'fd.name' has incompatible type 'FSPATH'",
    ),
    (
        "fd.num = len(fd.types)",
        "syscall",
        "field 'fd.num' has type 'INT64' while the right-hand side field 'fd.types' has incompatible type 'UINT64'",
    ),
    ("proc.name pmatch val(proc.pname)", "syscall", "operator 'PMATCH' doesn't support right-hand side fields"),
    ("proc.name regex val(proc.pname)", "syscall", "operator 'REGEX' doesn't support right-hand side fields"),
    ("fd.net = val(fd.net)", "syscall", "field type 'IPNET' doesn't support right-hand side fields"),
    ("proc.aname = val(proc.name)", "syscall", "field 'proc.aname' doesn't support right-hand side fields"),
    ("proc.name = val(proc.aname)", "syscall", "field 'proc.aname' can't be used as a right-hand side field"),
    ("proc.name = val(proc.pname)[x]", "syscall", "filter error: transformer 'val' does not support field arguments"),
    ("some_macro", "syscall", "filter error: unexpected identifier 'some_macro'"),
]


@pytest.mark.parametrize(("text", "source", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_compile_errors(text: str, source: str, message: str) -> None:
    assert compile_error(text, source) == (message, 0)


def test_error_index_is_the_failing_check() -> None:
    assert compile_error("proc.name exists and not (fd.num = x)") == ("x is not a valid number", 26)


def test_multivalue_result_is_exempt_from_rhs_type_check() -> None:
    # libsinsp's multi-transformer check never reports a right-hand field, so no type check runs.
    assert check("join(',', fd.types) = val(fd.num)").right is not None


# -- the typed tree ------------------------------------------------------------------------------


def test_typed_tree_links_back_to_the_ast() -> None:
    node = parse_condition("not tolower(proc.name) startswith oneof (a, b)")
    root = typecheck(node, REGISTRY, "syscall").root
    assert isinstance(root, TypedNot) and root.node is node
    typed = root.child
    assert isinstance(typed, TypedCheck)
    assert (typed.op, typed.modifier, typed.ptype, typed.is_list, typed.values) == ("startswith", "oneof", "CHARBUF",
                                                                                   False, ("a", "b"))  # fmt: skip
    assert isinstance(typed.left, TypedTransform) and typed.left.name == "tolower"
    field = typed.left.operand
    assert isinstance(field, TypedField) and field.match.info.name == "proc.name" and field.node.index == 12


def test_transformer_types() -> None:
    assert (check("len(fd.types) > 2").ptype, check("len(fd.types) > 2").is_list) == ("UINT64", False)
    typed = check('getopt(fd.types, "ab:") exists')
    assert isinstance(typed.left, TypedMultiTransform) and (typed.ptype, typed.is_list) == ("CHARBUF", True)
    assert isinstance(typed.left.args[1], TypedConst)
    assert not check('getopt(fd.types, "ab:")[a] = x').is_list
    joined = check('join(",", (proc.name, "x", 1)) = y')
    assert isinstance(joined.left, TypedMultiTransform) and isinstance(joined.left.args[1], TypedConstList)
    assert check("basename(fd.name) = x").ptype == "FSPATH"


def test_evt_rawarg_takes_the_parameter_type() -> None:
    typed = check("evt.rawarg.res < 0")
    assert (typed.ptype, typed.values) == ("ERRNO", (0,))
    assert isinstance(typed.left, TypedField) and typed.left.match.text == "evt.rawarg.res"


def test_field_to_field() -> None:
    typed = check("proc.name != val(proc.pname)")
    assert typed.op == "!=" and typed.values == () and isinstance(typed.right, TypedField)
    assert check("tolower(proc.name) = toupper(proc.pname)").right is not None


def test_double_equals_is_canonicalised() -> None:
    assert check("proc.name == x").op == "="


def test_fields_used() -> None:
    typed = typecheck(parse_condition("proc.aname[2] = x and concat(proc.name, 'a') = val(proc.pname) or evt.arg.fd > 1"),
                      REGISTRY, "syscall")  # fmt: skip
    assert fields_used(typed.root) == {"proc.aname[2]", "proc.name", "proc.pname", "evt.arg.fd"}


# -- warnings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "unsafe"),
    [
        ('ka.verb = "<NA>"', True),
        ("ka.verb in (a, <NA>)", True),
        ("jevt.value[/x] != <NA>", True),
        ("tolower(ka.verb) = <NA>", True),
        ("ka.verb startswith <NA>", False),
        ("ka.verb = oneof (<NA>)", False),  # the operator is "= oneof" to Falco
        ("proc.name = <NA>", False),
        ("ka.verb = val(ka.verb)", False),
    ],
)
def test_unsafe_na_check(text: str, unsafe: bool) -> None:
    warnings = lint_condition(parse_condition(text))
    assert (ConditionWarning("LOAD_UNSAFE_NA_CHECK", "", 0) in warnings) is unsafe


def test_deprecated_fields_warning() -> None:
    node = parse_condition("evt.dir = < and evt.wait_latency > 0 and evt.dir exists")
    warnings = lint_condition(node)
    assert [w.code for w in warnings] == ["LOAD_DEPRECATED_ITEM", "LOAD_DEPRECATED_ITEM"]
    assert warnings[0].message.startswith("due to the drop of enter events, 'evt.dir = <' always evaluates to true")
    assert warnings[1].message == "field is not available due to the drop of enter events."
    assert deprecated_fields(node) == ["evt.dir", "evt.wait_latency"]


def test_compile_hints_and_their_offsets() -> None:
    result = typecheck(parse_condition("proc.name = proc.pname or proc.name regex '^bash$' or proc.name in (x, 'val(y)')"),
                       REGISTRY, "syscall")  # fmt: skip
    assert [(w.code, w.message, w.offset) for w in result.warnings] == [
        ("LOAD_COMPILE_CONDITION", "'proc.pname' may be a valid field misused as a const string value", 12),
        ("LOAD_COMPILE_CONDITION", "regex check with '^bash$' may be optimized with simpler operators such as "
                                   "'=', 'contains', 'startswith', 'endswith'", 42),
        ("LOAD_COMPILE_CONDITION", "'val(y)' may be a valid field transformer misused as a const string value", 67),
    ]  # fmt: skip
    code, message, index = result.warnings[0]  # unpacks as Falco's (code, message, index)
    assert index == 12


@pytest.mark.parametrize(
    ("pattern", "hint"),
    [("bash", True), (".*bash", True), ("bash.+", True), (".?bash.?", True), ("^bash", True), ("b.*h", False),
     ("bash\\.*", False), ("bas[h]", False), ("bash.{1}", False)],
)  # fmt: skip
def test_regex_hint_heuristic(pattern: str, hint: bool) -> None:
    warnings = typecheck(parse_condition(f"proc.name regex {quote(pattern)}"), REGISTRY, "syscall").warnings
    assert bool(warnings) is hint


# -- C number parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "signed", "long", "value"),
    [(" 12", True, False, 12), ("12 ", True, False, None), ("", True, False, None), ("-", True, False, None),
     ("2147483648", True, False, -(2**31)), ("-1", False, False, 2**32 - 1), ("-1", False, True, 2**64 - 1),
     ("99999999999999999999", True, True, 2**63 - 1), ("1\x002", True, False, 1)],
)  # fmt: skip
def test_c_scan(text: str, signed: bool, long: bool, value: int | None) -> None:
    assert c_scan(text, signed=signed, long=long) == value


def test_unknown_parameter_type_is_an_error() -> None:
    # libsinsp's value parser has no case for these two numeric types (its message gives the
    # enum's number where ours gives the name).
    with pytest.raises(ConditionError, match="wrong parameter type SYSCALLID"):
        parse_value("1", "SYSCALLID")
    assert parse_value("x", "SOCKTUPLE") == "x"


# -- the upstream rule packs -------------------------------------------------------------------


def _packs() -> list[tuple[Path, str]]:
    from conftest import INCUBATING, K8SAUDIT, SANDBOX, STABLE

    return [(STABLE, "syscall"), (INCUBATING, "syscall"), (SANDBOX, "syscall"), (K8SAUDIT, "k8s_audit")]


def test_upstream_conditions_compile(upstream: Path) -> None:
    from falcorules_ci.condition.evttypes import event_codes
    from falcorules_ci.condition.output import validate_output
    from falcorules_ci.condition.printer import to_text
    from falcorules_ci.fields import default_registry

    registry = default_registry()
    parse_seconds, parsed, rules = 0.0, 0, 0
    for path, default_source in _packs():
        items = yaml.safe_load(path.read_text())
        lists: list[tuple[str, list[str]]] = []
        raw_lists: dict[str, list[str]] = {}
        macros: dict[str, Node] = {}
        texts: list[tuple[dict[str, object], str]] = []
        for item in items:
            if "list" in item:
                raw = [str(v) for v in item["items"]]
                lists.append((item["list"], expand_list_items(raw, raw_lists.get)))
                raw_lists[item["list"]] = raw
        for item in items:
            if "condition" in item and ("macro" in item or "rule" in item):
                texts.append((item, substitute_lists(str(item["condition"]), lists)))
        start = time.perf_counter()
        trees = [parse_condition(text) for _, text in texts]
        parse_seconds += time.perf_counter() - start
        parsed += len(trees)
        parsed_items = list(zip((item for item, _ in texts), trees, strict=True))
        for item, tree in parsed_items:
            if "macro" in item:
                # A macro sees the macros defined before it (none is redefined upstream).
                macros[str(item["macro"])] = resolve_macros(tree, dict(macros).get)
        for item, tree in parsed_items:
            if "rule" not in item:
                continue
            resolved = resolve_macros(tree, macros.get)
            source = str(item.get("source", default_source))
            typed = typecheck(resolved, registry, source)
            assert not [w for w in typed.warnings if w.code != "LOAD_COMPILE_CONDITION"], item["rule"]
            if source == "syscall":
                assert 0 < len(event_codes(typed)) <= 100, item["rule"]
            validate_output(str(item["output"]).strip(), registry, source)
            assert parse_condition(to_text(resolved)) == resolved
            rules += 1
    assert (parsed, rules) == (538, 141)
    # The loader parses every macro and rule condition of the stack; a generous bound keeps
    # this stable on a loaded machine (about 20 ms measured).
    assert parse_seconds < 0.25
