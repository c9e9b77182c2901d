"""Compile a macro-resolved condition into a typed AST, as libsinsp's filter compiler would.

Every check gets its left-hand operand resolved against the field registry (declaration and
argument, then any transformers with their resulting type), its operator checked against that
type, and its right-hand side either parsed into typed constants or compiled as another field.
Errors carry libsinsp 0.25's message and, like Falco, the index of the check being compiled.

``typecheck`` also returns Falco's warnings for the condition: those of ``filter_warning_resolver``
(``<NA>`` compared with a plugin field, deprecated fields; Falco reports them at index 0) and
the compiler's own hints (``LOAD_COMPILE_CONDITION``, at the right-hand side's index).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

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
)
from falcorules_ci.condition.lexicon import TRANSFORMER_NAMES, deep_nesting_guard, lexes_as_field_name
from falcorules_ci.condition.lint import DEPRECATED_FIELD_NOTES, ConditionWarning, deprecated_fields, lint_condition
from falcorules_ci.condition.values import (
    IP_TYPES,
    NET_TYPES,
    NUMERIC_TYPES,
    STRING_TYPES,
    ParsedValue,
    check_regex,
    parse_value,
    ptype_name,
    regex_is_trivial,
    unhex,
)
from falcorules_ci.errors import ConditionError
from falcorules_ci.fields import match_field
from falcorules_ci.fields.event_table import event_table
from falcorules_ci.fields.registry import FieldMatch, FieldRegistry

# -- typed nodes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TypedField:
    """A field extraction: the declaration and argument, with its declared libsinsp type."""

    match: FieldMatch
    ptype: str  # libsinsp's type name: "CHARBUF", "UINT64", "IPNET", ...
    is_list: bool
    node: FieldRef


@dataclass(frozen=True, slots=True)
class TypedConst:
    """A literal argument of a transformer (``","`` in ``join(",", proc.args)``)."""

    value: str
    node: Literal
    ptype: str = "CHARBUF"
    is_list: bool = False


@dataclass(frozen=True, slots=True)
class TypedConstList:
    """A transformer list argument: ``(a, proc.name)``; a multi-valued string."""

    items: tuple[TypedOperand, ...]
    node: TransformerList
    ptype: str = "CHARBUF"
    is_list: bool = True


@dataclass(frozen=True, slots=True)
class TypedTransform:
    """A one-argument transformer (tolower, toupper, b64, basename, len) over an operand."""

    name: str
    operand: TypedOperand
    ptype: str
    is_list: bool
    node: Transformer


@dataclass(frozen=True, slots=True)
class TypedMultiTransform:
    """join, concat or getopt over several operands; ``arg`` is getopt's ``[c]`` selector."""

    name: str
    args: tuple[TypedOperand, ...]
    arg: str | None
    ptype: str
    is_list: bool
    node: Transformer


TypedOperand = TypedField | TypedConst | TypedConstList | TypedTransform | TypedMultiTransform


@dataclass(frozen=True, slots=True)
class TypedCheck:
    """One comparison, ready to evaluate.

    ``op`` is libsinsp's canonical operator name (``==`` becomes ``=``); ``ptype``/``is_list``
    are the left side's type after transformers, which is what the right side was parsed as.
    ``values`` holds the parsed constants (``bcontains``/``bstartswith`` hex already decoded);
    ``right`` is set instead when the right-hand side is a field or transformer.
    """

    left: TypedOperand
    op: str
    modifier: str | None
    ptype: str
    is_list: bool
    values: tuple[ParsedValue, ...]
    raw_values: tuple[str, ...]
    right: TypedOperand | None
    node: UnaryCheck | BinaryCheck


@dataclass(frozen=True, slots=True)
class TypedAnd:
    children: tuple[TypedNode, ...]
    node: And


@dataclass(frozen=True, slots=True)
class TypedOr:
    children: tuple[TypedNode, ...]
    node: Or


@dataclass(frozen=True, slots=True)
class TypedNot:
    child: TypedNode
    node: Not


TypedNode = TypedAnd | TypedOr | TypedNot | TypedCheck


