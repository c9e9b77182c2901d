"""Rule selection, event-type indexing and replay: which rules run on which events, in what
order, with which options, end to end through the real sources, state and extractors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CAPTURES, K8SAUDIT

from falcorules_ci import LoadOptions, Priority, Ruleset, load_ruleset
from falcorules_ci.engine import EmbeddedEngine, EngineOptions, EventStream, replay, select_rules
from falcorules_ci.engine.index import ASYNC_EVENT_CODE, reaches_rules, rule_codes
from falcorules_ci.errors import InputError, UsageError
from falcorules_ci.extract.base import Extractor
from falcorules_ci.fields.registry import FieldMatch
from falcorules_ci.sources.event import Event
from falcorules_ci.sources.k8saudit import audit_event, to_jsonl

OPEN_E, OPEN_X, CLOSE_X, PROCEXIT = 2, 3, 5, 186

RULES = """
- rule: A net shell
  desc: d
  condition: evt.type = open
  output: A %proc.name
  priority: WARNING
  tags: [net, shell]
- rule: B shell
  desc: d
  condition: evt.type = open and proc.name = bash
  output: B %proc.name
  priority: ERROR
  tags: [shell]
- rule: C file
  desc: d
  condition: evt.type in (open, close)
  output: C %proc.name
  priority: DEBUG
  tags: [file]
  enabled: false
- rule: D any
  desc: d
  condition: proc.name = bash
  output: D %evt.type
  priority: INFO
  warn_evttypes: false
"""


def fake_resolver(match: FieldMatch, source: str, output: bool) -> Extractor:
    key = match.text
    return lambda event, state: event.params.get(key)


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    loaded = load_ruleset(texts=[("rules.yaml", RULES)], options=LoadOptions(suggested_output=False))
    assert loaded.successful
    return loaded


def fired(ruleset: Ruleset, options: EngineOptions, event: Event) -> list[str]:
    engine = EmbeddedEngine(ruleset, options, resolver=fake_resolver)
    return [a.rule for a in engine.process(event, None)]


def open_exit(proc: str = "bash", **extra: Any) -> Event:
    return Event(1, 10, 7, OPEN_X, "open", "<", params={"evt.type": "open", "proc.name": proc, **extra})


def test_rule_matching_first_stops_at_the_first_match(ruleset: Ruleset) -> None:
    assert fired(ruleset, EngineOptions(), open_exit()) == ["A net shell"]


def test_rule_matching_all_fires_every_match_in_load_order(ruleset: Ruleset) -> None:
    assert fired(ruleset, EngineOptions(rule_matching="all"), open_exit()) == ["A net shell", "B shell", "D any"]


def test_rules_are_indexed_by_event_type(ruleset: Ruleset) -> None:
    close = Event(1, 10, 7, CLOSE_X, "close", params={"evt.type": "close", "proc.name": "bash"})
    assert fired(ruleset, EngineOptions(rule_matching="all"), close) == ["D any"]
    # Every rule is also filed under the async event code, whatever its condition says.
    a_rule = ruleset.rule("A net shell")
    codes = rule_codes(a_rule)
    assert codes is not None and ASYNC_EVENT_CODE in codes and OPEN_X in codes and CLOSE_X not in codes


def test_priority_threshold(ruleset: Ruleset) -> None:
    options = EngineOptions(rule_matching="all", min_priority=Priority.ERROR)
    assert fired(ruleset, options, open_exit()) == ["B shell"]
    names = [r.name for r in select_rules(ruleset.rules, EngineOptions(min_priority=Priority.WARNING))]
    assert names == ["A net shell", "B shell"]


def test_enabled_tags_enable_rules_loaded_disabled(ruleset: Ruleset) -> None:
    options = EngineOptions(rule_matching="all", enabled_tags=frozenset({"file"}))
    assert fired(ruleset, options, open_exit()) == ["C file"]


def test_disabled_tags_and_names(ruleset: Ruleset) -> None:
    options = EngineOptions(rule_matching="all", disabled_tags=frozenset({"net"}))
    assert fired(ruleset, options, open_exit()) == ["B shell", "D any"]
    options = EngineOptions(rule_matching="all", disabled_rules=("shell",))
    assert fired(ruleset, options, open_exit()) == ["D any"]
    # -t first, then -T and -D narrow it down.
    options = EngineOptions(rule_matching="all", enabled_tags=frozenset({"shell"}), disabled_rules=("B",))
    assert fired(ruleset, options, open_exit()) == ["A net shell"]


def test_enter_events_reach_rules_only_in_legacy_mode(ruleset: Ruleset) -> None:
    enter = Event(1, 10, 7, OPEN_E, "open", ">", params={"evt.type": "open", "proc.name": "bash"})
    assert fired(ruleset, EngineOptions(rule_matching="all"), enter) == []
    assert fired(ruleset, EngineOptions(rule_matching="all", legacy_enter_events=True), enter) == [
        "A net shell", "B shell", "D any",
    ]  # fmt: skip
    # Enter-only events that are not system calls (procexit, plugin events) always do.
    assert reaches_rules(PROCEXIT, ">", False)
    assert not reaches_rules(OPEN_E, ">", False)


def test_events_of_another_source_do_not_reach_syscall_rules(ruleset: Ruleset) -> None:
    event = Event(1, 10, -1, 322, "pluginevent", ">", params={"proc.name": "bash"}, source="k8s_audit")
    assert fired(ruleset, EngineOptions(rule_matching="all"), event) == []


def test_engine_counts(ruleset: Ruleset) -> None:
    engine = EmbeddedEngine(ruleset, EngineOptions(rule_matching="all"), resolver=fake_resolver)
    for _ in range(3):
        engine.process(open_exit(), None)
    assert engine.stats.alerts_by_rule["B shell"] == 3
    assert engine.stats.events_evaluated["syscall"] == 3


def test_options_from_settings() -> None:
    options = EngineOptions().with_setting("priority", "error").with_setting("rule_matching", "all")
    options = options.with_setting("json_output", "true")
    assert options.min_priority is Priority.ERROR and options.rule_matching == "all" and options.json_output
    with pytest.raises(UsageError):
        EngineOptions().with_setting("rule_matching", "some")
    with pytest.raises(UsageError):
        EngineOptions().with_setting("nonsense", "1")
    with pytest.raises(UsageError):
        EngineOptions(timezone="Mars/Olympus")


# -- end to end through the real sources, state and extractors --------------------------------------

SHADOW_RULES = """
- rule: Shadow read
  desc: d
  condition: evt.type in (open, openat) and fd.name = /etc/shadow
  output: "%proc.name read %fd.name as %user.name (parent %proc.pname, flags %evt.arg.flags)"
  priority: WARNING
