"""The ``pytest --falco-rules`` plugin, run in a scratch project with pytester.

Replays are answered by a conftest implementing ``pytest_falco_replay``: each inline scenario
lists the alerts to report (``fake_alerts``), built as real ``Alert`` records from the loaded
rules. Everything else (rules loading, fixtures, expectations, markers) is the real code.
"""

from __future__ import annotations

import os
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

# Imported here so that pytester's in-process runs share these modules instead of re-importing
# them: PyYAML's C loader keeps the node classes of its first import, so a second copy of the
# yaml module would see foreign nodes.
import falcorules_ci.expect.expectations
import falcorules_ci.expect.fixture
import falcorules_ci.expect.inputs
import falcorules_ci.pytest_plugin  # noqa: F401

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
# Inner runs load our plugin and leave out unrelated installed plugins that only cost start-up time.
PLUGIN = ("-p", "falcorules_ci.pytest_plugin", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
          "-p", "no:benchmark", "-W", "ignore::pytest.PytestAssertRewriteWarning")

RULES = """
- rule: Terminal shell in container
  desc: a shell in a container
  condition: evt.type = execve and proc.name = bash
  output: A shell was spawned (proc.name=%proc.name)
  priority: NOTICE
  tags: [container, shell, mitre_execution, T1059]
- rule: Read sensitive file untrusted
  desc: reads of /etc/shadow
  condition: evt.type = openat and fd.name = /etc/shadow
  output: Sensitive file opened (file=%fd.name)
  priority: WARNING
  tags: [filesystem, mitre_credential_access, T1555]
- rule: Disabled rule
  desc: never enabled
  condition: evt.type = open
  output: x
  priority: INFO
  enabled: false
"""

CONFTEST = """
import pytest
from falcorules_ci.engine.alerts import Alert

REPLAYS = []

def pytest_falco_replay(config, ruleset, fixture_input, options):
    REPLAYS.append(str(fixture_input.span.path))
    data = fixture_input.data if isinstance(fixture_input.data, dict) else {}
    if "boom" in data:
        raise RuntimeError("engine crashed")
    alerts = []
    for fake in data.get("fake_alerts", []):
        rule = ruleset.rule(fake["rule"])
        alerts.append(Alert(time=0, rule=rule.name, priority=rule.priority, source=rule.source, tags=rule.tags,
                            output=fake.get("output", rule.name), message="", hostname="h", event_num=1,
                            output_fields=fake.get("fields", {})))
    return alerts
"""

SHELL = """
id: crwd-shell
title: Shell in a web container
ioa: {name: ReverseShell, id: 10197, technique: T1059.004, tactic: TA0002, origin: sensor}
scenario:
  fake_alerts:
    - {rule: Terminal shell in container, output: "A shell was spawned (proc.name=bash)", fields: {proc.name: bash}}
fires:
  - rule: Terminal shell in container
    priority: Notice
    output_fields: {proc.name: bash}
not_fires: any
technique_policy: parent
"""

CREDS = """
id: crwd-creds
ioa: {name: CredentialDump, technique: T1555, tactic: TA0006, origin: overwatch}
scenario:
  fake_alerts:
    - {rule: Terminal shell in container, output: "A shell was spawned (proc.name=sh)"}
fires:
  - rule: Read sensitive file untrusted
not_fires: any
"""

