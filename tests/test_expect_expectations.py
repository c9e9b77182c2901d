"""Expectations against alerts, ATT&CK parity, the coverage table, and fixture inputs."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from falcorules_ci.engine.alerts import Alert
from falcorules_ci.errors import InputError, UsageError
from falcorules_ci.expect.coverage import fixture_coverage
from falcorules_ci.expect.expectations import (
    AttackParity,
    Fires,
    NotFires,
    RuleCatalog,
    check_fixture,
    expectations_of,
    same_value,
)
from falcorules_ci.expect.fixture import Fixture, InputKind, load_fixture
from falcorules_ci.expect.inputs import EngineUnavailable, adhoc_input, open_input, replay_input
from falcorules_ci.rules.model import Priority


@dataclass(frozen=True)
class FakeRule:
    name: str
    tags: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class FakeAlert:
    rule: str
    priority: str = "Notice"
    output: str = "out"
    output_fields: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


RULES = RuleCatalog([
    FakeRule("Terminal shell in container", ("T1059", "container", "mitre_execution")),
    FakeRule("Read sensitive file untrusted", ("T1555", "mitre_credential_access")),
    FakeRule("Exact shell rule", ("T1059.004", "mitre_execution")),
    FakeRule("Badly tagged", ("T1059.004", "mitre_data_destruction")),
    FakeRule("Old tags", ("T1059.004", "T1086")),
    FakeRule("Untagged", ("container",)),
    FakeRule("Disabled rule", ("T1059",), enabled=False),
])


def fixture_from(tmp_path: Path, text: str) -> Fixture:
    path = tmp_path / "f.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return load_fixture(path)


def outcome(tmp_path: Path, text: str, alerts: list[Any], name: str) -> Any:
    fixture = fixture_from(tmp_path, text)
    by_name = {o.name: o for o in check_fixture(fixture, alerts, RULES)}
    return by_name[name]


SHELL = """
id: shell
ioa: {name: ReverseShell, id: 10197, technique: T1059.004, tactic: TA0002, origin: sensor}
scenario: {}
fires:
  - rule: Terminal shell in container
    priority: Notice
    output_fields: {proc.name: bash, user.uid: 0}
