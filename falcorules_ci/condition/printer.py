"""Print condition ASTs back to text: Falco's grammar, or the older syntax of sysdig 0.29.3.

``to_text`` is the inverse of ``parse_condition``: its output re-parses to an equal AST (nested
``and``/``or`` and double negations are parenthesised, literals keep how they were written).
``to_sysdig_filter`` targets the pre-0.30 libsinsp filter compiler Debian's sysdig uses, whose
lexer differs (no ``==``, ``in`` needs ``(``, quotes end at either quote character, ``\\xHH``
escapes), and refuses what that compiler cannot express.
"""

from __future__ import annotations

import re

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
    UNARY_OPERATORS,
    deep_nesting_guard,
    is_bool_keyword_start,
    lexes_as_bare_string,
    lexes_as_field_arg,
    lexes_as_field_name,
    lexes_as_identifier,
    lexes_as_number,
)
from falcorules_ci.errors import ConditionError

_NUMERIC_OPS = frozenset(NUMERIC_OPERATORS)
_STRING_OPS = frozenset(op.strip() for op in STRING_OPERATORS)
_LIST_OPS = frozenset(LIST_OPERATORS)
_MODIFIERS = frozenset(m.strip() for m in MODIFIER_OPERATORS)


def _unprintable(what: str, node: object) -> ConditionError:
    return ConditionError(f"cannot print {what}", getattr(node, "index", 0))


# -- Falco syntax ----------------------------------------------------------------------------


def to_text(node: Node) -> str:
    """Falco condition text for ``node`` that parses back to an equal AST."""
    with deep_nesting_guard():
        return _node(node)


def quote(value: str) -> str:
    """``value`` as a double-quoted libsinsp string literal.

    A trailing backslash is written as libsinsp's ``\\ `` quirk: ``\\\\`` right before the closing
    quote would stop the lexer from seeing the quote as closing.
    """
    if "\0" in value:
        raise ConditionError("cannot print a string containing NUL: libsinsp stops reading at it")
    body = value.translate(_QUOTE_ESCAPES)
    if body.endswith("\\\\"):
        body = body[:-2] + "\\ "
    return f'"{body}"'


_QUOTE_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                                "\t": "\\t"})  # fmt: skip


def _node(node: Node) -> str:
    if isinstance(node, And | Or):
        word = " and " if isinstance(node, And) else " or "
        if len(node.children) < 2:
            raise _unprintable("an and/or with fewer than two children", node)
        return word.join(_grouped(child) for child in node.children)
    if isinstance(node, Not):
        child = node.child
        if isinstance(child, And | Or | Not):
            return f"not ({_node(child)})"
        return "not " + _node(child)
    if isinstance(node, Identifier):
        if not lexes_as_identifier(node.name):
            raise _unprintable(f"identifier {node.name!r}", node)
        # A bare `not` would be read as the start of a negation.
        return "(not)" if node.name == "not" else node.name
    if isinstance(node, UnaryCheck):
        if node.op not in UNARY_OPERATORS:
            raise _unprintable(f"unary operator {node.op!r}", node)
        return f"{_operand(node.left)} {node.op}"
    return _binary(node)


def _grouped(node: Node) -> str:
    text = _node(node)
    return f"({text})" if isinstance(node, And | Or) else text


def _binary(node: BinaryCheck) -> str:
    left, op, right = _operand(node.left), node.op, node.right
    if node.modifier is not None:
        if node.modifier not in _MODIFIERS or op not in _STRING_OPS:
            raise _unprintable(f"modifier {node.modifier!r} on {op!r}", node)
        if isinstance(right, ListLiteral):
            return f"{left} {op} {node.modifier} {_list(right)}"
        if isinstance(right, Literal) and _is_single_list_value(right) and not is_bool_keyword_start(right.value):
            return f"{left} {op} {node.modifier} {right.value}"
        raise _unprintable("this right-hand side after a modifier", right)
    if isinstance(right, Transformer | FieldValue):
        if op not in _NUMERIC_OPS | _STRING_OPS | _LIST_OPS:
            raise _unprintable(f"operator {op!r}", node)
        return f"{left} {op} {_operand(right)}"
    if op in _NUMERIC_OPS:
        if isinstance(right, Literal) and not right.quoted and lexes_as_number(right.value):
            return f"{left} {op} {right.value}"
    elif op in _STRING_OPS:
        if isinstance(right, Literal):
            return f"{left} {op} {_string_literal(right)}"
    elif op in _LIST_OPS:
        if isinstance(right, ListLiteral):
            return f"{left} {op} {_list(right)}"
        if isinstance(right, Literal) and _is_single_list_value(right):
            return f"{left} {op} {right.value}"
    else:
        raise _unprintable(f"operator {op!r}", node)
    raise _unprintable(f"this right-hand side for {op!r}", right)


def _is_single_list_value(value: Literal) -> bool:
    return not value.quoted and lexes_as_identifier(value.value)


def _string_literal(value: Literal) -> str:
    if value.quoted:
        return quote(value.value)
    # A leading backspace would be skipped as a blank before the bare string is read.
    if not lexes_as_bare_string(value.value) or value.value.startswith("\b"):
        raise _unprintable(f"unquoted string {value.value!r}", value)
    return value.value


def _list(values: ListLiteral) -> str:
    return "(" + ", ".join(_string_literal(v) for v in values.values) + ")"