BENIGN = """
id: quiet-admin
scenario: {fake_alerts: []}
not_fires: [Terminal shell in container]
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    (pytester.path / "rules").mkdir()
    (pytester.path / "rules" / "rules.yaml").write_text(textwrap.dedent(RULES).lstrip())
    fixtures = pytester.path / "fixtures"
    fixtures.mkdir()
    (fixtures / "shell.yaml").write_text(SHELL.lstrip())
    (fixtures / "benign.yaml").write_text(BENIGN.lstrip())
    return pytester


def add_fixture(pytester: pytest.Pytester, name: str, text: str) -> None:
    (pytester.path / "fixtures" / name).write_text(textwrap.dedent(text).lstrip())


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN, "--falco-rules", "rules", *args)


def test_collection_node_ids(project: pytest.Pytester) -> None:
    result = run(project, "--collect-only", "-q")
    result.stdout.fnmatch_lines([
        "fixtures/benign.yaml::not_fires[[]Terminal shell in container[]]",
        "fixtures/benign.yaml::not_fires[[]any[]]",
        "fixtures/shell.yaml::fires[[]Terminal shell in container[]]",
        "fixtures/shell.yaml::not_fires[[]any[]]",
        "fixtures/shell.yaml::attack_parity",
        "5 tests collected*",
    ])


def test_passing_fixtures(project: pytest.Pytester) -> None:
    result = run(project, "-v")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["falco rules: rules (engine embedded, rule_matching first)"])


def test_failure_messages_are_ours_not_tracebacks(project: pytest.Pytester) -> None:
    add_fixture(project, "creds.yaml", CREDS)
    result = run(project)
    result.assert_outcomes(passed=6, failed=2)
    result.stdout.fnmatch_lines([
        "*fixtures/creds.yaml:7:11: fires[[]Read sensitive file untrusted[]]: expected rule "
        "'Read sensitive file untrusted' to fire, but it did not",
        "expected vs fired rules (- expected, did not fire; + fired, not expected):",
        "  - Read sensitive file untrusted",
        "  + Terminal shell in container (fired 1 time)",
    ])
    result.stdout.fnmatch_lines([
        "*not_fires[[]any[]]: expected only the rules in fires to fire, but 1 other alert(s) fired",
        "*[[]Notice[]] Terminal shell in container: A shell was spawned (proc.name=sh)",
    ])
    # the rule carries T1555 exactly: parity passes even though the rule did not fire
    result.stdout.fnmatch_lines(["FAILED fixtures/creds.yaml::fires[[]Read sensitive file untrusted[]]*"])
    assert "Traceback" not in result.stdout.str()
    assert "def runtest" not in result.stdout.str()


def test_each_input_is_replayed_once(project: pytest.Pytester) -> None:
    project.makepyfile(test_count="""
        import conftest

        def test_replays_counted():
            # two fixture files, five items: one replay per file
            assert len(set(conftest.REPLAYS)) == len(conftest.REPLAYS) == 2
    """)
    result = project.runpytest(*PLUGIN, "--falco-rules", "rules", "fixtures", "test_count.py")
    result.assert_outcomes(passed=6)


def test_typo_and_parity_failures(project: pytest.Pytester) -> None:
    add_fixture(project, "typo.yaml", """
        id: typo
        ioa: {name: ReverseShell, technique: T1059.004}
        scenario: {fake_alerts: [{rule: Terminal shell in container}]}
        fires: [{rule: Terminal shell in containr}]
    """)
    add_fixture(project, "exact.yaml", """
        id: exact
        ioa: {name: ReverseShell, technique: T1059.004}
        scenario: {fake_alerts: [{rule: Terminal shell in container}]}
        fires: [{rule: Terminal shell in container}]
    """)
    result = run(project, "-k", "typo or exact")
    result.stdout.fnmatch_lines([
        "*fires[[]Terminal shell in containr[]]: no rule named 'Terminal shell in containr' in the loaded rules; "
        "did you mean 'Terminal shell in container'?",
    ])
    result.stdout.fnmatch_lines([
        "*attack_parity: IOA 'ReverseShell' maps to T1059.004 Unix Shell [[]execution TA0002[]]; technique_policy: exact",
        "  FAIL Terminal shell in container: tagged T1059, not T1059.004; tag the rule T1059.004, or set "
        "technique_policy: parent to accept the parent technique",
    ])
    result.assert_outcomes(passed=1, failed=3)


def test_broken_fixture_is_a_failing_item_with_position(project: pytest.Pytester) -> None:
    add_fixture(project, "bad.yaml", """
        id: bad
        scenario: {}
        fires:
          - rule: Terminal shell in container
            priorty: Notice
    """)
    add_fixture(project, "missing.yaml", "id: missing\ncapture: traces/none.scap\n")
    add_fixture(project, "unknown.yaml", "id: u\nioa: {name: X, technique: T9999}\nscenario: {}\n")
    result = run(project)
    result.assert_outcomes(passed=5, failed=3)
    result.stdout.fnmatch_lines([
        "*fixtures/bad.yaml:5:5: fires[[]0[]]: unknown key 'priorty'; did you mean 'priority'?",
    ])
    result.stdout.fnmatch_lines([f"*fixtures/missing.yaml:2:10: capture: capture file not found: "
                                 f"{(project.path / 'fixtures' / 'traces' / 'none.scap').resolve()}*"])  # fmt: skip
    result.stdout.fnmatch_lines(["*fixtures/unknown.yaml:2:27: ioa.technique: T9999 is not an ATT&CK Enterprise 18.1 technique"])
    result.stdout.fnmatch_lines(["FAILED fixtures/bad.yaml::fixture*"])
    assert "INTERNALERROR" not in result.stdout.str()


def test_replay_errors_fail_every_item_of_the_fixture(project: pytest.Pytester) -> None:
    add_fixture(project, "boom.yaml", "id: boom\nscenario: {boom: 1}\nfires: [{rule: Terminal shell in container}]\n"
                                      "not_fires: any\n")  # fmt: skip
    result = run(project, "-k", "boom")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*RuntimeError: engine crashed"])


def test_rules_that_fail_to_load(project: pytest.Pytester) -> None:
    (project.path / "rules" / "rules.yaml").write_text("- rule: broken\n  desc: x\n  condition: evt.type = \n"
                                                       "  output: x\n  priority: INFO\n")  # fmt: skip
    result = run(project)
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines(["the Falco rules failed to load:", "*rules.yaml:*error LOAD_ERR_COMPILE_CONDITION*"])


def test_markers_select_by_technique_and_tactic(project: pytest.Pytester) -> None:
    add_fixture(project, "creds.yaml", CREDS)
    by_parent = run(project, "-m", "T1059", "--collect-only", "-q", "--strict-markers")
    by_parent.stdout.fnmatch_lines(["fixtures/shell.yaml::attack_parity", "3/8 tests collected (5 deselected)*"])
    by_tactic = run(project, "-m", "TA0006 and not T1059", "--collect-only", "-q", "--strict-markers")
    by_tactic.stdout.fnmatch_lines(["fixtures/creds.yaml::*", "3/8 tests collected (5 deselected)*"])
    by_sub = run(project, "-m", "T1059.004", "-q", "--strict-markers")
    by_sub.assert_outcomes(passed=3)
    falco = run(project, "-m", "falco", "--collect-only", "-q")
    falco.stdout.fnmatch_lines(["8 tests collected*"])


def test_keyword_selection(project: pytest.Pytester) -> None:
    result = run(project, "-k", "parity or benign", "-q")
    result.assert_outcomes(passed=3)


def test_exitfirst_stops_after_the_first_failure(project: pytest.Pytester) -> None:
    add_fixture(project, "a_creds.yaml", CREDS)
    result = run(project, "-x")
    result.assert_outcomes(failed=1)


def test_junitxml(project: pytest.Pytester) -> None:
    add_fixture(project, "creds.yaml", CREDS)
    xml = project.path / "junit.xml"
    run(project, f"--junitxml={xml}")
    root = ET.parse(xml).getroot()
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    assert ("fixtures.shell.yaml", "fires[Terminal shell in container]") in cases
    failed = cases[("fixtures.creds.yaml", "fires[Read sensitive file untrusted]")]
    failure = failed.find("failure")
    assert failure is not None
    assert "expected rule 'Read sensitive file untrusted' to fire" in (failure.text or "")
    props = {p.get("name"): p.get("value") for p in failed.iter("property")}
    assert props == {"ioa": "CredentialDump", "technique": "T1555"}


def test_xdist_two_workers(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # worker processes must import this checkout of the package
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    add_fixture(project, "creds.yaml", CREDS)
    result = run(project, "-n", "2")
    result.assert_outcomes(passed=6, failed=2)
    result.stdout.fnmatch_lines(["*2 workers*"])


def test_coverage_gate(project: pytest.Pytester) -> None:
    result = run(project, "--falco-require-tests", "rules/rules.yaml", "-k", "require_tests")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*rules/rules.yaml:7:3: rule 'Read sensitive file untrusted' has no positive and no benign fixture",
        "  fix: add a fixture whose fires lists 'Read sensitive file untrusted'; add a fixture replaying normal "
        "activity with not_fires: ['Read sensitive file untrusted']",
    ])
    result.stdout.fnmatch_lines(["FAILED rules/rules.yaml::require_tests[[]Read sensitive file untrusted[]]*"])
    # the disabled rule needs no fixtures; the shell rule has both kinds
    assert "require_tests[Disabled rule]" not in result.stdout.str()


def test_coverage_gate_on_a_file_outside_the_pack(project: pytest.Pytester) -> None:
    (project.path / "other.yaml").write_text("- list: x\n  items: []\n")
    result = run(project, "--falco-require-tests", "other.yaml", "-k", "require_tests")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*--falco-require-tests names a rules file that is not among the loaded --falco-rules*"])


def test_ini_options(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nfalco_rules = rules\nfalco_rule_matching = all\ntestpaths = tests\n")
    (project.path / "tests").mkdir()
    result = project.runpytest(*PLUGIN, "-q")
    result.assert_outcomes(passed=5)  # fixtures/ is collected although testpaths points elsewhere
    project.makeini("[pytest]\nfalco_rules = rules\nfalco_engine = falco\n")
    bad = project.runpytest(*PLUGIN)
    bad.stderr.fnmatch_lines(["*falco_engine must be one of embedded, sysdig, not 'falco'"])


def test_custom_fixture_folder(project: pytest.Pytester) -> None:
    (project.path / "fixtures").rename(project.path / "ioa")
    result = run(project, "--falco-fixtures", "ioa", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["ioa/shell.yaml::attack_parity", "5 tests collected*"])


def test_inactive_without_rules(project: pytest.Pytester) -> None:
    project.makepyfile(test_api="""
        def test_needs_rules(falco_engine):
            pass
    """)
    result = project.runpytest(*PLUGIN, "fixtures", "test_api.py")
    result.assert_outcomes(errors=1)  # the YAML fixtures are not collected at all
    result.stdout.fnmatch_lines(["*this test needs Falco rules: pass --falco-rules PATH*"])


def test_python_api_fixtures(project: pytest.Pytester) -> None:
    project.makepyfile(test_api="""
        def test_engine(falco_engine):
            assert [r.name for r in falco_engine.rules][:2] == [
                "Terminal shell in container", "Read sensitive file untrusted"]

        def test_replay_inline(falco_replay):
            alerts = falco_replay({"fake_alerts": [{"rule": "Read sensitive file untrusted"}]})
            assert [a.rule for a in alerts] == ["Read sensitive file untrusted"]
            assert alerts[0].priority.label == "Warning"
    """)
    result = project.runpytest(*PLUGIN, "--falco-rules", "rules", "test_api.py")
    result.assert_outcomes(passed=2)


def test_replay_impl_is_swappable(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    from falcorules_ci import pytest_plugin

    seen: list[str] = []

    def fake(ruleset: object, fixture_input: object, options: object, engine: str) -> list[object]:
        seen.append(engine)
        return []

    monkeypatch.setattr(pytest_plugin, "_replay_impl", fake)
    (pytester.path / "rules.yaml").write_text(textwrap.dedent(RULES).lstrip())
    (pytester.path / "fixtures").mkdir()
    (pytester.path / "fixtures" / "quiet.yaml").write_text("id: q\nscenario: {}\n")
    result = pytester.runpytest_inprocess(*PLUGIN, "--falco-rules", "rules.yaml", "--falco-engine", "sysdig",
                                          "--falco-rule-matching", "all")  # fmt: skip
    result.assert_outcomes(passed=1)
    assert seen == ["sysdig"]


REAL_RULES = """
- rule: Shell in container
  desc: a shell started in a container
  condition: evt.type in (execve, execveat) and proc.name = bash and container.id != host
  output: Shell spawned (proc.name=%proc.name container=%container.name)
  priority: NOTICE
  tags: [container, shell, mitre_execution, T1059.004]
