"""Falco condition parser: libsinsp 0.25's recursive-descent filter grammar, quirks included.

Grammar (libs ``userspace/libsinsp/filter/parser.h``, EBNF)::

    Expr        ::= OrExpr
    OrExpr      ::= AndExpr ('or' (BLANK AndExpr | '(' Expr ')'))*
    AndExpr     ::= NotExpr ('and' (BLANK NotExpr | '(' Expr ')'))*
    NotExpr     ::= ('not' BLANK+)* ('not(' Expr ')' | Check)
    Check       ::= '(' Expr ')' | Field Condition | Transformer Condition | Identifier
    Transformer ::= TrName '(' TrArg (',' TrArg)* ')' ('[' FieldArg ']')?
    TrArg       ::= Transformer | Field | QuotedStr | Number | '(' (TrListArg (',' TrListArg)*)? ')'
    Condition   ::= 'exists'
                  | NumOp (Number | Transformer | 'val(' Field ')')
                  | StrOp (QuotedStr | BareStr | Transformer | 'val(' Field ')')
                  | StrOp Modifier ('(' StrList ')' | Identifier)
                  | ListOp ('(' StrList ')' | Transformer | 'val(' Field ')' | Identifier)
    Field       ::= FieldName ('[' (QuotedStr | FieldArgBareStr) ']')?

Every node records ``index``, the character offset libsinsp records as its position; errors
carry the offset where libsinsp's cursor stood when it gave up, and libsinsp's message text.

Faithful quirks worth knowing: keywords match as prefixes (``andx`` is "expected blank or '('
after 'and'"), ``in`` needs no blank (``x inabc`` is ``x in abc``), an even number of ``not``
cancels, a bad escape inside the first element of a list literal silently yields an empty list,
and ``\\x`` escapes are rejected (libs 0.25 predates hex escapes).
"""

from __future__ import annotations

import re
from typing import NoReturn

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
    ALL_OPERATORS,
    ALL_TRANSFORMERS,
    BARE_STR,
    BLANK_CHARS,
    BLANKS,
    FIELD_ARG_BARE,
    FIELD_NAME,
    HEX_NUM,
    IDENTIFIER,
    LIST_OPERATORS,
    MAX_DEPTH,
    MODIFIER_OPERATORS,
    NOT_BLANK,
    NUMBER,
    NUMERIC_OPERATORS,
    STRING_OPERATORS,
    TRANSFORMER_INITIALS,
    TRANSFORMER_NAMES,
    TRANSFORMER_TOKENS,
    UNARY_OPERATORS,
    EscapeError,
    bool_keyword_at,
    recursion_headroom,
    unescape_quoted,
)
from falcorules_ci.errors import ConditionError


def parse_condition(text: str) -> Node:
    """Parse a whole condition (lists already substituted) into an AST.

    Raises ConditionError (and nothing else) with libsinsp's message and character index.
    """
    parser = _Parser(text)
    with recursion_headroom:
        try:
            return parser.parse()
        except RecursionError:
            # Only reachable if the caller's own stack is already deep; the depth guard below
            # normally stops first.
            raise ConditionError(f"exceeded max depth limit of {MAX_DEPTH}", parser.pos) from None


def parse_field_or_transformer(text: str) -> tuple[Operand, int]:
    """Parse a field or transformer at the start of ``text`` (output format tokens).

    Returns the node and the number of characters consumed; the rest of ``text`` is ignored.
    """
    parser = _Parser(text)
    with recursion_headroom:
        try:
            node = parser.parse_field_or_transformer()
        except RecursionError:
            raise ConditionError(f"exceeded max depth limit of {MAX_DEPTH}", parser.pos) from None
    return node, parser.pos


