"""Fixture files: loading, schema and semantic errors with positions, inputs, discovery."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from falcorules_ci.errors import InputError
from falcorules_ci.expect.expectations import expectations_of
from falcorules_ci.expect.fixture import InputKind, discover_fixtures, fixture_schema, load_fixture
from falcorules_ci.rules.model import Priority


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


POSITIVE = """
id: crwd-reverse-shell
title: Reverse shell from a web container
description: Falcon saw bash with its stdin on a socket.
ioa: {name: ReverseShell, id: 10197, technique: T1059.004, tactic: TA0002, origin: sensor}
scenario_file: scenarios/shell.yaml
fires:
  - rule: Terminal shell in container
    priority: notice
    count: 1
    output_fields: {proc.name: bash, user.uid: 0}
    output_contains: A shell was spawned
  - rule: Other rule
    output_contains: [one, two]
not_fires: any
technique_policy: parent
"""


def test_positive_fixture_loads(tmp_path: Path) -> None:
    write(tmp_path, "scenarios/shell.yaml", "scenario: shell\nevents: []\n")
    fixture = load_fixture(write(tmp_path, "shell.yaml", POSITIVE))
    assert fixture.id == "crwd-reverse-shell"
    assert fixture.title == "Reverse shell from a web container"
    assert fixture.description.startswith("Falcon saw")
    assert fixture.ioa is not None
    assert (fixture.ioa.name, fixture.ioa.id, fixture.ioa.technique, fixture.ioa.tactic, fixture.ioa.origin) == (
        "ReverseShell", "10197", "T1059.004", "TA0002", "sensor")  # fmt: skip
    assert fixture.input.kind is InputKind.SCENARIO_FILE
    assert fixture.input.path == (tmp_path / "scenarios" / "shell.yaml").resolve()
    assert fixture.input.event_source == "syscall"
    first, second = fixture.fires
    assert (first.rule, first.priority, first.count) == ("Terminal shell in container", Priority.NOTICE, 1)
    assert first.output_fields == (("proc.name", "bash"), ("user.uid", 0))
    assert first.output_contains == ("A shell was spawned",)
    assert (first.span.line, first.span.col) == (7, 11)
    assert second.output_contains == ("one", "two")
    assert fixture.not_fires == "any"
    assert fixture.technique_policy == "parent"
    assert not fixture.benign and fixture.warnings == ()
    names = [e.name for e in expectations_of(fixture)]
    assert names == ["fires[Terminal shell in container]", "fires[Other rule]", "not_fires[any]", "attack_parity"]


def test_benign_fixture(tmp_path: Path) -> None:
    fixture = load_fixture(write(tmp_path, "quiet.yaml", """
        id: admin-shell
        ioa: {name: ReverseShell, technique: T1059.004}
        audit_events:
          - {verb: get, user: alice, resource: pods}
        not_fires: [Terminal shell in container, Attach/Exec Pod]
    """))
    assert fixture.benign
    assert fixture.input.kind is InputKind.AUDIT_EVENTS and fixture.input.event_source == "k8s_audit"
    assert fixture.input.data == [{"verb": "get", "user": "alice", "resource": "pods"}]
    # a benign fixture has no parity item: there is no firing rule to carry the technique
    assert [e.name for e in expectations_of(fixture)] == [
        "not_fires[Terminal shell in container]", "not_fires[Attach/Exec Pod]", "not_fires[any]"]  # fmt: skip


def test_minimal_benign_fixture(tmp_path: Path) -> None:
    fixture = load_fixture(write(tmp_path, "b.yaml", "id: b\nscenario: {scenario: t, events: []}\n"))
    assert fixture.benign and fixture.ioa is None and fixture.not_fires is None
    assert [e.name for e in expectations_of(fixture)] == ["not_fires[any]"]


def test_repeated_rules_get_unique_names(tmp_path: Path) -> None:
    fixture = load_fixture(write(tmp_path, "r.yaml", """
        id: r
        scenario: {}
        fires: [{rule: A, priority: Warning}, {rule: A, priority: Notice}]
    """))
    assert [e.name for e in expectations_of(fixture)] == ["fires[A]", "fires[A#2]"]


@pytest.mark.parametrize(
    ("text", "line", "col", "needle"),
    [
        ("id: x\nscenario: {}\nfire: []\n", 3, 1, "top level: unknown key 'fire'; did you mean 'fires'?"),
        ("id: x\nscenario: {}\nfires:\n  - rule: A\n    outptu_fields: {}\n", 5, 5,
         "fires[0]: unknown key 'outptu_fields'; did you mean 'output_fields'?"),
        ("id: x\nioa: {name: n, orign: sensor}\nscenario: {}\n", 2, 16, "ioa: unknown key 'orign'; did you mean 'origin'?"),
        ("id: x\nfires: []\n", 1, 1, "a fixture needs exactly one input: scenario (inline), scenario_file, capture"),
        ("id: x\nscenario: {}\naudit_events: [{user: a}]\n", 3, 1,
         "a fixture takes exactly one input, found scenario (line 2), audit_events (line 3); keep one"),
        ("scenario: {}\n", 1, 1, "top level: missing required key 'id'"),
        ("id: x\nscenario: {}\ntechnique_policy: exakt\n", 3, 19, "'exakt' is not allowed; did you mean 'exact'?"),
        ("id: x\nscenario: {}\nnot_fires: all\n", 3, 12, "not_fires must be 'any' or a list of rule names"),
        ("id: x\nscenario: {}\nfires: [{rule: A, count: 0}]\n", 3, 26, "fires[0].count: 0 is less than the minimum of 1"),
        ("id: x\nioa: {name: n, technique: T159}\nscenario: {}\n", 2, 27,
         "ioa.technique 'T159' is not an ATT&CK technique id: write T#### or T####.###"),
        ("id: x\ncapture: trace.pcap\n", 2, 10, "capture 'trace.pcap' must be a .scap file"),
        ("id: 'bad id'\nscenario: {}\n", 1, 5, "id 'bad id' may only use letters, digits"),
        ("id: x\nscenario: {}\nfires: [{rule: A, output_contains: 3}]\n", 3, 36,
         "fires[0].output_contains must be a text or a list of texts"),
    ],
)
def test_schema_errors_point_at_the_node(tmp_path: Path, text: str, line: int, col: int, needle: str) -> None:
    path = write(tmp_path, "f.yaml", text)
    with pytest.raises(InputError) as info:
        load_fixture(path)
    assert info.value.span is not None
    assert (info.value.span.path, info.value.span.line, info.value.span.col) == (str(path), line, col)
    assert needle in info.value.message
    assert str(info.value).startswith(f"{path}:{line}:{col}: ")


def test_every_problem_is_reported_in_one_error(tmp_path: Path) -> None:
    path = write(tmp_path, "f.yaml", "id: x\nfire: []\nscenario: {}\ntechnique_polcy: parent\n")
    with pytest.raises(InputError) as info:
        load_fixture(path)
    text = str(info.value)
    assert text.startswith(f"{path}:2:1: top level: unknown key 'fire'")
    assert f"\n{path}:4:1: top level: unknown key 'technique_polcy'; did you mean 'technique_policy'?" in text


@pytest.mark.parametrize(
    ("text", "line", "col", "needle"),
    [
        ("id: x\nioa: {name: n, technique: T1059.099}\nscenario: {}\n", 2, 27,
         "ioa.technique: T1059.099 is not an ATT&CK Enterprise 18.1 technique; T1059 (Command and Scripting "
         "Interpreter) has sub-techniques"),
        ("id: x\nioa: {name: n, technique: T1059, tactic: TA0099}\nscenario: {}\n", 2, 42,
         "ioa.tactic: TA0099 is not an ATT&CK Enterprise 18.1 tactic (TA0043 Reconnaissance"),
        ("id: x\nscenario: {}\nfires:\n  - {rule: A, priority: Warnin}\n", 4, 25,
         "fires[0].priority: 'Warnin' is not a Falco priority; did you mean 'Warning'?"),
        ("id: x\nscenario: {}\nfires: [{rule: A}]\nnot_fires: [B, A]\n", 4, 16,
         "not_fires[1]: rule 'A' is also in fires"),
    ],
)
def test_semantic_errors_point_at_the_node(tmp_path: Path, text: str, line: int, col: int, needle: str) -> None:
    path = write(tmp_path, "f.yaml", text)
    with pytest.raises(InputError) as info:
        load_fixture(path)
    assert info.value.span is not None and (info.value.span.line, info.value.span.col) == (line, col)
    assert needle in info.value.message


@pytest.mark.parametrize(("key", "label"), [("capture", "capture file"), ("scenario_file", "scenario file"),
                                             ("audit", "audit log")])  # fmt: skip
def test_missing_input_file_names_the_resolved_path(tmp_path: Path, key: str, label: str) -> None:
    suffix = ".scap" if key == "capture" else ".yaml"
    path = write(tmp_path, "sub/f.yaml", f"id: x\n{key}: ../inputs/missing{suffix}\n")
    with pytest.raises(InputError) as info:
        load_fixture(path)
    resolved = (tmp_path / "inputs" / f"missing{suffix}").resolve()
    assert info.value.span is not None and info.value.span.line == 2
    assert f"{key}: {label} not found: {resolved} (paths are relative to the fixture's folder" in info.value.message


def test_input_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.scap").mkdir()
    with pytest.raises(InputError, match=r"is a directory; name the capture file itself"):
        load_fixture(write(tmp_path, "f.yaml", "id: x\ncapture: dir.scap\n"))


def test_yaml_syntax_error_has_a_position(tmp_path: Path) -> None:
    path = write(tmp_path, "f.yaml", "id: x\nscenario: {\n  events: [\n")
    with pytest.raises(InputError) as info:
        load_fixture(path)
    assert "invalid YAML" in info.value.message and info.value.span is not None and info.value.span.line > 1


@pytest.mark.parametrize(("text", "needle"), [("- a\n- b\n", "a fixture is a YAML mapping"),
                                             ("just text\n", "a fixture is a YAML mapping"),
                                             ("# nothing yet\n", "the fixture file is empty")])  # fmt: skip
def test_fixture_must_be_a_mapping(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=needle):
        load_fixture(path)


def test_missing_fixture_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="fixture file not found"):
        load_fixture(tmp_path / "nope.yaml")


def test_revoked_ioa_technique_is_a_warning_with_the_replacement(tmp_path: Path) -> None:
    fixture = load_fixture(write(tmp_path, "f.yaml", """
        id: x
        ioa: {name: PowerShell, technique: T1086, tactic: TA0002}
        scenario: {}
        fires: [{rule: A}]
    """))
    [warning] = fixture.warnings
    assert warning.code == "ATTACK_REVOKED" and "use T1059.001 (PowerShell) instead" in warning.message


def test_ioa_technique_outside_its_tactic_is_a_warning(tmp_path: Path) -> None:
    fixture = load_fixture(write(tmp_path, "f.yaml", "id: x\nioa: {name: n, technique: T1059, tactic: TA0003}\n"
                                                     "scenario: {}\n"))  # fmt: skip
    [warning] = fixture.warnings
    assert warning.code == "ATTACK_TACTIC_MISMATCH"


def test_inline_input_text_keeps_fixture_positions(tmp_path: Path) -> None:
    fixture = load_fixture(write(tmp_path, "f.yaml", """
        id: x
        scenario:
          scenario: inline
          events:
            - {pid: 1, syscall: openat}
    """))
    text = fixture.input.text
    assert text is not None
    node = yaml.compose(text)
    assert isinstance(node, yaml.MappingNode)
    events = next(v for k, v in node.value if k.value == "events")
    item = events.value[0]
    assert (item.start_mark.line + 1, item.start_mark.column + 1) == (5, 7)  # as in the fixture file
    assert yaml.safe_load(text) == fixture.input.data
    assert fixture.input.locate is not None
    span = fixture.input.locate(["events", 0, "syscall"])
    assert span is not None and (span.line, span.col) == (5, 25)


def test_inline_flow_input_text(tmp_path: Path) -> None:
    fixture = load_fixture(write(tmp_path, "f.yaml", "id: x\naudit_events: [{verb: get, user: a}]\n"))
    assert fixture.input.text is not None
    assert yaml.safe_load(fixture.input.text) == [{"verb": "get", "user": "a"}]
    assert fixture.input.text.startswith("\n" + " " * len("audit_events: ") + "[")


def test_discovery_skips_inputs_and_keeps_broken_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "id: a\nscenario: {}\n")
    write(tmp_path, "sub/b.yml", "id: b\ncapture: x.scap\n")
    write(tmp_path, "broken.yaml", "id: [\n")  # reported, not skipped
    write(tmp_path, "scenarios/shell.yaml", "scenario: a title\nevents: []\n")  # a scenario file
    write(tmp_path, "audit/events.yaml", "- verb: get\n  user: a\n")  # an audit input
    write(tmp_path, "notes.txt", "fires: []\n")
    write(tmp_path, ".hidden/c.yaml", "id: c\nscenario: {}\n")
    found = [p.relative_to(tmp_path).as_posix() for p in discover_fixtures(tmp_path)]
    assert found == ["a.yaml", "broken.yaml", "sub/b.yml"]
    assert discover_fixtures(tmp_path / "a.yaml") == [tmp_path / "a.yaml"]


def test_schema_is_draft_2020_12() -> None:
    schema = fixture_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) >= {"id", "ioa", "scenario", "scenario_file", "capture", "audit", "audit_events",
                                         "fires", "not_fires", "technique_policy"}  # fmt: skip
