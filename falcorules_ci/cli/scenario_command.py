"""``scenario``: work with hand-written syscall scenarios; ``scenario compile`` writes one as a ``.scap``."""

from __future__ import annotations

from pathlib import Path

import click

from falcorules_ci.errors import FalcoRulesError
from falcorules_ci.sources.scap.writer import WriteStats, compile_scenario
from falcorules_ci.sources.scap.writer_compat import COMPAT_MODES, COMPAT_SYSDIG


class _InputErrorExit(click.ClickException):
    """A bad scenario or an unwritable output: exit code 2."""

    exit_code = 2


@click.group("scenario")
def scenario_group() -> None:
    """Hand-written syscall scenarios (YAML)."""


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} x{count}" for name, count in sorted(counts.items()))


def summary_lines(stats: WriteStats) -> list[str]:
    """What ``scenario compile`` prints about a written capture."""
    lines = [
        f"wrote {stats.path}: {stats.events_written} events ({stats.metadata_events} container/user metadata, "
        f"{stats.enters_added} enter events added), {stats.bytes_written} bytes"
        + (" gzip'd" if stats.compressed else "")
        + f", compat {stats.compat}"
    ]
    if stats.not_for_sysdig:
        lines.append(
            f"  sysdig 0.29.3 reads {stats.sysdig_events} of them; it skips {_counts(stats.not_for_sysdig)} "
            "(no older event exists for these: only current Falco sees them)"
        )
    if stats.mapped:
        lines.append(f"  written with older event codes: {_counts(stats.mapped)}")
    lines.extend(f"  note: {reason} (x{count})" for reason, count in sorted(stats.notes.items()))
    return lines


@scenario_group.command("compile")
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Capture to write (default: the scenario's name with .scap). A .gz name is gzip'd.")  # fmt: skip
@click.option("--compat", type=click.Choice(COMPAT_MODES), default=COMPAT_SYSDIG, show_default=True,
              help="sysdig-0.29: one file for sysdig 0.29.3 and every current Falco (sysdig-era event codes "
                   "and parameter counts); sysdig-0.29-full: the same with libs HEAD's full parameter lists "
                   "(sysdig 0.29.3 and libs HEAD, not libs 0.22); current: libs HEAD codes and counts only.")  # fmt: skip
@click.option("--gzip/--no-gzip", "compress", default=None, help="Compress (default: when the output ends in .gz).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
def compile_command(scenario: Path, output: Path | None, compat: str, compress: bool | None, quiet: bool) -> None:
    """Compile SCENARIO (YAML) into a .scap capture that sysdig and Falco can replay."""
    target = output if output is not None else scenario.with_suffix(".scap")
    mode = next(m for m in COMPAT_MODES if m == compat)  # click checked it is one of them
    try:
        stats = compile_scenario(scenario, target, compat=mode, compress=compress)
    except FalcoRulesError as exc:
        raise _InputErrorExit(str(exc)) from None
    if not quiet:
        for line in summary_lines(stats):
            click.echo(line)
