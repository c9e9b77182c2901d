"""Condition semantics of the embedded engine, operator by operator, on hand-made field values.

Each condition is loaded through the real rules loader (so it is typed exactly as for a rule
pack), compiled with a fake field resolver that reads values from ``Event.params`` by field
text, and evaluated both through the generated function and through the closure tree: the two
must always agree.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from falcorules_ci import LoadOptions, Rule, load_ruleset
from falcorules_ci.engine.operands import OperandCompiler, getopt_values
from falcorules_ci.engine.predicate import compile_condition, evaluate_tree, explain
from falcorules_ci.extract.base import EitherEnd, Extractor
from falcorules_ci.fields.registry import FieldMatch
from falcorules_ci.sources.event import Event

IP = ipaddress.ip_address


def fake_resolver(match: FieldMatch, source: str, output: bool) -> Extractor:
    key = match.text
    return lambda event, state: event.params.get(key)


def load_rule(condition: str, source: str = "syscall") -> Rule:
    text = (f"- rule: r\n  desc: d\n  condition: {json.dumps(condition)}\n  output: o\n"
            f"  priority: WARNING\n  source: {source}\n")  # fmt: skip
    ruleset = load_ruleset(texts=[("t.yaml", text)], options=LoadOptions(suggested_output=False))
    errors = [e.message for r in ruleset.results for e in r.errors]
    assert not errors, errors
    return ruleset.rules[0]


def holds(condition: str, source: str = "syscall", **fields: Any) -> bool:
    """Evaluate a condition on an event whose fields are given by their text (dots as __)."""
    rule = load_rule(condition, source)
    predicate = compile_condition(rule.checked, source, operands=OperandCompiler(source, fake_resolver))
    params = {name.replace("__", "."): value for name, value in fields.items()}
    event = Event(1, 1_000, 42, 3, "open", params=params, source=source)
    generated = predicate(event, None)
    values = predicate.slots.new_values()
    values.reset(event, None)
    assert evaluate_tree(predicate.tree, values) is generated
    return generated


def f(**fields: Any) -> dict[str, Any]:
    return {name.replace("__", "."): value for name, value in fields.items()}


# -- missing values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "condition",
    ["proc.name = bash", "proc.name != bash", "proc.name in (bash)", "proc.name exists",
     "proc.name startswith b", "proc.name contains a", "proc.name glob *", "proc.name pmatch (/)",
     "proc.name intersects (bash)", "user.uid >= 0", "user.uid != 5"],
)  # fmt: skip
def test_a_missing_value_makes_every_check_false(condition: str) -> None:
    assert not holds(condition)
    assert holds(f"not {condition}")


def test_not_is_applied_after_the_missing_value_rule() -> None:
    assert not holds("proc.name != bash")
    assert holds("not proc.name = bash")
    assert holds("proc.name != bash", proc__name="sh")


# -- strings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ("proc.name = bash", "bash", True),
        ("proc.name == bash", "bash", True),
        ("proc.name = bash", "Bash", False),
        ("proc.name != bash", "sh", True),
        ("proc.name contains as", "bash", True),
        ("proc.name icontains AS", "bash", True),
        ("proc.name icontains É", "é", False),  # strcasestr folds ASCII only
        ("proc.name startswith ba", "bash", True),
        ("proc.name endswith sh", "bash", True),
        ("proc.name glob 'b*h'", "bash", True),
        ("proc.name iglob 'B*H'", "bash", True),
        ("proc.name regex 'b.*h'", "bash", True),
        ("proc.name regex 'b.*'", "xbash", False),  # fully anchored
        ("proc.name in (sh, bash)", "bash", True),
        ("proc.name in (sh, zsh)", "bash", False),
        ("proc.name intersects (bash)", "bash", True),  # single-valued: same as in
        ("proc.name in ()", "bash", False),
    ],
)
def test_string_operators(condition: str, value: str, expected: bool) -> None:
    assert holds(condition, proc__name=value) is expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/etc", True), ("/etc/shadow", True), ("/etcx", False), ("/usr/lib/x", True), ("/usr", False)],
)
def test_pmatch(path: str, expected: bool) -> None:
    assert holds("fd.name pmatch (/etc, /usr/lib)", fd__name=path) is expected


def test_glob_star_crosses_slashes() -> None:
    assert holds("fd.name glob '/proc/*/environ'", fd__name="/proc/1/task/1/environ")


# -- numbers, bools, addresses -------------------------------------------------------------------


def test_numeric_comparisons() -> None:
    assert holds("evt.rawres < 0", evt__rawres=-2)
    assert holds("user.uid in (0, 1000)", user__uid=1000)
    assert not holds("user.uid = 0", user__uid=1000)
    assert holds("proc.vpid != 1", proc__vpid=7)


def test_bool_comparisons() -> None:
    assert holds("evt.is_open_write = true", evt__is_open_write=True)
    assert holds("evt.is_open_write != true", evt__is_open_write=False)
    assert holds("evt.is_open_write in (true)", evt__is_open_write=True)


def test_ip_address_and_network_fields() -> None:
    assert holds("fd.sip = 10.0.0.1", fd__sip=IP("10.0.0.1"))
    assert holds("fd.sip in (10.0.0.1, 10.0.0.2)", fd__sip=IP("10.0.0.2"))
    assert holds("fd.snet in (10.0.0.0/8, 192.168.0.0/16)", fd__snet=IP("192.168.1.5"))
    assert not holds("fd.snet in (10.0.0.0/8)", fd__snet=IP("8.8.8.8"))
    assert holds("fd.snet != 10.0.0.0/8", fd__snet=IP("8.8.8.8"))
    # An address of the other IP version never equals.
    assert holds("fd.snet != 10.0.0.0/8", fd__snet=IP("::1"))
    assert not holds("fd.snet = 10.0.0.0/8", fd__snet=IP("::1"))


def test_either_end_fields() -> None:
    ends = EitherEnd((IP("10.0.0.1"), IP("127.0.0.1")))
    assert holds("fd.ip = 127.0.0.1", fd__ip=ends)
    assert holds("fd.ip in (9.9.9.9, 10.0.0.1)", fd__ip=ends)
    assert not holds("fd.ip != 127.0.0.1", fd__ip=ends)  # '!=' needs both ends to differ
    assert holds("fd.ip != 8.8.8.8", fd__ip=ends)
    assert holds("fd.net = 127.0.0.0/8", fd__net=ends)
    assert not holds("fd.net != 127.0.0.0/8", fd__net=ends)
    ports = EitherEnd((40000, 443))
    assert holds("fd.port = 443", fd__port=ports)
    assert holds("fd.port < 1024", fd__port=ports)
    assert holds("fd.port in (80, 443)", fd__port=ports)
    assert not holds("fd.port != 443", fd__port=ports)
    # An endpoint the extractor could not give never matches a network.
    assert holds("fd.net != 127.0.0.0/8", fd__net=EitherEnd((None, None)))
    assert not holds("fd.net = 127.0.0.0/8", fd__net=EitherEnd((None, None)))
    # An fd that is not an IP socket: only 'exists' holds.
    assert holds("fd.ip exists", fd__ip=EitherEnd(()))
    assert not holds("fd.ip != 8.8.8.8", fd__ip=EitherEnd(()))


def test_fd_net_compares_with_its_first_network_only() -> None:
    # libsinsp's compare_net reads the first right-hand value whatever the operator.
    ends = EitherEnd((IP("192.168.0.1"), IP("192.168.0.2")))
    assert not holds("fd.net in (10.0.0.0/8, 192.168.0.0/16)", fd__net=ends)
    assert holds("fd.net in (192.168.0.0/16, 10.0.0.0/8)", fd__net=ends)


def test_buffer_operators() -> None:
    assert holds("evt.buffer bcontains 6869", evt__buffer=b"ohhi!")
    assert holds("evt.buffer bstartswith 6f68", evt__buffer=b"ohhi!")
    assert not holds("evt.buffer bcontains 7a7a", evt__buffer=b"ohhi!")
    assert holds("evt.buffer contains hi", evt__buffer=b"ohhi!")


# -- list fields -------------------------------------------------------------------------------


def test_list_field_in_intersects_exists() -> None:
    images = ["nginx", "redis"]
    cond_source = "k8s_audit"
    field = "ka.req.pod.containers.image"
    assert holds(f"{field} in (nginx, redis, busybox)", cond_source, **{field.replace(".", "__"): images})
    assert not holds(f"{field} in (nginx)", cond_source, **{field.replace(".", "__"): images})
    assert holds(f"{field} intersects (redis)", cond_source, **{field.replace(".", "__"): images})
    assert holds(f"{field} exists", cond_source, **{field.replace(".", "__"): images})
    # No values at all: every check is false, so a negated 'in' holds.
    assert not holds(f"{field} exists", cond_source)
    assert holds(f"not {field} in (nginx)", cond_source)


def test_transformed_list_with_no_values_is_still_extracted() -> None:
    # getopt() of argv without options extracts an empty list: 'in' holds vacuously.
    assert holds("getopt(fd.types, 'ab') in (a)", fd__types=["file"])
    assert holds("getopt(fd.types, 'ab') in (a)", fd__types=["-a", "x"])
    assert not holds("getopt(fd.types, 'ab') in (a)", fd__types=["-b"])


# -- ancestors ---------------------------------------------------------------------------------


def test_ancestor_fields_without_index_match_any_ancestor() -> None:
    ancestors = ["sh", "bash", "systemd"]
    assert holds("proc.aname = bash", proc__aname=ancestors)
    assert holds("proc.aname != bash", proc__aname=ancestors)  # some ancestor is not bash
    assert not holds("proc.aname != bash", proc__aname=["bash"])
    assert holds("proc.aname in (zsh, systemd)", proc__aname=ancestors)
    assert not holds("proc.aname = bash")  # no ancestors: no value
    assert holds("proc.apid = 1", proc__apid=[100, 1])


def test_ancestor_with_index_is_a_plain_field() -> None:
    assert holds("proc.aname[2] = bash", **f(**{"proc.aname[2]": "bash"}))


def test_ancestor_modifiers_use_the_first_value_only() -> None:
    assert holds("proc.aname = anyof (bash, zsh)", proc__aname=["bash"])
    assert not holds("proc.aname = anyof (bash, zsh)", proc__aname=["zsh"])


# -- transformers --------------------------------------------------------------------------------


def test_string_transformers() -> None:
    assert holds("tolower(proc.name) = bash", proc__name="BaSh")
    assert holds("toupper(proc.name) = BASH", proc__name="bash")
    assert holds("basename(fd.name) = shadow", fd__name="/etc/shadow")
    assert holds("basename(fd.name) = shadow", fd__name="shadow")
    assert holds("tolower(proc.name) = é", proc__name="é")  # only ASCII letters change


def test_b64_and_len() -> None:
    assert holds("b64(proc.name) = hello", proc__name="aGVsbG8=")
    assert not holds("b64(proc.name) exists", proc__name="not base64!")
    assert holds("len(proc.name) = 4", proc__name="bash")
    assert holds("len(proc.name) = 2", proc__name="é")  # bytes, as strnlen counts
    assert holds("len(fd.types) = 2", fd__types=["file", "ipv4"])


def test_multi_value_transformers() -> None:
    assert holds("join(',', fd.types) = 'a,b'", fd__types=["a", "b"])
    assert holds("concat(proc.name, '-', proc.pname) = 'a-b'", proc__name="a", proc__pname="b")
    assert holds("getopt(fd.types, 'ab:')[b] = x", fd__types=["-a", "-b", "x"])
    assert holds("getopt(fd.types, 'ab:')[b] = x", fd__types=["-abx"])
    assert not holds("getopt(fd.types, 'ab:')[b] exists", fd__types=["-a"])


def test_getopt_values_follow_getopt() -> None:
    argv = ["-n", "-t", "val", "-xq", "--long", "-z", "--", "-n"]
    assert getopt_values(argv, "nt:", None) == ["n", "t", "val", "?", "?", "?"]
    assert getopt_values(argv, "nt:", "t") == ["val"]
    assert getopt_values(["-t"], "t:", None) == [""]  # a missing argument is one empty value
    assert getopt_values(["file", "-n"], "n", None) == []  # stops at the first non-option
    assert getopt_values(["-n"], "x", "n") is None


# -- modifiers and right-hand fields ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ("proc.name startswith anyof (ba, zs)", "bash", True),
        ("proc.name startswith allof (b, ba)", "bash", True),
        ("proc.name startswith allof (b, z)", "bash", False),
        ("proc.name startswith oneof (b, ba)", "bash", False),  # two match
        ("proc.name startswith oneof (b, z)", "bash", True),
        ("proc.name = anyof (sh, bash)", "bash", True),
        ("proc.name != allof (sh, zsh)", "bash", True),
        ("proc.name != allof (sh, bash)", "bash", False),
    ],
)
def test_modifiers(condition: str, value: str, expected: bool) -> None:
    assert holds(condition, proc__name=value) is expected


def test_right_hand_fields() -> None:
    assert holds("proc.name = val(proc.pname)", proc__name="bash", proc__pname="bash")
    assert not holds("proc.name = val(proc.pname)", proc__name="bash", proc__pname="sh")
    assert not holds("proc.name != val(proc.pname)", proc__name="bash")  # no right-hand value
    assert holds("proc.name = toupper(proc.pname)", proc__name="BASH", proc__pname="bash")
    # Strings order by bytes (strcmp); only a field or transformer may follow '<' for them.
    assert holds("proc.name < val(proc.pname)", proc__name="ash", proc__pname="bash")
    assert holds("proc.name >= val(proc.pname)", proc__name="bash", proc__pname="bash")
    assert holds("proc.name in val(proc.pname)", proc__name="bash", proc__pname="bash")


# -- generated code against a reference evaluation ---------------------------------------------------

_NAMES = ["bash", "sh", "zsh", "b"]
_CHECKS = st.one_of(
    st.tuples(st.just("proc.name"), st.sampled_from(["=", "!=", "startswith", "endswith", "contains"]),
              st.sampled_from(_NAMES)),
    st.tuples(st.just("proc.name"), st.sampled_from(["in", "intersects"]), st.lists(st.sampled_from(_NAMES), max_size=3)),
    st.tuples(st.just("user.uid"), st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), st.integers(0, 3)),
    st.tuples(st.just("fd.types"), st.sampled_from(["in", "intersects"]), st.lists(st.sampled_from(_NAMES), max_size=3)),
    st.tuples(st.sampled_from(["proc.name", "user.uid", "fd.types"]), st.just("exists"), st.none()),
)  # fmt: skip


def _check_text(check: tuple[str, str, Any]) -> str:
    name, op, value = check
    if op == "exists":
        return f"{name} exists"
    if isinstance(value, list):
        return f"{name} {op} ({', '.join(value)})"
    return f"{name} {op} {value}"


def _reference(check: tuple[str, str, Any], fields: dict[str, Any]) -> bool:
    """The missing-value rule and each operator, written out plainly."""
    name, op, value = check
    v = fields.get(name)
    if v is None:
        return False
    if op == "exists":
        return True
    if name == "fd.types":
        return set(v) <= set(value) if op == "in" else bool(set(v) & set(value))
    ops: dict[str, Callable[[], bool]] = {
        "=": lambda: v == value, "!=": lambda: v != value, "<": lambda: v < value, "<=": lambda: v <= value,
        ">": lambda: v > value, ">=": lambda: v >= value, "startswith": lambda: v.startswith(value),
        "endswith": lambda: v.endswith(value), "contains": lambda: value in v,
        "in": lambda: v in value, "intersects": lambda: v in value,
    }  # fmt: skip
    return bool(ops[op]())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(_CHECKS, st.booleans()), min_size=1, max_size=4),
    st.booleans(),
    st.fixed_dictionaries({}, optional={"proc.name": st.sampled_from(_NAMES), "user.uid": st.integers(0, 3),
                                        "fd.types": st.lists(st.sampled_from(_NAMES), min_size=1, max_size=2)}),
)  # fmt: skip
def test_generated_code_matches_the_reference(checks: list[tuple[tuple[str, str, Any], bool]], use_or: bool,
                                              fields: dict[str, Any]) -> None:  # fmt: skip
    parts = [("not " if negate else "") + _check_text(check) for check, negate in checks]
    condition = (" or " if use_or else " and ").join(parts)
    results = [_reference(check, fields) != negate for check, negate in checks]
    expected = any(results) if use_or else all(results)
    assert holds(condition, **{k.replace(".", "__"): v for k, v in fields.items()}) is expected


# -- boolean structure and explanations -----------------------------------------------------------


def test_and_or_not_precedence() -> None:
    cond = "proc.name = a or proc.name = b and user.uid = 0"
    assert holds(cond, proc__name="a", user__uid=5)
    assert not holds(cond, proc__name="b", user__uid=5)
    assert holds("not not proc.name = a", proc__name="a")


def test_values_are_extracted_once_per_event() -> None:
    calls: list[str] = []

    def counting(match: FieldMatch, source: str, output: bool) -> Extractor:
        def extract(event: Event, state: object) -> object:
            calls.append(match.text)
            return event.params.get(match.text)

        return extract

    rule = load_rule("proc.name = a or proc.name = b or proc.name startswith c")
    predicate = compile_condition(rule.checked, operands=OperandCompiler("syscall", counting))
    assert predicate(Event(1, 0, 1, 3, "open", params={"proc.name": "cx"}), None)
    assert calls == ["proc.name"]


def test_explain_reports_each_check() -> None:
    rule = load_rule("evt.type = open and (proc.name = bash or not fd.name startswith /tmp)")
    predicate = compile_condition(rule.checked, operands=OperandCompiler("syscall", fake_resolver))
    event = Event(1, 0, 1, 3, "open", params={"evt.type": "open", "proc.name": "sh", "fd.name": "/tmp/x"})
    clauses = explain(predicate, event, None)
    checks = [(c.text, c.result, c.reached) for c in clauses if c.kind == "check"]
    assert checks == [
        ("evt.type = open", True, True),
        ("proc.name = bash", False, True),
        ("fd.name startswith /tmp", True, True),
    ]
    assert clauses[0].kind == "and" and clauses[0].result is False
    assert dict(clauses[-1].values) == {"fd.name": "/tmp/x"}


def test_explain_marks_short_circuited_checks() -> None:
    rule = load_rule("proc.name = a and fd.name = b")
    predicate = compile_condition(rule.checked, operands=OperandCompiler("syscall", fake_resolver))
    clauses = explain(predicate, Event(1, 0, 1, 3, "open", params={"proc.name": "x", "fd.name": "b"}), None)
    second = next(c for c in clauses if c.text == "fd.name = b")
    assert second.result is True and second.reached is False
