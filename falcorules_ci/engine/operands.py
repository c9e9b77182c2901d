"""Typed operands (fields, transformers, literals) compiled into extraction functions.

An :class:`Operand` extracts one value per event (``None`` for no value) with every transformer
already applied, the way libsinsp's ``extract()`` runs the field's extraction and then its
transformers. Field extraction itself comes from the sources' extractors (syscall state tables,
the k8saudit plugin), looked up through a :data:`FieldResolver` so tests can substitute fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from falcorules_ci.condition.output import as_libsinsp_string
from falcorules_ci.condition.typecheck import (
    TypedConst,
    TypedConstList,
    TypedField,
    TypedMultiTransform,
    TypedOperand,
    TypedTransform,
)
from falcorules_ci.engine.compare import DOMAIN_FIELDS, Special
from falcorules_ci.engine.generic import plugin_generic_extractor
from falcorules_ci.engine.matching import (
    ascii_lower,
    ascii_upper,
    b64_decode,
    byte_length,
    c_string,
    from_bytes,
    to_bytes,
)
from falcorules_ci.extract.base import Extractor
from falcorules_ci.fields.registry import FieldMatch, FieldType
from falcorules_ci.sources.event import SYSCALL_SOURCE, Event

# (field and argument, event source, whether the value is for an output) -> extractor. Ancestor
# fields without an index compare against every ancestor in conditions but print joined in outputs.
FieldResolver = Callable[[FieldMatch, str, bool], Extractor]

# Fields whose bare (argument-less) form compares against every ancestor (compare_full_a*).
ANCESTOR_FIELDS: Final = frozenset({"proc.aname", "proc.apid", "proc.aexe", "proc.aexepath", "proc.acmdline", "proc.aenv"})
# Fields compared on both connection endpoints (sinsp_filter_check_fd::compare_ip/net/port).
EITHER_END_FIELDS: Final = frozenset({"fd.ip", "fd.net", "fd.port", "fd.proto", *DOMAIN_FIELDS})


def field_type(ptype: str) -> FieldType:
    """The registry's FieldType for libsinsp's type name (``"CHARBUF"``, ``"DYNAMIC"``, ...)."""
    return FieldType.DYN if ptype == "DYNAMIC" else FieldType[ptype]


@dataclass(frozen=True, slots=True)
class Operand:
    """A compiled left- or right-hand side: what it is called, how to extract it, its type."""

    text: str  # libsinsp's spelling: "proc.aname[2]", "tolower(proc.name)"
    extract: Extractor = field(compare=False)
    ftype: FieldType
    is_list: bool
    special: Special = Special.NONE
    field_name: str = ""  # the bare field under any transformers ("" for multi-transformers)
    for_output: bool = False


def special_of(match: FieldMatch) -> Special:
    name = match.info.name
    if name in ANCESTOR_FIELDS and (match.arg is None or (name == "proc.aenv" and match.arg.isdigit())):
        # proc.aenv compares every ancestor's environment unless given a variable name.
        return Special.ANCESTORS
    if name in EITHER_END_FIELDS:
        return Special.EITHER_END
    if name == "evt.rawarg":
        return Special.SINGLE
    return Special.NONE


def default_resolver(match: FieldMatch, source: str, output: bool) -> Extractor:
    """The real extractors: the k8saudit/json plugins' fields, or libsinsp's syscall fields
    (whose generic ``evt.*`` fields also serve plugin events)."""
    info = match.info
    if info.plugin in ("k8saudit", "json") or info.name.startswith(("ka.", "json.", "jevt.")):
        from falcorules_ci.extract.k8saudit import k8s_extractor

        return k8s_extractor(info.name, match.arg)
    if source != SYSCALL_SOURCE:
        return plugin_generic_extractor(info.name, match.arg)
    from falcorules_ci.extract.syscall import syscall_extractor, syscall_output_extractor

    if output:
        return syscall_output_extractor(info.name, match.arg)
    return syscall_extractor(info.name, match.arg)


class OperandCompiler:
    """Compiles typed operands for one source, sharing compiled operands by their text."""

    def __init__(self, source: str, resolver: FieldResolver | None = None, *, for_output: bool = False) -> None:
        self.source = source
        self.resolver = resolver or default_resolver
        self.for_output = for_output
        self._cache: dict[str, Operand] = {}

    def compile(self, typed: TypedOperand) -> Operand:
        text = operand_text(typed)
        found = self._cache.get(text)
        if found is None:
            found = self._compile(typed, text)
            self._cache[text] = found
        return found

    def _compile(self, typed: TypedOperand, text: str) -> Operand:
        if isinstance(typed, TypedField):
            match = typed.match
            special = Special.NONE if self.for_output else special_of(match)
            extract = self.resolver(match, self.source, self.for_output)
            return Operand(text, extract, field_type(typed.ptype), typed.is_list, special, match.info.name,
                           self.for_output)  # fmt: skip
        if isinstance(typed, TypedConst):
            value = typed.value
            return Operand(text, lambda e, s: value, FieldType.CHARBUF, False, for_output=self.for_output)
        if isinstance(typed, TypedConstList):
            items = tuple(self.compile(item) for item in typed.items)
            return Operand(text, _list_extractor(items), FieldType.CHARBUF, True, for_output=self.for_output)
        if isinstance(typed, TypedTransform):
            inner = self.compile(typed.operand)
            extract = _transform_extractor(typed.name, inner)
            return Operand(text, extract, field_type(typed.ptype), typed.is_list, Special.NONE, inner.field_name,
                           self.for_output)  # fmt: skip
        args = tuple(self.compile(a) for a in typed.args)
        return Operand(text, _multi_extractor(typed, args), field_type(typed.ptype), typed.is_list,
                       for_output=self.for_output)  # fmt: skip


def operand_text(typed: TypedOperand) -> str:
    """libsinsp's ``as_string`` of the operand (the output_fields key spelling)."""
    node = typed.node
    return as_libsinsp_string(node)


