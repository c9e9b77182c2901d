"""The starter library's shell fixtures also pass when libsinsp (Debian's sysdig) is the engine."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import STABLE

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.sysdig, pytest.mark.skipif(shutil.which("sysdig") is None, reason="needs sysdig")]


def test_shell_fixture_pair_passes_on_the_sysdig_engine(tmp_path: Path) -> None:
    fixtures = sorted((ROOT / "fixtures" / "syscall").glob("container-interactive-shell*.yaml"))
    assert len(fixtures) == 2
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--falco-engine", "sysdig",
         "--falco-rules", str(STABLE.parent), "--falco-rules", "rules", "--falco-fixtures", "fixtures",
         *map(str, fixtures)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