"""

SCENARIO = """
scenario: shell reads shadow
containers:
  - {id: 3ad7b26ded6d, name: web, image: docker.io/library/nginx:1.25}
processes:
  - {pid: 100, exe: /usr/sbin/nginx, args: [-g, daemon off;], container: web}
events:
  - {pid: 100, spawn: {pid: 200, exe: /bin/bash, args: [-i], tty: 34816}}
  - {pid: 200, syscall: openat, args: {name: /etc/shadow, flags: O_RDONLY}, res: 3}
"""


def test_scenario_replay(tmp_path: Path) -> None:
    path = tmp_path / "shadow.yaml"
    path.write_text(SCENARIO)
    ruleset = load_ruleset(texts=[("r.yaml", SHADOW_RULES)])
    run = replay(ruleset, [path], EngineOptions(timezone="UTC", hostname="h"))
    alerts = list(run)
    assert [a.message for a in alerts] == [
        "bash read /etc/shadow as root (parent nginx, flags O_RDONLY|FD_LOWER_LAYER) container_id=3ad7b26ded6d "
        "container_name=web container_image_repository=docker.io/library/nginx container_image_tag=1.25 "
        "k8s_pod_name=<NA> k8s_ns_name=<NA>"
    ]
    assert run.events_read == {str(path): 7}
    assert run.alerts_by_rule == {"Shadow read": 1}
    assert alerts[0].output_fields["container.id"] == "3ad7b26ded6d"


def test_explain_with_real_state(tmp_path: Path) -> None:
    from falcorules_ci.sources.scenario import load_scenario
    from falcorules_ci.state import SyscallState

    path = tmp_path / "shadow.yaml"
    path.write_text(SCENARIO)
    rules = SHADOW_RULES + """
- rule: Shadow read by root shells only
  desc: d
  condition: evt.type = openat and fd.name = /etc/shadow and proc.pname in (sshd, login)
  output: x
  priority: WARNING
