"""One check's comparison, as libsinsp's filter checks compare an extracted value with the
right-hand side (``sinsp_filtercheck.cpp``, ``filter_compare.cpp``, and the custom comparisons of
the fd and thread checks).

The value handed to a test is never ``None``: a missing value makes every check false before any
test runs. Values are typed as the extractor contract says (:mod:`falcorules_ci.extract.base`).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from falcorules_ci.engine.cglob import compile_glob
from falcorules_ci.engine.matching import PathPrefixSet, ascii_lower, to_bytes
from falcorules_ci.fields.registry import FieldType

# Fields whose value is the names resolving to the fd's address; none resolving is a value too.
DOMAIN_FIELDS: Final = frozenset({"fd.cip.name", "fd.sip.name", "fd.lip.name", "fd.rip.name"})

Test = Callable[[Any], bool]
DynamicTest = Callable[[Any, Any], bool]

_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


class Special(enum.Enum):
    """Fields whose filter check compares in its own way instead of libsinsp's generic path."""

    NONE = "none"
    # proc.aname, proc.apid, proc.aexe, proc.aexepath, proc.acmdline without an index, proc.aenv
    # without a key: the value is every ancestor's (parent first); any ancestor may satisfy.
    ANCESTORS = "ancestors"
    # fd.ip, fd.net, fd.port (and fd.proto): either endpoint; '!=' needs both to differ.
    EITHER_END = "either_end"
    # evt.rawarg.*: a single-value comparison that ignores modifiers.
    SINGLE = "single"


# Types libsinsp compares by equality only, and never by set lookup (flt_type_is_eq_only).
EQ_ONLY_TYPES: Final = frozenset({FieldType.IPNET, FieldType.IPV4NET, FieldType.IPV6NET})
NUMERIC_OPS: Final = frozenset({"<", "<=", ">", ">="})
SET_OPS: Final = frozenset({"in", "intersects"})


def canonical_op(op: str) -> str:
    return "=" if op == "==" else op


