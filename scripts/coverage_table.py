"""Print the IOA -> ATT&CK technique -> Falco rule -> fixture table of a fixture library.

Usage::

    python scripts/coverage_table.py [--rules PATH]... [--fixtures DIR] [--check FILE | --write FILE]

The rules default to the stable upstream pack (under ``FALCORULES_UPSTREAM``, default
``../shared/upstream``) followed by this repository's ``rules/``; the fixtures to ``fixtures/``.
Without ``--check``/``--write`` the Markdown table and its summary are printed. ``--write FILE``
replaces the text between ``<!-- coverage-table:begin -->`` and ``<!-- coverage-table:end -->`` in
FILE; ``--check FILE`` exits 1 (printing a diff) when that text is not what the fixtures give now,
so a README cannot drift from the library it describes.

A benign twin is the benign fixture whose id is the attack fixture's id plus ``-benign``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from falcorules_ci import (
    AttackTable,
    FalcoRulesError,
    Fixture,
    LoadOptions,
    Rule,
    discover_fixtures,
    load_fixture,
    load_ruleset,
)

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = Path(os.environ.get("FALCORULES_UPSTREAM", ROOT.parent / "shared" / "upstream")).resolve()
DEFAULT_RULES = (UPSTREAM / "falcosecurity-rules" / "falco-rules-5.1.0", ROOT / "rules")
DEFAULT_FIXTURES = ROOT / "fixtures"
BEGIN = "<!-- coverage-table:begin -->"
END = "<!-- coverage-table:end -->"
TWIN_SUFFIX = "-benign"


@dataclass(frozen=True, slots=True)
class Row:
    """One attack fixture: its IOA, the rules it expects and its benign twin."""

    fixture: Fixture
    twin: Fixture | None
    rules: tuple[Rule, ...]


def load_library(fixtures_dir: Path, attack: AttackTable) -> list[Fixture]:
    fixtures = []
    for path in discover_fixtures(fixtures_dir):
        fixtures.append(load_fixture(path, attack=attack))
    return fixtures


def pair_twins(fixtures: Sequence[Fixture], rules: dict[str, Rule]) -> tuple[list[Row], list[Fixture]]:
    """The attack fixtures with their twins, and the benign fixtures no attack fixture claims."""
    benign = {f.id: f for f in fixtures if f.benign}
    rows = []
    for fixture in fixtures:
        if fixture.benign:
            continue
        twin = benign.pop(fixture.id + TWIN_SUFFIX, None)
        expected = tuple(rules[name] for name in fixture.expected_rules if name in rules)
        rows.append(Row(fixture, twin, expected))
    return rows, sorted(benign.values(), key=lambda f: str(f.path))


def _rel(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def _pack(rule: Rule) -> str:
    """Where a rule comes from: this project's rules/ (parity) or an upstream pack."""
    path = Path(rule.span.path).resolve()
    return "parity" if (ROOT / "rules") in path.parents else "upstream"


def _matched_tag(rule: Rule, fixture: Fixture, attack: AttackTable) -> str:
    ioa = fixture.ioa
    if ioa is None or ioa.technique is None:
        return ""
    tags = [t for t in rule.tags if attack.technique_matches(ioa.technique, t, fixture.technique_policy)]
    return ", ".join(sorted(tags)) or "none"


def _tactic_order(row: Row, attack: AttackTable) -> int:
    ioa = row.fixture.ioa
    tactic = attack.tactic(ioa.tactic) if ioa is not None and ioa.tactic else None
    return tactic.order if tactic is not None else 99


