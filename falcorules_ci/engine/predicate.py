"""Typed conditions compiled once into fast Python predicates, and explained on demand.

A condition becomes one generated Python function over a per-event value cache: ``and``/``or``/
``not`` are Python's own short-circuiting operators, common comparisons are inlined, and every
field is extracted at most once per event however many rules use it (the cache is shared by all
rules of a source and cleared for each event). Semantics are libsinsp's: a missing value makes
every check false, and ``not`` applies only afterwards (see :mod:`falcorules_ci.engine.compare`).

The same checks also exist as closures, which :func:`explain` uses to report each check's truth
value and the values it saw.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from falcorules_ci.condition import ast
from falcorules_ci.condition.printer import to_text
from falcorules_ci.condition.typecheck import TypedAnd, TypedCheck, TypedNode, TypedNot, TypedOr
from falcorules_ci.engine.compare import (
    EQ_ONLY_TYPES,
    NUMERIC_OPS,
    SET_OPS,
    Special,
    build_dynamic_test,
    build_test,
)
from falcorules_ci.engine.operands import Operand, OperandCompiler
from falcorules_ci.fields.registry import FieldType
from falcorules_ci.ruleset.model import Rule
from falcorules_ci.sources.event import Event


class EventValues(dict[int, Any]):
    """Field values of the current event by operand slot, extracted on first use.

    One instance serves a whole replay: :meth:`reset` switches it to the next event.
    """

    __slots__ = ("event", "extractors", "state")

    def __init__(self, extractors: list[Callable[[Event, Any], Any]]) -> None:
        super().__init__()
        self.extractors = extractors
        self.event: Event | None = None
        self.state: Any = None

    def reset(self, event: Event, state: Any) -> None:
        self.clear()
        self.event = event
        self.state = state

    def __missing__(self, slot: int) -> Any:
        value = self.extractors[slot](self.event, self.state)  # type: ignore[arg-type]
        self[slot] = value
        return value


class Slots:
    """Operand slots of one source: each distinct operand is extracted through one slot.

    Condition and output operands of the same text get different slots, since a few fields
    (ancestors without an index) extract differently for outputs.
    """

    def __init__(self, operands: OperandCompiler, output_operands: OperandCompiler | None = None) -> None:
        self.operands = operands
        self.output_operands = output_operands or OperandCompiler(
            operands.source, operands.resolver, for_output=True
        )
        self.extractors: list[Callable[[Event, Any], Any]] = []
        self._by_key: dict[tuple[str, bool], int] = {}
        self.texts: list[str] = []

    def slot(self, operand: Operand) -> int:
        key = (operand.text, operand.for_output)
        found = self._by_key.get(key)
        if found is None:
            found = len(self.extractors)
            self._by_key[key] = found
            self.extractors.append(operand.extract)
            self.texts.append(operand.text)
        return found

    def new_values(self) -> EventValues:
        """A value cache reading through this source's extractors (shares the live list, so
        slots added later are visible)."""
        return EventValues(self.extractors)


# -- compiled nodes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledCheck:
    left: Operand
    left_slot: int
    right: Operand | None
    right_slot: int
    test: Callable[..., bool] = field(compare=False)
    typed: TypedCheck = field(compare=False)

    def evaluate(self, values: EventValues) -> bool:
        v = values[self.left_slot]
        if v is None:
            return False
        if self.right is None:
            return self.test(v)
        r = values[self.right_slot]
        if r is None:
            return False
        return self.test(v, r)


@dataclass(frozen=True, slots=True)
class CompiledGroup:
    kind: str  # "and" | "or" | "not"
    children: tuple[CompiledNode, ...]
    node: ast.Node = field(compare=False)


CompiledNode = CompiledCheck | CompiledGroup


def evaluate_tree(node: CompiledNode, values: EventValues) -> bool:
    """Closure-based evaluation with libsinsp's left-to-right short-circuits."""
    if isinstance(node, CompiledCheck):
        return node.evaluate(values)
    if node.kind == "and":
        return all(evaluate_tree(c, values) for c in node.children)
    if node.kind == "or":
        return any(evaluate_tree(c, values) for c in node.children)
    return not evaluate_tree(node.children[0], values)


