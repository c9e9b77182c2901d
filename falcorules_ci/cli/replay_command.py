"""``replay``: captures, scenarios and audit logs through rules files, alerts out, as Falco would."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from falcorules_ci import FalcoRulesError, LoadMessage, expand_paths, load_ruleset
from falcorules_ci.cli.options import build_load_options, load_options
from falcorules_ci.engine import EngineOptions, replay

_LOAD_KEYS = frozenset({"append_output.suggested_output"})


class _InputErrorExit(click.ClickException):
    """Bad rules, inputs or options: exit code 2."""

    exit_code = 2


def _split_setting(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="-o")
    return key.strip(), value.strip()


def engine_options(settings: Iterable[tuple[str, str]], *, enabled_tags: Iterable[str] = (),
                   disabled_tags: Iterable[str] = (), disabled_rules: Iterable[str] = (), legacy: bool = False,
                   as_json: bool = False, timezone: str = "local", hostname: str | None = None) -> EngineOptions:  # fmt: skip
    """The engine settings from the command line: flags first, then ``-o`` settings in order."""
    options = EngineOptions(
        enabled_tags=frozenset(enabled_tags), disabled_tags=frozenset(disabled_tags),
        disabled_rules=tuple(disabled_rules), legacy_enter_events=legacy, json_output=as_json,
        timezone=timezone, hostname=hostname,
    )  # fmt: skip
    for key, value in settings:
        if key not in _LOAD_KEYS:
            options = options.with_setting(key, value)
    return options


def _suggested_output(settings: Iterable[tuple[str, str]]) -> bool:
    enabled = True
    for key, value in settings:
        if key == "append_output.suggested_output":
            lowered = value.lower()
            if lowered not in ("true", "false", "yes", "no", "on", "off", "y", "n"):
                raise click.BadParameter(f"{key} expects a boolean, got {value!r}", param_hint="-o")
            enabled = lowered in ("true", "yes", "on", "y")
    return enabled


def _message_text(message: LoadMessage) -> str:
    diag = message.diagnostic()
    return f"{diag.span}: {diag.severity.value} {diag.code}: {diag.message or message.title}"


def _summary(run: Any) -> list[str]:
    lines = []
    total = sum(run.events_read.values())
    per_input = ", ".join(f"{name}: {count}" for name, count in run.events_read.items())
    lines.append(f"events read: {total}" + (f" ({per_input})" if len(run.events_read) > 1 else ""))
    lines.append(f"events evaluated: {run.events_evaluated}")
    alerts = run.alerts_by_rule
    lines.append(f"alerts: {sum(alerts.values())}")
    for rule, count in sorted(alerts.items(), key=lambda item: (-item[1], item[0])):
        lines.append(f"  {count:6d}  {rule}")
    for name, reasons in run.skipped.items():
        for reason, count in sorted(reasons.items()):
            lines.append(f"skipped in {name}: {count} x {reason}")
    for report in run.inputs:
        for warning in report.warnings:
            lines.append(str(warning))
    for rule, reason in sorted(getattr(run, "not_checkable", {}).items()):
        lines.append(f"not checkable with sysdig 0.29.3: {rule}: {reason}")
    return lines


@click.command("replay")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-r", "--rules", "rules", multiple=True, required=True, metavar="RULES",
              help="Rules file or folder to load (repeatable, loaded in order).")
@click.option("-t", "enabled_tags", multiple=True, metavar="TAG",
              help="Only run rules with this tag (repeatable; enables rules loaded disabled too).")
@click.option("-T", "disabled_tags", multiple=True, metavar="TAG", help="Do not run rules with this tag.")
@click.option("-D", "disabled_rules", multiple=True, metavar="SUBSTRING",
              help="Do not run rules whose name contains SUBSTRING.")
@click.option("-A", "legacy", is_flag=True,
              help="Evaluate enter events too, as libsinsp < 0.22 and sysdig 0.29.3 do.")
@click.option("-o", "settings", multiple=True, metavar="KEY=VALUE",
              help="Falco setting: priority, rule_matching=first|all, json_output, time_format_iso_8601, "
                   "json_include_*_property, append_output.suggested_output.")
@click.option("--json", "as_json", is_flag=True, help="Print alerts as Falco's JSON lines.")
@click.option("--source", type=click.Choice(["auto", "syscall", "k8s_audit"]), default="auto", show_default=True,
              help="What the inputs are; auto tells captures, scenarios and audit logs apart by content.")
@click.option("--on-error", type=click.Choice(["stop", "skip"]), default="stop", show_default=True,
              help="What to do with malformed audit events: stop, or skip and count them.")
@click.option("--timezone", default="local", show_default=True,
              help="Time zone of text alert times: local, UTC, +HH:MM or an IANA name.")
@click.option("--hostname", default=None, help="Host name in JSON alerts (default: FALCO_HOSTNAME, then this host's).")
@click.option("--engine", type=click.Choice(["embedded", "sysdig"]), default="embedded", show_default=True,
              help="embedded: our Falco emulation; sysdig: libsinsp via Debian's sysdig 0.29.3 (syscall inputs).")
@load_options
def replay_command(inputs: tuple[str, ...], rules: tuple[str, ...], enabled_tags: tuple[str, ...],
                   disabled_tags: tuple[str, ...], disabled_rules: tuple[str, ...], legacy: bool,
                   settings: tuple[str, ...], as_json: bool, source: str, on_error: str, timezone: str,
                   hostname: str | None, engine: str, engine_version: str, plugins: tuple[str, ...]) -> None:  # fmt: skip
    """Replay INPUT files (.scap captures, scenario YAML, Kubernetes audit JSON/JSONL/YAML) through
    the RULES files and print one alert per line on stdout, with a summary on stderr.

    Exit status: 0 after a complete replay (alerts or not), 2 for bad rules, inputs or options.
    """
    for path in rules:
        if not Path(path).exists():
            raise click.BadParameter(f"no such file or directory: {path}", param_hint="-r")
        if Path(path).is_dir() and not expand_paths([path]):
            raise click.BadParameter(f"no *.yaml or *.yml rules files in folder {path}", param_hint="-r")
    pairs = [_split_setting(item) for item in settings]
    try:
        options = engine_options(pairs, enabled_tags=enabled_tags, disabled_tags=disabled_tags,
                                 disabled_rules=disabled_rules, legacy=legacy, as_json=as_json,
                                 timezone=timezone, hostname=hostname)  # fmt: skip
    except FalcoRulesError as exc:
        raise click.BadParameter(exc.message, param_hint="-o") from None
    if as_json and not options.json_output:
        options = replace(options, json_output=True)
    load_opts = build_load_options(engine_version, plugins, suggested_output=_suggested_output(pairs))
    ruleset = load_ruleset(rules, options=load_opts)
    if not ruleset.successful:
        for result in ruleset.results:
            for err in result.errors:
                click.echo(_message_text(err), err=True)
        raise _InputErrorExit("rules failed to load")
    run: Any
    if engine == "sysdig":
        from falcorules_ci.engine.sysdig import replay as sysdig_replay

        try:
            run = sysdig_replay(ruleset, inputs, options)
        except FalcoRulesError as exc:
            raise _InputErrorExit(str(exc)) from None
    else:
        run = replay(ruleset, inputs, options, source=source, on_error=on_error)  # type: ignore[arg-type]
    include = {
        "include_output": options.json_include_output_property,
        "include_tags": options.json_include_tags_property,
        "include_message": options.json_include_message_property,
        "include_output_fields": options.json_include_output_fields_property,
    }
    try:
        for alert in run:
            click.echo(alert.to_json(**include) if options.json_output else alert.to_text())
    except FalcoRulesError as exc:
        for line in _summary(run):
            click.echo(line, err=True)
        raise _InputErrorExit(str(exc)) from None
    for line in _summary(run):
        click.echo(line, err=True)


__all__ = ["engine_options", "replay_command"]