def render(rows: Sequence[Row], unpaired: Sequence[Fixture], attack: AttackTable) -> str:
    """The Markdown table, sorted by tactic and technique, and a summary of the counts."""
    ordered = sorted(rows, key=lambda r: (_tactic_order(r, attack), r.fixture.ioa.technique if r.fixture.ioa else "",
                                          str(r.fixture.path)))  # fmt: skip
    lines = [
        "| Falcon IOA (local id) | ATT&CK technique | Tactic | Falco rule (pack, matching tag) | Fixture | Benign twin |",
        "|---|---|---|---|---|---|",
    ]
    for row in ordered:
        ioa = row.fixture.ioa
        name = f"{ioa.name} ({ioa.id})" if ioa is not None and ioa.id else (ioa.name if ioa else "-")
        technique = "-"
        tactic = "-"
        if ioa is not None and ioa.technique:
            tech = attack.technique(ioa.technique)
            technique = f"{ioa.technique} {tech.name}" if tech is not None else ioa.technique
            if row.fixture.technique_policy == "parent":
                technique += " (parent policy)"
        if ioa is not None and ioa.tactic:
            found = attack.tactic(ioa.tactic)
            tactic = f"{ioa.tactic} {found.name}" if found is not None else ioa.tactic
        rules = "<br>".join(f"{r.name} ({_pack(r)}, {_matched_tag(r, row.fixture, attack)})" for r in row.rules)
        twin = f"`{_rel(row.twin.path)}`" if row.twin is not None else "**missing**"
        lines.append(f"| {name} | {technique} | {tactic} | {rules} | `{_rel(row.fixture.path)}` | {twin} |")
    techniques = {r.fixture.ioa.technique for r in rows if r.fixture.ioa is not None and r.fixture.ioa.technique}
    fired = {rule.name: rule for row in rows for rule in row.rules}
    parity = sum(1 for rule in fired.values() if _pack(rule) == "parity")
    twins = sum(1 for r in rows if r.twin is not None)
    lines.append("")
    lines.append(f"{len(rows)} attack fixtures, {twins} with a benign twin ({twins + len(unpaired)} benign fixtures); "
                 f"{len(techniques)} distinct ATT&CK techniques; {len(fired)} Falco rules exercised "
                 f"({len(fired) - parity} upstream stable, {parity} parity).")  # fmt: skip
    for fixture in unpaired:
        lines.append(f"Benign fixture without an attack twin: `{_rel(fixture.path)}`.")
    return "\n".join(lines) + "\n"


def build_table(rule_paths: Sequence[Path], fixtures_dir: Path) -> str:
    attack = AttackTable.load()
    ruleset = load_ruleset(list(rule_paths), options=LoadOptions())
    if not ruleset.successful:
        errors = [str(e.diagnostic()) for result in ruleset.results for e in result.errors]
        raise SystemExit("the rules failed to load:\n" + "\n".join(errors))
    rules = {r.name: r for r in ruleset.rules}
    rows, unpaired = pair_twins(load_library(fixtures_dir, attack), rules)
    return render(rows, unpaired, attack)


def _section(text: str, path: Path) -> tuple[int, int]:
    start = text.find(BEGIN)
    end = text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} section to hold the table")
    return start + len(BEGIN), end


def check(path: Path, table: str) -> int:
    text = path.read_text(encoding="utf-8")
    start, end = _section(text, path)
    current = text[start:end].strip("\n") + "\n"
    if current == table:
        return 0
    diff = difflib.unified_diff(current.splitlines(True), table.splitlines(True), f"{path} (current)", "fixtures (now)")
    sys.stdout.writelines(diff)
    print(f"\n{path}: the coverage table is out of date; run python scripts/coverage_table.py --write {path}")
    return 1


def write(path: Path, table: str) -> None:
    text = path.read_text(encoding="utf-8")
    start, end = _section(text, path)
    path.write_text(text[:start] + "\n" + table + text[end:], encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rules", action="append", type=Path, help="rules file or folder (repeatable, in load order)")
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES, help="fixture folder")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--check", type=Path, metavar="FILE", help="fail if FILE's table is out of date")
    target.add_argument("--write", type=Path, metavar="FILE", help="replace FILE's table")
    args = parser.parse_args(argv)
    try:
        table = build_table(args.rules or DEFAULT_RULES, args.fixtures)
    except FalcoRulesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check is not None:
        return check(args.check, table)
    if args.write is not None:
        write(args.write, table)
        return 0
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
