"""The static set of event codes a syscall rule can match (libsinsp ``filter/ppm_codes.cpp``).

``evt.type`` checks with ``=``, ``==``, ``!=`` or ``in`` name event types; every other check is
neutral (all codes). ``and`` intersects, ``or`` unites, and negations are pushed down to the
leaves with De Morgan's laws, inverting only checks that name event types. Names map to codes as
``libsinsp::events::names_to_event_set`` does: every event code (enter and exit, old versions
too) carrying the name, plus the generic syscall events when some remaining name is a syscall
without an event of its own.

Falco warns ``LOAD_NO_EVTTYPE`` when the set is empty or holds more than 100 codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

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
    TransformerArg,
    TransformerList,
    UnaryCheck,
    Value,
)
from falcorules_ci.condition.lexicon import deep_nesting_guard
from falcorules_ci.errors import ConditionError
from falcorules_ci.fields.event_table import event_table

_EVTTYPE_OPERATORS = frozenset({"==", "=", "!=", "in"})
_GENERIC_CODES = frozenset({0, 1})  # PPME_GENERIC_E / PPME_GENERIC_X
_FIRST_NAMED_CODE = 2  # the generic events' own name ("syscall") is not looked up


def event_codes(node: object) -> frozenset[int]:
    """Event codes ``node`` (a plain AST, or a typed one from ``typecheck``) may match.

    Raises ConditionError for what libsinsp refuses to analyse: ``evt.type`` under a transformer,
    or compared with another field.
    """
    plain = _plain_root(node)
    visitor = _CodeVisitor()
    with deep_nesting_guard():
        visitor.visit(plain)
    return visitor.codes


def event_names(codes: Iterable[int]) -> list[str]:
    """The distinct event names of ``codes``, sorted (for messages and reports)."""
    table = event_table().by_code
    return sorted({table[code].name for code in codes if code in table})


def names_to_codes(names: Iterable[str]) -> frozenset[int]:
    """libsinsp's ``names_to_event_set``."""
    wanted = set(names)
    by_name = _codes_by_event_name()
    codes: set[int] = set()
    remaining = set(wanted)
    for name in wanted:
        named = by_name.get(name)
        if named:
            codes |= named
            remaining.discard(name)
    if remaining & event_table().syscall_names:
        codes |= _GENERIC_CODES
    return frozenset(codes)


def all_codes() -> frozenset[int]:
    """Every event code below PPM_EVENT_MAX."""
    return _all_codes()


@cache
def _all_codes() -> frozenset[int]:
    return frozenset(range(max(event_table().by_code) + 1))


@cache
def _codes_by_event_name() -> dict[str, frozenset[int]]:
    names: dict[str, set[int]] = {}
    for code, info in event_table().by_code.items():
        if code >= _FIRST_NAMED_CODE:
            names.setdefault(info.name, set()).add(code)
    return {name: frozenset(codes) for name, codes in names.items()}


def _plain_root(node: object) -> Node:
    if isinstance(node, And | Or | Not | UnaryCheck | BinaryCheck | Identifier):
        return node
    source = getattr(node, "node", None)
    if isinstance(source, And | Or | Not | UnaryCheck | BinaryCheck | Identifier):
        return source
    root = getattr(node, "root", None)
    if root is not None:
        return _plain_root(root)
    raise TypeError(f"not a condition AST: {type(node).__name__}")


class _CodeVisitor:
    """State machine of libsinsp's ppm_code_visitor, flag for flag."""

    def __init__(self) -> None:
        self.codes: frozenset[int] = frozenset()
        self.last_is_evttype_field = False
        self.last_is_field_or_transformer = True
        self.inside_negation = False
        self.last_has_codes = False

    def inversion(self, codes: frozenset[int]) -> frozenset[int]:
        # Neutral checks are never inverted.
        return _all_codes() - codes if self.last_has_codes else codes

    def try_inversion(self, codes: frozenset[int]) -> frozenset[int]:
        return self.inversion(codes) if self.inside_negation else codes

    def visit(self, node: Node) -> None:
        if isinstance(node, And):
            self.disjunction(node.children) if self.inside_negation else self.conjunction(node.children)
        elif isinstance(node, Or):
            self.conjunction(node.children) if self.inside_negation else self.disjunction(node.children)
        elif isinstance(node, Not):
            self.codes = frozenset()
            outer = self.inside_negation
            self.inside_negation = not outer
            self.visit(node.child)
            self.inside_negation = outer
            self.last_is_evttype_field = False
        elif isinstance(node, BinaryCheck):
            self.binary(node)
        elif isinstance(node, UnaryCheck):
            self.operand(node.left)
            self.last_has_codes = self.last_is_evttype_field and node.op == "exists"
            self.codes = self.try_inversion(_all_codes())
            self.last_is_evttype_field = False
        else:
            # An identifier left unresolved: neutral.
            self.last_has_codes = False
            self.codes = self.try_inversion(_all_codes())
            self.last_is_evttype_field = False

    def conjunction(self, children: tuple[Node, ...]) -> None:
        codes = _all_codes()
        for child in children:
            self.visit(child)
            codes = codes & self.codes
        self.codes = codes
        self.last_is_evttype_field = False

    def disjunction(self, children: tuple[Node, ...]) -> None:
        codes: frozenset[int] = frozenset()
        for child in children:
            self.visit(child)
            codes = codes | self.codes
        self.codes = codes
        self.last_is_evttype_field = False

    def binary(self, node: BinaryCheck) -> None:
        self.last_has_codes = False
        op = node.op if node.modifier is None else f"{node.op} {node.modifier}"
        if op in _EVTTYPE_OPERATORS:
            self.operand(node.left)
            if self.last_is_evttype_field:
                self.last_is_field_or_transformer = False
                self.value(node.right)
                if self.last_is_field_or_transformer:
                    raise ConditionError(
                        "right-hand field comparisons on `evt.type`/`syscall.type` checks are not "
                        "supported by event code search",
                        node.index,
                    )
                if op == "!=":
                    self.codes = self.inversion(self.codes)
                self.last_is_evttype_field = False
                return
        self.codes = _all_codes()
        self.last_is_evttype_field = False
        self.codes = self.try_inversion(self.codes)

    def value(self, node: Value) -> None:
        if isinstance(node, Literal):
            self.leaf_names((node.value,))
        elif isinstance(node, ListLiteral):
            self.leaf_names(v.value for v in node.values)
        elif isinstance(node, FieldValue):
            # libsinsp represents val(f) as a transformer over f.
            self.operand(Transformer("val", (node.operand,), node.index))
        else:
            self.operand(node)

    def leaf_names(self, names: Iterable[str]) -> None:
        self.last_has_codes = True
        self.codes = self.try_inversion(names_to_codes(names))
        self.last_is_evttype_field = False

    def operand(self, node: TransformerArg) -> None:
        if isinstance(node, FieldRef):
            self.last_has_codes = False
            self.last_is_field_or_transformer = True
            self.last_is_evttype_field = node.name in ("evt.type", "syscall.type") and node.arg is None
            self.codes = self.try_inversion(_all_codes())
        elif isinstance(node, Transformer):
            for arg in node.args:
                self.operand(arg)
                if self.last_is_evttype_field:
                    raise ConditionError(
                        "event code search does not support `evt.type` checks with transformers", node.index
                    )
            self.last_is_field_or_transformer = True
        elif isinstance(node, TransformerList):
            for item in node.values:
                self.operand(item)
        else:
            self.leaf_names((node.value,))


__all__ = ["all_codes", "event_codes", "event_names", "names_to_codes"]
