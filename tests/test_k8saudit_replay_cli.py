"""``falcorules-ci replay`` over a large audit log with malformed lines, through the k8saudit pack.

The log has 20,000 JSON Lines: kubelet lease renewals and the admin's reads (no rule reports
them) and, every 1,000th line, a ``kubectl exec`` whose pod is named after its line number (the
"Attach/Exec Pod" rule reports it). Line 12,345 is cut off mid-event (a partial write) and line
17,001 is a stray text line. ``--on-error stop`` must stop at line 12,345 and say so;
``--on-error skip`` must replay everything else and count the two lines it skipped.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import K8SAUDIT

from falcorules_ci.cli import main
from falcorules_ci.errors import Span
from falcorules_ci.sources.k8saudit import audit_event, expand_shorthand

LINES = 20_000
CUT_LINE = 12_345
TEXT_LINE = 17_001
EXEC_EVERY = 1_000
EXEC_LINES = list(range(EXEC_EVERY, LINES + 1, EXEC_EVERY))


@dataclass(frozen=True, slots=True)
class CliRun:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliRun:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["replay", *args])
    return CliRun(code, out.getvalue(), err.getvalue())


def _exec_line(line_no: int) -> str:
    doc = {"user": "alice", "namespace": "shop", "name": f"web-{line_no}",
           "exec": {"command": ["sh", "-c", "id"], "container": "web", "stdin": True, "tty": True}}  # fmt: skip
    return json.dumps(expand_shorthand(doc, Span("generated", line_no, 1)), separators=(",", ":"))


def write_log(path: Path) -> None:
    quiet = [
        audit_event("update", f"system:node:worker-{k}", "leases", namespace="kube-node-lease", name=f"worker-{k}",
                    api_group="coordination.k8s.io", level="Metadata", audit_id="ID")
        for k in range(3)
    ] + [audit_event("list", "kubernetes-admin", "pods", namespace="shop", level="Metadata", audit_id="ID")]  # fmt: skip
    templates = [json.dumps(event, separators=(",", ":")) for event in quiet]
    lines = []
    for line_no in range(1, LINES + 1):
        if line_no % EXEC_EVERY == 0:
            lines.append(_exec_line(line_no))
        else:
            template = templates[line_no % len(templates)]
            lines.append(template.replace('"auditID":"ID"', f'"auditID":"00000000-0000-4000-8000-{line_no:012d}"'))
    lines[CUT_LINE - 1] = lines[CUT_LINE - 1][:150]
    lines[TEXT_LINE - 1] = "audit log rotated by logrotate"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def audit_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("k8saudit") / "kube-apiserver-audit.log"
    write_log(path)
    return path


def replay_args(path: Path, *extra: str) -> list[str]:
    return [str(path), "-r", str(K8SAUDIT), "--timezone", "UTC", "-o", "rule_matching=all", *extra]


def alerted_lines(stdout: str) -> list[int]:
    """The line numbers of the exec events that were reported (from the pod names)."""
    lines = stdout.splitlines()
    assert all(": Notice Attach/Exec to pod (user=alice pod=web-" in line for line in lines), lines[:3]
    numbers = []
    for line in lines:
        match = re.search(r"pod=web-(\d+) ", line)
        assert match is not None, line
        numbers.append(int(match.group(1)))
    return numbers


@pytest.fixture(scope="module")
def skipped_run(audit_log: Path) -> CliRun:
    return run_cli(*replay_args(audit_log, "--on-error", "skip"))


@pytest.mark.parametrize("flags", [("--on-error", "stop"), ()], ids=["stop", "default"])
def test_stop_names_the_line_and_stops_there(audit_log: Path, flags: tuple[str, ...]) -> None:
    result = run_cli(*replay_args(audit_log, *flags))
    assert result.code == 2
    assert re.search(rf"^Error: {re.escape(str(audit_log))}:{CUT_LINE}:\d+: malformed JSON", result.stderr, re.M)
    # Everything before the bad line was replayed and reported; nothing after it.
    assert alerted_lines(result.stdout) == [n for n in EXEC_LINES if n < CUT_LINE]
    assert f"events read: {CUT_LINE - 1}\n" in result.stderr
    assert "skipped" not in result.stderr


def test_skip_replays_the_rest_and_counts_what_it_skipped(skipped_run: CliRun) -> None:
    assert skipped_run.code == 0, skipped_run.stderr
    assert alerted_lines(skipped_run.stdout) == EXEC_LINES
    assert f"events read: {LINES - 2}\n" in skipped_run.stderr
    assert f"alerts: {len(EXEC_LINES)}\n" in skipped_run.stderr
    assert re.search(r"^skipped in .*kube-apiserver-audit\.log: 2 x malformed_json$", skipped_run.stderr, re.M)
    assert "Error" not in skipped_run.stderr


def test_skip_names_the_lines_it_skipped(audit_log: Path, skipped_run: CliRun) -> None:
    for line_no in (CUT_LINE, TEXT_LINE):
        assert f"{audit_log}:{line_no}:" in skipped_run.stderr
