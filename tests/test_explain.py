"""Clause-level explanations: which conjunct of the expanded condition was false, on which event,
with which field values; and the same text in the plugin's failure messages."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

# Shared with pytester's in-process runs (see test_pytest_plugin.py for why).
import falcorules_ci.expect.explain
import falcorules_ci.pytest_plugin  # noqa: F401
from falcorules_ci import EngineOptions, Ruleset, load_fixture, load_ruleset, replay
from falcorules_ci.errors import UsageError
from falcorules_ci.expect.expectations import expectations_of
from falcorules_ci.expect.explain import Clause, ReplaySession, explain_input, failure_explanation, show_value
from falcorules_ci.expect.inputs import adhoc_input, open_input

pytest_plugins = ["pytester"]

RULES = """
- macro: spawned_process
  condition: evt.type in (execve, execveat)
- list: shell_binaries
  items: [bash, zsh]
- macro: shell_procs
  condition: proc.name in (shell_binaries)
- macro: web_parent
  condition: proc.pname in (nginx, httpd) or proc.pname startswith php
- rule: Zsh anywhere
  desc: zsh, claims the event first
  condition: spawned_process and proc.name = zsh
  output: zsh (proc.name=%proc.name)
  priority: NOTICE
- rule: Web shell
  desc: a shell under a web server
  condition: spawned_process and shell_procs and web_parent and not proc.args contains "--version"
  output: Web shell (proc.name=%proc.name parent=%proc.pname)
  priority: WARNING
  tags: [T1505.003]
- rule: Shadow read
  desc: reads of /etc/shadow
  condition: evt.type in (open, openat) and fd.name = /etc/shadow
  output: shadow read by %proc.name
  priority: ERROR
- rule: Quiet exec
  desc: loaded disabled
  condition: spawned_process and proc.name = bash
  output: exec %proc.name
  priority: INFO
  enabled: false
- rule: Pod read
  desc: a pod was read
  condition: ka.verb = get and ka.target.resource = pods
  output: pod read by %ka.user.name
  priority: INFO
  source: k8s_audit
