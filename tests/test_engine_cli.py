"""``falcorules-ci replay`` in-process: alerts on stdout, a summary on stderr, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from falcorules_ci.cli.replay_command import replay_command

RULES = """
- rule: Shadow read
  desc: d
  condition: evt.type in (open, openat) and fd.name = /etc/shadow
  output: "%proc.name read %fd.name"
  priority: WARNING
  tags: [files]
- rule: Shell spawned
  desc: d
  condition: evt.type = execve and proc.name = bash
  output: "shell %proc.name"
  priority: NOTICE
  tags: [shell]
"""

SCENARIO = """
scenario: shell reads shadow
processes:
  - {pid: 100, exe: /usr/sbin/nginx, args: [-g, daemon off;]}
events:
  - {pid: 100, spawn: {pid: 200, exe: /bin/bash, args: [-i]}}
  - {pid: 200, syscall: openat, args: {name: /etc/shadow, flags: O_RDONLY}, res: 3}
"""


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    return rules, scenario


def run(*args: str) -> Result:
    return CliRunner().invoke(replay_command, list(args))


def base(files: tuple[Path, Path]) -> list[str]:
    rules, scenario = files
    return [str(scenario), "-r", str(rules), "--timezone", "UTC", "-o", "append_output.suggested_output=false"]


def test_text_alerts_and_summary(files: tuple[Path, Path]) -> None:
    result = run(*base(files))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(": Notice shell bash")
    assert lines[1].endswith(": Warning bash read /etc/shadow")
    assert "events read: 7" in result.stderr
    assert "alerts: 2" in result.stderr


def test_json_alerts(files: tuple[Path, Path]) -> None:
    result = run(*base(files), "--json", "--hostname", "ci")
    assert result.exit_code == 0, result.output
    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["rule"] for a in alerts] == ["Shell spawned", "Shadow read"]
    assert alerts[0]["hostname"] == "ci"
    assert "output_fields" in alerts[0]
    assert run(*base(files), "-o", "json_output=true").stdout.startswith("{")


def test_selection_flags(files: tuple[Path, Path]) -> None:
    assert "Shadow" not in run(*base(files), "-T", "files").stdout
    assert "shell bash" not in run(*base(files), "-t", "files").stdout
    assert run(*base(files), "-D", "Sh").stdout == ""
    assert "shell bash" not in run(*base(files), "-o", "priority=warning").stdout


def test_bad_inputs_exit_two(files: tuple[Path, Path], tmp_path: Path) -> None:
    rules, _ = files
    missing = run(str(tmp_path / "missing.scap"), "-r", str(rules))
    assert missing.exit_code == 2
    assert "input not found" in missing.output
    bad_rules = tmp_path / "bad.yaml"
    bad_rules.write_text("- rule: x\n  desc: d\n  condition: proc.nme = a\n  output: o\n  priority: INFO\n")
    broken = run(str(files[1]), "-r", str(bad_rules))
    assert broken.exit_code == 2
    assert "LOAD_ERR_COMPILE_CONDITION" in broken.stderr
    assert run(str(files[1]), "-r", str(rules), "-o", "rule_matching=sometimes").exit_code == 2
    assert run(str(files[1]), "-r", str(rules), "-o", "novalue").exit_code == 2
    assert run(str(files[1])).exit_code == 2  # -r is required
