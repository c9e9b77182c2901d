"""``falcorules-ci test`` (pytest in-process, summary tables) and ``falcorules-ci explain``."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

# Shared with the in-process pytest runs (see test_pytest_plugin.py for why).
import falcorules_ci.expect.explain
import falcorules_ci.pytest_plugin  # noqa: F401
from falcorules_ci.cli.explain_command import explain_command
from falcorules_ci.cli.test_command import project_settings, show_progress
from falcorules_ci.cli.test_command import test_command as run_command  # not collected as a test

ROOT = Path(__file__).resolve().parent.parent

RULES = """
- rule: Shell in container
  desc: a shell started in a container
  condition: evt.type in (execve, execveat) and proc.name = bash and container.id != host
  output: Shell spawned (proc.name=%proc.name container=%container.name)
  priority: NOTICE
  tags: [container, shell, T1059.004]
- rule: Shadow read
  desc: reads of /etc/shadow
  condition: evt.type in (open, openat) and fd.name = /etc/shadow
  output: shadow read by %proc.name
  priority: WARNING
  tags: [T1003.008]
"""

SHELL = """
id: shell
ioa: {name: ContainerShell, technique: T1059.004}
scenario:
  scenario: bash in a web container
  containers: [{id: 3ad7b26ded6d, name: web, image: nginx:1.25}]
  processes: [{pid: 100, exe: /usr/sbin/nginx, container: web}]
  events:
    - {pid: 100, spawn: {pid: 200, exe: /bin/bash}}
fires: [{rule: Shell in container}]
not_fires: any
"""

QUIET = """
id: quiet
scenario:
  scenario: ls on the host
  processes: [{pid: 100, exe: /bin/sh}]
  events:
    - {pid: 100, spawn: {pid: 200, exe: /bin/ls}}
not_fires: [Shell in container]
"""

SHADOW_MISSED = """
id: shadow
ioa: {name: CredentialDump, technique: T1003.008}
scenario:
  scenario: passwd read instead
  processes: [{pid: 100, exe: /bin/cat}]
  events:
    - {pid: 100, read_file: /etc/passwd}
fires: [{rule: Shadow read}]
"""

# Inner pytest runs: this checkout's plugin, no unrelated installed plugins, no cache files.
INNER = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(textwrap.dedent(RULES).lstrip())
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "shell.yaml").write_text(SHELL.lstrip())
    (tmp_path / "fixtures" / "quiet.yaml").write_text(QUIET.lstrip())
    (tmp_path / "pyproject.toml").write_text('[tool.falcorules]\nrules = ["rules/rules.yaml"]\nfixtures = "fixtures"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def invoke(command: click.Command, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(command, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


# -- test ------------------------------------------------------------------------------------------


def test_passing_project_prints_both_tables(project: Path) -> None:
    code, out, _ = invoke(run_command, *INNER)
    assert code == 0, out
    assert "ATT&CK techniques" in out and "Fixtures" in out
    technique_row = next(line for line in out.splitlines() if "T1059.004" in line and "Unix Shell" in line)
    assert technique_row.split("│")[3:6] == ["        1 ", "    1 ", "    0 "]
    shell_row = next(line for line in out.splitlines() if "fixtures/shell.yaml" in line)
    assert "pass (3)" in shell_row and "Shell in container" in shell_row  # fires, not_fires, attack_parity
    quiet_row = next(line for line in out.splitlines() if "fixtures/quiet.yaml" in line)
    assert "pass (2)" in quiet_row and "(none)" in quiet_row and "│ -" in quiet_row
    assert "2 fixtures: 2 passed, 0 failed (5 expectations, 0 failed)" in out


def test_failures_exit_1_with_the_explanation(project: Path) -> None:
    (project / "fixtures" / "shadow.yaml").write_text(SHADOW_MISSED.lstrip())
    code, out, _ = invoke(run_command, *INNER)
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith("│ T1003.008"))
    assert row.split("│")[3:6] == ["        1 ", "    0 ", "    1 "]
    assert "FAIL (1/2: fires[Shadow read])" in out
    assert "FAILED fixtures/shadow.yaml::fires[Shadow read]" in out
    assert "expected rule 'Shadow read' to fire, but it did not" in out
    assert 'fd.name = /etc/shadow  [fd.name is "/etc/passwd"]' in out
    assert "3 fixtures: 2 passed, 1 failed (7 expectations, 1 failed)" in out


def test_keyword_selection_and_options_override_the_project(project: Path) -> None:
    code, out, _ = invoke(run_command, *INNER, "-k", "quiet", "--rule-matching", "all")
    assert code == 0
    assert "fixtures/quiet.yaml" in out and "fixtures/shell.yaml" not in out
    assert "1 fixtures: 1 passed" in out


def test_two_workers_still_report_the_rules_fired(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    code, out, _ = invoke(run_command, *INNER, "-n", "2")
    assert code == 0, out
    shell_row = next(line for line in out.splitlines() if "fixtures/shell.yaml" in line)
    assert "Shell in container" in shell_row


def test_usage_errors_exit_2(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    code, _, err = invoke(run_command, *INNER, "--fixtures", "nowhere")
    assert code == 2 and "fixture folder not found" in err
    code, _, err = invoke(run_command, *INNER, "-r", "missing.yaml")
    assert code == 2 and "no such file or directory" in err
    (project / "pyproject.toml").write_text('[tool.falcorules]\nrule = ["rules/rules.yaml"]\n')
    code, _, err = invoke(run_command, *INNER)
    assert code == 2 and "unknown key(s) in [tool.falcorules]: rule (known: rules, fixtures" in err
    (project / "pyproject.toml").write_text("[tool.other]\n")
    code, _, err = invoke(run_command, *INNER)
    assert code == 2 and "no rules to test: pass -r RULES" in err
    empty = tmp_path_factory.mktemp("empty")
    code, _, err = invoke(run_command, *INNER, "-r", "rules/rules.yaml", "--fixtures", str(empty))
    assert code == 2 and "no fixtures collected under" in err
    code, _, _ = invoke(run_command, *INNER, "--no-such-pytest-option")
    assert code == 2


def test_project_settings_are_read_from_the_nearest_pyproject(project: Path) -> None:
    (project / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.falcorules]
        rules = ["rules/a.yaml", "rules/b.yaml"]
        fixtures = "tests/fixtures"
        rule_matching = "all"
        require_tests = "rules/b.yaml"
    """))
    nested = project / "deep" / "er"
    nested.mkdir(parents=True)
    settings = project_settings(nested)
    assert settings.root == project and settings.source == project / "pyproject.toml"
    assert settings.rules == (project / "rules" / "a.yaml", project / "rules" / "b.yaml")
    assert settings.fixtures == project / "tests" / "fixtures"
    assert settings.rule_matching == "all" and settings.engine is None
    assert settings.require_tests == (project / "rules" / "b.yaml",)


