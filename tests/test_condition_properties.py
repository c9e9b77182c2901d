"""Properties of the condition language: printing round-trips, and hostile input stays contained."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

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
    Operand,
    Or,
    Transformer,
    TransformerArg,
    TransformerList,
    UnaryCheck,
    Value,
)
from falcorules_ci.condition.lexicon import (
    LIST_OPERATORS,
    MODIFIER_OPERATORS,
    NUMERIC_OPERATORS,
    STRING_OPERATORS,
    TRANSFORMER_NAMES,
    is_bool_keyword_start,
)
from falcorules_ci.condition.lists import substitute_lists
from falcorules_ci.condition.output import parse_output
from falcorules_ci.condition.parser import parse_condition
from falcorules_ci.condition.printer import to_sysdig_filter, to_text
from falcorules_ci.errors import ConditionError

# -- strategies for ASTs the parser can produce ----------------------------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
identifiers = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(_LETTERS + "ano"),  # a, n, o: keywords begin with them
    st.text(_LETTERS + "0123456789_dtr", max_size=5),
)
field_names = st.lists(identifiers, min_size=2, max_size=3).map(".".join)
free_text = st.text(st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]), max_size=12)
bare_strings = st.text(
    st.characters(blacklist_characters="()\"'\t\n\v\f\r =,\0", blacklist_categories=["Cs"]), min_size=1, max_size=10
)
_DIGITS = st.text("0123456789", min_size=1, max_size=4)
numbers = st.one_of(
    st.builds(lambda x, digits: "0" + x + digits, st.sampled_from("xX"), st.text("0123456789abcdefABCDEF", min_size=1,
                                                                                  max_size=4)),
    st.builds(lambda sign, whole, frac, exp: sign + whole + frac + exp, st.sampled_from(["", "+", "-"]), _DIGITS,
              st.sampled_from(["", "."]) | _DIGITS.map(lambda d: "." + d),
              st.sampled_from([""]) | st.builds(lambda e, s, d: e + s + d, st.sampled_from("eE"), st.sampled_from("+-"),
                                                 _DIGITS)),
)  # fmt: skip

# A bare string cannot start with a backspace: the parser skips it as a blank.
bare_strings = bare_strings.filter(lambda text: not text.startswith("\b"))
string_literals = st.one_of(
    st.builds(Literal, bare_strings, st.just(False)), st.builds(Literal, free_text, st.just(True))
)
number_literals = st.builds(Literal, numbers, st.just(False))
# A single value after a list operator or a modifier is read as an identifier.
list_identifiers = st.builds(Literal, identifiers, st.just(False))
modifier_identifiers = list_identifiers.filter(lambda lit: not is_bool_keyword_start(lit.value))

fields = st.builds(FieldRef, field_names, st.none() | free_text)


def _transformers(args: st.SearchStrategy[TransformerArg]) -> st.SearchStrategy[Transformer]:
    return st.builds(Transformer, st.sampled_from(TRANSFORMER_NAMES), st.lists(args, min_size=1, max_size=3).map(tuple),
                     arg=st.none() | free_text)  # fmt: skip


transformer_args = st.recursive(
    st.one_of(fields, number_literals, st.builds(Literal, free_text, st.just(True))),
    lambda inner: st.one_of(
        _transformers(inner),
        st.builds(
            TransformerList, st.lists(inner.filter(lambda a: not isinstance(a, TransformerList)), max_size=3).map(tuple)
        ),  # fmt: skip
    ),
    max_leaves=6,
)
transformers = _transformers(transformer_args)
operands: st.SearchStrategy[Operand] = st.one_of(fields, transformers)
field_values = st.builds(FieldValue, fields, arg=st.none() | free_text)
computed: st.SearchStrategy[Value] = st.one_of(transformers, field_values)
list_literals = st.builds(ListLiteral, st.lists(string_literals, max_size=4).map(tuple))


@st.composite
def checks(draw: st.DrawFn) -> Node:
    left = draw(operands)
    kind = draw(st.sampled_from(["unary", "numeric", "string", "list", "modifier"]))
    if kind == "unary":
        return UnaryCheck(left, "exists")
    if kind == "numeric":
        return BinaryCheck(left, draw(st.sampled_from(NUMERIC_OPERATORS)), draw(number_literals | computed))
    op = draw(st.sampled_from([o.strip() for o in STRING_OPERATORS]))
    if kind == "string":
        return BinaryCheck(left, op, draw(string_literals | computed))
    if kind == "modifier":
        modifier = draw(st.sampled_from([m.strip() for m in MODIFIER_OPERATORS]))
        return BinaryCheck(left, op, draw(list_literals | modifier_identifiers), modifier)
    return BinaryCheck(left, draw(st.sampled_from(LIST_OPERATORS)), draw(list_literals | list_identifiers | computed))


conditions = st.recursive(
    st.one_of(checks(), st.builds(Identifier, identifiers)),
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(And, st.lists(inner, min_size=2, max_size=3).map(tuple)),
        st.builds(Or, st.lists(inner, min_size=2, max_size=3).map(tuple)),
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(conditions)
def test_printed_conditions_parse_back_equal(node: Node) -> None:
    text = to_text(node)
    assert parse_condition(text) == node, text


@settings(max_examples=60, deadline=None)
@given(conditions)
def test_sysdig_printer_only_refuses_with_condition_errors(node: Node) -> None:
    try:
        to_sysdig_filter(node)
    except ConditionError as exc:
        assert exc.message.startswith("not expressible for sysdig 0.29.3: ")


# -- hostile input ---------------------------------------------------------------------------

TOKENS = ["(", ")", " ", "\t", "\n", "and", "or", "not", "not(", "a", "a.b", "x.y[", "]", "[2]", "=", "==", "!=", "<",
          ">=", "in", "intersects", "pmatch", "exists", "startswith", "contains", "glob ", "oneof", "allof", ",",
          '"', "'", "\\", "\\ ", "\\x41", "0x1", "-1.5e+3", "val(", "tolower(", "join(", "getopt(", "\0", "\v", "é"]  # fmt: skip
token_soup = st.lists(st.sampled_from(TOKENS), max_size=30).map("".join)


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.text(max_size=60), token_soup))
def test_parser_raises_only_condition_errors(text: str) -> None:
    try:
        node = parse_condition(text)
    except ConditionError as exc:
        assert 0 <= exc.index <= len(text)
    else:
        assert parse_condition(to_text(node)) == node


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), token_soup.map(lambda s: "%" + s.replace(" ", "%"))))
def test_output_parser_raises_only_condition_errors(fmt: str) -> None:
    try:
        parse_output(fmt)
    except ConditionError as exc:
        assert exc.code == "LOAD_ERR_COMPILE_OUTPUT"


@settings(max_examples=200, deadline=None)
@given(token_soup, st.lists(st.tuples(st.sampled_from(["a", "x", "in", "b"]), st.lists(free_text, max_size=3)),
                            max_size=3))  # fmt: skip
def test_list_substitution_is_total(text: str, lists: list[tuple[str, list[str]]]) -> None:
    result = substitute_lists(text, lists)
    if not any(name in text for name, _ in lists):
        assert result == text


def test_five_thousand_nested_parentheses_fail_quickly() -> None:
    start = time.perf_counter()
    for text in ("(" * 5000 + "a" + ")" * 5000, "(" * 5000, "not (" * 5000 + "a", "tolower(" * 5000,
                 "a.b = " + "b64(" * 5000 + "c.d" + ")" * 5000):  # fmt: skip
        try:
            parse_condition(text)
        except ConditionError as exc:
            assert exc.message in ("exceeded max depth limit of 1000", "expected a ')' token closing the transformer")
        else:
            raise AssertionError("nesting past the depth limit parsed")
    assert time.perf_counter() - start < 1.0