class TypedCondition(NamedTuple):
    root: TypedNode
    warnings: tuple[ConditionWarning, ...]


# -- entry points ------------------------------------------------------------------------------


def typecheck(node: Node, registry: FieldRegistry, source: str) -> TypedCondition:
    """Compile a macro-resolved AST for ``source``; raises ConditionError as Falco would."""
    compiler = _Compiler(registry, source)
    with deep_nesting_guard():
        root = compiler.node(node)
    return TypedCondition(root, (*lint_condition(node), *compiler.warnings))


def compile_operand(node: TransformerArg, registry: FieldRegistry, source: str) -> TypedOperand:
    """Compile one field or transformer (an output token); errors carry index 0."""
    return _Compiler(registry, source).operand(node)


def fields_used(typed: TypedNode | TypedOperand) -> set[str]:
    """Every field a typed condition or operand extracts, as written (``proc.aname[2]``)."""
    return {m.text for m in field_matches(typed)}


def field_matches(typed: TypedNode | TypedOperand) -> set[FieldMatch]:
    """Every field declaration and argument a typed condition or operand extracts."""
    found: set[FieldMatch] = set()
    stack: list[TypedNode | TypedOperand] = [typed]
    while stack:
        item = stack.pop()
        if isinstance(item, TypedAnd | TypedOr):
            stack.extend(item.children)
        elif isinstance(item, TypedNot):
            stack.append(item.child)
        elif isinstance(item, TypedCheck):
            stack.append(item.left)
            if item.right is not None:
                stack.append(item.right)
        else:
            found.update(f.match for f in plain_fields(item))
    return found


def plain_fields(typed: TypedNode | TypedOperand | None) -> Iterator[TypedField]:
    """The plain fields of an operand (an output token, a check's side), transformer arguments
    included, in the order they are written."""
    if isinstance(typed, TypedField):
        yield typed
    elif isinstance(typed, TypedTransform):
        yield from plain_fields(typed.operand)
    elif isinstance(typed, TypedMultiTransform):
        for arg in typed.args:
            yield from plain_fields(arg)
    elif isinstance(typed, TypedConstList):
        for item in typed.items:
            yield from plain_fields(item)


# -- the compiler ------------------------------------------------------------------------------

_SINGLE_TRANSFORMERS = ("toupper", "tolower", "b64", "basename", "len")
_CANONICAL_OPS = {"==": "="}
_OP_CODE_NAMES = {"pmatch": "PMATCH", "regex": "REGEX"}
_NUMERIC_OPS = frozenset({"=", "!=", "<", "<=", ">", ">=", "in", "intersects", "exists"})
_BOOL_OPS = frozenset({"=", "!=", "in", "intersects", "exists"})
_STRING_OPS = frozenset({"=", "!=", "<", "<=", ">", ">=", "contains", "in", "exists", "icontains", "startswith",
                         "glob", "pmatch", "endswith", "intersects", "iglob", "regex"})  # fmt: skip
_BUFFER_OPS = frozenset({"=", "!=", "contains", "in", "exists", "startswith", "endswith", "intersects",
                         "bcontains", "bstartswith"})  # fmt: skip
_IP_OPS = frozenset({"=", "!=", "in", "exists", "intersects"})
_LIST_OPS = frozenset({"in", "exists", "intersects"})
_LIST_TYPES = frozenset({"CHARBUF", "UINT64", "RELTIME", "ABSTIME", "BOOL", "IPADDR", "IPNET"})


class _Info(NamedTuple):
    """What libsinsp's ``get_field_info()`` reports for a compiled operand."""

    ptype: str
    is_list: bool
    name: str
    no_transformer: bool
    no_rhs: bool


_INTERNAL = _Info("CHARBUF", False, "NA", False, False)


def _base_info(op: TypedOperand) -> _Info:
    if isinstance(op, TypedField):
        info = op.match.info
        return _Info(op.ptype, op.is_list, info.name, info.no_transformer, info.no_rhs)
    if isinstance(op, TypedTransform):
        # Transformers are stacked on the operand's own check: its declaration stays.
        return _base_info(op.operand)
    if isinstance(op, TypedConstList):
        return _INTERNAL._replace(is_list=True)
    return _INTERNAL


