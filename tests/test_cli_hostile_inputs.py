"""Whatever bytes a user hands ``replay``, the answer is a clear error (exit 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import STABLE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from falcorules_ci.cli import main

SUFFIXES = ("scap", "yaml", "json", "jsonl", "bin")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=600), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_inputs_exit_cleanly(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"input.{suffix}"
    path.write_bytes(data)
    code = main(["replay", "-r", str(STABLE), "--timezone", "UTC", str(path)])
    assert code in (0, 2)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_invalid_utf8_input_is_a_usage_error(tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"input.{suffix}"
    path.write_bytes(b"\xdf\xff\x00garbage\xfe" * 50)
    assert main(["replay", "-r", str(STABLE), str(path)]) == 2
    assert f"Error: {path}" in capsys.readouterr().err
