"""Macro resolution: replace identifiers with macro ASTs, as Falco's ``filter_macro_resolver``.

Each identifier whose macro ``lookup`` knows is replaced by that macro's AST, itself resolved
recursively with the same ``lookup`` (Falco resolves a macro's body with the macro set of the
condition being compiled, not the body's own). Node indexes are kept, so an index inside a
substituted macro refers to that macro's text; errors say which text through ``MacroError.macro``.

Visibility is the caller's business: for a macro with visibility V, ``lookup`` should only know
macros whose index is below V; rules see every macro.
"""

from __future__ import annotations

from collections.abc import Callable

from falcorules_ci.condition.ast import And, Identifier, Node, Not, Or
from falcorules_ci.condition.lexicon import deep_nesting_guard
from falcorules_ci.errors import ConditionError


class MacroError(ConditionError):
    """An undefined macro or a reference loop.

    ``macro`` names the macro whose text ``index`` points into, or is None when the identifier
    sits in the condition being resolved itself.
    """

    def __init__(self, message: str, index: int, macro: str | None) -> None:
        super().__init__(message, index, code="LOAD_ERR_VALIDATE")
        self.macro = macro


def resolve_macros(
    node: Node,
    lookup: Callable[[str], Node | None],
    on_use: Callable[[str], object] | None = None,
) -> Node:
    """``node`` with every macro reference replaced by the macro's (resolved) AST.

    Raises MacroError with Falco's text: the first reference loop found ("reference loop in
    macro 'm'") if any, otherwise the first undefined identifier ("Undefined macro 'x' used in
    filter."). On success ``on_use`` is called with the name of every macro substituted, nested
    ones included.
    """
    resolver = _Resolver(lookup)
    with deep_nesting_guard():
        result = resolver.visit(node)
    if resolver.loops:
        message, index, origin = resolver.loops[0]
        raise MacroError(message, index, origin)
    if resolver.unknown:
        name, index, origin = resolver.unknown[0]
        raise MacroError(f"Undefined macro '{name}' used in filter.", index, origin)
    if on_use is not None:
        for name in resolver.resolved:
            on_use(name)
    return result


def collect_identifiers(node: Node) -> list[Identifier]:
    """Every identifier (unresolved macro reference) in ``node``, left to right."""
    found: list[Identifier] = []
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Identifier):
            found.append(current)
        elif isinstance(current, And | Or):
            stack.extend(reversed(current.children))
        elif isinstance(current, Not):
            stack.append(current.child)
    return found


class _Resolver:
    def __init__(self, lookup: Callable[[str], Node | None]) -> None:
        self.lookup = lookup
        self.path: list[str] = []
        self.loops: list[tuple[str, int, str | None]] = []
        self.unknown: list[tuple[str, int, str | None]] = []
        self.resolved: list[str] = []

    def visit(self, node: Node) -> Node:
        if isinstance(node, And | Or):
            children = tuple(self.visit(child) for child in node.children)
            if all(new is old for new, old in zip(children, node.children, strict=True)):
                return node
            return type(node)(children, node.index)
        if isinstance(node, Not):
            child = self.visit(node.child)
            return node if child is node.child else Not(child, node.index)
        if isinstance(node, Identifier):
            return self.substitute(node)
        return node

    def substitute(self, ident: Identifier) -> Node:
        origin = self.path[-1] if self.path else None
        body = self.lookup(ident.name)
        if body is None:
            self.unknown.append((ident.name, ident.index, origin))
            return ident
        if ident.name in self.path:
            self.loops.append((f"reference loop in macro '{ident.name}'", ident.index, origin))
            self.unknown.append((ident.name, ident.index, origin))
            return ident
        self.path.append(ident.name)
        result = self.visit(body)
        self.path.pop()
        self.resolved.append(ident.name)
        return result


__all__ = ["MacroError", "collect_identifiers", "resolve_macros"]
