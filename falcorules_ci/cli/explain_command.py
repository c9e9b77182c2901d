"""``explain``: why a rule did or did not fire on an input, clause by clause."""

from __future__ import annotations

import json
from pathlib import Path

import click

from falcorules_ci import FalcoRulesError, LoadMessage, load_ruleset
from falcorules_ci.cli.options import build_load_options, load_options
from falcorules_ci.cli.test_command import project_settings
from falcorules_ci.engine import EngineOptions
from falcorules_ci.expect.explain import ReplaySession
from falcorules_ci.expect.fixture import Fixture, load_fixture, looks_like_fixture
from falcorules_ci.expect.inputs import adhoc_input


class _UsageExit(click.ClickException):
    """Bad rules, inputs or options: exit code 2."""

    exit_code = 2


def _message_text(message: LoadMessage) -> str:
    diag = message.diagnostic()
    return f"{diag.span}: {diag.severity.value} {diag.code}: {diag.message or message.title}"


def _fixture_rules(fixture: Fixture, fired: list[str]) -> list[str]:
    """A fixture's rules worth explaining: those it expects or names, then any that fired
    although the fixture allows none besides its expected ones."""
    names = list(fixture.expected_rules)
    if isinstance(fixture.not_fires, tuple):
        names.extend(fixture.not_fires)
    if fixture.benign or fixture.not_fires == "any":
        names.extend(r for r in fired if r not in fixture.expected_rules)
    return list(dict.fromkeys(names))


@click.command("explain")
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rule", "rule_names", multiple=True, metavar="NAME",
              help="Rule to explain (repeatable). Default for a fixture: the rules it expects or names.")
@click.option("-r", "--rules", "rules", multiple=True, metavar="RULES",
              help="Rules file or folder (repeatable, loaded in order). Default: rules in [tool.falcorules].")
@click.option("--rule-matching", type=click.Choice(["first", "all"]), default=None,
              help="Falco's rule_matching (default: [tool.falcorules], else first).")
@click.option("-A", "legacy", is_flag=True, help="Evaluate enter events too (libsinsp < 0.22, sysdig 0.29.3).")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@load_options
def explain_command(input_path: Path, rule_names: tuple[str, ...], rules: tuple[str, ...], rule_matching: str | None,
                    legacy: bool, as_json: bool, engine_version: str, plugins: tuple[str, ...]) -> None:  # fmt: skip
    """Replay INPUT (a fixture, a scenario, a .scap capture or a Kubernetes audit log) through the
    rules and explain each --rule: the event it fired on, or the nearest candidate event with
    every top-level conjunct of its condition true or false and the field values behind them.

    Exit status: 0 once explained (whether the rules fired or not), 2 on bad rules, inputs or
    options (an unknown rule name included).
    """
    settings = project_settings()
    rule_paths = tuple(Path(r) for r in rules) or settings.rules
    if not rule_paths:
        raise _UsageExit("no rules: pass -r RULES or set rules in [tool.falcorules] of pyproject.toml")
    for path in rule_paths:
        if not path.exists():
            raise click.BadParameter(f"no such file or directory: {path}", param_hint="-r")
    if not input_path.is_file():
        raise click.BadParameter(f"no such file: {input_path}", param_hint="INPUT")
    ruleset = load_ruleset(rule_paths, options=build_load_options(engine_version, plugins))
    if not ruleset.successful:
        for result in ruleset.results:
            for err in result.errors:
                click.echo(_message_text(err), err=True)
        raise _UsageExit("rules failed to load")
    matching = rule_matching or settings.rule_matching or "first"
    if matching not in ("first", "all"):
        raise _UsageExit(f"[tool.falcorules] rule_matching must be first or all, not {matching!r}")
    options = EngineOptions(rule_matching=matching, legacy_enter_events=legacy)  # type: ignore[arg-type]
    session = ReplaySession(ruleset, options)
    try:
        fixture = load_fixture(input_path) if looks_like_fixture(input_path) else None
        fixture_input = fixture.input if fixture is not None else adhoc_input(input_path)
        names = list(rule_names)
        if not names and fixture is not None:
            names = _fixture_rules(fixture, [a.rule for a in session.alerts(fixture_input)])
        if not names:
            what = "the fixture expects no rule and none fired" if fixture is not None else "no rule named"
            raise _UsageExit(f"{what}: name the rule(s) to explain with --rule NAME")
        explained = session.explain(fixture_input, names)
    except FalcoRulesError as exc:
        raise _UsageExit(str(exc)) from None
    if as_json:
        click.echo(json.dumps(explained.to_json(), ensure_ascii=False, indent=2))
        return
    click.echo(f"{explained.input}: {explained.events} events, {len(explained.alerts)} alert(s)\n")
    click.echo(explained.to_text())


__all__ = ["explain_command"]
