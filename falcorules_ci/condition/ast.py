"""The condition AST, mirroring libsinsp's filter AST (``libs:userspace/libsinsp/filter/ast.h``).

Nodes are frozen and compare by structure only: ``index`` (the character position inside the
condition text the node was parsed from) is excluded from equality so that a printed-and-reparsed
condition compares equal to the original.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A field with its optional argument: ``proc.aname[2]`` → name ``proc.aname``, arg ``2``.

    ``name`` is the token as written before any bracket (``evt.arg.flags`` stays whole here; the
    registry splits dotted arguments). ``arg`` is the unescaped bracket content, or None.
    """

    name: str
    arg: str | None = None
    index: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Transformer:
    """A transformer call: ``tolower(proc.name)``, ``join(",", proc.args)``, ``getopt(x, "ab")[a]``.

    ``args`` are fields, nested transformers, literals (quoted strings or numbers) and
    transformer lists; ``arg`` is the optional ``[...]`` argument written after the call.
    """

    name: str  # tolower, toupper, b64, basename, len, join, concat, getopt
    args: tuple[TransformerArg, ...]
    index: int = field(default=0, compare=False)
    arg: str | None = None


@dataclass(frozen=True, slots=True)
class FieldValue:
    """``val(field)``: the right-hand side is another field's value.

    ``arg`` is an optional ``[...]`` written after the closing parenthesis; the grammar accepts
    it and the compiler rejects it.
    """

    operand: Operand
    index: int = field(default=0, compare=False)
    arg: str | None = None


@dataclass(frozen=True, slots=True)
class Literal:
    """A string literal as written (already unescaped); ``quoted`` records how it was written."""

    value: str
    quoted: bool = False
    index: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class ListLiteral:
    """``(a, "b c", d)``."""

    values: tuple[Literal, ...]
    index: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class TransformerList:
    """``(a, "b", proc.name)`` as a transformer argument: fields, transformers, literals."""

    values: tuple[TransformerArg, ...]
    index: int = field(default=0, compare=False)


Operand = FieldRef | Transformer
TransformerArg = FieldRef | Transformer | Literal | TransformerList
Value = Literal | ListLiteral | FieldValue | Transformer


@dataclass(frozen=True, slots=True)
class UnaryCheck:
    """``field exists``."""

    left: Operand
    op: str
    index: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class BinaryCheck:
    """``field op value``; ``modifier`` is ``oneof``/``anyof``/``allof`` when present."""

    left: Operand
    op: str
    right: Value
    modifier: str | None = None
    index: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Identifier:
    """A bare identifier in check position: a macro reference until macros are resolved."""

    name: str
    index: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]
    index: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]
    index: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    child: Node
    index: int = field(default=0, compare=False)


Node = And | Or | Not | UnaryCheck | BinaryCheck | Identifier

UNARY_OPS = frozenset({"exists"})
NUMERIC_OPS = frozenset({"<=", "<", ">=", ">"})
STRING_OPS = frozenset(
    {"==", "=", "!=", "glob", "iglob", "contains", "icontains", "bcontains", "startswith",
     "bstartswith", "endswith", "regex"}
)  # fmt: skip
LIST_OPS = frozenset({"intersects", "in", "pmatch"})
MODIFIERS = frozenset({"oneof", "anyof", "allof"})
TRANSFORMERS = frozenset({"tolower", "toupper", "b64", "basename", "len", "join", "concat", "getopt"})
BINARY_OPS = NUMERIC_OPS | STRING_OPS | LIST_OPS
