"""The static event-type set of a condition, as libsinsp's ppm_codes computes it for Falco."""

from __future__ import annotations

import pytest

from falcorules_ci.condition.evttypes import all_codes, event_codes, event_names, names_to_codes
from falcorules_ci.condition.parser import parse_condition
from falcorules_ci.condition.typecheck import typecheck
from falcorules_ci.errors import ConditionError
from falcorules_ci.fields.registry import FieldInfo, FieldRegistry, FieldType

ALL = all_codes()
OPENAT = frozenset({102, 103, 306, 307})  # both openat versions, enter and exit
CLOSE = names_to_codes(["close"])
NONE: frozenset[int] = frozenset()


def codes(text: str) -> frozenset[int]:
    return event_codes(parse_condition(text))


def test_names_map_to_every_code_with_that_name() -> None:
    assert names_to_codes(["openat"]) == OPENAT
    assert len(ALL) == 454
    assert event_names(OPENAT | CLOSE) == ["close", "openat"]


def test_syscalls_without_an_event_map_to_the_generic_events() -> None:
    assert names_to_codes(["acct"]) == {0, 1}
    assert names_to_codes(["acct", "openat"]) == OPENAT | {0, 1}
    # the generic events' own name is not looked up
    assert names_to_codes(["syscall"]) == NONE
    assert names_to_codes(["no_such_thing"]) == NONE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("evt.type=openat", OPENAT),
        ("evt.type == openat", OPENAT),
        ("syscall.type = openat", OPENAT),
        ("not evt.type != openat", OPENAT),
        ("not not not not evt.type = openat", OPENAT),
        ("not (not evt.type=openat)", OPENAT),
        ("evt.type in (openat)", OPENAT),
        ("evt.type=openat and not proc.name=nginx", OPENAT),
        ("evt.type=openat and not (evt.type=close and proc.name=nginx)", OPENAT),
        ("evt.type!=openat", ALL - OPENAT),
        ("not evt.type=openat", ALL - OPENAT),
        ("evt.type=close or evt.type!=openat", ALL - OPENAT),
        ("evt.type in (openat, close)", OPENAT | CLOSE),
        ("evt.type=openat or (evt.type=close and proc.name=nginx)", OPENAT | CLOSE),
        ("not evt.type in (openat, close)", ALL - OPENAT - CLOSE),
        ("evt.type!=openat and evt.type!=close", ALL - OPENAT - CLOSE),
        ("proc.name=nginx", ALL),
        ("not proc.name=nginx", ALL),
        ("evt.type=openat or proc.name=nginx", ALL),
        ("evt.type=close or not (evt.type=openat and proc.name=nginx)", ALL),
        ("evt.type=openat and evt.type=close", NONE),
        ("evt.type=mmap and not evt.type=mmap", NONE),
        ("evt.type in ()", NONE),
        ("not evt.type in ()", ALL),
        ("evt.type exists", ALL),
        ("not evt.type exists", NONE),
        ("evt.type startswith open", ALL),  # not an event-type operator: neutral
        ("evt.type = oneof (openat)", ALL),  # "= oneof" is not "=" to libsinsp
        ("evt.num = 0", ALL),
        ("unresolved_macro", ALL),
        # a literal inside a transformer on the left marks the check as naming codes, so the
        # negation empties it (libsinsp's visitor state, kept as is)
        ("not concat(proc.name, 'x') = y", NONE),
        ("not concat('x', proc.name) = y", ALL),
    ],
)
def test_event_codes(text: str, expected: frozenset[int]) -> None:
    assert codes(text) == expected


def test_set_algebra() -> None:
    mmap = codes("evt.type=mmap")
    assert codes("evt.type=mmap or not evt.type=mmap") == ALL
    assert codes("evt.type=mmap and (proc.name=cat)") == mmap
    assert codes("evt.type=mmap or evt.type in ()") == mmap
    assert codes("evt.type=mmap and evt.type=mmap") == mmap
    assert codes(
        "evt.type in (connect, execve, accept, mmap, container) and not (proc.name=cat and evt.type=mmap)"
    ) == codes("evt.type in (accept, connect, container, execve, mmap)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tolower(evt.type) = open", "event code search does not support `evt.type` checks with transformers"),
        ("evt.type = val(evt.type)", "event code search does not support `evt.type` checks with transformers"),
        ("proc.name exists and evt.type = tolower(proc.name)",
         "right-hand field comparisons on `evt.type`/`syscall.type` checks are not supported by event code search"),
    ],
)  # fmt: skip
def test_refused_checks(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as info:
        codes(text)
    assert info.value.message == message


def test_typed_conditions_are_accepted() -> None:
    registry = FieldRegistry(
        [
            FieldInfo("evt.type", FieldType.CHARBUF, "syscall", "evt"),
            FieldInfo("proc.name", FieldType.CHARBUF, "syscall", "process"),
        ]
    )
    typed = typecheck(parse_condition("evt.type = openat and proc.name = x"), registry, "syscall")
    assert event_codes(typed) == OPENAT
    assert event_codes(typed.root) == OPENAT


def test_too_many_event_types_threshold() -> None:
    # Falco warns LOAD_NO_EVTTYPE when the set is empty or larger than 100 codes.
    assert len(codes("proc.name = x")) > 100
    assert len(codes("evt.type in (execve, execveat)")) <= 100
