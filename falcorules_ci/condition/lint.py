"""Falco's ``filter_warning_resolver``: warnings found in a condition before it is compiled.

A ``ka.*`` or ``jevt.*`` field compared with ``"<NA>"`` by an equality operator gives
``LOAD_UNSAFE_NA_CHECK``; deprecated fields (``evt.dir``, the latency fields) give
``LOAD_DEPRECATED_ITEM`` with Falco's description. Falco reports them at the start of the
condition, whether or not the condition then compiles.
"""

from __future__ import annotations

from typing import NamedTuple

from falcorules_ci.condition.ast import (
    And,
    BinaryCheck,
    FieldRef,
    FieldValue,
    ListLiteral,
    Literal,
    Node,
    Not,
    Or,
    Transformer,
    TransformerArg,
    UnaryCheck,
    Value,
)
from falcorules_ci.condition.lexicon import deep_nesting_guard


class ConditionWarning(NamedTuple):
    """A load warning found in a condition: Falco's code, message and the character offset it
    reports (unpacks as ``code, message, index``)."""

    code: str
    message: str
    offset: int


_DEPRECATED_FIELDS = ("evt.dir", "evt.latency", "evt.latency.s", "evt.latency.ns", "evt.latency.human",
                      "evt.wait_latency")  # fmt: skip
_LATENCY_NOTE = "field is not available due to the drop of enter events."
DEPRECATED_FIELD_NOTES = {
    "evt.dir": "due to the drop of enter events, 'evt.dir = <' always evaluates to true, and 'evt.dir = >' "
    "always evaluates to false. The rule expression can be simplified by removing the condition on 'evt.dir'",
    **{name: _LATENCY_NOTE for name in _DEPRECATED_FIELDS[1:]},
}
_EQUALITY_OPS = frozenset({"==", "=", "!=", "in", "intersects", "pmatch"})
_NO_VALUE = "<NA>"


def lint_condition(node: Node) -> list[ConditionWarning]:
    """Falco's filter_warning_resolver: unsafe ``<NA>`` checks and deprecated fields, at index 0.

    Falco emits these before compiling, so they stand even when the condition then fails.
    """
    lint = _Lint()
    with deep_nesting_guard():
        lint.node(node)
    warnings = [ConditionWarning("LOAD_UNSAFE_NA_CHECK", "", 0)] if lint.unsafe else []
    warnings += [
        ConditionWarning("LOAD_DEPRECATED_ITEM", DEPRECATED_FIELD_NOTES[name], 0)
        for name in _DEPRECATED_FIELDS
        if name in lint.deprecated
    ]
    return warnings


def deprecated_fields(node: Node) -> list[str]:
    """The deprecated fields Falco's warning resolver finds in ``node``, in Falco's order.

    They match ``lint_condition``'s LOAD_DEPRECATED_ITEM warnings one to one.
    """
    lint = _Lint()
    with deep_nesting_guard():
        lint.node(node)
    return [name for name in _DEPRECATED_FIELDS if name in lint.deprecated]


class _Lint:
    def __init__(self) -> None:
        self.equality = False
        self.last_unsafe = False
        self.unsafe = False
        self.deprecated: set[str] = set()

    def node(self, node: Node) -> None:
        if isinstance(node, And | Or):
            for child in node.children:
                self.node(child)
        elif isinstance(node, Not):
            self.node(node.child)
        elif isinstance(node, UnaryCheck):
            self.value(node.left)
        elif isinstance(node, BinaryCheck):
            self.last_unsafe = False
            self.value(node.left)
            if self.last_unsafe and node.modifier is None and node.op in _EQUALITY_OPS:
                self.equality = True
                self.value(node.right)
                self.equality = False

    def value(self, node: Value | TransformerArg) -> None:
        if isinstance(node, FieldRef):
            self.last_unsafe = node.name.startswith(("ka.", "jevt."))
            if node.name in DEPRECATED_FIELD_NOTES:
                self.deprecated.add(node.name)
        elif isinstance(node, Transformer):
            for arg in node.args:
                self.value(arg)
        elif isinstance(node, FieldValue):
            self.value(node.operand)
        elif isinstance(node, Literal):
            self.unsafe |= self.equality and node.value == _NO_VALUE
        elif isinstance(node, ListLiteral):
            self.unsafe |= self.equality and any(v.value == _NO_VALUE for v in node.values)


__all__ = ["DEPRECATED_FIELD_NOTES", "ConditionWarning", "deprecated_fields", "lint_condition"]