- rule: Pod read
  desc: a pod was read
  condition: ka.verb = get and ka.target.resource = pods
  output: pod read by %ka.user.name
  priority: INFO
  source: k8s_audit
  tags: [k8s, T1613]
"""

REAL_SCENARIO = """
id: real-shell
ioa: {name: ReverseShell, technique: T1059.004, tactic: TA0002, origin: sensor}
scenario:
  scenario: shell in a web container
  containers:
    - {id: 3ad7b26ded6d, name: web, image: docker.io/library/nginx:1.25}
  processes:
    - {pid: 100, exe: /usr/sbin/nginx, args: [-g, daemon off;], container: web}
  events:
    - {pid: 100, spawn: {pid: 200, exe: /bin/bash, args: [-i], tty: pts/0}}
fires:
  - rule: Shell in container
    priority: Notice
    output_fields: {proc.name: bash, container.name: web}
not_fires: any
"""

REAL_AUDIT = """
id: real-audit
audit_events:
  - {verb: get, user: alice, resource: pods, name: web}
fires: [{rule: Pod read, output_fields: {ka.user.name: alice}}]
not_fires: any
"""


def test_real_engine_path(pytester: pytest.Pytester) -> None:
    """No replay hook: inline scenarios and audit events go through the embedded engine."""
    (pytester.path / "rules.yaml").write_text(textwrap.dedent(REAL_RULES).lstrip())
    fixtures = pytester.path / "fixtures"
    fixtures.mkdir()
    (fixtures / "shell.yaml").write_text(REAL_SCENARIO.lstrip())
    (fixtures / "audit.yaml").write_text(REAL_AUDIT.lstrip())
    (fixtures / "broken.yaml").write_text("id: broken\nscenario:\n  scenario: x\n  events:\n    - {pid: 1, bogus: 1}\n"
                                          "fires: [{rule: Shell in container}]\n")  # fmt: skip
    result = pytester.runpytest(*PLUGIN, "--falco-rules", "rules.yaml")
    result.assert_outcomes(passed=5, failed=1)
    # the scenario reader's error points into the fixture file
    result.stdout.fnmatch_lines(["fixtures/broken.yaml:5:*: events[[]0[]]: unknown key 'bogus'*"])


def test_pack_attack_tags_unknown_ids_fail_with_the_rule_position(project: pytest.Pytester) -> None:
    rules = project.path / "rules" / "rules.yaml"
    rules.write_text(rules.read_text().replace("T1555", "T9999"))
    result = run(project, "-k", "attack_tags")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*rules/rules.yaml:7:3: rule 'Read sensitive file untrusted':*T9999*"])


def test_pack_attack_tags_tactic_mismatch_warns(project: pytest.Pytester) -> None:
    rules = project.path / "rules" / "rules.yaml"
    rules.write_text(rules.read_text().replace("mitre_execution, T1059", "mitre_exfiltration, T1059"))
    result = run(project, "-k", "attack_tags", "-W", "default::falcorules_ci.pytest_plugin.FalcoAttackWarning")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*FalcoAttackWarning*Terminal shell in container*"])


def test_clean_pack_tags_add_no_item(project: pytest.Pytester) -> None:
    result = run(project, "--collect-only", "-q")
    assert "attack_tags" not in result.stdout.str()