class _Parser:
    """One parse of one input; method names follow libsinsp's parser functions one to one."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.last_token = ""
        self.depth = 0

    # -- errors and the depth guard ---------------------------------------------------------

    def fail(self, message: str) -> NoReturn:
        raise ConditionError(message, self.pos)

    def enter(self) -> None:
        self.depth += 1
        if self.depth >= MAX_DEPTH:
            self.fail(f"exceeded max depth limit of {MAX_DEPTH}")

    # -- entry points -----------------------------------------------------------------------

    def parse(self) -> Node:
        if not self.text:
            self.fail("filter input string is empty")
        result = self.parse_or()
        if self.pos != len(self.text):
            self.fail(f"unexpected token after '{self.last_token}', expecting 'or', 'and'")
        return result

    def parse_field_or_transformer(self) -> Operand:
        self.enter()
        start = self.pos
        if self.lex_field_name():
            field_ref = self.parse_field_remainder(self.last_token, start)
            self.depth -= 1
            return field_ref
        if self.lex_transformer_type():
            self.lex_blank()
            transformer = self.parse_transformer_remainder(self.last_token[:-1], start)
            self.depth -= 1
            return transformer
        # libsinsp's message really lacks the closing quote.
        self.fail("unexpected token after '" + self.last_token)

    # -- boolean structure ------------------------------------------------------------------

    def parse_or(self) -> Node:
        self.enter()
        start = self.pos
        self.lex_blank()
        children = [self.parse_and()]
        self.lex_blank()
        while self.lex_str("or"):
            if not self.lex_blank():
                if self.lex_str("("):
                    children.append(self.parse_embedded_remainder())
                else:
                    self.fail("expected blank or '(' after 'or'")
            else:
                children.append(self.parse_and())
            self.lex_blank()
        self.depth -= 1
        return Or(tuple(children), start) if len(children) > 1 else children[0]

    def parse_and(self) -> Node:
        self.enter()
        start = self.pos
        self.lex_blank()
        children = [self.parse_not()]
        self.lex_blank()
        while self.lex_str("and"):
            if not self.lex_blank():
                if self.lex_str("("):
                    children.append(self.parse_embedded_remainder())
                else:
                    self.fail("expected blank or '(' after 'and'")
            else:
                children.append(self.parse_not())
            self.lex_blank()
        self.depth -= 1
        return And(tuple(children), start) if len(children) > 1 else children[0]

    def parse_not(self) -> Node:
        self.enter()
        start = self.pos
        negated = False
        self.lex_blank()
        while self.lex_regex(NOT_BLANK):
            negated = not negated
        if self.lex_str("not("):
            negated = not negated
            child = self.parse_embedded_remainder()
        else:
            child = self.parse_check()
        self.depth -= 1
        return Not(child, start) if negated else child

    def parse_embedded_remainder(self) -> Node:
        self.enter()
        self.lex_blank()
        child = self.parse_or()
        self.lex_blank()
        if not self.lex_str(")"):
            self.fail("expected a ')' token")
        self.depth -= 1
        return child

    def parse_check(self) -> Node:
        self.enter()
        start = self.pos
        self.lex_blank()
        result: Node
        if self.lex_str("("):
            result = self.parse_embedded_remainder()
        elif self.lex_field_name():
            left = self.parse_field_remainder(self.last_token, start)
            result = self.parse_condition(left, start)
        elif self.lex_transformer_type():
            self.lex_blank()
            transformer = self.parse_transformer_remainder(self.last_token[:-1], start)
            result = self.parse_condition(transformer, start)
        elif self.lex_regex(IDENTIFIER):
            result = Identifier(self.last_token, start)
        else:
            self.fail("expected a '(' token, a field check, or an identifier")
        self.depth -= 1
        return result

    # -- fields and transformers ------------------------------------------------------------

    def parse_field_remainder(self, name: str, start: int) -> FieldRef:
        self.enter()
        field_ref = FieldRef(name, self.parse_optional_field_arg(), start)
        self.depth -= 1
        return field_ref

    def parse_optional_field_arg(self) -> str | None:
        if not self.lex_str("["):
            return None
        if not self.lex_quoted_str() and not self.lex_regex(FIELD_ARG_BARE):
            self.fail("expected a valid field argument: a quoted string or a bare string")
        arg = self.last_token
        if not self.lex_str("]"):
            self.fail("expected a ']' token")
        return arg

    def parse_transformer_remainder(self, name: str, start: int) -> Transformer:
        self.enter()
        self.lex_blank()
        args = [self.parse_transformer_arg(self.pos)]
        self.lex_blank()
        while self.lex_str(","):
            args.append(self.parse_transformer_arg(self.pos))
            self.lex_blank()
        self.lex_blank()
        if not self.lex_str(")"):
            self.fail("expected a ')' token closing the transformer")
        transformer = Transformer(name, tuple(args), start, self.parse_optional_field_arg())
        self.depth -= 1
        return transformer

    def parse_transformer_arg(self, start: int) -> TransformerArg:
        self.enter()
        self.lex_blank()
        result: TransformerArg
        if self.lex_regex(HEX_NUM) or self.lex_regex(NUMBER):
            result = Literal(self.last_token, False, start)
        elif self.lex_quoted_str():
            result = Literal(self.last_token, True, start)
        elif self.lex_str("("):
            result = self.parse_transformer_list(start)
        elif self.lex_transformer_type():
            result = self.parse_transformer_remainder(self.last_token[:-1], start)
        elif self.lex_field_name():
            result = self.parse_field_remainder(self.last_token, start)
        else:
            self.fail(
                "expected field transformer argument: field, transformer, quoted string, number, or transformer list"
            )
        self.depth -= 1
        return result

    def parse_transformer_list(self, start: int) -> TransformerList:
        # libsinsp gives every element the list's own position.
        self.lex_blank()
        if self.lex_str(")"):
            return TransformerList((), start)
        values = [self.parse_transformer_list_arg(start)]
        self.lex_blank()
        while self.lex_str(","):
            self.lex_blank()
            values.append(self.parse_transformer_list_arg(start))
            self.lex_blank()
        if not self.lex_str(")"):
            self.fail("expected ')'")
        return TransformerList(tuple(values), start)

    def parse_transformer_list_arg(self, start: int) -> TransformerArg:
        if self.lex_field_name():
            return self.parse_field_remainder(self.last_token, start)
        if self.lex_transformer_type():
            self.lex_blank()
            return self.parse_transformer_remainder(self.last_token[:-1], start)
        if self.lex_quoted_str():
            return Literal(self.last_token, True, start)
        if self.lex_regex(HEX_NUM) or self.lex_regex(NUMBER):
            return Literal(self.last_token, False, start)
        self.fail("expected transformer list argument: field, transformer, quoted string, or number")

    # -- conditions -------------------------------------------------------------------------

    def parse_condition(self, left: Operand, start: int) -> Node:
        self.enter()
        self.lex_blank()
        if self.lex_operator(UNARY_OPERATORS):
            self.depth -= 1
            return UnaryCheck(left, self.last_token, start)
        self.lex_blank()
        modifier: str | None = None
        right: Value
        if self.lex_operator(NUMERIC_OPERATORS):
            op = self.last_token
            right = self.parse_num_value_or_transformer()
        elif self.lex_operator(STRING_OPERATORS):
            op = self.last_token
            # Word operators already consumed their mandatory blank; symbols may have one.
            had_blank = op[0].isalpha() or self.lex_blank()
            saved_pos, saved_token = self.pos, self.last_token
            if (
                had_blank
                and self.lex_operator(MODIFIER_OPERATORS)
                and self.list_value_follows()
                and not self.bool_keyword_follows()
            ):
                modifier = self.last_token
                right = self.parse_list_value()
            else:
                self.pos, self.last_token = saved_pos, saved_token
                right = self.parse_str_value_or_transformer(no_transformer=False)
        elif self.lex_operator(LIST_OPERATORS):
            op = self.last_token
            right = self.parse_list_value_or_transformer()
        else:
            self.fail("expected a valid check operator: one of " + ALL_OPERATORS)
        self.depth -= 1
        return BinaryCheck(left, op, right, modifier, start)

    def parse_num_value_or_transformer(self) -> Value:
        self.enter()
        self.lex_blank()
        start = self.pos
        result: Value | None = self.try_parse_transformer_or_val()
        if result is None:
            if self.lex_regex(HEX_NUM) or self.lex_regex(NUMBER):
                result = Literal(self.last_token, False, start)
            else:
                self.fail(f"expected a number value or a field with a valid transformer: {ALL_TRANSFORMERS}")
        self.depth -= 1
        return result

    def parse_str_value_or_transformer(self, no_transformer: bool) -> Value:
        self.enter()
        self.lex_blank()
        start = self.pos
        if not no_transformer:
            transformer = self.try_parse_transformer_or_val()
            if transformer is not None:
                self.depth -= 1
                return transformer
        if self.lex_quoted_str():
            result = Literal(self.last_token, True, start)
        elif self.lex_regex(BARE_STR):
            result = Literal(self.last_token, False, start)
        elif no_transformer:
            self.fail("expected a string value")
        else:
            self.fail(f"expected a string value or a field with a valid transformer: {ALL_TRANSFORMERS}")
        self.depth -= 1
        return result

    def try_parse_list_expr(self) -> ListLiteral | None:
        start = self.pos
        if not self.lex_str("("):
            return None
        values: list[Literal] = []
        self.lex_blank()
        depth = self.depth
        try:
            first = self.parse_str_value_or_transformer(no_transformer=True)
        except ConditionError:
            # libsinsp swallows any failure here and expects an empty list; the cursor stays
            # wherever the failed attempt left it (past a badly escaped string, for instance).
            self.depth = depth
        else:
            assert isinstance(first, Literal)
            values.append(first)
            self.lex_blank()
            while self.lex_str(","):
                item = self.parse_str_value_or_transformer(no_transformer=True)
                assert isinstance(item, Literal)
                values.append(item)
                self.lex_blank()
        if not self.lex_str(")"):
            self.fail("expected a ')' token")
        return ListLiteral(tuple(values), start)

    def parse_list_value(self) -> Value:
        self.enter()
        self.lex_blank()
        start = self.pos
        result: Value | None = self.try_parse_list_expr()
        if result is None:
            if self.lex_regex(IDENTIFIER):
                result = Literal(self.last_token, False, start)
            else:
                self.fail("expected a list or an identifier")
        self.depth -= 1
        return result

    def parse_list_value_or_transformer(self) -> Value:
        self.enter()
        self.lex_blank()
        start = self.pos
        result: Value | None = self.try_parse_list_expr()
        if result is None:
            result = self.try_parse_transformer_or_val()
        if result is None:
            if self.lex_regex(IDENTIFIER):
                result = Literal(self.last_token, False, start)
            else:
                self.fail("expected a list, an identifier, or a field with a valid transformer: " + ALL_TRANSFORMERS)
        self.depth -= 1
        return result

    def try_parse_transformer_or_val(self) -> FieldValue | Transformer | None:
        self.enter()
        self.lex_blank()
        start = self.pos
        result: FieldValue | Transformer | None = None
        if self.lex_str("val("):
            self.lex_blank()
            field_start = self.pos
            if not self.lex_field_name():
                self.fail("expected a field within 'val' transformer")
            operand = self.parse_field_remainder(self.last_token, field_start)
            self.lex_blank()
            if not self.lex_str(")"):
                self.fail("expected a ')' token closing the transformer")
            result = FieldValue(operand, start, self.parse_optional_field_arg())
        elif self.lex_transformer_type():
            self.lex_blank()
            result = self.parse_transformer_remainder(self.last_token[:-1], start)
        self.depth -= 1
        return result

    # -- lookahead helpers ------------------------------------------------------------------

    def list_value_follows(self) -> bool:
        return self.text.startswith("(", self.pos) or IDENTIFIER.match(self.text, self.pos) is not None

    def bool_keyword_follows(self) -> bool:
        return bool_keyword_at(self.text, self.pos)

    # -- lexing -----------------------------------------------------------------------------

    def lex_blank(self) -> bool:
        text, pos = self.text, self.pos
        if pos >= len(text) or text[pos] not in BLANK_CHARS:
            return False
        match = BLANKS.match(text, pos)
        assert match is not None
        self.pos = match.end()
        return True

    def lex_str(self, token: str) -> bool:
        if self.text.startswith(token, self.pos):
            self.last_token = token
            self.pos += len(token)
            return True
        return False

    def lex_regex(self, pattern: re.Pattern[str]) -> bool:
        match = pattern.match(self.text, self.pos)
        if match is None:
            return False
        self.last_token = match.group()
        self.pos = match.end()
        return True

    def lex_field_name(self) -> bool:
        return self.lex_regex(FIELD_NAME)

    def lex_transformer_type(self) -> bool:
        if self.pos >= len(self.text) or self.text[self.pos] not in TRANSFORMER_INITIALS:
            return False
        return any(self.lex_str(token) for token in TRANSFORMER_TOKENS)

    def lex_operator(self, operators: tuple[str, ...]) -> bool:
        for op in operators:
            if not op.endswith(" "):
                if self.lex_str(op):
                    return True
                continue
            saved_pos, saved_token = self.pos, self.last_token
            if self.lex_str(op[:-1]):
                if self.lex_blank():
                    return True
                self.pos, self.last_token = saved_pos, saved_token
        return False

    def lex_quoted_str(self) -> bool:
        text, start = self.text, self.pos
        if start >= len(text) or text[start] not in "\"'":
            return False
        delimiter = text[start]
        # The string ends at the first delimiter not directly preceded by a backslash; libsinsp
        # reads a C string, so a NUL ends the input.
        end = text.find(delimiter, start + 1)
        while end != -1 and text[end - 1] == "\\":
            end = text.find(delimiter, end + 1)
        nul = text.find("\0", start + 1)
        if end == -1 or (nul != -1 and nul < end):
            # libsinsp restores the cursor but keeps the partial token it accumulated.
            self.last_token = text[start : nul if nul != -1 else len(text)]
            return False
        token = text[start : end + 1]
        self.pos = end + 1
        self.last_token = token
        try:
            self.last_token = unescape_quoted(token)
        except EscapeError as exc:
            self.fail(str(exc))
        return True


__all__ = [
    "LIST_OPERATORS",
    "MAX_DEPTH",
    "MODIFIER_OPERATORS",
    "NUMERIC_OPERATORS",
    "STRING_OPERATORS",
    "TRANSFORMER_NAMES",
    "UNARY_OPERATORS",
    "parse_condition",
    "parse_field_or_transformer",
]