def _operand(operand: Operand | Value | TransformerArg) -> str:
    if isinstance(operand, FieldRef):
        if not lexes_as_field_name(operand.name):
            raise _unprintable(f"field name {operand.name!r}", operand)
        return operand.name + _field_arg(operand.arg)
    if isinstance(operand, Transformer):
        if operand.name not in TRANSFORMER_NAMES or not operand.args:
            raise _unprintable(f"transformer {operand.name!r}", operand)
        args = ", ".join(_transformer_arg(arg, in_list=False) for arg in operand.args)
        return f"{operand.name}({args}){_field_arg(operand.arg)}"
    if isinstance(operand, FieldValue):
        if not isinstance(operand.operand, FieldRef):
            raise _unprintable("val() of anything but a field", operand)
        return f"val({_operand(operand.operand)}){_field_arg(operand.arg)}"
    raise _unprintable(type(operand).__name__ + " as an operand", operand)


def _transformer_arg(arg: TransformerArg, in_list: bool) -> str:
    if isinstance(arg, Literal):
        if arg.quoted:
            return quote(arg.value)
        if lexes_as_number(arg.value):
            return arg.value
        raise _unprintable(f"unquoted transformer argument {arg.value!r}", arg)
    if isinstance(arg, TransformerList):
        if in_list:
            raise _unprintable("a list inside a transformer list", arg)
        return "(" + ", ".join(_transformer_arg(v, in_list=True) for v in arg.values) + ")"
    return _operand(arg)


def _field_arg(arg: str | None) -> str:
    if arg is None:
        return ""
    return f"[{arg}]" if lexes_as_field_arg(arg) else f"[{quote(arg)}]"


# -- sysdig 0.29.3 syntax --------------------------------------------------------------------

_SYSDIG_OPS = {
    "=": "=", "==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "contains": "contains",
    "icontains": "icontains", "startswith": "startswith", "endswith": "endswith", "glob": "glob",
    "in": "in", "pmatch": "pmatch",
    # The old compiler tries "in" before "intersects", so it cannot lex the latter at all; for the
    # single-valued fields it knows, libsinsp defines intersects to mean in.
    "intersects": "in",
}  # fmt: skip
# Characters that end an unquoted value or field name in the old lexer, or start an escape.
_SYSDIG_PLAIN_VALUE = re.compile(r"[^\s(),\"'\\]+")
_SYSDIG_FIELD_STOP = re.compile(r"[\s()!=<>]")
# The old lexer treats an expression starting with 'n' as the keyword `not`.
_NEVER_TRUE = "evt.num=0"


def _sysdig_error(what: str, node: object) -> ConditionError:
    return ConditionError(f"not expressible for sysdig 0.29.3: {what}", getattr(node, "index", 0))


def to_sysdig_filter(node: Node) -> str:
    """The same condition in the filter syntax of sysdig 0.29.3 (pre-0.30 libsinsp).

    Raises ConditionError("not expressible for sysdig 0.29.3: ...") for transformers, ``val()``,
    modifiers, operators that compiler lacks and unresolved macros. An empty list (``x in ()``)
    is always false in Falco but would match the empty string there, so it prints as
    ``evt.num=0``, upstream's own never-true check.
    """
    with deep_nesting_guard():
        return _sysdig_node(node)


def _sysdig_node(node: Node) -> str:
    if isinstance(node, And | Or):
        word = " and " if isinstance(node, And) else " or "
        # The old compiler rejects mixed and/or at one level, so every nested group gets parens.
        return word.join(
            f"({_sysdig_node(c)})" if isinstance(c, And | Or | Not) else _sysdig_node(c) for c in node.children
        )
    if isinstance(node, Not):
        # `not not x` is a single negation there (the flag is OR-ed), so always group the child.
        return f"not ({_sysdig_node(node.child)})"
    if isinstance(node, Identifier):
        raise _sysdig_error(f"unresolved macro '{node.name}'", node)
    if isinstance(node, UnaryCheck):
        return f"{_sysdig_field(node.left)} exists"
    return _sysdig_binary(node)


def _sysdig_binary(node: BinaryCheck) -> str:
    if node.modifier is not None:
        raise _sysdig_error(f"operator modifier '{node.op} {node.modifier}'", node)
    op = _SYSDIG_OPS.get(node.op)
    if op is None:
        raise _sysdig_error(f"operator '{node.op}'", node)
    field = _sysdig_field(node.left)
    right = node.right
    if isinstance(right, Transformer | FieldValue):
        raise _sysdig_error("a field or transformer as right-hand side", right)
    if op in ("in", "pmatch"):
        values = right.values if isinstance(right, ListLiteral) else (right,)
        if not values:
            return _NEVER_TRUE
        return f"{field} {op} (" + ", ".join(_sysdig_value(v.value) for v in values) + ")"
    if not isinstance(right, Literal):
        raise _sysdig_error(f"a list after '{node.op}'", right)
    return f"{field} {op} {_sysdig_value(right.value)}"


def _sysdig_field(operand: Operand) -> str:
    if not isinstance(operand, FieldRef):
        raise _sysdig_error("field transformers", operand)
    text = operand.name if operand.arg is None else f"{operand.name}[{operand.arg}]"
    if _SYSDIG_FIELD_STOP.search(text):
        raise _sysdig_error(f"field {text!r} (its argument holds a character that ends a field)", operand)
    if text.startswith("n"):
        raise _sysdig_error(f"field {text!r} (a leading 'n' reads as 'not')", operand)
    return text


def _sysdig_value(value: str) -> str:
    if _SYSDIG_PLAIN_VALUE.fullmatch(value):
        return value
    # Inside quotes the old lexer ends at either quote character and decodes \\, \" and \xHH.
    body = value.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\x27").replace("\0", "\\x00")
    return f'"{body}"'


__all__ = ["quote", "to_sysdig_filter", "to_text"]
