"""The starter library (fixtures/) runs green against stable + rules/, and rules/ lints clean.

The library is run exactly as a user runs it, in a subprocess:

    python -m pytest --falco-rules ../shared/upstream/falcosecurity-rules/falco-rules-5.1.0
        --falco-rules rules/ --falco-fixtures fixtures fixtures -q -p no:cacheprovider

and its JUnit report is read back, so a red fixture, a fixture that stops being collected, or a
library that shrinks below the issue's floor (25 attack fixtures, 25 benign twins, 15 techniques)
fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import INCUBATING, K8SAUDIT, ROOT, SANDBOX, UPSTREAM

from falcorules_ci import (
    AttackTable,
    Fixture,
    LoadOptions,
    discover_fixtures,
    expectations_of,
    load_fixture,
    load_ruleset,
)
from falcorules_ci.expect.attack import TagKind, parse_attack_tag

STABLE_DIR = UPSTREAM / "falcosecurity-rules" / "falco-rules-5.1.0"
RULES_DIR = ROOT / "rules"
FIXTURES_DIR = ROOT / "fixtures"
MIN_ATTACK = 25
MIN_BENIGN = 25
MIN_TECHNIQUES = 15


def _shown(path: Path) -> str:
    """A path as the issue's command writes it: relative to the repository when that is shorter."""
    return os.path.relpath(path, ROOT)


def library_command(fixtures: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "--falco-rules", _shown(STABLE_DIR), "--falco-rules", "rules/",
            "--falco-fixtures", _shown(fixtures), _shown(fixtures), "-q", "-p", "no:cacheprovider", *extra]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Report:
    returncode: int
    output: str
    cases: dict[str, dict[str, str]]  # fixture file (posix, relative to ROOT) -> item name -> outcome