def _bottom(op: TypedOperand) -> TypedOperand:
    while isinstance(op, TypedTransform):
        op = op.operand
    return op


def _transformed_name(op: TypedOperand) -> str:
    bottom = _bottom(op)
    if isinstance(bottom, TypedMultiTransform):
        # libsinsp names a list-valued multi-transformer result INTERNAL, others its mock NA.
        return "INTERNAL" if bottom.is_list else "NA"
    return _base_info(bottom).name


def _type_text(ptype: str, is_list: bool) -> str:
    return ptype + (" (list)" if is_list else "")


def comparison_error(op: str, modifier: str | None, ptype: str, is_list: bool) -> str | None:
    """libsinsp's ``flt_is_comparable``: the reason ``op`` cannot apply to the type, or None."""
    if op == "exists":
        return None
    if is_list:
        if ptype not in _LIST_TYPES:
            return f"list filters are not supported for type '{ptype}'"
        return None if op in _LIST_OPS else f"'{op}' operator not supported list filters"
    if ptype in NUMERIC_TYPES:
        return None if op in _NUMERIC_OPS else f"'{op}' operator not supported for numeric filters"
    if ptype == "BOOL":
        # libsinsp reuses the numeric wording for booleans.
        return None if op in _BOOL_OPS else f"'{op}' operator not supported for numeric filters"
    if ptype in IP_TYPES:
        if op in _IP_OPS:
            return None
        if modifier is not None:
            return f"'{op}' with modifier not supported for ip address and network filters"
        return f"'{op}' operator not supported for ip address and network filters"
    if ptype in STRING_TYPES:
        return None if op in _STRING_OPS else f"'{op}' operator not supported for string filters"
    if ptype == "BYTEBUF":
        return None if op in _BUFFER_OPS else f"'{op}' operator not supported for buffer filters"
    return f"'{op}' operator not supported for type '{ptype}'"