# -- transformers --------------------------------------------------------------------------------


def _strings(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _element_text(value: Any) -> str:
    # A numeric element of a transformer list is printed as a number (rawnum_check).
    if isinstance(value, bytes):
        return from_bytes(value)
    return value if isinstance(value, str) else str(value)


def _list_extractor(items: Sequence[Operand]) -> Extractor:
    def extract(event: Event, state: Any) -> Any:
        out: list[Any] = []
        for item in items:
            value = item.extract(event, state)
            if value is None:
                return None
            out.extend(_element_text(v) for v in _strings(value))
        return out

    return extract


def _strip_nuls(text: str) -> str:
    return text.rstrip("\x00")


def _apply_each(inner: Operand, fn: Callable[[Any], Any]) -> Extractor:
    source = inner.extract

    def extract(event: Event, state: Any) -> Any:
        value = source(event, state)
        if value is None:
            return None
        if isinstance(value, list):
            out = [fn(v) for v in value]
            return None if any(v is None for v in out) else out
        return fn(value)

    return extract


def _b64(value: Any, as_bytes: bool) -> Any:
    raw = value if isinstance(value, bytes) else to_bytes(_strip_nuls(value))
    raw = raw.rstrip(b"\x00")
    decoded = b64_decode(raw)
    if decoded is None:
        return None
    if as_bytes:
        # libsinsp keeps a NUL terminator on every transformed value, and a buffer's length
        # counts it.
        return decoded if decoded.endswith(b"\x00") else decoded + b"\x00"
    return c_string(from_bytes(decoded))


def _basename(value: str) -> str:
    value = _strip_nuls(value)
    return value[value.rfind("/") + 1 :]


def _transform_extractor(name: str, inner: Operand) -> Extractor:
    if name == "tolower":
        return _apply_each(inner, lambda v: ascii_lower(_strip_nuls(v)))
    if name == "toupper":
        return _apply_each(inner, lambda v: ascii_upper(_strip_nuls(v)))
    if name == "basename":
        return _apply_each(inner, _basename)
    if name == "b64":
        as_bytes = inner.ftype is FieldType.BYTEBUF
        return _apply_each(inner, lambda v: _b64(v, as_bytes))
    if name == "len":
        source = inner.extract
        is_list = inner.is_list

        def length(event: Event, state: Any) -> Any:
            value = source(event, state)
            if value is None:
                return None
            if is_list:
                return len(value)
            if isinstance(value, bytes):
                return len(value)
            return byte_length(value)

        return length
    raise ValueError(f"unknown transformer {name!r}")


def _multi_extractor(typed: TypedMultiTransform, args: Sequence[Operand]) -> Extractor:
    if typed.name == "join":
        sep_op, list_op = args

        def join(event: Event, state: Any) -> Any:
            sep = sep_op.extract(event, state)
            if sep is None:
                return None
            values = list_op.extract(event, state)
            if values is None:
                return None
            sep_text = _element_text(_strings(sep)[0])
            return sep_text.join(c_string(_element_text(v)) for v in _strings(values))

        return join
    if typed.name == "concat":

        def concat(event: Event, state: Any) -> Any:
            parts = []
            for arg in args:
                value = arg.extract(event, state)
                if value is None:
                    return None
                parts.append(c_string(_element_text(_strings(value)[0])))
            return "".join(parts)

        return concat
    if typed.name == "getopt":
        return _getopt_extractor(args[0], args[1], typed.arg)
    raise ValueError(f"unknown multivalue transformer {typed.name!r}")


@dataclass(frozen=True, slots=True)
class _OptInfo:
    valid: frozenset[str]
    with_args: frozenset[str]


def _parse_optstring(optstring: str) -> _OptInfo:
    valid: set[str] = set()
    with_args: set[str] = set()
    i = 1 if optstring.startswith(":") else 0
    while i < len(optstring):
        opt = optstring[i]
        if opt != ":":
            valid.add(opt)
            if i + 1 < len(optstring) and optstring[i + 1] == ":":
                with_args.add(opt)
                i += 1
        i += 1
    return _OptInfo(frozenset(valid), frozenset(with_args))


def getopt_values(argv: Sequence[str], optstring: str, selector: str | None) -> list[str] | None:
    """libsinsp's ``getopt`` transformer: short options of ``argv`` as getopt(3) would see them.

    Without a selector: every option character (``?`` for unknown ones) followed by its value
    when it takes one. With ``[c]``: the value (or the bare option) of the last ``-c``, or None.
    """
    info = _parse_optstring(optstring)
    results: list[str] = []
    selected: str | None = None
    k = 0
    while k < len(argv):
        arg = argv[k]
        if arg == "--":
            break
        if len(arg) > 2 and arg.startswith("--"):
            k += 1
            continue
        if not arg or arg[0] != "-" or len(arg) == 1:
            break
        i = 1
        while i < len(arg):
            opt = arg[i]
            if opt == ":" or opt not in info.valid:
                if selector is None:
                    results.append("?")
                i += 1
                continue
            matches = selector is None or opt == selector
            if opt not in info.with_args:
                if matches:
                    if selector is None:
                        results.append(opt)
                    else:
                        selected = opt
                i += 1
                continue
            value: str | None
            if i + 1 < len(arg):
                value = arg[i + 1 :]
            elif k + 1 < len(argv):
                k += 1
                value = argv[k]
            else:
                value = None
            if matches:
                if value is None:
                    # A missing argument is reported as one empty value, without the option.
                    if selector is not None:
                        selected = ""
                    else:
                        results.append("")
                elif selector is not None:
                    selected = value
                else:
                    results.append(opt)
                    results.append(value)
            break
        k += 1
    if selector is not None:
        return None if selected is None else [selected]
    return results


def _getopt_extractor(args_op: Operand, opts_op: Operand, selector: str | None) -> Extractor:
    def getopt(event: Event, state: Any) -> Any:
        optstring = opts_op.extract(event, state)
        if optstring is None:
            return None
        argv = args_op.extract(event, state)
        if argv is None:
            return None
        found = getopt_values([_element_text(a) for a in _strings(argv)],
                              _element_text(_strings(optstring)[0]), selector)  # fmt: skip
        if found is None:
            return None
        # A selected option is a single value; the full result is a (possibly empty) list.
        return found[0] if selector is not None else found

    return getopt