def compile_check(typed: TypedCheck, slots: Slots) -> CompiledCheck:
    left = slots.operands.compile(typed.left)
    left_slot = slots.slot(left)
    ftype = left.ftype
    if typed.right is not None:
        right = slots.operands.compile(typed.right)
        test: Callable[..., bool] = build_dynamic_test(
            typed.op, ftype, modifier=typed.modifier, is_list=left.is_list, rhs_is_list=right.is_list,
            special=left.special, field_name=left.field_name,
        )  # fmt: skip
        return CompiledCheck(left, left_slot, right, slots.slot(right), test, typed)
    test = build_test(typed.op, ftype, typed.values, modifier=typed.modifier, is_list=left.is_list,
                      special=left.special, field_name=left.field_name)  # fmt: skip
    return CompiledCheck(left, left_slot, None, -1, test, typed)


def compile_tree(typed: TypedNode, slots: Slots) -> CompiledNode:
    if isinstance(typed, TypedCheck):
        return compile_check(typed, slots)
    if isinstance(typed, TypedNot):
        return CompiledGroup("not", (compile_tree(typed.child, slots),), typed.node)
    kind = "and" if isinstance(typed, TypedAnd) else "or"
    assert isinstance(typed, TypedAnd | TypedOr)
    return CompiledGroup(kind, tuple(compile_tree(c, slots) for c in typed.children), typed.node)


# -- code generation -----------------------------------------------------------------------------


class _Codegen:
    """Writes a condition tree as one Python expression over the value cache ``c``."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {}
        self._names = itertools.count()

    def const(self, value: Any, prefix: str = "_k") -> str:
        name = f"{prefix}{next(self._names)}"
        self.namespace[name] = value
        return name

    def expr(self, node: CompiledNode) -> str:
        if isinstance(node, CompiledCheck):
            return self.check(node)
        if node.kind == "not":
            return f"(not {self.expr(node.children[0])})"
        joiner = " and " if node.kind == "and" else " or "
        return "(" + joiner.join(self.expr(c) for c in node.children) + ")"

    def check(self, node: CompiledCheck) -> str:
        k = node.left_slot
        if node.right is not None:
            t = self.const(node.test, "_t")
            return f"((_v := c[{k}]) is not None and (_r := c[{node.right_slot}]) is not None and {t}(_v, _r))"
        inline = self.inline(node)
        if inline is not None:
            return inline
        t = self.const(node.test, "_t")
        return f"((_v := c[{k}]) is not None and {t}(_v))"

    def inline(self, node: CompiledCheck) -> str | None:
        """Plain comparisons written directly in Python, or None to call the check's closure."""
        typed = node.typed
        left = node.left
        op = "=" if typed.op == "==" else typed.op
        if left.special is not Special.NONE or typed.modifier is not None or left.ftype in EQ_ONLY_TYPES:
            return None
        k = node.left_slot
        values = typed.values
        if op == "exists":
            return f"(c[{k}] is not None)"
        if left.ftype is FieldType.BYTEBUF:
            return None
        if left.is_list:
            if op == "in":
                return f"((_v := c[{k}]) is not None and {self.const(frozenset(values), '_s')}.issuperset(_v))"
            if op == "intersects":
                return f"((_v := c[{k}]) is not None and not {self.const(frozenset(values), '_s')}.isdisjoint(_v))"
            return None
        if op in SET_OPS:
            # None is never a member, so the missing-value rule needs no separate test.
            return f"(c[{k}] in {self.const(frozenset(values), '_s')})"
        if len(values) != 1:
            return None
        value = values[0]
        if op == "=":
            return f"(c[{k}] == {self.const(value)})"
        if op == "!=":
            return f"((_v := c[{k}]) is not None and _v != {self.const(value)})"
        if op in NUMERIC_OPS:
            return f"((_v := c[{k}]) is not None and _v {op} {self.const(value)})"
        if op == "startswith":
            return f"((_v := c[{k}]) is not None and _v.startswith({self.const(value)}))"
        if op == "endswith":
            return f"((_v := c[{k}]) is not None and _v.endswith({self.const(value)}))"
        if op == "contains":
            return f"((_v := c[{k}]) is not None and {self.const(value)} in _v)"
        return None


# Python's parser refuses very deep nesting; such conditions are evaluated through closures.
_MAX_GENERATED_DEPTH = 80


def _depth(node: CompiledNode) -> int:
    if isinstance(node, CompiledCheck):
        return 1
    return 1 + max((_depth(c) for c in node.children), default=0)


