"""What the differential tests accept as a disagreement with sysdig 0.29.3, and why.

Every entry names the libs code that shows the difference: ``e5c53d64`` is the libs commit Debian's
sysdig 0.29.3 is built from (March 2022), ``0.25`` the libs tag Falco 0.44 uses (0.25.4); the
container fields come from the container plugin. Three kinds:

- ``0.29.3``: a genuine difference between the two libs versions. Our value is what current libs
  give; each allowance is narrowly matched (field, event, both values) and counted.
- ``run``: a value sysdig 0.29.3 takes from memory it never initialised, so it changes from run
  to run; matched narrowly too (our value is the initialised one).
- ``KNOWN_BUGS``: our own bugs, excluded from the per-input checks and asserted by a strict xfail
  each, so that a fix shows up as XPASS.

Fields that cannot be compared at all are in ``NOT_COMPARED`` with the reason.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

import differential_field_allowances  # noqa: F401  (registers its allowances)
from differential_base import ALLOWANCES, CLONE_EXITS, NA, CaptureFacts, facts_of, int_or_none
from differential_field_allowances import bpf_args, generic_args
from differential_state_allowances import connect_enter_named, flags_added, reconnected

from falcorules_ci.engine.sysdig_diff import FieldDisagreement

__all__ = ["ALLOWANCES", "ALLOWANCE_NAMES", "KNOWN_BUGS", "NOT_COMPARED", "PARAM_ALLOWANCES", "CaptureFacts",
           "KnownBug", "facts_of", "field_reasons"]  # fmt: skip

# Fields (as the differential spells them) left out of the comparison, with why.
NOT_COMPARED: dict[str, str] = {
    "evt.rawarg.fd": "sysdig 0.29.3 throws 'wrong event type' printing a PT_FD raw value (filter.cpp "
                     "rawval_to_string has no PT_FD case) and stops reading the capture",
    "evt.rawarg.dirfd": "sysdig 0.29.3 throws 'wrong event type' printing a PT_FD raw value and stops reading "
                        "the capture",
    "evt.rawarg.flags": "sysdig 0.29.3 throws 'wrong event type' printing a PT_FLAGS32 raw value (the type of "
                        "the first event declaring 'flags') and stops reading the capture",
    "evt.rawarg.mode": "its type depends on the event in current libs, and PT_MODE has no case in 0.25's "
                       "rawval_to_string either (it throws 'wrong param type')",
}  # fmt: skip


# -- evt.args: parameter by parameter ------------------------------------------------------------

PARAM_ALLOWANCES: dict[str, str] = {
    "evt-args-trailing-blank": "current libs drop the blank 0.29.3 prints after the last parameter "
                               "(sinsp_filtercheck_event.cpp TYPE_ARGS pops it)",
    "converter-completed-exit-parameters": "see the field allowance of the same name",
    "empty-buffer-printed-null": "current libs print an empty buffer parameter as NULL (event.cpp "
                                 "get_param_as_str, 'legacy NULL encoding'); 0.29.3 prints nothing",
    "buffer-cut-for-display": "sysdig cuts long buffer parameters at its display length and adds '...' "
                              "(observed); Falco prints them whole",
    "parameter-renamed-pgid-to-vpgid": "execve/clone exits call the old 'pgid' parameter 'vpgid' now (a "
                                       "new 'pgid' was added at the end)",
    "uid-parameters-resolved": "loginuid became PT_UID: current libs print the user name after it",
    "pid-parameter-without-comm": "see the field allowance of the same name",
    "flag-names-added-after-0.29.3": "see the field allowance of the same name",
    "enum-aliases-printed": "see the field allowance of the same name",
    "connect-enter-named-the-socket-in-0.29.3": "see the field allowance of the same name",
    "mmap-res-became-errno": "see the field allowance of the same name",
    "fd-parameter-of-unknown-fd": "sysdig has no entry for this fd (see the fd allowances), so prints no name",
    "udp-socket-reconnected": "see the field allowance of the same name",
}  # fmt: skip
_ARG_SPLIT = re.compile(r" (?=[A-Za-z_][A-Za-z_0-9]*=)")


def _params(text: str) -> list[tuple[str, str]]:
    if not text:
        return []
    return [(tok.partition("=")[0], tok.partition("=")[2]) for tok in _ARG_SPLIT.split(text)]


def _param_reason(d: FieldDisagreement, name: str, ours: str, theirs: str) -> str | None:
    if theirs == "" and ours == "NULL":
        return "empty-buffer-printed-null"
    if theirs.endswith("...") and ours.startswith(theirs[:-3]):
        return "buffer-cut-for-display"
    if name == "loginuid" and re.fullmatch(re.escape(theirs) + r"\(.*\)", ours):
        return "uid-parameters-resolved"
    if name == "res" and re.fullmatch(re.escape(ours) + r"\(.*\)", theirs) and d.evt_type in CLONE_EXITS:
        return "pid-parameter-without-comm"
    m_ours, m_theirs = re.fullmatch(r"(\d+)\((.*)\)", ours), re.fullmatch(r"(\d+)(?:\((.*)\))?", theirs)
    if m_ours and m_theirs and m_ours[1] == m_theirs[1]:
        if flags_added(m_ours[2], m_theirs[2] or m_theirs[1]):
            return "flag-names-added-after-0.29.3"
        if set(m_ours[2].split("|")) == {"AF_LOCAL", "AF_UNIX"} and m_theirs[2] == "AF_LOCAL":
            return "enum-aliases-printed"
    if name == "res" and d.evt_type in ("mmap", "mmap2") and int_or_none(theirs, 16) == int_or_none(ours):
        return "mmap-res-became-errno"
    if name == "fd" and theirs.isdigit() and ours.startswith(theirs + "("):
        return "fd-parameter-of-unknown-fd"
    if name == "fd" and reconnected(dataclasses.replace(d, field="fd.name"), CaptureFacts()):
        return "udp-socket-reconnected"
    if name == "fd" and connect_enter_named(dataclasses.replace(d, field="fd.name"), CaptureFacts()):
        return "connect-enter-named-the-socket-in-0.29.3"
    return None


def args_reasons(d: FieldDisagreement) -> tuple[list[str], list[str]]:
    """(allowances that explain an evt.args disagreement, unexplained parameter differences)."""
    reasons: list[str] = []
    problems: list[str] = []
    theirs_text = d.sysdig
    if theirs_text.endswith(" "):
        reasons.append("evt-args-trailing-blank")
        theirs_text = theirs_text[:-1]
    if theirs_text == d.ours:
        return reasons, problems
    ours, theirs = _params(d.ours), dict(_params(theirs_text))
    mine = dict(ours)
    for name, value in theirs.items():
        target = "vpgid" if name == "pgid" and "vpgid" in mine and name not in d.stored else name
        if target != name:
            reasons.append("parameter-renamed-pgid-to-vpgid")
        if target not in mine:
            problems.append(f"{name}: only sysdig prints it ({value!r})")
            continue
        if mine[target] != value:
            reason = _param_reason(d, target, mine[target], value)
            if reason is None:
                problems.append(f"{target}: ours {mine[target]!r}, sysdig {value!r}")
            else:
                reasons.append(reason)
    renamed = "vpgid" if "pgid" in theirs and "vpgid" not in theirs else None
    for name, value in ours:
        if name in theirs or name == renamed:
            continue
        if value in (NA, "NULL") or (d.evt_dir == "<" and name not in d.stored):
            reasons.append("converter-completed-exit-parameters")
        else:
            problems.append(f"{name}: only ours prints it ({value!r})")
    return reasons, problems


def field_reasons(d: FieldDisagreement, facts: CaptureFacts) -> tuple[list[str], list[str]]:
    if d.field in ("evt.args", "evt.info") and not generic_args(d, facts) and not bpf_args(d, facts):
        return args_reasons(d)
    for item in ALLOWANCES:
        if item.applies(d, facts):
            return [item.name], []
    return [], [f"ours {d.ours!r}, sysdig {d.sysdig!r}"]


# -- our own bugs: excluded from the per-input checks, each asserted by a strict xfail ----------


@dataclass(frozen=True, slots=True)
class KnownBug:
    name: str
    where: str
    evidence: str
    field: Callable[[FieldDisagreement], bool] = lambda d: False
    engine_error: Callable[[str], bool] = lambda message: False


# Our own bugs found by the differential, each fixed so far; a new one goes here with its evidence.
KNOWN_BUGS: list[KnownBug] = []

ALLOWANCE_NAMES = frozenset({a.name for a in ALLOWANCES} | set(PARAM_ALLOWANCES))
