"""Resolving a field token and its argument the way Falco's filter compiler does.

The registry finds the declaration; this module checks the argument against it and produces the
error Falco would give. The rules differ by where the field comes from:

- libsinsp's built-in classes each parse their own arguments. ``evt.arg[N]`` and ``fd.types[N]``
  need a C ``%d`` number ("X is not a valid number"); the ancestor fields (``proc.aname[N]``, ...)
  and ``proc.args[N]`` silently reject anything else, which makes the token an unknown field;
  ``proc.env[NAME]`` takes any text. Dotted arguments: ``evt.arg.NAME`` / ``evt.rawarg.NAME`` name
  an event parameter (``evt.rawarg`` then has that parameter's type), ``evt.type.is.NAME`` an
  event, ``evt.abspath.src|dst`` one of two paths, ``thread.cgroup.NAME`` a cgroup subsystem.
- plugin fields (``libs:userspace/libsinsp/plugin_filtercheck.cpp``): an index is digits without
  a leading zero, a key is any text; a missing required argument, or an argument the field does
  not take, is an error that quotes the field.

Any argument containing ``]`` leaves part of the token unparsed, which libsinsp reports as an
unknown field.
"""

from __future__ import annotations

import dataclasses
import re
from functools import cache

from falcorules_ci.errors import ConditionError
from falcorules_ci.fields.event_table import event_table
from falcorules_ci.fields.registry import ArgKind, FieldInfo, FieldMatch, FieldRegistry, FieldType


class FieldError(ConditionError):
    """A field token that does not compile, with Falco's message.

    Its index is 0: the caller knows where the token sits and re-raises with the real position
    (and with ``LOAD_ERR_COMPILE_OUTPUT`` when the token is in an output format).
    """


_C_INT = re.compile(r"\s*[+-]?[0-9]+")
_C_UNSIGNED = re.compile(r"\s*\+?[0-9]+")
_CGROUP_SUBSYSTEM = re.compile(r"[A-Za-z_]+")
_ABSPATH_ENDS = frozenset({"src", "dst"})

# Built-in fields whose numeric argument error is raised (instead of the token being unknown).
_STRICT_NUMBER_ARGS = frozenset({"evt.arg", "evt.around", "fd.types"})


def match_field(registry: FieldRegistry, name: str, arg: str | None, source: str) -> FieldMatch:
    """Resolve ``name`` (the token before any bracket) with its bracket ``arg`` for ``source``.

    Dotted arguments are split off the name (``evt.arg.flags`` → ``evt.arg`` + ``flags``). The
    match's ``info`` is the registry's declaration, except for ``evt.rawarg.NAME``, whose type
    is the named parameter's. Raises :class:`FieldError` with Falco's message otherwise.
    """
    full = name if arg is None else f"{name}[{arg}]"
    info = registry.resolve(name, source)
    if info is None or (arg is not None and "]" in arg):
        raise _unknown(full)
    if info.name != name:
        if arg is not None:
            raise _unknown(full)
        return _match_dotted(info, name[len(info.name) + 1 :], full)
    if info.plugin:
        return FieldMatch(info, _check_plugin_arg(info, arg, full))
    return FieldMatch(info, _check_builtin_arg(info, arg, full))


def rawarg_type(param_name: str) -> FieldType | None:
    """The type ``evt.rawarg.<param_name>`` compiles with, or None for an unknown parameter.

    libsinsp takes the first event, in event-code order, that has a parameter of that name.
    """
    ptype = _first_param_types().get(param_name)
    return None if ptype is None else FieldType[ptype.removeprefix("PT_")]


def is_event_param(param_name: str) -> bool:
    """Whether some event of the table has a parameter with exactly this name."""
    return param_name in _first_param_types()


def _unknown(full: str) -> FieldError:
    return FieldError(f"filter_check called with nonexistent field {full}")