not_fires: any
"""


def shell_alert(**kw: Any) -> FakeAlert:
    values: dict[str, Any] = {"rule": "Terminal shell in container", "output_fields": {"proc.name": "bash", "user.uid": 0}}
    values.update(kw)
    return FakeAlert(**values)


def test_fires_passes_on_a_matching_alert(tmp_path: Path) -> None:
    result = outcome(tmp_path, SHELL, [shell_alert()], "fires[Terminal shell in container]")
    assert result.passed and result.message == "rule 'Terminal shell in container' fired 1 time"
    assert result.span is not None and result.span.line == 5


def test_fires_accepts_a_real_alert_with_a_priority_enum(tmp_path: Path) -> None:
    alert = Alert(time=0, rule="Terminal shell in container", priority=Priority.NOTICE, source="syscall", tags=(),
                  output="x", message="m", output_fields={"proc.name": "bash", "user.uid": "0"}, hostname="h",
                  event_num=1)  # fmt: skip
    assert outcome(tmp_path, SHELL, [alert], "fires[Terminal shell in container]").passed


def test_fires_failure_shows_expected_vs_fired(tmp_path: Path) -> None:
    alerts = [FakeAlert("Read sensitive file untrusted", "Warning", "read /etc/shadow")]
    result = outcome(tmp_path, SHELL, alerts, "fires[Terminal shell in container]")
    assert not result.passed
    assert result.message == (
        "expected rule 'Terminal shell in container' to fire, but it did not\n"
        "expected vs fired rules (- expected, did not fire; + fired, not expected):\n"
        "  - Terminal shell in container\n"
        "  + Read sensitive file untrusted (fired 1 time)"
    )


def test_fires_failure_explains_each_mismatching_alert(tmp_path: Path) -> None:
    alerts = [shell_alert(priority="Warning", output="sh ran", output_fields={"proc.name": "sh", "user.uid": 0})]
    result = outcome(tmp_path, SHELL, alerts, "fires[Terminal shell in container]")
    assert not result.passed
    assert "rule 'Terminal shell in container' fired 1 time, but no alert matched the fixture:" in result.message
    assert "alert 1: priority is Warning, expected Notice; proc.name is 'sh', expected 'bash'" in result.message
    assert "output: sh ran" in result.message


def test_fires_missing_output_field(tmp_path: Path) -> None:
    result = outcome(tmp_path, SHELL, [shell_alert(output_fields={"proc.name": "bash"})],
                     "fires[Terminal shell in container]")  # fmt: skip
    assert "output_fields has no 'user.uid' (the rule's output does not print it)" in result.message


def test_fires_count_and_output_contains(tmp_path: Path) -> None:
    text = """
        id: c
        scenario: {}
        fires: [{rule: Terminal shell in container, count: 2, output_contains: [shell, bash]}]
    """
    one = [FakeAlert("Terminal shell in container", output="a shell: bash")]
    two = one * 2
    other = [FakeAlert("Terminal shell in container", output="a shell: zsh")]
    assert outcome(tmp_path, text, two, "fires[Terminal shell in container]").passed
    failed = outcome(tmp_path, text, one + other, "fires[Terminal shell in container]")
    assert not failed.passed
    assert "expected 2 matching alerts of rule 'Terminal shell in container', got 1 (2 alerts of the rule in all)" in (
        failed.message)
    assert "output does not contain 'bash'" in outcome(tmp_path, text, other, "fires[Terminal shell in container]").message


def test_rule_name_typo_fails_with_did_you_mean(tmp_path: Path) -> None:
    text = "id: t\nscenario: {}\nfires: [{rule: Terminal shell in containr}]\nnot_fires: [Read sensitive file]\n"
    fixture = fixture_from(tmp_path, text)
    results = {o.name: o for o in check_fixture(fixture, [], RULES)}
    assert results["fires[Terminal shell in containr]"].message == (
        "no rule named 'Terminal shell in containr' in the loaded rules; did you mean 'Terminal shell in container'?")
    # a typo in not_fires must not pass vacuously
    assert not results["not_fires[Read sensitive file]"].passed
    assert "did you mean 'Read sensitive file untrusted'?" in results["not_fires[Read sensitive file]"].message


def test_unknown_rule_without_a_close_name() -> None:
    assert RULES.unknown("zzz") == "no rule named 'zzz' in the loaded rules (7 rules loaded)"
    assert "did you mean 'Untagged'" in RULES.unknown("UNTAGGED")


def test_disabled_rule_cannot_fire(tmp_path: Path) -> None:
    result = outcome(tmp_path, "id: d\nscenario: {}\nfires: [{rule: Disabled rule}]\n", [], "fires[Disabled rule]")
    assert not result.passed and "is disabled in the loaded rules (enabled: false)" in result.message


def test_not_fires_named_rule(tmp_path: Path) -> None:
    text = "id: n\nscenario: {}\nnot_fires: [Read sensitive file untrusted]\n"
    quiet = outcome(tmp_path, text, [], "not_fires[Read sensitive file untrusted]")
    assert quiet.passed
    noisy = outcome(tmp_path, text, [FakeAlert("Read sensitive file untrusted", "Warning", "read /etc/shadow by cat")],
                    "not_fires[Read sensitive file untrusted]")  # fmt: skip
    assert not noisy.passed
    assert noisy.message == ("rule 'Read sensitive file untrusted' fired 1 time; expected it not to fire:\n"
                             "  [Warning] Read sensitive file untrusted: read /etc/shadow by cat")  # fmt: skip


def test_not_fires_any_allows_only_expected_rules(tmp_path: Path) -> None:
    assert outcome(tmp_path, SHELL, [shell_alert()], "not_fires[any]").passed
    extra = FakeAlert("Read sensitive file untrusted", "Warning", "read /etc/shadow")
    result = outcome(tmp_path, SHELL, [shell_alert(), extra], "not_fires[any]")
    assert not result.passed
    assert result.message.startswith("expected only the rules in fires to fire, but 1 other alert(s) fired")
    assert "    Terminal shell in container (fired 1 time)\n  + Read sensitive file untrusted (fired 1 time)" in (
        result.message)
    assert "[Warning] Read sensitive file untrusted: read /etc/shadow" in result.message


def test_benign_fixture_fails_on_any_alert(tmp_path: Path) -> None:
    text = "id: b\nscenario: {}\n"
    assert outcome(tmp_path, text, [], "not_fires[any]").passed
    alerts = [FakeAlert("Untagged", output=f"line {i}") for i in range(7)]
    result = outcome(tmp_path, text, alerts, "not_fires[any]")
    assert not result.passed
    assert result.message.startswith("benign input: expected no alerts, got 7")
    assert "  ... and 2 more" in result.message


@pytest.mark.parametrize(
    ("expected", "actual", "same"),
    [("bash", "bash", True), (0, "0", True), ("0", 0, True), (True, True, True), (True, "true", True),
     (None, None, True), (None, "", False), ("", None, False), ([1, "a"], [1, "a"], True), ([1], [2], False),
     (["a"], "a", False), (1.5, 1.5, True)],
)  # fmt: skip
def test_same_value(expected: Any, actual: Any, same: bool) -> None:
    assert same_value(expected, actual) is same


# -- ATT&CK parity -----------------------------------------------------------------------------------


def parity(tmp_path: Path, rule: str, policy: str = "exact", technique: str = "T1059.004") -> Any:
    text = f"""
        id: p
        ioa: {{name: ReverseShell, id: 10197, technique: {technique}, tactic: TA0002, origin: sensor}}
        scenario: {{}}
        fires: [{{rule: {rule}}}]
        technique_policy: {policy}
    """
    return outcome(tmp_path, text, [], "attack_parity")


def test_parity_exact(tmp_path: Path) -> None:
    result = parity(tmp_path, "Exact shell rule")
    assert result.passed
    assert result.message == (
        "IOA 'ReverseShell' (sensor, id 10197) maps to T1059.004 Unix Shell [execution TA0002]; technique_policy: exact\n"
        "  ok   Exact shell rule: tagged T1059.004"
    )


def test_parity_exact_fails_on_the_parent_and_suggests_the_policy(tmp_path: Path) -> None:
    result = parity(tmp_path, "Terminal shell in container")
    assert not result.passed
    assert ("FAIL Terminal shell in container: tagged T1059, not T1059.004; tag the rule T1059.004, or set "
            "technique_policy: parent") in result.message  # fmt: skip
    assert parity(tmp_path, "Terminal shell in container", "parent").passed


def test_parity_names_what_the_rule_carries(tmp_path: Path) -> None:
    other = parity(tmp_path, "Read sensitive file untrusted", "parent")
    assert "tagged T1555 Credentials from Password Stores [credential-access TA0006], not T1059.004; add T1059.004" in (
        other.message)
    bare = parity(tmp_path, "Untagged")
    assert "FAIL Untagged: no ATT&CK technique tag; add T1059.004 to its tags" in bare.message


def test_parity_fails_on_unknown_attack_tags(tmp_path: Path) -> None:
    result = parity(tmp_path, "Badly tagged")
    assert not result.passed
    assert "tagged T1059.004, but its ATT&CK tags are wrong: mitre_data_destruction does not name" in result.message


def test_parity_warns_on_revoked_tags_and_tactic(tmp_path: Path) -> None:
    result = parity(tmp_path, "Old tags")
    assert result.passed
    assert any("T1086 (PowerShell) was revoked" in w for w in result.warnings)
    cred = outcome(tmp_path, """
        id: p
        ioa: {name: Creds, technique: T1555, tactic: TA0002}
        scenario: {}
        fires: [{rule: Read sensitive file untrusted}]
    """, [], "attack_parity")
    assert cred.passed
    assert any("tagged with tactic(s) TA0006, not the IOA's tactic execution (TA0002)" in w for w in cred.warnings)


def test_parity_with_an_unknown_rule(tmp_path: Path) -> None:
    result = parity(tmp_path, "Nope")
    assert not result.passed and "FAIL no rule named 'Nope'" in result.message


def test_expectation_objects_are_usable_directly(tmp_path: Path) -> None:
    fixture = fixture_from(tmp_path, SHELL)
    kinds = [type(e) for e in expectations_of(fixture)]
    assert kinds == [Fires, NotFires, AttackParity]


# -- coverage --------------------------------------------------------------------------------------------


def test_fixture_coverage(tmp_path: Path) -> None:
    (tmp_path / "pos.yaml").write_text("id: p\nscenario: {}\nfires: [{rule: A}, {rule: B}]\n")
    (tmp_path / "neg.yaml").write_text("id: n\nscenario: {}\nnot_fires: [A]\n")
    (tmp_path / "bad.yaml").write_text("id: x\nfire: []\nscenario: {}\n")
    coverage = fixture_coverage([tmp_path, tmp_path / "missing"])
    assert coverage.positive == {"A": ["pos.yaml"], "B": ["pos.yaml"]}
    assert coverage.benign == {"A": ["neg.yaml"]}
    assert coverage.broken == ["bad.yaml"]
    assert coverage.problem("A") is None
    problem = coverage.problem("B", "rules.yaml:3:3")
    assert problem is not None and problem.startswith("rules.yaml:3:3: rule 'B' has no benign fixture\n  positive: pos.yaml")
    assert "fix: add a fixture replaying normal activity with not_fires: ['B']" in problem
    assert "(1 fixture(s) failed to load and were not counted: bad.yaml)" in problem
    assert coverage.missing("C") == ["positive", "benign"]


# -- inputs ----------------------------------------------------------------------------------------------


def test_adhoc_input_kinds(tmp_path: Path) -> None:
    (tmp_path / "trace.scap").write_bytes(b"")
    (tmp_path / "audit.jsonl").write_text("")
    (tmp_path / "scn.yaml").write_text("scenario: x\nevents: []\n")
    (tmp_path / "aud.yaml").write_text("- verb: get\n  user: alice\n  resource: pods\n")
    assert adhoc_input("trace.scap", base=tmp_path).kind is InputKind.CAPTURE
    assert adhoc_input("audit.jsonl", base=tmp_path).kind is InputKind.AUDIT
    assert adhoc_input(tmp_path / "scn.yaml").kind is InputKind.SCENARIO_FILE
    assert adhoc_input("aud.yaml", base=tmp_path).kind is InputKind.AUDIT
    assert adhoc_input("scn.yaml", "audit", base=tmp_path).kind is InputKind.AUDIT
    inline = adhoc_input({"scenario": "x", "events": []})
    assert inline.kind is InputKind.SCENARIO and inline.text is not None
    assert adhoc_input([{"verb": "get", "user": "a"}]).kind is InputKind.AUDIT_EVENTS
    with pytest.raises(InputError, match="replay input not found"):
        adhoc_input("nope.scap", base=tmp_path)


def test_inline_audit_events_are_read_with_fixture_positions(tmp_path: Path) -> None:
    fixture = fixture_from(tmp_path, """
        id: a
        audit_events:
          - {verb: get, user: alice, resource: pods, name: web}
          - verb: create
            user: bob
            pod: {containers: [{image: nginx, privileged: true}]}
    """)
    with open_input(fixture.input) as audit:
        events = list(audit)
    assert len(events) == 2
    assert [e.payload["user"]["username"] for e in events] == ["alice", "bob"]
    assert [(e.span.path, e.span.line) for e in events] == [(str(tmp_path / "f.yaml"), 3), (str(tmp_path / "f.yaml"), 4)]


def test_inline_audit_errors_name_the_fixture(tmp_path: Path) -> None:
    fixture = fixture_from(tmp_path, "id: a\naudit_events:\n  - {verb: get, resource: pods}\n")
    with pytest.raises(InputError) as info, open_input(fixture.input) as audit:
        list(audit)
    assert info.value.span is not None and info.value.span.path == str(tmp_path / "f.yaml")
    assert info.value.span.line == 3


def test_missing_engine_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from falcorules_ci.expect import inputs

    monkeypatch.setitem(inputs.ENGINE_MODULES, "embedded", "falcorules_ci.engine.no_such_engine")
    fixture = fixture_from(tmp_path, "id: a\nscenario: {}\n")
    message = "the embedded engine is not available: module falcorules_ci.engine.no_such_engine is missing"
    with pytest.raises(EngineUnavailable, match=re.escape(message)):
        replay_input(None, fixture.input, None)
    with pytest.raises(UsageError, match="unknown engine 'falco'"):
        replay_input(None, fixture.input, None, "falco")  # type: ignore[arg-type]
