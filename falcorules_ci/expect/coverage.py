"""Which rules the fixtures test: a positive fixture expects the rule to fire, a benign one names
it in ``not_fires``. The coverage gate asks both of every enabled rule in chosen files."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from falcorules_ci.errors import FalcoRulesError
from falcorules_ci.expect.fixture import discover_fixtures, load_fixture


@dataclass(slots=True)
class Coverage:
    """Rule name → the fixture files that test it, by kind; fixtures that failed to load."""

    positive: dict[str, list[str]] = field(default_factory=dict)
    benign: dict[str, list[str]] = field(default_factory=dict)
    broken: list[str] = field(default_factory=list)

    def missing(self, rule: str) -> list[str]:
        """``positive`` and/or ``benign`` when the rule has no such fixture."""
        return [kind for kind, table in (("positive", self.positive), ("benign", self.benign)) if rule not in table]

    def problem(self, rule: str, where: str = "") -> str | None:
        """Why the rule fails the gate, with what it has and how to fix it; None if covered."""
        missing = self.missing(rule)
        if not missing:
            return None
        prefix = f"{where}: " if where else ""
        lines = [f"{prefix}rule {rule!r} has no {' and no '.join(missing)} fixture"]
        for kind, table in (("positive", self.positive), ("benign", self.benign)):
            if table.get(rule):
                lines.append(f"  {kind}: {', '.join(table[rule])}")
        fixes = []
        if "positive" in missing:
            fixes.append(f"add a fixture whose fires lists {rule!r}")
        if "benign" in missing:
            fixes.append(f"add a fixture replaying normal activity with not_fires: [{rule!r}]")
        lines.append("  fix: " + "; ".join(fixes))
        if self.broken:
            lines.append(f"  ({len(self.broken)} fixture(s) failed to load and were not counted: "
                         f"{', '.join(self.broken)})")  # fmt: skip
        return "\n".join(lines)


def fixture_coverage(folders: Iterable[Path]) -> Coverage:
    """Scan every fixture under the folders (missing folders are skipped)."""
    coverage = Coverage()
    for folder in folders:
        if not folder.exists():
            continue
        for path in discover_fixtures(folder):
            try:
                fixture = load_fixture(path)
            except FalcoRulesError:
                coverage.broken.append(path.name)
                continue
            for rule in fixture.expected_rules:
                coverage.positive.setdefault(rule, []).append(path.name)
            if isinstance(fixture.not_fires, tuple):
                for rule in fixture.not_fires:
                    coverage.benign.setdefault(rule, []).append(path.name)
    return coverage
