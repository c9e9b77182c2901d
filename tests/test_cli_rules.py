"""``falcorules-ci lint`` and ``list`` end to end, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import K8SAUDIT, STABLE

from falcorules_ci.cli import main

BAD = """\
- rule: r
  desc: d
  condition: evt.type=open and proc.nme=cat
  output: "%proc.name"
  priority: WARNING
"""


def test_lint_clean_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "--no-warnings", str(STABLE)]) == 0
    assert f"{STABLE}: Ok" in capsys.readouterr().err


def test_lint_error_format_and_exit_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(BAD)
    assert main(["lint", str(f)]) == 1
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith(f"{f}:3:32: error LOAD_ERR_COMPILE_CONDITION: ")
    assert "proc.nme" in first
    assert out.splitlines()[2].strip() == "^"


def test_lint_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(BAD)
    assert main(["lint", "--json", str(f)]) == 1
    payload = json.loads(capsys.readouterr().out)
    (result,) = payload["falco_load_results"]
    assert result["name"] == str(f) and result["successful"] is False
    assert result["errors"][0]["code"] == "LOAD_ERR_COMPILE_CONDITION"


def test_lint_usage_errors_exit_two(tmp_path: Path) -> None:
    assert main(["lint", str(tmp_path / "missing.yaml")]) == 2
    assert main(["lint", str(tmp_path)]) == 2  # a folder without rules files
    assert main(["lint"]) == 2
    assert main(["lint", "--plugin", "nonsense", str(STABLE)]) == 2


def test_list_json_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json", str(STABLE), str(K8SAUDIT)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 25 + 48
    shell = next(r for r in rows if r["name"] == "Terminal shell in container")
    assert shell["source"] == "syscall" and shell["enabled"] is True
    assert "T1059" in shell["attack"] and shell["priority"] == "Notice"


def test_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", str(STABLE)]) == 0
    out = capsys.readouterr().out
    assert "Terminal shell in container" in out and "25 rules" in out
