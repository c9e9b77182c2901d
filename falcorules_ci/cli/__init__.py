"""The ``falcorules-ci`` command line: a thin layer over the library API."""

from __future__ import annotations

import sys

import click

from falcorules_ci import __version__
from falcorules_ci.cli.explain_command import explain_command
from falcorules_ci.cli.replay_command import replay_command
from falcorules_ci.cli.rules_commands import lint_command, list_command
from falcorules_ci.cli.scenario_command import scenario_group
from falcorules_ci.cli.test_command import test_command


class InputErrorExit(click.ClickException):
    """Bad rules, fixtures or arguments: exit code 2."""

    exit_code = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="falcorules-ci")
def cli() -> None:
    """Test Falco rule packs against recorded syscall and Kubernetes audit fixtures."""


cli.add_command(lint_command)
cli.add_command(list_command)
cli.add_command(replay_command)
cli.add_command(scenario_group)
cli.add_command(test_command)
cli.add_command(explain_command)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of exiting when called in-process."""
    try:
        code = cli.main(args=argv, prog_name="falcorules-ci", standalone_mode=False)
        if isinstance(code, int):
            return code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        exc.show()
        return 2
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