"""


@pytest.fixture(scope="module")
def ruleset(tmp_path_factory: pytest.TempPathFactory) -> Ruleset:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(textwrap.dedent(RULES).lstrip())
    rs = load_ruleset([path])
    assert rs.successful, [str(e.diagnostic()) for r in rs.results for e in r.errors]
    return rs


def scenario(*events: dict[str, Any], parent: str = "/usr/sbin/nginx") -> dict[str, Any]:
    return {"scenario": "test", "processes": [{"pid": 100, "exe": parent}], "events": list(events)}


def spawn(pid: int, exe: str, args: list[str] | None = None, parent: int = 100) -> dict[str, Any]:
    return {"pid": parent, "spawn": {"pid": pid, "exe": exe, "args": args or []}}


def explain(ruleset: Ruleset, data: Any, *rules: str, **options: Any) -> Any:
    return explain_input(ruleset, adhoc_input(data), list(rules), EngineOptions(**options))


def test_the_false_conjunct_with_the_value_that_made_it_false(ruleset: Ruleset) -> None:
    result = explain(ruleset, scenario(spawn(200, "/bin/sh")), "Web shell").rule("Web shell")
    assert result.status == "no_match"
    assert [(c.shown, c.result) for c in result.conjuncts] == [
        ("spawned_process", True), ("shell_procs", False), ("web_parent", True),
        ('not proc.args contains "--version"', True),
    ]  # fmt: skip
    shell = result.conjuncts[1]
    assert shell.text == "proc.name in (bash, zsh)" and shell.values == (("proc.name", "sh"),)
    # Falco never evaluates what follows the first false conjunct.
    assert [c.reached for c in result.conjuncts] == [True, True, False, False]
    assert result.event is not None and result.event.name == "execve" and result.event.tid == 200
    text = result.to_text()
    assert "nearest miss: shell_procs is false" in text
    assert '2. FALSE  shell_procs  [proc.name is "sh"]' in text
    assert '4. true   not proc.args contains "--version"  (not reached)' in text
    assert text.endswith("(not reached: Falco stops at the first false conjunct; shown for information)")


def test_a_false_macro_is_taken_apart(ruleset: Ruleset) -> None:
    data = scenario(spawn(200, "/bin/bash"), parent="/usr/bin/python3")
    result = explain(ruleset, data, "Web shell").rule("Web shell")
    web = result.conjuncts[2]
    assert (web.label, web.kind, web.result) == ("web_parent", "or", False)
    shown, more = web.reasons()  # a false `or`: every alternative, each false
    assert more == 0
    assert [(c.text, c.values) for c in shown] == [
        ("proc.pname in (nginx, httpd)", (("proc.pname", "python3"),)),
        ("proc.pname startswith php", (("proc.pname", "python3"),)),
    ]
    text = result.to_text()
    assert "= proc.pname in (nginx, httpd) or proc.pname startswith php" in text
    assert 'FALSE  proc.pname in (nginx, httpd): proc.pname is "python3"' in text


def test_a_false_negation_shows_what_was_true(ruleset: Ruleset) -> None:
    data = scenario(spawn(200, "/bin/bash", ["--version"]))
    result = explain(ruleset, data, "Web shell").rule("Web shell")
    negation = result.conjuncts[3]
    assert (negation.kind, negation.result) == ("not", False)
    (inner,), _ = negation.reasons()
    assert inner.result and inner.values == (("proc.args", "--version"),)
    assert "true   proc.args contains \"--version\": proc.args is \"--version\"" in result.to_text()


def test_the_nearest_candidate_has_most_conjuncts_true_latest_on_ties(ruleset: Ruleset) -> None:
    events = [
        spawn(200, "/bin/bash", parent=100),  # 3 of 4 true under python3 (web_parent false)
        spawn(201, "/bin/ls"),  # 2 of 4
        spawn(202, "/bin/bash", ["-c", "id"]),  # 3 of 4 again: a tie, and later
        spawn(203, "/bin/cat"),
    ]
    data = {"scenario": "t", "processes": [{"pid": 100, "exe": "/usr/bin/python3"}], "events": events}
    result = explain(ruleset, data, "Web shell").rule("Web shell")
    assert result.candidates == 4 and result.satisfied == 3
    assert result.event is not None and result.event.tid == 202


def test_checks_inside_conjuncts_break_ties(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent("""
        - rule: Nested
          desc: d
          condition: evt.type = execve and (proc.name = bash and proc.pname = nginx) and proc.args contains x
          output: o
          priority: INFO
    """))
    # Both events have one top-level conjunct true; inside the second, bash gets one check more.
    data = scenario(spawn(200, "/bin/bash", ["y"]), spawn(201, "/bin/sh", ["y"]), parent="/usr/bin/python3")
    result = explain_input(load_ruleset([path]), adhoc_input(data), ["Nested"]).rule("Nested")
    assert result.satisfied == 1
    assert result.event is not None and result.event.tid == 200


def test_fired_rule_reports_its_event_and_output(ruleset: Ruleset) -> None:
    explained = explain(ruleset, scenario(spawn(200, "/bin/bash")), "Web shell")
    result = explained.rule("Web shell")
    assert result.status == "fired" and result.fired == 1 and result.satisfied == 4
    assert result.alerts[0].event.tid == 200
    assert "Web shell (proc.name=bash parent=nginx)" in result.alerts[0].output
    assert [a.rule for a in explained.alerts] == ["Web shell"]


def test_an_earlier_rule_matching_first_preempts(ruleset: Ruleset) -> None:
    data = scenario(spawn(200, "/bin/zsh"))
    result = explain(ruleset, data, "Web shell").rule("Web shell")
    assert result.status == "preempted" and result.preempted_by == ("Zsh anywhere",)
    assert "rule_matching is first and 'Zsh anywhere' matched that event first" in result.summary
    assert explain(ruleset, data, "Web shell", rule_matching="all").rule("Web shell").status == "fired"


def test_a_rule_the_options_do_not_run(ruleset: Ruleset) -> None:
    result = explain(ruleset, scenario(spawn(200, "/bin/bash")), "Quiet exec").rule("Quiet exec")
    assert result.status == "not_selected"
    assert result.summary.endswith("it is loaded with enabled: false; if it ran, it would have fired")
    result = explain(ruleset, scenario(spawn(200, "/bin/bash")), "Shadow read", min_priority=_warning()).rule(
        "Shadow read"
    )
    assert result.status == "no_candidates"  # the priority is fine, the input has no open
    result = explain(ruleset, scenario(spawn(200, "/bin/sh")), "Web shell", disabled_tags=frozenset({"T1505.003"}))
    assert result.rule("Web shell").summary == (
        "rule 'Web shell' did not fire: one of its tags is disabled with -T; if it ran, it would not have fired either"
    )


def _warning() -> Any:
    from falcorules_ci import Priority

    return Priority.WARNING


def test_no_candidate_events(ruleset: Ruleset) -> None:
    result = explain(ruleset, scenario(spawn(200, "/bin/bash")), "Shadow read").rule("Shadow read")
    assert result.status == "no_candidates" and result.event is None and result.candidates == 0
    assert result.summary == ("rule 'Shadow read' did not fire: the input has no open, openat events, the only "
                              "events the rule is evaluated on")  # fmt: skip


def test_audit_rules_are_explained_on_audit_events(ruleset: Ruleset) -> None:
    data = [{"verb": "list", "user": "alice", "resource": "pods"}, {"verb": "get", "user": "bob", "resource": "secrets"}]
    result = explain(ruleset, data, "Pod read").rule("Pod read")
    assert result.status == "no_match" and result.candidates == 2
    assert result.event is not None and result.event.num == 2 and result.event.source == "k8s_audit"
    assert [(c.text, c.result, c.values) for c in result.conjuncts] == [
        ("ka.verb = get", True, (("ka.verb", "get"),)),
        ("ka.target.resource = pods", False, (("ka.target.resource", "secrets"),)),
    ]
    assert explain(ruleset, data, "Web shell").rule("Web shell").summary.endswith("the input has no execve, "
                                                                                  "execveat events, the only events "
                                                                                  "the rule is evaluated on")  # fmt: skip


def test_unknown_rule_names_are_usage_errors(ruleset: Ruleset) -> None:
    with pytest.raises(UsageError, match="did you mean 'Web shell'"):
        explain(ruleset, scenario(), "Web shel")


def test_json_form(ruleset: Ruleset) -> None:
    data = scenario(spawn(200, "/bin/sh"), spawn(201, "/bin/zsh"), parent="/usr/bin/python3")
    explained = explain(ruleset, data, "Web shell", "Zsh anywhere")
    data = json.loads(json.dumps(explained.to_json()))
    web = data["rules"][0]
    assert web["status"] == "no_match" and web["conjuncts_true"] == 3 and web["conjuncts_total"] == 4
    assert web["event"]["tid"] == 201 and web["event"]["type"] == "execve"
    shell, parent = web["conjuncts"][1:3]
    assert shell["label"] == "shell_procs" and shell["result"] is True and "because" not in shell
    assert shell["values"] == [{"operand": "proc.name", "value": "zsh"}]
    assert parent["label"] == "web_parent" and parent["result"] is False and parent["kind"] == "or"
    assert [(c["text"], c["values"][0]["value"]) for c in parent["because"]] == [
        ("proc.pname in (nginx, httpd)", "python3"), ("proc.pname startswith php", "python3"),
    ]  # fmt: skip
    assert data["rules"][1]["status"] == "fired"
    assert [a["rule"] for a in data["alerts"]] == ["Zsh anywhere"]


def test_values_are_shown_as_a_rule_author_reads_them() -> None:
    assert show_value(None) == "<NA>"
    assert show_value("a b") == '"a b"'
    assert show_value(True) == "true"
    assert show_value(list(range(10))) == "(0, 1, 2, 3, 4, 5, 6, 7, ... 2 more)"
    false_and = Clause("and", "a and b", False, True, children=(
        Clause("check", "a", True, True), Clause("check", "b", False, True), Clause("check", "c", False, False),
    ))  # fmt: skip
    assert [c.text for c in false_and.reasons()[0]] == ["b"]


def test_session_replays_match_a_fresh_engine_and_do_not_leak_state(ruleset: Ruleset) -> None:
    first = adhoc_input(scenario(spawn(200, "/bin/bash"), spawn(201, "/bin/zsh")))
    second = adhoc_input(scenario(spawn(200, "/bin/bash", ["x"])))
    session = ReplaySession(ruleset, EngineOptions(hostname="h", timezone="UTC"))
    for item in (first, second, first):
        with open_input(item) as opened:
            fresh = list(replay(ruleset, [opened], EngineOptions(hostname="h", timezone="UTC")))
        assert session.alerts(item) == fresh
        assert fresh


def test_failure_explanations_for_fires_and_not_fires(ruleset: Ruleset, tmp_path: Path) -> None:
    fixture_path = tmp_path / "f.yaml"
    fixture_path.write_text(textwrap.dedent("""
        id: f
        scenario:
          scenario: shell under python
          processes: [{pid: 100, exe: /usr/bin/python3}]
          events:
            - {pid: 100, spawn: {pid: 200, exe: /bin/zsh}}
        fires: [{rule: Web shell}]
        not_fires: any
    """).lstrip())
    fixture = load_fixture(fixture_path)
    session = ReplaySession(ruleset)
    alerts = session.alerts(fixture.input)
    fires, not_fires = expectations_of(fixture)
    why = failure_explanation(session, fixture, fires, alerts)
    assert why is not None and why.startswith("why it did not fire:\n  rule 'Web shell' did not fire:")
    assert f"at {fixture_path}:6:" in why  # the event's line in the fixture
    assert 'FALSE  web_parent' in why and 'proc.pname is "python3"' in why
    where = failure_explanation(session, fixture, not_fires, alerts)
    assert where is not None and where.startswith("where they fired:\n  rule 'Zsh anywhere' fired 1 time")
    assert "zsh (proc.name=zsh)" in where
    # A rule that fired with other output fields is already explained by the expectation itself.
    assert failure_explanation(session, fixture, fires, [*alerts, _alert_of("Web shell")]) is None


def _alert_of(rule: str) -> Any:
    class FakeAlert:
        pass

    alert = FakeAlert()
    alert.rule = rule  # type: ignore[attr-defined]
    return alert


# -- in the plugin's failure messages -------------------------------------------------------------------


FAILING = """
id: web-shell
scenario:
  scenario: a shell under python, not a web server
  processes: [{pid: 100, exe: /usr/bin/python3}]
  events:
    - {pid: 100, spawn: {pid: 200, exe: /bin/bash}}
    - {pid: 100, spawn: {pid: 201, exe: /bin/zsh}}