class _Compiler:
    def __init__(self, registry: FieldRegistry, source: str) -> None:
        self.registry = registry
        self.source = source
        self.warnings: list[ConditionWarning] = []

    # -- boolean structure ---------------------------------------------------------------------

    def node(self, node: Node) -> TypedNode:
        if isinstance(node, And):
            return TypedAnd(tuple(self.node(c) for c in node.children), node)
        if isinstance(node, Or):
            return TypedOr(tuple(self.node(c) for c in node.children), node)
        if isinstance(node, Not):
            return TypedNot(self.node(node.child), node)
        if isinstance(node, Identifier):
            raise ConditionError(f"filter error: unexpected identifier '{node.name}'", node.index)
        try:
            return self.check(node)
        except ConditionError as exc:
            # Falco reports every compile error at the check being compiled.
            raise ConditionError(exc.message, node.index) from None

    def check(self, node: UnaryCheck | BinaryCheck) -> TypedCheck:
        left = self.operand(node.left)
        op = _CANONICAL_OPS.get(node.op, node.op)
        modifier = node.modifier if isinstance(node, BinaryCheck) else None
        problem = comparison_error(op, modifier, left.ptype, left.is_list)
        if problem is not None:
            raise ConditionError("filter error: " + problem)
        if isinstance(node, UnaryCheck):
            return TypedCheck(left, op, None, left.ptype, left.is_list, (), (), None, node)
        right = node.right
        if isinstance(right, Transformer | FieldValue):
            rhs = self.operand(right)
            self.check_rhs_field(left, op, rhs)
            return TypedCheck(left, op, modifier, left.ptype, left.is_list, (), (), rhs, node)
        raw = tuple(v.value for v in right.values) if isinstance(right, ListLiteral) else (right.value,)
        values = tuple(self.constant(left, op, text, right.index) for text in raw)
        return TypedCheck(left, op, modifier, left.ptype, left.is_list, values, raw, None, node)

    def check_rhs_field(self, left: TypedOperand, op: str, rhs: TypedOperand) -> None:
        if op in _OP_CODE_NAMES:
            raise ConditionError(f"operator '{_OP_CODE_NAMES[op]}' doesn't support right-hand side fields")
        if left.ptype in NET_TYPES:
            raise ConditionError("field type 'IPNET' doesn't support right-hand side fields")
        left_name, right_name = _transformed_name(left), _transformed_name(rhs)
        if _base_info(left).no_rhs:
            raise ConditionError(f"field '{left_name}' doesn't support right-hand side fields")
        if _base_info(rhs).no_rhs:
            raise ConditionError(f"field '{right_name}' can't be used as a right-hand side field")
        if isinstance(_bottom(left), TypedMultiTransform):
            # A multi-transformer check never reports holding a right-hand field, so libsinsp
            # skips its type consistency check.
            return
        if (left.ptype, left.is_list) != (rhs.ptype, rhs.is_list):
            raise ConditionError(
                f"field '{left_name}' has type '{_type_text(left.ptype, left.is_list)}' while the right-hand "
                f"side field '{right_name}' has incompatible type '{_type_text(rhs.ptype, rhs.is_list)}'"
            )

    def constant(self, left: TypedOperand, op: str, text: str, index: int) -> ParsedValue:
        self.hints(op, text, index)
        if op in ("bcontains", "bstartswith"):
            decoded = unhex(text)
            if decoded is None:
                raise ConditionError("filter error: bcontains and bstartswith operator support hex strings only")
            return decoded
        value = parse_value(text, left.ptype)
        bottom = _bottom(left)
        if (
            isinstance(bottom, TypedField)
            and bottom.match.info.name == "evt.type"
            and not bottom.match.info.plugin
            and isinstance(value, str)
            and not event_table().is_known_evttype(value)
        ):
            raise ConditionError(f"unknown event type {value}")
        if op == "regex":
            check_regex(text)
        return value

    # -- operands (libsinsp's extractor compiler) ----------------------------------------------

    def operand(self, node: TransformerArg | FieldValue) -> TypedOperand:
        if isinstance(node, FieldRef):
            match = match_field(self.registry, node.name, node.arg, self.source)
            return TypedField(match, ptype_name(match.info.type), match.info.is_list, node)
        if isinstance(node, Literal):
            return TypedConst(node.value, node)
        if isinstance(node, TransformerList):
            return TypedConstList(tuple(self.operand(v) for v in node.values), node)
        if isinstance(node, FieldValue):
            inner = self.operand(node.operand)
            if node.arg is not None:
                raise ConditionError("filter error: transformer 'val' does not support field arguments")
            return inner
        args = tuple(self.operand(a) for a in node.args)
        if len(args) == 1:
            if node.arg is not None:
                raise ConditionError(f"filter error: transformer '{node.name}' does not support field arguments")
            return self.transform(args[0], node)
        return self.multi_transform(args, node)

    def transform(self, operand: TypedOperand, node: Transformer) -> TypedTransform:
        name = node.name
        if name not in _SINGLE_TRANSFORMERS:
            raise ConditionError(f"unknown field transfomer '{name}'")  # sic, libsinsp's spelling
        base = _base_info(operand)
        if base.no_transformer:
            raise ConditionError(f"field '{base.name}' does not support transformers")
        result = _transformed_type(name, operand.ptype, operand.is_list)
        if result is None:
            kind = "list field" if operand.is_list else "field"
            raise ConditionError(
                f"can't add field transformer: type '{operand.ptype}' is not supported by '{name}' "
                f"transformer applied on {kind} '{base.name}'"
            )
        return TypedTransform(name, operand, result[0], result[1], node)

    def multi_transform(self, args: tuple[TypedOperand, ...], node: Transformer) -> TypedMultiTransform:
        name = node.name
        # The argument types libsinsp checks are the operands' declared ones, before transformers.
        kinds = [_base_info(a) for a in args]
        result_is_list = False
        if name == "join":
            if len(kinds) != 2:
                raise ConditionError("join() requires exactly 2 arguments: separator and list")
            if kinds[0].is_list:
                raise ConditionError("join() first argument (separator) must be a single value, not a list")
            if not kinds[1].is_list:
                raise ConditionError("join() second argument must be a list")
        elif name == "concat":
            if len(kinds) < 2:
                raise ConditionError("concat() requires at least 2 arguments")
            if any(k.ptype != "CHARBUF" or k.is_list for k in kinds):
                raise ConditionError("concat() arguments must be strings")
        elif name == "getopt":
            if len(kinds) != 2:
                raise ConditionError("getopt() requires exactly 2 arguments: args list and optstring")
            if not kinds[0].is_list:
                raise ConditionError("getopt() first argument must be a list")
            if kinds[1].is_list:
                raise ConditionError("getopt() second argument (optstring) must be a single value")
            if kinds[0].ptype != "CHARBUF" or kinds[1].ptype != "CHARBUF":
                raise ConditionError("getopt() arguments must be strings")
            result_is_list = node.arg is None
            if node.arg is not None and len(node.arg) != 1:
                raise ConditionError("getopt() field argument must be a single option character")
        else:
            raise ConditionError("unknown multivalue transformer")
        if name != "getopt" and node.arg is not None:
            raise ConditionError(f"transformer '{name}' does not support field arguments")
        return TypedMultiTransform(name, args, node.arg, "CHARBUF", result_is_list, node)

    # -- compile hints -------------------------------------------------------------------------

    def hints(self, op: str, value: str, index: int) -> None:
        nospaces = "".join(c for c in value if c not in " \t\n\v\f\r")
        if op == "regex" and regex_is_trivial(value):
            self.warnings.append(
                ConditionWarning(
                    "LOAD_COMPILE_CONDITION",
                    f"regex check with '{value}' may be optimized with simpler operators such as "
                    "'=', 'contains', 'startswith', 'endswith'",
                    index,
                )
            )
        if self.names_a_field(nospaces):
            self.warnings.append(ConditionWarning(
                "LOAD_COMPILE_CONDITION", f"'{value}' may be a valid field misused as a const string value", index
            ))  # fmt: skip
        for transformer in ("val", *TRANSFORMER_NAMES):
            if (
                len(nospaces) >= len(transformer) + 2
                and nospaces.startswith(transformer + "(")
                and nospaces.endswith(")")
            ):
                self.warnings.append(ConditionWarning(
                    "LOAD_COMPILE_CONDITION",
                    f"'{value}' may be a valid field transformer misused as a const string value",
                    index,
                ))  # fmt: skip

    def names_a_field(self, text: str) -> bool:
        if "." not in text:
            return False
        name, arg = text, None
        if "[" in text:
            if not text.endswith("]"):
                return False
            cut = text.index("[")
            name, arg = text[:cut], text[cut + 1 : -1]
        if not lexes_as_field_name(name):
            return False
        try:
            match_field(self.registry, name, arg, self.source)
        except ConditionError:
            return False
        return True


def _transformed_type(name: str, ptype: str, is_list: bool) -> tuple[str, bool] | None:
    if name in ("toupper", "tolower", "basename"):
        return (ptype, is_list) if ptype in STRING_TYPES else None
    if name == "b64":
        return (ptype, is_list) if ptype in ("CHARBUF", "BYTEBUF") else None
    # len: the element count of a list, or the length of a string or buffer.
    if is_list:
        return ("UINT64", False)
    return ("UINT64", False) if ptype in ("CHARBUF", "BYTEBUF", "FSPATH", "FSRELPATH") else None


__all__ = [
    "DEPRECATED_FIELD_NOTES",
    "ConditionWarning",
    "TypedAnd",
    "TypedCheck",
    "TypedCondition",
    "TypedConst",
    "TypedConstList",
    "TypedField",
    "TypedMultiTransform",
    "TypedNode",
    "TypedNot",
    "TypedOperand",
    "TypedOr",
    "TypedTransform",
    "comparison_error",
    "compile_operand",
    "deprecated_fields",
    "field_matches",
    "fields_used",
    "lint_condition",
    "typecheck",
]