"""
    engine = EmbeddedEngine(load_ruleset(texts=[("r.yaml", rules)]), EngineOptions(rule_matching="all"))
    scenario = load_scenario(path)
    state = SyscallState(scenario.header)
    for event in scenario.events():
        state.update(event)
        if event.name == "openat" and event.direction == "<":
            break
    clauses = engine.explain("Shadow read by root shells only", event, state)
    checks = {c.text: (c.result, dict(c.values)) for c in clauses if c.kind == "check"}
    assert checks["fd.name = /etc/shadow"] == (True, {"fd.name": "/etc/shadow"})
    assert checks["proc.pname in (sshd, login)"] == (False, {"proc.pname": "nginx"})
    assert [a.rule for a in engine.process(event, state)] == ["Shadow read"]


def test_legacy_mode_evaluates_enter_events_too(tmp_path: Path) -> None:
    path = tmp_path / "shadow.yaml"
    path.write_text(SCENARIO)
    ruleset = load_ruleset(texts=[("r.yaml", SHADOW_RULES)])
    current = replay(ruleset, [path])
    list(current)
    legacy = replay(ruleset, [path], EngineOptions(legacy_enter_events=True))
    list(legacy)
    assert legacy.events_evaluated > current.events_evaluated


def test_capture_replay_counts_missing_values() -> None:
    rules = """
- rule: with fd
  desc: d
  condition: fd.name exists
  output: "%fd.name"
  priority: WARNING
  warn_evttypes: false
- rule: without fd
  desc: d
  condition: not fd.name exists
  output: "%evt.type"
  priority: WARNING
  warn_evttypes: false
"""
    ruleset = load_ruleset(texts=[("r.yaml", rules)], options=LoadOptions(suggested_output=False))
    run = replay(ruleset, [CAPTURES / "cat_write.scap"], EngineOptions(rule_matching="all"))
    list(run)
    counts = run.alerts_by_rule
    # Every evaluated event fires exactly one of a check and its negation.
    assert counts["with fd"] + counts["without fd"] == run.events_evaluated
    assert counts["with fd"] > 0


def test_k8s_audit_replay(tmp_path: Path) -> None:
    event = audit_event("create", "bob", "pods", namespace="default", name="web-0", subresource="exec",
                        stage="ResponseStarted", time="2024-05-01T12:00:00.5Z", query={"command": ["bash"]})  # fmt: skip
    path = tmp_path / "audit.jsonl"
    path.write_text(to_jsonl([event]))
    ruleset = load_ruleset([K8SAUDIT])
    run = replay(ruleset, [path], EngineOptions(timezone="UTC", hostname="h"))
    alerts = list(run)
    assert [a.rule for a in alerts] == ["Attach/Exec Pod"]
    obj = json.loads(alerts[0].to_json())
    assert obj["source"] == "k8s_audit"
    assert obj["output"] == ("12:00:00.500000000: Notice Attach/Exec to pod (user=bob pod=web-0 resource=pods "
                             "ns=default action=exec command=bash)")  # fmt: skip
    assert obj["output_fields"]["ka.uri.param[command]"] == "bash"
    assert obj["output_fields"]["evt.time"] == 1714564800500000000


def test_event_stream_input_and_generated_events(ruleset: Ruleset) -> None:
    events = [open_exit(), open_exit("sh")]
    run = replay(ruleset, [EventStream("list", events)], EngineOptions(rule_matching="all"), resolver=fake_resolver)
    assert [a.rule for a in run] == ["A net shell", "B shell", "D any", "A net shell"]
    assert run.events_read == {"list": 2}


def test_k8s_event_stream_goes_to_k8s_rules_only() -> None:
    payload = audit_event("delete", "bob", "configmaps", namespace="default", name="cm",
                          time="2024-05-01T12:00:00Z")  # fmt: skip
    event = Event(1, 1714564800_000_000_000, -1, 322, "pluginevent", ">", payload=payload, source="k8s_audit")
    both = load_ruleset([K8SAUDIT], texts=[("r.yaml", SHADOW_RULES)])
    run = replay(both, [EventStream("audit", [event], source="k8s_audit")], EngineOptions(rule_matching="all"))
    assert [a.rule for a in run] == ["Disallowed K8s User", "K8s ConfigMap Deleted"]
    assert run.events_read == {"audit": 1}


def test_inputs_that_cannot_be_replayed(tmp_path: Path, ruleset: Ruleset) -> None:
    with pytest.raises(InputError, match="input not found"):
        list(replay(ruleset, [tmp_path / "missing.scap"]))
    odd = tmp_path / "notes.txt"
    odd.write_text("hello\n")
    with pytest.raises(InputError, match="cannot tell what this input is"):
        list(replay(ruleset, [odd]))
    with pytest.raises(UsageError):
        replay(ruleset, [], source="ebpf")  # type: ignore[arg-type]