def in_net(value: Any, net: Any) -> bool:
    """``(addr & mask) == (net & mask)``; an address of the other IP version never matches, nor
    does an endpoint the extractor could not give."""
    if value is None:
        return False
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        value = value.network_address
    if isinstance(net, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return bool(value in net)
    return bool(value == net)


def scalar_test(op: str, ftype: FieldType, k: Any) -> Test:
    """``value OP k`` for one extracted value and one right-hand value (flt_compare)."""
    op = canonical_op(op)
    if ftype in EQ_ONLY_TYPES:
        if op == "!=":
            return lambda v: not in_net(v, k)
        return lambda v: in_net(v, k)
    if op == "exists":
        return lambda v: True
    if op == "=":
        return lambda v: bool(v == k)
    if op == "!=":
        return lambda v: bool(v != k)
    if op == "<":
        return lambda v: bool(v < k)
    if op == "<=":
        return lambda v: bool(v <= k)
    if op == ">":
        return lambda v: bool(v > k)
    if op == ">=":
        return lambda v: bool(v >= k)
    if op in ("in", "intersects"):
        return lambda v: bool(v == k)
    if op in ("contains", "bcontains"):
        return lambda v: k in v
    if op in ("startswith", "bstartswith"):
        return lambda v: bool(v.startswith(k))
    if op == "endswith":
        return lambda v: bool(v.endswith(k))
    if op == "icontains":
        needle = ascii_lower(k)
        return lambda v: needle in ascii_lower(v)
    if op == "glob":
        return compile_glob(k)
    if op == "iglob":
        return compile_glob(k, casefold=True)
    if op == "regex":
        return regex_test(k)
    if op == "pmatch":
        prefixes = PathPrefixSet((k,))
        return lambda v: v in prefixes
    raise ValueError(f"unsupported operator {op!r}")


def regex_test(pattern: str) -> Test:
    """RE2 POSIX syntax, fully anchored. Existence of a full match does not depend on RE2's
    leftmost-longest preference, so Python's backtracking ``fullmatch`` decides the same."""
    try:
        compiled = re.compile(pattern, re.DOTALL)
    except re.error:
        return lambda v: False
    return lambda v: compiled.fullmatch(v) is not None


def _set_of(values: Sequence[Any]) -> frozenset[Any]:
    return frozenset(values)


def membership_test(ftype: FieldType, values: Sequence[Any]) -> Test:
    """``in``/``intersects`` of one value: set lookup, or any-equal for network types."""
    if ftype in EQ_ONLY_TYPES:
        nets = tuple(values)
        return lambda v: any(in_net(v, n) for n in nets)
    members = _set_of(values)
    return lambda v: v in members


def list_test(op: str, ftype: FieldType, values: Sequence[Any]) -> Test:
    """Operators on a multi-valued field: ``in`` every value, ``intersects`` some value."""
    op = canonical_op(op)
    if op == "exists":
        return lambda v: True
    if ftype in EQ_ONLY_TYPES:
        one = membership_test(ftype, values)
        if op == "in":
            return lambda v: all(one(x) for x in v)
        if op == "intersects":
            return lambda v: any(one(x) for x in v)
    members = _set_of(values)
    if op == "in":
        return members.issuperset
    if op == "intersects":
        return lambda v: not members.isdisjoint(v)
    # libsinsp raises for any other operator on a list field at run time; nothing matches.
    return lambda v: False


def modifier_test(op: str, modifier: str, ftype: FieldType, values: Sequence[Any]) -> Test:
    """``op oneof|anyof|allof (values)``: exactly one, any, or all right-hand values match."""
    op = canonical_op(op)
    if not values:
        return lambda v: False
    if ftype in EQ_ONLY_TYPES and op not in ("=", "!=", "regex"):
        op = "="
    if modifier == "anyof" and op == "=" and ftype not in EQ_ONLY_TYPES:
        return membership_test(ftype, values)
    if modifier == "allof" and op == "!=" and ftype not in EQ_ONLY_TYPES:
        members = _set_of(values)
        return lambda v: v not in members
    tests = tuple(scalar_test(op, ftype, k) for k in values)
    if modifier == "anyof":
        return lambda v: any(t(v) for t in tests)
    if modifier == "allof":
        return lambda v: all(t(v) for t in tests)
    if modifier == "oneof":

        def exactly_one(v: Any) -> bool:
            hits = 0
            for t in tests:
                if t(v):
                    hits += 1
                    if hits > 1:
                        return False
            return hits == 1

        return exactly_one
    raise ValueError(f"unsupported modifier {modifier!r}")


def single_value_test(op: str, ftype: FieldType, values: Sequence[Any]) -> Test:
    """libsinsp's one-value ``compare_rhs``: set lookup for in/intersects/pmatch, the first
    right-hand value for every other operator (modifiers are not looked at)."""
    op = canonical_op(op)
    if op == "exists":
        return lambda v: True
    if op in SET_OPS:
        return membership_test(ftype, values)
    if op == "pmatch":
        if ftype in EQ_ONLY_TYPES:
            return membership_test(ftype, values)
        prefixes = PathPrefixSet(values)
        return lambda v: v in prefixes
    if not values:
        return lambda v: False
    return scalar_test(op, ftype, values[0])


def build_test(
    op: str,
    ftype: FieldType,
    values: Sequence[Any],
    *,
    modifier: str | None = None,
    is_list: bool = False,
    special: Special = Special.NONE,
    field_name: str = "",
) -> Test:
    """The test for ``value OP values`` on a present value, with libsinsp's semantics."""
    op = canonical_op(op)
    if ftype is FieldType.BYTEBUF:
        values = [to_bytes(k) if isinstance(k, str) else k for k in values]
    if special is Special.ANCESTORS:
        one = single_value_test(op, ftype, values)
        return lambda v: any(one(x) for x in v)
    if special is Special.EITHER_END:
        return either_end_test(op, ftype, values, field_name)
    if special is Special.SINGLE:
        return single_value_test(op, ftype, values)
    if op == "exists":
        return lambda v: True
    if is_list:
        return list_test(op, ftype, values)
    if modifier is not None:
        return modifier_test(op, modifier, ftype, values)
    return single_value_test(op, ftype, values)


def either_end_test(op: str, ftype: FieldType, values: Sequence[Any], field_name: str) -> Test:
    """fd.ip / fd.net / fd.port: the value is both endpoints (a server socket may give one).

    An empty value stands for an fd that is not an IP socket: libsinsp then says yes to
    ``exists`` and no to everything else, ``!=`` included.
    """
    op = canonical_op(op)
    if op == "exists":
        return lambda v: True
    if not values:
        return lambda v: False
    test = _either_end_values(op, ftype, values, field_name)
    if field_name in DOMAIN_FIELDS:
        # libsinsp's compare_domain: `!=` is true when no name resolves to the address.
        return test
    return lambda v: bool(v) and test(v)


def _either_end_values(op: str, ftype: FieldType, values: Sequence[Any], field_name: str) -> Test:
    is_net = ftype in EQ_ONLY_TYPES or field_name == "fd.net"
    if is_net:
        # fd.net compares with the first network only, whatever the operator.
        net = values[0]
        if op in ("=", "in"):
            return lambda v: any(in_net(x, net) for x in v)
        if op == "!=":
            return lambda v: not any(in_net(x, net) for x in v)
        return lambda v: False
    if op == "in":
        members = _set_of(values)
        return lambda v: any(x in members for x in v)
    if op == "!=":
        k = values[0]
        return lambda v: all(x != k for x in v)
    if op == "=" or (op in NUMERIC_OPS and field_name != "fd.ip"):
        one = scalar_test(op, ftype, values[0])
        return lambda v: any(one(x) for x in v)
    # libsinsp throws for any other operator on these fields; no event matches.
    return lambda v: False


def build_dynamic_test(
    op: str,
    ftype: FieldType,
    *,
    modifier: str | None = None,
    is_list: bool = False,
    rhs_is_list: bool = False,
    special: Special = Special.NONE,
    field_name: str = "",
) -> DynamicTest:
    """The test for ``value OP val(other)``: the right-hand field's values, extracted per event."""

    def test(v: Any, r: Any) -> bool:
        values = list(r) if rhs_is_list else [r]
        return build_test(op, ftype, values, modifier=modifier, is_list=is_list, special=special,
                          field_name=field_name)(v)  # fmt: skip

    return test
