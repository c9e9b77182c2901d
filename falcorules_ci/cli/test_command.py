"""``test``: the project's fixtures through ``pytest --falco-rules``, summarised per technique and fixture.

pytest runs in this process with the plugin and the project's settings: ``[tool.falcorules]`` of the
nearest ``pyproject.toml`` (``rules``, ``fixtures``, ``engine``, ``rule_matching``,
``require_tests``; paths relative to that file), overridden by the command's options. pytest's own
terminal output is set aside; a small plugin object collects each expectation's report, and the
command prints a table per ATT&CK technique and one per fixture, then every failure as the plugin
worded it (expected against fired rules, and the clause-level explanation). A progress bar runs
on a terminal, not in CI (``CI`` set) or when output is piped.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import click
import pytest
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from falcorules_ci import AttackTable

CONFIG_KEYS = ("rules", "fixtures", "engine", "rule_matching", "require_tests")
DEFAULT_FIXTURES = "fixtures"
NO_TECHNIQUE = "-"
PIPED_WIDTH = 160


class _UsageExit(click.ClickException):
    exit_code = 2


# -- project settings ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProjectSettings:
    """``[tool.falcorules]`` of the nearest pyproject.toml, paths resolved against its folder."""

    root: Path
    source: Path | None = None  # the pyproject.toml read, if any
    rules: tuple[Path, ...] = ()
    fixtures: Path | None = None
    engine: str | None = None
    rule_matching: str | None = None
    require_tests: tuple[Path, ...] = ()


def project_settings(start: Path | None = None) -> ProjectSettings:
    """The settings of the project around ``start`` (default: the working directory); a
    pyproject.toml without ``[tool.falcorules]`` gives the defaults."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return _read_settings(candidate)
    return ProjectSettings(root=here)


def _read_settings(path: Path) -> ProjectSettings:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise _UsageExit(f"{path}: cannot read [tool.falcorules]: {exc}") from None
    table = data.get("tool", {}).get("falcorules")
    root = path.parent
    if table is None:
        return ProjectSettings(root=root, source=path)
    if not isinstance(table, dict):
        raise _UsageExit(f"{path}: [tool.falcorules] must be a table")
    unknown = sorted(set(table) - set(CONFIG_KEYS))
    if unknown:
        raise _UsageExit(f"{path}: unknown key(s) in [tool.falcorules]: {', '.join(unknown)} "
                         f"(known: {', '.join(CONFIG_KEYS)})")  # fmt: skip

    def paths(key: str) -> tuple[Path, ...]:
        value = table.get(key, [])
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise _UsageExit(f"{path}: [tool.falcorules] {key} must be a path or a list of paths")
        return tuple((root / i).resolve() for i in items)

    def text(key: str) -> str | None:
        value = table.get(key)
        if value is not None and not isinstance(value, str):
            raise _UsageExit(f"{path}: [tool.falcorules] {key} must be a string")
        return value

    fixtures = paths("fixtures")
    if len(fixtures) > 1:
        raise _UsageExit(f"{path}: [tool.falcorules] fixtures names one folder")
    return ProjectSettings(root=root, source=path, rules=paths("rules"), fixtures=fixtures[0] if fixtures else None,
                           engine=text("engine"), rule_matching=text("rule_matching"),
                           require_tests=paths("require_tests"))  # fmt: skip


# -- results -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class FixtureResult:
    path: str
    technique: str = NO_TECHNIQUE
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    rules_fired: tuple[str, ...] | None = None
    failed_items: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0