def run_library(fixtures: Path, tmp_path: Path) -> Report:
    junit = tmp_path / "library.xml"
    proc = subprocess.run(library_command(fixtures, f"--junitxml={junit}"), cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    output = proc.stdout + proc.stderr
    assert junit.exists(), f"pytest wrote no JUnit report:\n{output}"
    cases: dict[str, dict[str, str]] = defaultdict(dict)
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag
        # junitxml writes fixtures/syscall/x.yaml::item as classname fixtures.syscall.x.yaml
        cases[case.get("classname", "")][case.get("name", "")] = outcome
    return Report(proc.returncode, output, dict(cases))


def _classname(path: Path) -> str:
    return path.resolve().relative_to(ROOT).as_posix().replace("/", ".")


@pytest.fixture(scope="module")
def library() -> list[Fixture]:
    attack = AttackTable.load()
    return [load_fixture(p, attack=attack) for p in discover_fixtures(FIXTURES_DIR)]


@pytest.fixture(scope="module")
def library_report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    return run_library(FIXTURES_DIR, tmp_path_factory.mktemp("library"))


# -- the library ------------------------------------------------------------------------------------------


def test_library_runs_green(library_report: Report) -> None:
    failed = {f"{cls}::{name}": outcome for cls, items in library_report.cases.items()
              for name, outcome in items.items() if outcome != "passed"}  # fmt: skip
    assert library_report.returncode == 0 and not failed, f"{failed}\n{library_report.output[-4000:]}"


def test_every_expectation_is_collected_and_passes(library: list[Fixture], library_report: Report) -> None:
    attack = AttackTable.load()
    for fixture in library:
        items = library_report.cases.get(_classname(fixture.path))
        assert items is not None, f"{fixture.path} was not collected"
        expected = {e.name for e in expectations_of(fixture, attack)}
        assert set(items) == expected, f"{fixture.path}: items {sorted(items)}, expected {sorted(expected)}"
        assert set(items.values()) == {"passed"}, f"{fixture.path}: {items}"


def test_library_size_and_technique_floor(library: list[Fixture], library_report: Report) -> None:
    attack_fixtures = [f for f in library if not f.benign]
    benign = [f for f in library if f.benign]
    assert len(attack_fixtures) >= MIN_ATTACK
    assert len(benign) >= MIN_BENIGN
    techniques = {f.ioa.technique for f in attack_fixtures if f.ioa is not None and f.ioa.technique}
    assert len(techniques) >= MIN_TECHNIQUES, sorted(techniques)
    passed_parity = [f for f in attack_fixtures
                     if library_report.cases[_classname(f.path)].get("attack_parity") == "passed"]  # fmt: skip
    assert len(passed_parity) == len(attack_fixtures)


def test_every_attack_fixture_has_a_benign_twin_quiet_on_its_rules(library: list[Fixture]) -> None:
    by_id = {f.id: f for f in library}
    for fixture in library:
        if fixture.benign:
            assert fixture.id.endswith("-benign") and fixture.id.removesuffix("-benign") in by_id, fixture.path
            continue
        assert fixture.ioa is not None and fixture.ioa.technique and fixture.ioa.tactic, fixture.path
        assert fixture.not_fires == "any", f"{fixture.path}: attack fixtures assert that nothing else fires"
        twin = by_id.get(fixture.id + "-benign")
        assert twin is not None and twin.benign, f"{fixture.path}: no benign twin {fixture.id}-benign"
        assert isinstance(twin.not_fires, tuple), twin.path
        assert set(fixture.expected_rules) <= set(twin.not_fires), (twin.path, fixture.expected_rules)


def test_ioa_ids_are_local_placeholders(library: list[Fixture]) -> None:
    ids = [f.ioa.id for f in library if f.ioa is not None]
    assert all(i is not None and i.startswith("frci-local-") for i in ids), ids
    assert len(ids) == len(set(ids))
    assert all("placeholder" in f.description for f in library if f.ioa is not None)


def test_library_fails_when_a_fixture_is_wrong(tmp_path: Path) -> None:
    # The same command must go red on a broken fixture: here the shell fixture claims a technique
    # the rule does not carry, and its benign twin replays the attack.
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    attack = yaml.safe_load((FIXTURES_DIR / "syscall" / "container-interactive-shell.yaml").read_text())
    attack["ioa"]["technique"] = "T1485"
    attack["ioa"]["tactic"] = "TA0040"
    (fixtures / "shell.yaml").write_text(yaml.safe_dump(attack, sort_keys=False))
    benign = {"id": "shell-benign", "scenario": attack["scenario"], "not_fires": ["Terminal shell in container"]}
    (fixtures / "shell.benign.yaml").write_text(yaml.safe_dump(benign, sort_keys=False))
    report = run_library(fixtures, tmp_path)
    assert report.returncode == 1
    outcomes = {name: outcome for items in report.cases.values() for name, outcome in items.items()}
    assert outcomes["attack_parity"] == "failure"
    assert outcomes["fires[Terminal shell in container]"] == "passed"
    assert outcomes["not_fires[Terminal shell in container]"] == "failure"


# -- the parity rules ---------------------------------------------------------------------------------------


def _diagnostics(paths: list[Path]) -> list[str]:
    ruleset = load_ruleset(paths, options=LoadOptions())
    return [str(m.diagnostic()) for result in ruleset.results for m in (*result.errors, *result.warnings)]


def test_rules_lint_clean_on_their_own_and_after_stable() -> None:
    assert _diagnostics([RULES_DIR]) == []
    assert _diagnostics([STABLE_DIR, RULES_DIR]) == []


def test_rules_lint_command_reports_ok() -> None:
    proc = subprocess.run([sys.executable, "-m", "falcorules_ci", "lint", "rules/"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert lines and all(line.endswith(": Ok") for line in lines), lines


def test_parity_rules_carry_consistent_attack_tags() -> None:
    attack = AttackTable.load()
    ruleset = load_ruleset([RULES_DIR], options=LoadOptions())
    assert ruleset.rules
    for rule in ruleset.rules:
        parsed = [p for t in rule.tags if (p := parse_attack_tag(t)) is not None]
        techniques = [p.ref for p in parsed if p.kind is TagKind.TECHNIQUE]
        tactics = [p.ref for p in parsed if p.kind is TagKind.MITRE_TACTIC]
        assert techniques and tactics, f"{rule.name}: needs a technique tag and a mitre_* tactic tag"
        assert attack.check_tags(rule.tags) == [], rule.name
        for technique in techniques:
            found = attack.technique(technique)
            assert found is not None and found.active, (rule.name, technique)
        assert "falcon_parity" in rule.tags
        assert "%" in rule.output, f"{rule.name}: output without %fields"


def test_parity_rules_do_not_collide_with_upstream_names() -> None:
    ours = load_ruleset([RULES_DIR], options=LoadOptions())
    upstream = load_ruleset([STABLE_DIR, INCUBATING, SANDBOX, K8SAUDIT], options=LoadOptions())
    upstream_rules = {r.name for r in upstream.rules}
    assert not {r.name for r in ours.rules} & upstream_rules
    # Our lists and macros never redefine an upstream one when loaded after it.
    assert all(name.startswith("parity_") for name in ours.macros), sorted(ours.macros)
    assert all(name.startswith("parity_") for name in ours.lists), sorted(ours.lists)


def test_every_parity_rule_is_exercised(library: list[Fixture]) -> None:
    ours = {r.name for r in load_ruleset([RULES_DIR], options=LoadOptions()).rules}
    fired = {rule for f in library for rule in f.expected_rules}
    quiet = {rule for f in library if f.benign and isinstance(f.not_fires, tuple) for rule in f.not_fires}
    assert ours <= fired, sorted(ours - fired)
    assert ours <= quiet, sorted(ours - quiet)


# -- the README table ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("readme", ["fixtures/README.md", "README.md"])
def test_readme_coverage_table_is_current(readme: str) -> None:
    script = ROOT / "scripts" / "coverage_table.py"
    proc = subprocess.run([sys.executable, str(script), "--check", readme], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_coverage_table_flags_a_stale_readme(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    shutil.copy(FIXTURES_DIR / "README.md", readme)
    text = readme.read_text()
    readme.write_text(text.replace("| ContainerInteractiveShell", "| RenamedShell", 1))
    script = ROOT / "scripts" / "coverage_table.py"
    proc = subprocess.run([sys.executable, str(script), "--check", str(readme)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 1
    assert "out of date" in proc.stdout
