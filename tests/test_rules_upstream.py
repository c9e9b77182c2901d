"""The upstream packs load as Falco loads them: alone and stacked, no errors, known warnings only."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from conftest import INCUBATING, K8SAUDIT, SANDBOX, STABLE, UPSTREAM

from falcorules_ci import LoadOptions, load_ruleset

RULE_PACKS = sorted((UPSTREAM / "falcosecurity-rules").glob("*/*.yaml"))
# Warnings Falco gives for these packs: unused macros and lists, and rules whose event-type set is
# empty or larger than 100 (engine 0.62 warns for both). Nothing else.
EXPECTED_WARNING_CODES = {"LOAD_UNUSED_MACRO", "LOAD_UNUSED_LIST", "LOAD_NO_EVTTYPE", "LOAD_DEPRECATED_ITEM"}


@pytest.mark.parametrize("path", RULE_PACKS + [K8SAUDIT], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_pack_loads_alone(path: Path) -> None:
    rs = load_ruleset([path])
    errors = [str(e.diagnostic()) for r in rs.results for e in r.errors]
    assert not errors
    codes = {w.code for r in rs.results for w in r.warnings}
    assert codes <= EXPECTED_WARNING_CODES, codes


def test_falco_user_stack_loads_and_counts() -> None:
    rs = load_ruleset([STABLE, INCUBATING, SANDBOX, K8SAUDIT])
    assert rs.successful, [str(e.diagnostic()) for r in rs.results for e in r.errors]
    by_file = Counter(r.span.path for r in rs.rules)
    assert by_file[str(STABLE)] == 25
    assert by_file[str(INCUBATING)] == 31
    assert by_file[str(SANDBOX)] == 37
    assert by_file[str(K8SAUDIT)] == 48
    assert sum(1 for r in rs.rules if r.span.path == str(SANDBOX) and r.enabled) == 25
    priorities = Counter(r.priority.label for r in rs.rules if r.span.path == str(STABLE))
    assert priorities == {"Critical": 3, "Warning": 14, "Notice": 7, "Informational": 1}
    k8s = Counter(r.priority.label for r in rs.rules if r.span.path == str(K8SAUDIT))
    assert k8s == {"Error": 2, "Warning": 21, "Notice": 4, "Informational": 20, "Debug": 1}
    assert {r.source for r in rs.rules if r.span.path == str(K8SAUDIT)} == {"k8s_audit"}
    # every rule with a mitre_* tag also carries a T or TA id
    for r in rs.rules:
        if any(t.startswith("mitre_") for t in r.tags):
            assert r.attack_ids, r.name


def test_stable_evttype_warning_exactness() -> None:
    rs = load_ruleset([STABLE])
    no_evt = [w for r in rs.results for w in r.warnings if w.code == "LOAD_NO_EVTTYPE"]
    for w in no_evt:
        rule = rs.rule(w.item_name)
        assert rule.evttypes is not None and (not rule.evttypes or len(rule.evttypes) > 100)


def test_without_k8saudit_plugin_rules_are_skipped_with_one_error() -> None:
    options = LoadOptions(plugins=(("container", "0.7.1"),))
    rs = load_ruleset([K8SAUDIT], options=options)
    errors = [e for r in rs.results for e in r.errors]
    assert len(errors) == 1
    assert errors[0].message.startswith("Plugin requirement not satisfied, must load one of: k8saudit (>= 0.18.0)")


@pytest.mark.parametrize("plugin_dir,plugin", [("cloudtrail", "cloudtrail"), ("okta", "okta"),
                                               ("gcpaudit", "gcpaudit"), ("github", "github")])
def test_other_plugin_packs_fail_with_one_clear_error(plugin_dir: str, plugin: str) -> None:
    path = next((UPSTREAM / "falcosecurity-plugins" / plugin_dir).glob("*.yaml"))
    rs = load_ruleset([path])
    errors = [e for r in rs.results for e in r.errors]
    assert len(errors) == 1, [str(e.diagnostic()) for e in errors]
    assert f"must load one of: {plugin} (>=" in errors[0].message