class ResultCollector:
    """A pytest plugin object: per-fixture outcomes, failures and warnings, and the progress bar.

    It lives in the controlling process only; with xdist the reports it reads come from the
    workers, which is why the rules a fixture fired travel on the report (``falco_rules_fired``).
    """

    def __init__(self, progress: Progress | None = None) -> None:
        self.fixtures: dict[str, FixtureResult] = {}
        self.other: dict[str, str] = {}  # non-fixture items (coverage gate, Python tests) → outcome
        self.failures: list[tuple[str, str]] = []
        self.errors: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        self.progress = progress
        self._task: Any = None
        self.active = False

    # -- hooks ---------------------------------------------------------------------------------

    def pytest_configure(self, config: pytest.Config) -> None:
        self.active = bool(config.getoption("falco_rules", None) or config.getini("falco_rules"))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._start(len(session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        # With xdist the controller collects nothing itself; every worker reports the same items.
        self._start(len(ids))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.errors.append((report.nodeid or "collection", report.longreprtext))

    def pytest_warning_recorded(self, warning_message: Any, when: str, nodeid: str, location: Any) -> None:
        self.warnings.append(f"{nodeid or when}: {warning_message.message}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed) or report.failed:
            self._record(report)
        if report.when == "teardown" and self.progress is not None and self._task is not None:
            self.progress.advance(self._task)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _start(self, total: int) -> None:
        if self.progress is None:
            return
        if self._task is None:
            self._task = self.progress.add_task("fixtures", total=total)
        elif total:
            self.progress.update(self._task, total=total)

    def _record(self, report: pytest.TestReport) -> None:
        path, _, name = report.nodeid.partition("::")
        outcome = report.outcome
        if report.failed:
            self.failures.append((report.nodeid, report.longreprtext))
        properties = dict(report.user_properties)
        fired = getattr(report, "falco_rules_fired", None)
        is_fixture = fired is not None or "ioa" in properties or path.endswith((".yaml", ".yml"))
        # Pack-level items (a rules file's ATT&CK tags, the coverage gate) are not fixtures.
        if not is_fixture or name.startswith("require_tests[") or name == "attack_tags":
            self.other[report.nodeid] = outcome
            return
        result = self.fixtures.setdefault(path, FixtureResult(path))
        if properties.get("technique"):
            result.technique = str(properties["technique"])
        if fired is not None:
            result.rules_fired = tuple(fired)
        if report.when != "call" and outcome == "passed":
            return
        if outcome == "failed":
            result.failed += 1
            result.failed_items.append(name)
        elif outcome == "skipped":
            result.skipped += 1
        else:
            result.passed += 1


# -- rendering ------------------------------------------------------------------------------------------


def technique_table(results: Sequence[FixtureResult], attack: AttackTable) -> Table:
    table = Table(title="ATT&CK techniques", title_justify="left")
    for column in ("technique", "name", "fixtures", "pass", "fail"):
        table.add_column(column, justify="right" if column in ("fixtures", "pass", "fail") else "left")
    by_technique: dict[str, list[FixtureResult]] = {}
    for result in results:
        by_technique.setdefault(result.technique, []).append(result)
    for technique in sorted(by_technique, key=lambda t: (t == NO_TECHNIQUE, t)):
        group = by_technique[technique]
        found = attack.technique(technique) if technique != NO_TECHNIQUE else None
        name = found.name if found else ("(no IOA technique)" if technique == NO_TECHNIQUE else "?")
        failed = sum(not r.ok for r in group)
        table.add_row(technique, name, str(len(group)), str(len(group) - failed),
                      f"[red]{failed}[/red]" if failed else "0")  # fmt: skip
    return table


def fixture_table(results: Sequence[FixtureResult]) -> Table:
    table = Table(title="Fixtures", title_justify="left")
    for column in ("fixture", "technique", "result", "rules fired"):
        table.add_column(column, overflow="fold")
    for result in sorted(results, key=lambda r: r.path):
        total = result.passed + result.failed
        if result.ok:
            verdict = f"[green]pass[/green] ({total})"
        else:
            verdict = f"[red]FAIL[/red] ({result.failed}/{total}: {', '.join(result.failed_items)})"
        fired = "-" if result.rules_fired is None else (", ".join(result.rules_fired) or "(none)")
        table.add_row(result.path, result.technique, verdict, fired)
    return table


def _summary_line(collector: ResultCollector, seconds: float) -> str:
    results = list(collector.fixtures.values())
    failed = sum(not r.ok for r in results)
    items = sum(r.passed + r.failed for r in results)
    items_failed = sum(r.failed for r in results)
    line = (f"{len(results)} fixtures: {len(results) - failed} passed, {failed} failed "
            f"({items} expectations, {items_failed} failed)")  # fmt: skip
    others = list(collector.other.values())
    if others:
        line += f"; other items: {others.count('passed')} passed, {others.count('failed')} failed"
    if collector.errors:
        line += f"; {len(collector.errors)} collection error(s)"
    return f"{line} in {seconds:.2f}s"


def show_progress(console: Console, choice: bool | None) -> bool:
    """The bar: on a terminal, unless CI is set (``--progress/--no-progress`` decide otherwise)."""
    if choice is not None:
        return choice
    ci = os.environ.get("CI", "").strip().lower()
    return console.is_terminal and ci in ("", "0", "false", "no")


@contextlib.contextmanager
def _terminal_stream(stream: TextIO) -> Iterator[TextIO]:
    """A handle on the terminal that survives pytest's capture of fds 1 and 2 during tests."""
    try:
        fd = os.dup(stream.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):
        yield stream
        return
    handle = os.fdopen(fd, "w", encoding=getattr(stream, "encoding", None) or "utf-8", errors="replace")
    try:
        yield handle
    finally:
        handle.close()


# -- the command ---------------------------------------------------------------------------------------


def pytest_arguments(settings: ProjectSettings, fixtures: Path, rules: Sequence[Path], engine: str | None,
                     rule_matching: str | None, require_tests: Sequence[Path], extra: Sequence[str]) -> list[str]:  # fmt: skip
    args = ["-p", "falcorules_ci.pytest_plugin", "--rootdir", str(settings.root)]
    for path in rules:
        args += ["--falco-rules", str(path)]
    args += ["--falco-fixtures", str(fixtures)]
    if engine:
        args += ["--falco-engine", engine]
    if rule_matching:
        args += ["--falco-rule-matching", rule_matching]
    for path in require_tests:
        args += ["--falco-require-tests", str(path)]
    return [*args, *extra, str(fixtures)]


def run_tests(args: Sequence[str], collector: ResultCollector) -> tuple[int, str]:
    """pytest.main with the collector; pytest's own terminal output is set aside and returned."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        code = int(pytest.main(list(args), plugins=[collector]))
    return code, captured.getvalue()


@click.command("test", context_settings={"ignore_unknown_options": True})
@click.option("-r", "--rules", "rules", multiple=True, metavar="RULES",
              help="Rules file or folder (repeatable, loaded in order). Default: rules in [tool.falcorules].")
@click.option("--fixtures", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Fixture folder. Default: fixtures in [tool.falcorules], else {DEFAULT_FIXTURES}/.")
@click.option("--engine", type=click.Choice(["embedded", "sysdig"]), default=None, help="Engine (default embedded).")
@click.option("--rule-matching", type=click.Choice(["first", "all"]), default=None,
              help="Falco's rule_matching (default first).")
@click.option("--require-tests", multiple=True, metavar="RULES",
              help="Rules file whose every enabled rule needs a positive and a benign fixture (repeatable).")
@click.option("-n", "workers", default=None, metavar="N", help="Run in N processes (pytest-xdist), or 'auto'.")
@click.option("-k", "keyword", default=None, metavar="EXPR", help="Only fixtures/expectations matching EXPR.")
@click.option("-m", "markers", default=None, metavar="EXPR", help="Only items with these markers (T1059, TA0002, ...).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal outside CI).")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def test_command(rules: tuple[str, ...], fixtures: Path | None, engine: str | None, rule_matching: str | None,
                 require_tests: tuple[str, ...], workers: str | None, keyword: str | None, markers: str | None,
                 progress: bool | None, pytest_args: tuple[str, ...]) -> None:  # fmt: skip
    """Run the project's fixtures through its rules and print a summary per ATT&CK technique and
    per fixture. PYTEST_ARGS (after --) go to pytest as they are (e.g. -x, --junitxml=report.xml).

    Exit status: 0 when every expectation holds, 1 when one fails, 2 on usage errors (bad
    options or settings, no rules, no fixtures).
    """
    settings = project_settings()
    rule_paths = tuple(Path(r).resolve() for r in rules) or settings.rules
    for path in rule_paths:
        if not path.exists():
            raise click.BadParameter(f"no such file or directory: {path}", param_hint="-r")
    folder = (fixtures.resolve() if fixtures else settings.fixtures) or (settings.root / DEFAULT_FIXTURES)
    if not folder.is_dir():
        raise _UsageExit(f"fixture folder not found: {folder} (pass --fixtures or set fixtures in [tool.falcorules])")
    extra = list(pytest_args)
    if workers:
        extra += ["-n", workers]
    if keyword:
        extra += ["-k", keyword]
    if markers:
        extra += ["-m", markers]
    args = pytest_arguments(settings, folder, rule_paths, engine or settings.engine,
                            rule_matching or settings.rule_matching,
                            tuple(Path(p).resolve() for p in require_tests) or settings.require_tests, extra)  # fmt: skip
    out = Console(file=sys.stdout, highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = PIPED_WIDTH  # rich's 80 columns fold every path and rule name in a log
    with _terminal_stream(sys.stderr) as terminal:
        err = Console(file=terminal, highlight=False)
        bar = None
        if show_progress(err, progress):
            bar = Progress(TextColumn("[bold]falco fixtures"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           console=err, transient=True, redirect_stdout=False, redirect_stderr=False)  # fmt: skip
        collector = ResultCollector(bar)
        start = time.perf_counter()
        with contextlib.ExitStack() as stack:
            if bar is not None:
                stack.enter_context(bar)
            code, pytest_output = run_tests(args, collector)
        elapsed = time.perf_counter() - start
    if code == pytest.ExitCode.USAGE_ERROR:
        raise click.exceptions.Exit(2)  # pytest has printed the reason on stderr
    if code == pytest.ExitCode.INTERNAL_ERROR:
        click.echo(pytest_output, err=True)
        raise click.exceptions.Exit(3)
    if not collector.active:
        raise _UsageExit("no rules to test: pass -r RULES or set rules in [tool.falcorules] of pyproject.toml")
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        raise _UsageExit(f"no fixtures collected under {folder}")
    results = list(collector.fixtures.values())
    if results:
        out.print(technique_table(results, AttackTable.load()))
        out.print(fixture_table(results))
    for nodeid, text in collector.errors:
        out.rule(f"[red]collection error[/red] {nodeid}", align="left")
        out.print(text, markup=False, highlight=False)
    for nodeid, text in collector.failures:
        out.rule(f"[red]FAILED[/red] {nodeid}", align="left")
        out.print(text, markup=False, highlight=False)
    for warning in dict.fromkeys(collector.warnings):
        out.print(f"warning: {warning}", markup=False, highlight=False)
    out.print(_summary_line(collector, elapsed), markup=False, highlight=False)
    if code != pytest.ExitCode.OK:
        raise click.exceptions.Exit(1 if code == pytest.ExitCode.TESTS_FAILED else int(code))


__all__ = ["ProjectSettings", "ResultCollector", "project_settings", "test_command"]
