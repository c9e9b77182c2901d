"""``falcorules-ci replay --engine sysdig``: the same rules, evaluated by Debian's sysdig."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import STABLE

from falcorules_ci.cli import main

pytestmark = [pytest.mark.sysdig, pytest.mark.skipif(shutil.which("sysdig") is None, reason="needs sysdig")]
SCENARIO = Path(__file__).parent / "scenarios" / "stable" / "terminal-shell-in-container.fire.yaml"


def test_sysdig_engine_fires_the_same_rule_and_names_uncheckable_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--engine", "sysdig", "-r", str(STABLE), "-o", "rule_matching=all", "--timezone", "UTC",
                 str(SCENARIO)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1 and ": Notice A shell was spawned in a container with an attached terminal" in lines[0]
    assert "not checkable with sysdig 0.29.3: Run shell untrusted: fields unknown to sysdig 0.29.3: proc.pexe" in (
        captured.err)


def test_sysdig_engine_refuses_audit_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audit = tmp_path / "audit.jsonl"
    audit.write_text('{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","stage":"ResponseComplete",'
                     '"stageTimestamp":"2024-01-01T00:00:00.000000Z","verb":"get"}\n')
    assert main(["replay", "--engine", "sysdig", "-r", str(STABLE), str(audit)]) == 2