def _match_dotted(info: FieldInfo, dotted: str, full: str) -> FieldMatch:
    if info.name in ("evt.arg", "evt.rawarg"):
        longest = _longest_param_prefix(dotted)
        if longest is None:
            raise FieldError(f"unknown event argument {dotted}")
        if longest != dotted:
            raise _unknown(full)
        if info.name == "evt.rawarg":
            param_type = rawarg_type(dotted)
            assert param_type is not None  # a parameter found above has a type
            info = dataclasses.replace(info, type=param_type)
        return FieldMatch(info, dotted)
    if info.name == "evt.type.is":
        if dotted not in _event_names():
            raise _unknown(full)
    elif info.name == "evt.abspath":
        if dotted not in _ABSPATH_ENDS:
            raise _unknown(full)
    elif info.name == "thread.cgroup":
        if not _CGROUP_SUBSYSTEM.fullmatch(dotted):
            raise _unknown(full)
    else:
        raise _unknown(full)
    return FieldMatch(info, dotted)


def _check_builtin_arg(info: FieldInfo, arg: str | None, full: str) -> str | None:
    if arg is None:
        if info.arg_required:
            raise FieldError(f"filter syntax error: {full}")
        return None
    if info.name == "evt.rawarg":
        raise FieldError("evt.arg fields must be expressed explicitly")
    if info.dotted_arg and info.name != "evt.arg":
        # evt.type.is, thread.cgroup want `.NAME`; evt.abspath stops before the bracket.
        if info.name == "evt.abspath":
            raise _unknown(full)
        raise FieldError(f"filter syntax error: {full}")
    if info.arg is ArgKind.NONE:
        raise _unknown(full)
    if info.arg is ArgKind.INDEX:
        pattern = _C_UNSIGNED if info.name == "evt.around" else _C_INT
        if not pattern.fullmatch(arg):
            if info.name in _STRICT_NUMBER_ARGS:
                raise FieldError(f"{arg} is not a valid number")
            raise _unknown(full)
    return arg


def _check_plugin_arg(info: FieldInfo, arg: str | None, full: str) -> str | None:
    name = info.name
    if arg is None:
        if info.arg_required:
            raise FieldError(f"filter '{name}': {name} requires an argument but none provided")
        return None
    if " " in arg:
        # The plugin parser cuts the token at its first blank, losing the closing bracket.
        cut = full[: full.index(" ")]
        raise FieldError(f"filter '{cut}': {name} has unbalanced argument brackets")
    if info.arg is ArgKind.NONE:
        raise FieldError(f"filter '{full}': {name} does not allow nor require an argument but one is provided: {arg}")
    if info.arg is ArgKind.INDEX:
        problem = _plugin_index_problem(arg)
        if problem:
            raise FieldError(f"filter {full} {name}{problem}{arg}")
    return arg


def _plugin_index_problem(arg: str) -> str:
    """The plugin parser's complaint about an index argument, or "" when it is valid."""
    problem = ""
    if not arg or (len(arg) > 1 and arg[0] == "0"):
        problem = " has an invalid index argument starting with 0: "
    if any(not c.isascii() or not c.isdigit() for c in arg):
        problem = " has an invalid index argument not composed only by digits: "
    if not problem and int(arg) >= 2**64:
        problem = " has an invalid index argument not representable on 64 bit: "
    return problem


@cache
def _first_param_types() -> dict[str, str]:
    """Each parameter name → the PT_* type of its first occurrence in event-code order."""
    table = event_table()
    types: dict[str, str] = {}
    for code in sorted(table.by_code):
        for param in table.by_code[code].params:
            types.setdefault(param.name, param.type)
    return types


def _longest_param_prefix(text: str) -> str | None:
    """The longest event parameter name that ``text`` starts with (libsinsp's lookup rule)."""
    best: str | None = None
    for param_name in _first_param_types():
        if text.startswith(param_name) and (best is None or len(param_name) > len(best)):
            best = param_name
    return best


@cache
def _event_names() -> frozenset[str]:
    return frozenset(info.name for info in event_table().by_code.values())
