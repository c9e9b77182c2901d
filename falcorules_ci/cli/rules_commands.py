"""``lint`` and ``list``: what Falco would say about rules files, and what they contain."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from falcorules_ci import LoadMessage, Ruleset, expand_paths, load_ruleset
from falcorules_ci.cli.options import build_load_options, load_options


def _format_message(message: LoadMessage) -> str:
    diag = message.diagnostic()
    line = f"{diag.span}: {diag.severity.value} {diag.code}: {diag.message or message.title}"
    if diag.snippet:
        line += "\n" + "\n".join("    " + s for s in diag.snippet.splitlines())
    return line


def _check_paths(rules: tuple[str, ...]) -> None:
    for r in rules:
        if not Path(r).exists():
            raise click.BadParameter(f"no such file or directory: {r}", param_hint="RULES")
        if Path(r).is_dir() and not expand_paths([r]):
            raise click.BadParameter(f"no *.yaml or *.yml rules files in folder {r}", param_hint="RULES")


@click.command("lint")
@click.argument("rules", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print Falco's validation JSON (falco -V with json_output).")
@click.option("--no-warnings", is_flag=True, help="Print errors only.")
@load_options
def lint_command(rules: tuple[str, ...], as_json: bool, no_warnings: bool, engine_version: str,
                 plugins: tuple[str, ...]) -> None:  # fmt: skip
    """Load RULES (files or folders, in order) as Falco does and report errors and warnings.

    Exit status: 0 without errors, 1 when a file has errors, 2 on usage errors.
    """
    _check_paths(rules)
    ruleset = load_ruleset(rules, options=build_load_options(engine_version, plugins))
    if as_json:
        payload = {"falco_load_results": [r.as_json() for r in ruleset.results]}
        click.echo(json.dumps(payload, ensure_ascii=False))
    else:
        for result in ruleset.results:
            for err in result.errors:
                click.echo(_format_message(err))
            if not no_warnings:
                for warn in result.warnings:
                    click.echo(_format_message(warn))
            click.echo(result.summary(), err=True)
    if not ruleset.successful:
        raise click.exceptions.Exit(1)


def rule_rows(ruleset: Ruleset) -> list[dict[str, object]]:
    return [
        {
            "name": r.name,
            "source": r.source,
            "priority": r.priority.label,
            "enabled": r.enabled,
            "tags": list(r.tags),
            "attack": list(r.attack_ids),
            "file": r.span.path,
            "line": r.span.line,
        }
        for r in ruleset.rules
    ]


@click.command("list")
@click.argument("rules", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of rule objects.")
@load_options
def list_command(rules: tuple[str, ...], as_json: bool, engine_version: str, plugins: tuple[str, ...]) -> None:
    """List the rules RULES define: name, source, priority, enabled, tags and ATT&CK ids."""
    _check_paths(rules)
    ruleset = load_ruleset(rules, options=build_load_options(engine_version, plugins))
    if not ruleset.successful:
        for result in ruleset.results:
            for err in result.errors:
                click.echo(_format_message(err), err=True)
        raise click.exceptions.Exit(2)
    rows = rule_rows(ruleset)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} rules", show_lines=False)
    for col in ("name", "source", "priority", "enabled", "ATT&CK", "tags"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(
            str(row["name"]), str(row["source"]), str(row["priority"]), "yes" if row["enabled"] else "no",
            ",".join(row["attack"]),  # type: ignore[arg-type]
            ",".join(t for t in row["tags"] if t not in row["attack"]),  # type: ignore[attr-defined,operator]
        )  # fmt: skip
    Console(width=200 if not sys.stdout.isatty() else None).print(table)
