"""Pack-level items of the ``--falco-rules`` plugin: checks about the loaded rules themselves rather
than about one fixture — the ATT&CK tags of every rule, and the ``--falco-require-tests`` coverage
gate (one item per enabled rule of the named files)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from falcorules_ci.pytest_plugin import FalcoAttackWarning, FalcoRun, RulesNotLoaded, _display

if TYPE_CHECKING:
    from falcorules_ci.pytest_plugin import FalcoSettings


class CoverageItem(pytest.Item):
    """``--falco-require-tests``: one item per enabled rule; fails when a positive or a benign
    fixture is missing."""

    def __init__(self, *, problem: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.problem = problem
        self.add_marker("falco")

    def runtest(self) -> None:
        if self.problem is not None:
            raise CoverageMissing(self.problem)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CoverageMissing):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


class CoverageMissing(Exception):
    pass


class AttackTagItem(pytest.Item):
    """For a loaded rules file whose rules carry questionable ATT&CK tags: unknown ids fail the
    item; revoked, deprecated or tactic-inconsistent tags pass it with a warning each."""

    def __init__(self, *, errors: list[str], warnings: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.errors = errors
        self.tag_warnings = warnings
        self.add_marker("falco")

    def runtest(self) -> None:
        for text in self.tag_warnings:
            warnings.warn(FalcoAttackWarning(text), stacklevel=1)
        if self.errors:
            raise CoverageMissing("\n".join(self.errors))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CoverageMissing):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


def attack_tag_items(session: pytest.Session, settings: FalcoSettings) -> list[pytest.Item]:
    """Check every ATT&CK tag of the loaded packs; an item only for files with findings."""
    run = FalcoRun.of(session.config)
    try:
        rules = run.ruleset().rules
    except RulesNotLoaded:
        return []  # the load error is reported by every fixture item
    findings: dict[Path, tuple[list[str], list[str]]] = {}
    for rule in rules:
        for finding in run.attack.check_tags(rule.tags):
            errors, warns = findings.setdefault(Path(rule.span.path).resolve(), ([], []))
            (errors if finding.is_error else warns).append(f"{rule.span}: rule {rule.name!r}: {finding.message}")
    items: list[pytest.Item] = []
    for path, (errors, warns) in findings.items():
        nodeid = f"{_display(path, session.config)}::attack_tags"
        items.append(AttackTagItem.from_parent(session, name="attack_tags", nodeid=nodeid, path=path,
                                               errors=errors, warnings=warns))  # fmt: skip
    return items


def coverage_items(session: pytest.Session, settings: FalcoSettings) -> list[pytest.Item]:
    from falcorules_ci import expand_paths
    from falcorules_ci.expect.coverage import fixture_coverage

    run = FalcoRun.of(session.config)
    required = [p.resolve() for p in expand_paths(settings.require_tests)]
    try:
        rules = run.ruleset().rules
    except RulesNotLoaded as exc:
        return [_coverage_item(session, required[0] if required else session.path, "rules", str(exc))]
    coverage = fixture_coverage(settings.fixtures)
    loaded = {p.resolve() for p in expand_paths(settings.rules)}
    items: list[pytest.Item] = []
    for path in required:
        if path not in loaded:
            items.append(_coverage_item(session, path, path.name,
                                        f"{path}: --falco-require-tests names a rules file that is not among the "
                                        "loaded --falco-rules; add it there"))  # fmt: skip
            continue
        for rule in rules:
            if rule.enabled and Path(rule.span.path).resolve() == path:
                items.append(_coverage_item(session, path, rule.name, coverage.problem(rule.name, str(rule.span))))
    return items


def _coverage_item(session: pytest.Session, path: Path, rule: str, problem: str | None) -> pytest.Item:
    name = f"require_tests[{rule}]"
    nodeid = f"{_display(path, session.config)}::{name}"
    return CoverageItem.from_parent(session, name=name, nodeid=nodeid, path=path, problem=problem)
