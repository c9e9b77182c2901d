"""Shared test settings: where the upstream rule packs and captures live (one setting)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = Path(os.environ.get("FALCORULES_UPSTREAM", ROOT.parent / "shared" / "upstream")).resolve()

STABLE = UPSTREAM / "falcosecurity-rules" / "falco-rules-5.1.0" / "falco_rules.yaml"
INCUBATING = UPSTREAM / "falcosecurity-rules" / "falco-incubating-rules-6.0.1" / "falco-incubating_rules.yaml"
SANDBOX = UPSTREAM / "falcosecurity-rules" / "falco-sandbox-rules-6.1.0" / "falco-sandbox_rules.yaml"
K8SAUDIT = UPSTREAM / "falcosecurity-plugins" / "k8saudit" / "k8s_audit_rules.yaml"
CAPTURES = UPSTREAM / "captures"


@pytest.fixture(scope="session")
def upstream() -> Path:
    """The folder of upstream rule packs and captures (FALCORULES_UPSTREAM, default ../shared/upstream)."""
    if not UPSTREAM.is_dir():
        pytest.fail(f"upstream data not found at {UPSTREAM}; set FALCORULES_UPSTREAM")
    return UPSTREAM