def generate(tree: CompiledNode, name: str) -> Callable[[EventValues], bool]:
    """One Python function ``(values) -> bool`` for the tree."""
    if _depth(tree) > _MAX_GENERATED_DEPTH:
        return lambda values: evaluate_tree(tree, values)
    gen = _Codegen()
    body = gen.expr(tree)
    # Every generated check is a bool, so the whole expression is one too.
    source = f"def _predicate(c):\n    return {body}\n"
    try:
        code = compile(source, f"<condition of {name}>", "exec")
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return lambda values: evaluate_tree(tree, values)
    exec(code, gen.namespace)  # generated from our own templates and constants only
    fn: Callable[[EventValues], bool] = gen.namespace["_predicate"]
    return fn


# -- the public predicate --------------------------------------------------------------------------


class Predicate:
    """A compiled condition: call it as ``predicate(event, state) -> bool``.

    ``evaluate(values)`` is the fast form the engine uses, with a value cache shared by every
    rule of the source for the current event.
    """

    __slots__ = ("evaluate", "name", "slots", "tree")

    def __init__(self, typed: TypedNode, slots: Slots, name: str = "condition") -> None:
        self.name = name
        self.slots = slots
        self.tree = compile_tree(typed, slots)
        self.evaluate: Callable[[EventValues], bool] = generate(self.tree, name)

    def __call__(self, event: Event, state: Any) -> bool:
        values = self.slots.new_values()
        values.reset(event, state)
        return self.evaluate(values)


def compile_condition(typed: TypedNode, source: str = "syscall", *, name: str = "condition",
                      slots: Slots | None = None, operands: OperandCompiler | None = None) -> Predicate:  # fmt: skip
    """Compile a typed condition (``Rule.checked``) for one event source."""
    if slots is None:
        slots = Slots(operands or OperandCompiler(source))
    return Predicate(typed, slots, name)


# -- explanations ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClauseResult:
    """One node of an evaluated condition, in pre-order.

    ``path`` locates the node (child indexes from the root, ``()`` for the root); ``result`` is
    the node's truth value when evaluated on its own; ``reached`` says whether Falco's
    left-to-right short-circuit gets to it. For checks, ``values`` holds each operand's text and
    extracted value (``None``: no value).
    """

    path: tuple[int, ...]
    kind: str  # "and" | "or" | "not" | "check"
    text: str
    result: bool
    reached: bool
    values: tuple[tuple[str, Any], ...] = ()

    @property
    def depth(self) -> int:
        return len(self.path)


def _node_text(node: object) -> str:
    try:
        return to_text(node)  # type: ignore[arg-type]
    except Exception:  # an unprintable node still gets explained, by its type
        return type(node).__name__


def explain_tree(tree: CompiledNode, values: EventValues) -> list[ClauseResult]:
    out: list[ClauseResult] = []
    _explain(tree, values, (), True, out)
    return out


def _explain(node: CompiledNode, values: EventValues, path: tuple[int, ...], reached: bool,
             out: list[ClauseResult]) -> bool:  # fmt: skip
    if isinstance(node, CompiledCheck):
        result = node.evaluate(values)
        seen = [(node.left.text, values[node.left_slot])]
        if node.right is not None:
            seen.append((node.right.text, values[node.right_slot]))
        out.append(ClauseResult(path, "check", _node_text(node.typed.node), result, reached, tuple(seen)))
        return result
    position = len(out)
    out.append(ClauseResult(path, node.kind, _node_text(node.node), False, reached))
    results: list[bool] = []
    child_reached = reached
    for k, child in enumerate(node.children):
        result = _explain(child, values, (*path, k), child_reached, out)
        results.append(result)
        if (node.kind == "and" and not result) or (node.kind == "or" and result):
            child_reached = False
    if node.kind == "and":
        total = all(results)
    elif node.kind == "or":
        total = any(results)
    else:
        total = not results[0]
    out[position] = ClauseResult(path, node.kind, out[position].text, total, reached)
    return total


def explain(target: Predicate | Rule, event: Event, state: Any, *,
            operands: OperandCompiler | None = None) -> list[ClauseResult]:  # fmt: skip
    """Evaluate every check of a condition (a rule's, compiled on the spot, or a compiled
    predicate) on one event whose state is up to date, recording truth values and values."""
    predicate = target if isinstance(target, Predicate) else compile_condition(
        target.checked, target.source, name=target.name, operands=operands
    )
    values = predicate.slots.new_values()
    values.reset(event, state)
    return explain_tree(predicate.tree, values)


def iter_checks(tree: CompiledNode) -> Iterator[CompiledCheck]:
    if isinstance(tree, CompiledCheck):
        yield tree
        return
    for child in tree.children:
        yield from iter_checks(child)
