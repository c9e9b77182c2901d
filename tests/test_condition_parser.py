"""The condition grammar (libsinsp 0.25), its printers, list substitution and macro resolution."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from falcorules_ci.condition.ast import (
    And,
    BinaryCheck,
    FieldRef,
    FieldValue,
    Identifier,
    ListLiteral,
    Literal,
    Node,
    Not,
    Or,
    Transformer,
    TransformerList,
    UnaryCheck,
)
from falcorules_ci.condition.lists import expand_list_items, quote_item, substitute_lists
from falcorules_ci.condition.macros import MacroError, collect_identifiers, resolve_macros
from falcorules_ci.condition.parser import MAX_DEPTH, parse_condition, parse_field_or_transformer
from falcorules_ci.condition.printer import quote, to_sysdig_filter, to_text
from falcorules_ci.errors import ConditionError

TRANSFORMERS = "'val', 'tolower', 'toupper', 'b64', 'basename', 'len', 'join', 'concat', 'getopt'"
OPERATORS = (
    "'exists', '<=', '<', '>=', '>', '==', '=', '!=', 'glob', 'iglob', 'contains', 'icontains', 'bcontains', "
    "'startswith', 'bstartswith', 'endswith', 'regex', 'intersects', 'in', 'pmatch'"
)


def F(name: str, arg: str | None = None) -> FieldRef:
    return FieldRef(name, arg)


def L(value: str, quoted: bool = False) -> Literal:
    return Literal(value, quoted)


# -- accepted input and the AST it gives ---------------------------------------------------------

ACCEPTED: list[tuple[str, Node]] = [
    ("proc.name=bash", BinaryCheck(F("proc.name"), "=", L("bash"))),
    ("proc.name == bash", BinaryCheck(F("proc.name"), "==", L("bash"))),
    ("a and b and c", And((Identifier("a"), Identifier("b"), Identifier("c")))),
    ("a or b and c", Or((Identifier("a"), And((Identifier("b"), Identifier("c")))))),
    ("(a or b) and c", And((Or((Identifier("a"), Identifier("b"))), Identifier("c")))),
    ("a and(b)and(c)", And((Identifier("a"), Identifier("b"), Identifier("c")))),
    ("not not a", Identifier("a")),
    ("not not not a", Not(Identifier("a"))),
    ("not(a)", Not(Identifier("a"))),
    ("not (not a)", Not(Not(Identifier("a")))),
    ("not", Identifier("not")),
    ("a.b exists or not", Or((UnaryCheck(F("a.b"), "exists"), Identifier("not")))),
    ("macro and and_macro", And((Identifier("macro"), Identifier("and_macro")))),
    ("notz and a", And((Identifier("notz"), Identifier("a")))),
    ("a.b = not", BinaryCheck(F("a.b"), "=", L("not"))),
    # `in` needs no blank: the rest of the word is an identifier value
    ("x.y inabc", BinaryCheck(F("x.y"), "in", L("abc"))),
    ("test.op existsand macro", And((UnaryCheck(F("test.op"), "exists"), Identifier("macro")))),
    ("fd.name=*.log", BinaryCheck(F("fd.name"), "=", L("*.log"))),
    ("proc.name = runc:[0:PARENT]", BinaryCheck(F("proc.name"), "=", L("runc:[0:PARENT]"))),
    ("fd.num > 0x1F", BinaryCheck(F("fd.num"), ">", L("0x1F"))),
    ("fd.num >= -0.12e+10", BinaryCheck(F("fd.num"), ">=", L("-0.12e+10"))),
    ("a.b in (x, \"y z\", 'w')", BinaryCheck(F("a.b"), "in", ListLiteral((L("x"), L("y z", True), L("w", True))))),
    ("a.b in ()", BinaryCheck(F("a.b"), "in", ListLiteral(()))),
    ("a.b pmatch(/etc)", BinaryCheck(F("a.b"), "pmatch", ListLiteral((L("/etc"),)))),
    ("a.b in macro_list", BinaryCheck(F("a.b"), "in", L("macro_list"))),
    ("proc.aname[2] = x", BinaryCheck(F("proc.aname", "2"), "=", L("x"))),
    ('jevt.value["/a b"] exists', UnaryCheck(F("jevt.value", "/a b"), "exists")),
    ("container.mount.dest[/proc*] exists", UnaryCheck(F("container.mount.dest", "/proc*"), "exists")),
    ('a.b[""] exists', UnaryCheck(F("a.b", ""), "exists")),
    ("a.b startswith oneof (x, y)", BinaryCheck(F("a.b"), "startswith", ListLiteral((L("x"), L("y"))), "oneof")),
    ("a.b = anyof xs", BinaryCheck(F("a.b"), "=", L("xs"), "anyof")),
    # a modifier word is only a modifier when a list or identifier (not a keyword) follows
    ("a.b startswith oneof", BinaryCheck(F("a.b"), "startswith", L("oneof"))),
    ("a.b = oneof and c", And((BinaryCheck(F("a.b"), "=", L("oneof")), Identifier("c")))),
    (
        "tolower(proc.name) = val(proc.pname)",
        BinaryCheck(Transformer("tolower", (F("proc.name"),)), "=", FieldValue(F("proc.pname"))),
    ),
    ("toupper(b64( x.y )) exists", UnaryCheck(Transformer("toupper", (Transformer("b64", (F("x.y"),)),)), "exists")),
    (
        'join(",", (a.b, 1, "s")) = x',
        BinaryCheck(
            Transformer("join", (L(",", True), TransformerList((F("a.b"), L("1"), L("s", True))))), "=", L("x")
        ),
    ),
    (
        'getopt(proc.args, "nt:")[t] = v',
        BinaryCheck(Transformer("getopt", (F("proc.args"), L("nt:", True)), arg="t"), "=", L("v")),
    ),
    ("a.b = val(c.d)[x]", BinaryCheck(F("a.b"), "=", FieldValue(F("c.d"), arg="x"))),
    ("a.b > len(c.d)", BinaryCheck(F("a.b"), ">", Transformer("len", (F("c.d"),)))),
    ("a.b in tolower(c.d)", BinaryCheck(F("a.b"), "in", Transformer("tolower", (F("c.d"),)))),
    # escapes: \ followed by a space is a backslash; a bad escape in a list head empties the list
    ('a.b = "x\\ "', BinaryCheck(F("a.b"), "=", L("x\\", True))),
    ("a.b = 'it\\'s \\\\ \\t\\/'", BinaryCheck(F("a.b"), "=", L("it's \\ \t/", True))),
    ('a.b in ("\\q")', BinaryCheck(F("a.b"), "in", ListLiteral(()))),
    ("\n\ta.b\texists\r\n", UnaryCheck(F("a.b"), "exists")),
    ("a.b = \bx", BinaryCheck(F("a.b"), "=", L("x"))),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED, ids=[t for t, _ in ACCEPTED])
def test_accepted(text: str, expected: Node) -> None:
    assert parse_condition(text) == expected


# -- rejected input: libsinsp's message and cursor position ---------------------------------------

REJECTED: list[tuple[str, str, int]] = [
    ("", "filter input string is empty", 0),
    ("   ", "expected a '(' token, a field check, or an identifier", 3),
    ("a andb", "expected blank or '(' after 'and'", 5),
    ("a orb", "expected blank or '(' after 'or'", 4),
    ("a.b exists and", "expected blank or '(' after 'and'", 14),
    ("a.b exists and ", "expected a '(' token, a field check, or an identifier", 15),
    ("a b", "unexpected token after 'a', expecting 'or', 'and'", 2),
    ("macro > 12", "unexpected token after 'macro', expecting 'or', 'and'", 6),
    ("(a.b exists) x", "unexpected token after ')', expecting 'or', 'and'", 13),
    ('a.b = "x" y', "unexpected token after 'x', expecting 'or', 'and'", 10),
    ("a.b exists\v", "unexpected token after 'exists', expecting 'or', 'and'", 10),
    ("a.b =oneof (a)", "unexpected token after 'oneof', expecting 'or', 'and'", 11),
    # `invalidop` starts with `in`: the rest is read as an identifier value
    ("a.a invalidop xxx", "unexpected token after 'validop', expecting 'or', 'and'", 14),
    ("(a.b = 1", "expected a ')' token", 8),
    ("a.a foo xxx", "expected a valid check operator: one of " + OPERATORS, 4),
    ("a.b globx", "expected a valid check operator: one of " + OPERATORS, 4),
    ('a.b = "x', "expected a string value or a field with a valid transformer: " + TRANSFORMERS, 6),
    ("a.b = (x)", "expected a string value or a field with a valid transformer: " + TRANSFORMERS, 6),
    ('a.b = "\\q"', "unsupported string escape sequence: \\q", 10),
    ('a.b = "\\x41"', "unsupported string escape sequence: \\x", 12),
    ("a.b = 'x\\\"'", "invalid \\\" escape in '-quoted string", 11),
    ('a.b = "x\\\'"', "invalid \\' escape in \"-quoted string", 11),
    ("a.b in (x,)", "expected a string value", 10),
    ("a.b in (,x)", "expected a ')' token", 8),
    ("a.b in (x", "expected a ')' token", 9),
    ("a.b in ('x\\q', y)", "expected a ')' token", 13),
    ("a.b in", "expected a list, an identifier, or a field with a valid transformer: " + TRANSFORMERS, 6),
    ('a.b in "x"', "expected a list, an identifier, or a field with a valid transformer: " + TRANSFORMERS, 7),
    ("a.b > x", "expected a number value or a field with a valid transformer: " + TRANSFORMERS, 6),
    ("a.b < 0xAAA.1", "unexpected token after '0xAAA', expecting 'or', 'and'", 11),
    # `oneof` followed by a quoted string is no modifier: it becomes the value
    ("a.b startswith oneof 'x'", "unexpected token after 'oneof', expecting 'or', 'and'", 21),
    ("a.b[] = x", "expected a valid field argument: a quoted string or a bare string", 4),
    ('a.b["x" = y', "expected a ']' token", 7),
    ("a.b[x y] = z", "expected a ']' token", 5),
    ("tolower(a.b = x", "expected a ')' token closing the transformer", 12),
    (
        "tolower() exists",
        "expected field transformer argument: field, transformer, quoted string, number, or transformer list",
        8,
    ),
    ("b64 (a.b) exists", "unexpected token after 'b64', expecting 'or', 'and'", 4),
    ("val(a.b) exists", "unexpected token after 'val', expecting 'or', 'and'", 3),
    ("a.b = val(x)", "expected a field within 'val' transformer", 10),
    ("a.b = val(c.d", "expected a ')' token closing the transformer", 13),
    ("join(',', (a.b,)) = x", "expected transformer list argument: field, transformer, quoted string, or number", 15),
    ("join(',', (a.b x)) = y", "expected ')'", 15),
]


@pytest.mark.parametrize(("text", "message", "index"), REJECTED, ids=[t for t, _, _ in REJECTED])
def test_rejected(text: str, message: str, index: int) -> None:
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    assert (info.value.message, info.value.index) == (message, index)
    assert info.value.code == "LOAD_ERR_COMPILE_CONDITION"


def test_node_indexes_are_libsinsp_positions() -> None:
    node = parse_condition("  a.b exists and not (c.d in (x, y) or m)")
    assert isinstance(node, And) and node.index == 2  # parse_and starts after the leading blanks
    assert parse_condition(" a or b").index == 0
    check, negation = node.children
    assert isinstance(check, UnaryCheck) and check.index == 2 and check.left.index == 2
    assert isinstance(negation, Not) and negation.index == 17
    inner = negation.child
    assert isinstance(inner, Or) and inner.index == 22
    in_check, macro = inner.children
    assert isinstance(in_check, BinaryCheck) and in_check.index == 22
    assert isinstance(in_check.right, ListLiteral) and in_check.right.index == 29
    assert [v.index for v in in_check.right.values] == [30, 33]
    assert isinstance(macro, Identifier) and macro.index == 39


def test_depth_limit_is_an_error_at_the_200th_parenthesis() -> None:
    # Five guarded parser functions per nesting level: the guard trips at level 200.
    text = "(" * 300 + "a" + ")" * 300
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    assert info.value.message == f"exceeded max depth limit of {MAX_DEPTH}"
    assert info.value.index == 200
    assert parse_condition("(" * 150 + "a" + ")" * 150) == Identifier("a")


def test_hostile_nesting_fails_fast_without_recursion_error() -> None:
    start = time.perf_counter()
    for text in (
        "(" * 5000,
        "(" * 5000 + "a" + ")" * 5000,
        "not (" * 5000,
        "tolower(" * 5000,
        "a.b = " + "b64(" * 5000,
    ):
        with pytest.raises(ConditionError):
            parse_condition(text)
    assert time.perf_counter() - start < 1.0


def test_long_tokens_lex_in_linear_time() -> None:
    start = time.perf_counter()
    for text in ("a" * 200_000 + " x", "a." * 100_000, "a.b = " + "x" * 200_000 + " y", "a.b > " + "1" * 200_000 + "x"):
        with pytest.raises(ConditionError):
            parse_condition(text)
    assert time.perf_counter() - start < 1.0


def test_parse_field_or_transformer_reports_consumed_length() -> None:
    assert parse_field_or_transformer("ka.target.name/%x") == (F("ka.target.name"), 14)
    node, size = parse_field_or_transformer("tolower( proc.name ) rest")
    assert node == Transformer("tolower", (F("proc.name"),)) and size == 20
    with pytest.raises(ConditionError) as info:
        parse_field_or_transformer("val(x.y)")
    assert info.value.message == "unexpected token after '"


# -- printing ------------------------------------------------------------------------------------

ROUND_TRIPS = [
    "proc.name = bash and (fd.num > 3 or not evt.type in (open, openat))",
    "(a and b) and c",
    "a or (b or c)",
    "not (not a)",
    "not (a and b)",
    "not",
    "a and (not) and b",
    "and and or",
    'a.b = "ends with backslash\\ "',
    "a.b = '\"quoted\" and \\\\ \\t'",
    'a.b in ("a b", c, \'d\', "")',
    'a.b startswith oneof (x, "y z") or a.b = allof andy',
    "a.b = oneof and c",
    'jevt.value["/a b"] exists and x.y["]"] exists and x.y[""] exists',
    'getopt(proc.args, "ab:")[a] = val(c.d)[z]',
    'concat(proc.name, "-", (a.b, 1, 0x1F, "x")) = y',
    "a.b > len(c.d) and a.b in val(c.d) and a.b inabc",
    "fd.num >= -0.5e+10",
]


@pytest.mark.parametrize("text", ROUND_TRIPS)
def test_to_text_round_trips(text: str) -> None:
    node = parse_condition(text)
    printed = to_text(node)
    assert parse_condition(printed) == node
    assert to_text(parse_condition(printed)) == printed


def test_to_text_is_canonical() -> None:
    assert to_text(parse_condition("proc.name==x and(a or b)")) == "proc.name == x and (a or b)"
    assert to_text(parse_condition("not(a.b exists)")) == "not a.b exists"
    assert quote('x"y\\') == '"x\\"y\\ "'


@pytest.mark.parametrize(
    "node",
    [
        BinaryCheck(F("a.b"), "=", L("two words")),  # a bare string with a blank
        BinaryCheck(F("a.b"), ">", L("12", quoted=True)),  # numeric operators take no quotes
        BinaryCheck(F("a.b"), "in", L("x.y")),  # not an identifier
        BinaryCheck(F("a.b"), "=", L("and_x"), "oneof"),  # read back as a keyword
        BinaryCheck(F("a.b"), "=", L("a\0b", quoted=True)),  # libsinsp stops at NUL
        Identifier("a.b"),
        UnaryCheck(F("nodot"), "exists"),
        And((Identifier("a"),)),
        BinaryCheck(Transformer("nosuch", (F("a.b"),)), "=", L("x")),
    ],
)
def test_to_text_refuses_what_cannot_read_back(node: Node) -> None:
    with pytest.raises(ConditionError):
        to_text(node)


SYSDIG = [
    ("proc.name == bash", "proc.name = bash"),
    ("a.b exists and c.d exists or e.f exists", "(a.b exists and c.d exists) or e.f exists"),
    ("not not not a.b exists", "not (a.b exists)"),
    ("not (not a.b exists)", "not (not (a.b exists))"),
    ("proc.args intersects (-V, -l)", "proc.args in (-V, -l)"),
    ("a.b in x", "a.b in (x)"),
    ("a.b in ()", "evt.num=0"),
    ("not a.b pmatch ()", "not (evt.num=0)"),
    ('a.b = "x y" and c.d in ("a,b", "it\'s", "q\\"\\\\x")', 'a.b = "x y" and c.d in ("a,b", "it\\x27s", "q\\"\\\\x")'),
    ("proc.aname[2] startswith /usr", "proc.aname[2] startswith /usr"),
    ("fd.num >= 3", "fd.num >= 3"),
]


@pytest.mark.parametrize(("text", "expected"), SYSDIG)
def test_to_sysdig_filter(text: str, expected: str) -> None:
    assert to_sysdig_filter(parse_condition(text)) == expected


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("tolower(a.b) = x", "field transformers"),
        ("a.b = val(c.d)", "a field or transformer as right-hand side"),
        ("a.b startswith oneof (x)", "operator modifier 'startswith oneof'"),
        ("a.b regex x", "operator 'regex'"),
        ("a.b iglob x", "operator 'iglob'"),
        ("a.b bcontains 00", "operator 'bcontains'"),
        ("a.b exists and m", "unresolved macro 'm'"),
        ("net.x exists", "field 'net.x' (a leading 'n' reads as 'not')"),
        ('a.b[" "] exists', "field 'a.b[ ]' (its argument holds a character that ends a field)"),
    ],
)
def test_to_sysdig_filter_refuses(text: str, what: str) -> None:
    with pytest.raises(ConditionError) as info:
        to_sysdig_filter(parse_condition(text))
    assert info.value.message == f"not expressible for sysdig 0.29.3: {what}"


@pytest.mark.sysdig
@pytest.mark.skipif(shutil.which("sysdig") is None, reason="needs Debian's sysdig")
def test_sysdig_accepts_printed_filters(upstream: object) -> None:
    from conftest import CAPTURES

    capture = CAPTURES / "cat_write.scap"
    for text in (
        "proc.name == cat and (fd.num > 2 or not evt.type in (write, open)) and proc.args intersects (x)",
        'fd.name in ("/tmp/a b", "it\'s", "q\\"\\\\x") or not (not fd.name exists)',
        "evt.type in () or fd.name pmatch (/etc)",
    ):
        result = subprocess.run(["sysdig", "-r", str(capture), to_sysdig_filter(parse_condition(text))],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert result.returncode == 0, result.stderr


# -- lists -------------------------------------------------------------------------------------


def test_quote_item() -> None:
    assert quote_item("a b") == '"a b"'
    assert quote_item('"a b"') == '"a b"'
    assert quote_item("'a b'") == "'a b'"
    assert quote_item("a") == "a"
    assert quote_item("") == ""


@pytest.mark.parametrize(
    ("condition", "lists", "expected"),
    [
        ("proc.name in (shells)", [("shells", ["bash", "sh"])], "proc.name in ( bash, sh )"),
        ("proc.name in (shells) and x", [("shells", ["a b"])], 'proc.name in ( "a b" ) and x'),
        ("x in (a, l, b)", [("l", [])], "x in (a  , b)"),
        ("x in (l, b)", [("l", [])], "x in (   b)"),
        ("l", [("l", ["v"])], "v "),
        ("a in (l) or b in (l)", [("l", ["x"])], "a in ( x ) or b in ( x )"),
        ("a in (l)", [("l", ["l"])], "a in ( l )"),  # the search resumes past the substitution
        ("proc.name=shells_x", [("shells", ["bash"])], "proc.name=shells_x"),
        ('proc.name = "a shells b"', [("shells", ["x"])], 'proc.name = "a x b"'),
        ("a in (l1) and b in (l2)", [("l2", ["y"]), ("l1", ["l2"])], "a in ( l2 ) and b in ( y )"),
    ],
)
def test_substitute_lists(condition: str, lists: list[tuple[str, list[str]]], expected: str) -> None:
    assert substitute_lists(condition, lists) == expected


def test_substitute_lists_reports_used_lists() -> None:
    used: set[str] = set()
    substitute_lists("a in (x) and b in (yy)", [("x", ["1"]), ("y", ["2"]), ("z", ["3"])], used)
    assert used == {"x"}


def test_expand_list_items_one_level() -> None:
    lists = {"inner": ["x", "y"], "outer": ["inner", "z"]}
    used: set[str] = set()
    assert expand_list_items(["a", "outer", "inner"], lists.get, used) == ["a", "inner", "z", "x", "y"]
    assert used == {"outer", "inner"}


# -- macros ------------------------------------------------------------------------------------


def _macros(**texts: str) -> dict[str, Node]:
    return {name: parse_condition(text) for name, text in texts.items()}


def test_resolve_macros_substitutes_recursively() -> None:
    macros = _macros(spawned="evt.type = execve", shell="spawned and proc.name = bash")
    used: list[str] = []
    resolved = resolve_macros(parse_condition("shell and not m2"), {**macros, "m2": parse_condition("a.b exists")}.get,
                              used.append)  # fmt: skip
    assert resolved == parse_condition("(evt.type = execve and proc.name = bash) and not a.b exists")
    assert used == ["spawned", "shell", "m2"]


def test_resolve_macros_keeps_node_indexes_of_the_macro_text() -> None:
    macros = _macros(m="   x.y exists")
    resolved = resolve_macros(parse_condition("a.b exists and m"), macros.get)
    assert isinstance(resolved, And) and resolved.children[1].index == 3


def test_undefined_macro_error() -> None:
    macros = _macros(m="a.b exists and missing")
    with pytest.raises(MacroError) as info:
        resolve_macros(parse_condition("x.y exists and m"), macros.get)
    err = info.value
    assert (err.message, err.index, err.macro, err.code) == ("Undefined macro 'missing' used in filter.", 15, "m",
                                                            "LOAD_ERR_VALIDATE")  # fmt: skip
    with pytest.raises(MacroError) as info:
        resolve_macros(parse_condition("x.y exists and nope"), macros.get)
    assert (info.value.index, info.value.macro) == (15, None)


def test_reference_loop_is_reported_before_undefined_macros() -> None:
    macros = _macros(a="undefined_first or b", b="c", c="a")
    with pytest.raises(MacroError) as info:
        resolve_macros(parse_condition("a"), macros.get)
    assert (info.value.message, info.value.macro) == ("reference loop in macro 'a'", "c")


def test_on_use_not_called_on_failure() -> None:
    used: list[str] = []
    with pytest.raises(MacroError):
        resolve_macros(parse_condition("m and x"), _macros(m="a.b exists").get, used.append)
    assert used == []


def test_visibility_is_the_lookup() -> None:
    macros = _macros(early="late", late="a.b exists")
    visible = {"early"}
    with pytest.raises(MacroError, match="Undefined macro 'late'"):
        resolve_macros(macros["early"], lambda name: macros[name] if name in visible else None)


def test_collect_identifiers() -> None:
    node = parse_condition("a and not (b or x.y in (c)) and a")
    assert [(i.name, i.index) for i in collect_identifiers(node)] == [("a", 0), ("b", 11), ("a", 32)]