def test_progress_bar_only_on_a_terminal_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Console(force_terminal=True)
    piped = Console(force_terminal=False)
    monkeypatch.delenv("CI", raising=False)
    assert show_progress(terminal, None) and not show_progress(piped, None)
    monkeypatch.setenv("CI", "true")
    assert not show_progress(terminal, None)
    assert show_progress(piped, True) and not show_progress(terminal, False)
    monkeypatch.setenv("CI", "false")
    assert show_progress(terminal, None)


def test_progress_bar_runs_beside_the_tables(project: Path) -> None:
    code, out, _ = invoke(run_command, *INNER, "--progress")
    assert code == 0 and "2 fixtures: 2 passed" in out


# -- explain ---------------------------------------------------------------------------------------


def test_explain_a_scenario_file(project: Path) -> None:
    (project / "scenario.yaml").write_text(textwrap.dedent("""
        scenario: bash on the host
        processes: [{pid: 100, exe: /bin/sh}]
        events:
          - {pid: 100, spawn: {pid: 200, exe: /bin/bash}}
    """).lstrip())
    code, out, _ = invoke(explain_command, "--rule", "Shell in container", "scenario.yaml")
    assert code == 0
    assert "scenario.yaml: 5 events, 0 alert(s)" in out
    assert "rule 'Shell in container' did not fire: its condition is false on all 1 candidate event(s); nearest " \
           "miss: container.id != host is false" in out  # fmt: skip
    assert 'FALSE  container.id != host  [container.id is "host"]' in out
    assert "scenario.yaml:4:" in out  # the event's line


def test_explain_a_fixture_defaults_to_its_rules_and_json(project: Path) -> None:
    code, out, _ = invoke(explain_command, "--json", "fixtures/shell.yaml")
    assert code == 0
    data = json.loads(out)
    assert [r["rule"] for r in data["rules"]] == ["Shell in container"]
    assert data["rules"][0]["status"] == "fired" and data["rules"][0]["conjuncts_true"] == 3
    code, out, _ = invoke(explain_command, "-r", "rules/rules.yaml", "fixtures/quiet.yaml")
    assert code == 0 and "rule 'Shell in container' did not fire" in out


def test_explain_usage_errors(project: Path) -> None:
    code, _, err = invoke(explain_command, "--rule", "Shell in containr", "fixtures/shell.yaml")
    assert code == 2 and "did you mean 'Shell in container'?" in err
    code, _, err = invoke(explain_command, "--rule", "x", "missing.yaml")
    assert code == 2 and "no such file" in err
    (project / "pyproject.toml").write_text("")
    code, _, err = invoke(explain_command, "--rule", "x", "fixtures/shell.yaml")
    assert code == 2 and "no rules: pass -r RULES" in err
    (project / "broken.yaml").write_text("- rule: x\n  condition: evt.type = \n")
    code, _, err = invoke(explain_command, "-r", "broken.yaml", "--rule", "x", "fixtures/shell.yaml")
    assert code == 2 and "rules failed to load" in err