fires: [{rule: Web shell}]
not_fires: any
"""


def test_plugin_failures_carry_the_explanation(pytester: pytest.Pytester) -> None:
    (pytester.path / "rules.yaml").write_text(textwrap.dedent(RULES).lstrip())
    (pytester.path / "fixtures").mkdir()
    (pytester.path / "fixtures" / "web.yaml").write_text(FAILING.lstrip())
    result = pytester.runpytest("-p", "falcorules_ci.pytest_plugin", "-p", "no:cacheprovider", "-p", "no:benchmark", "--falco-rules",
                                "rules.yaml")  # fmt: skip
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*fixtures/web.yaml:8:*: fires[[]Web shell[]]: expected rule 'Web shell' to fire, but it did not",
        "expected vs fired rules*",
        "  - Web shell",
        "  + Zsh anywhere (fired 1 time)",
        "why it did not fire:",
        "  rule 'Web shell' did not fire: its condition is false on all 2 candidate event(s); nearest miss: "
        "web_parent is false",
        "*nearest candidate of 2 candidate events: event #* execve < (tid 201) at fixtures/web.yaml:7:*, 3 of 4 *",
        "*3. FALSE  web_parent",
        '*FALSE  proc.pname in (nginx, httpd): proc.pname is "python3"',
    ])
    result.stdout.fnmatch_lines([
        "*not_fires[[]any[]]: expected only the rules in fires to fire, but 1 other alert(s) fired",
        "where they fired:",
        "  rule 'Zsh anywhere' fired 1 time",
        "*alert on event #* execve < (tid 201) at fixtures/web.yaml:7:*",
    ])
