"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import STABLE

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_fixture_example_passes(tmp_path: Path) -> None:
    block = re.search(r"A minimal fixture.*?```yaml\n(.*?)```", README, re.S)
    assert block is not None
    (tmp_path / "shell.yaml").write_text(block.group(1))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--falco-rules", str(STABLE.parent),
         "--falco-fixtures", str(tmp_path), str(tmp_path), "-W", "ignore"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "4 passed" in proc.stdout


def test_readme_falco_replay_example(tmp_path: Path) -> None:
    block = re.search(r"```python\n(def test_web_server_shell.*?)```", README, re.S)
    assert block is not None
    (tmp_path / "scenarios").symlink_to(ROOT / "tests" / "scenarios")
    (tmp_path / "test_example.py").write_text(block.group(1))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--falco-rules", str(STABLE.parent),
         "--falco-fixtures", str(tmp_path / "none"), str(tmp_path / "test_example.py"), "-W", "ignore", "-k", "web_server_shell"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "1 passed" in proc.stdout
