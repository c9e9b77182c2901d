"""pytest plugin: Falco fixtures as test items (``pytest --falco-rules rules/``).

Every fixture file under the fixtures folder (``--falco-fixtures``, default ``fixtures/``) becomes
one item per expectation, with readable node ids::

    fixtures/shell.yaml::fires[Terminal shell in container]
    fixtures/shell.yaml::not_fires[any]
    fixtures/shell.yaml::attack_parity

Items carry markers for the IOA's technique, its parent and its tactic (``-m T1059``,
``-m TA0002``) and the ``falco`` marker. The rule pack is compiled once per process (cache keyed by
the files, their mtimes and the options); each fixture's input is replayed once and its alerts are
shared by its items. A broken fixture or rule pack is a failing item with ``file:line:col`` and the
fix, never an internal error.

Replays go through the ``pytest_falco_replay`` hook first (a conftest may answer it, e.g. to feed
recorded alerts), then through the configured engine. Tests can use the ``falco_engine`` (the
compiled rule pack) and ``falco_replay`` (replay a path or an inline scenario) fixtures.

The plugin reads nothing (rules, fixtures, the ATT&CK table) and imports no stage beyond the
package facade until ``--falco-rules`` (or the ``falco_rules`` ini option) is given, so other test
runs pay only for loading it.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from falcorules_ci.engine.options import EngineOptions
    from falcorules_ci.expect.attack import AttackTable
    from falcorules_ci.expect.expectations import AlertLike, Expectation, Outcome, RuleCatalog
    from falcorules_ci.expect.explain import ReplaySession
    from falcorules_ci.expect.fixture import Fixture, FixtureInput
    from falcorules_ci.ruleset.model import Ruleset

ENGINES = ("embedded", "sysdig")
RULE_MATCHING = ("first", "all")
DEFAULT_FIXTURES = "fixtures"


class FalcoAttackWarning(pytest.PytestWarning):
    """An ATT&CK tag that is revoked, deprecated or inconsistent with its tactic."""


class FalcoHookspecs:
    """Hooks the plugin adds (registered by ``pytest_addhooks``)."""

    @pytest.hookspec(firstresult=True)
    def pytest_falco_replay(
        self, config: pytest.Config, ruleset: Ruleset, fixture_input: FixtureInput, options: EngineOptions
    ) -> Iterable[AlertLike] | None:
        """Replay one fixture input through ``ruleset`` and return its alerts.

        Return None to leave the replay to the next implementation and finally to the engine
        chosen with ``--falco-engine``. Alerts need ``rule``, ``priority``, ``output``,
        ``output_fields`` and ``tags`` (``falcorules_ci.engine.alerts.Alert`` has them). A conftest
        that may also run without this plugin should mark its implementation
        ``@pytest.hookimpl(optionalhook=True)``.
        """
        return None


# -- settings --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FalcoSettings:
    """The plugin's options, resolved once: flag, then ini option, then default."""

    rules: tuple[Path, ...] = ()
    fixtures: tuple[Path, ...] = ()
    engine: str = "embedded"
    rule_matching: str = "first"
    require_tests: tuple[Path, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.rules)

    @classmethod
    def from_config(cls, config: pytest.Config) -> FalcoSettings:
        here = config.invocation_params.dir

        def flag_paths(name: str) -> list[Path]:
            return [(here / p).resolve() for p in config.getoption(name) or ()]

        def ini_paths(name: str) -> list[Path]:
            return [Path(p).resolve() for p in config.getini(name) or ()]

        fixtures_flag = config.getoption("falco_fixtures")
        fixtures = ([(here / fixtures_flag).resolve()] if fixtures_flag
                    else ini_paths("falco_fixtures") or [(config.rootpath / DEFAULT_FIXTURES).resolve()])  # fmt: skip
        engine = config.getoption("falco_engine") or config.getini("falco_engine") or "embedded"
        matching = config.getoption("falco_rule_matching") or config.getini("falco_rule_matching") or "first"
        if engine not in ENGINES:
            raise pytest.UsageError(f"falco_engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        if matching not in RULE_MATCHING:
            raise pytest.UsageError(f"falco_rule_matching must be one of {', '.join(RULE_MATCHING)}, not {matching!r}")
        return cls(
            rules=tuple(flag_paths("falco_rules") or ini_paths("falco_rules")),
            fixtures=tuple(fixtures),
            engine=engine,
            rule_matching=matching,
            require_tests=tuple(flag_paths("falco_require_tests") or ini_paths("falco_require_tests")),
        )

    def in_fixtures(self, path: Path) -> bool:
        return any(_within(path, d) for d in self.fixtures)


def _within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


settings_key = pytest.StashKey[FalcoSettings]()
run_key = pytest.StashKey["FalcoRun"]()


# -- per-process state --------------------------------------------------------------------------------


class RulesNotLoaded(Exception):
    """The rule pack has load errors; every item that needs it fails with them."""


# Compiled packs by (files, mtimes, sizes, options): once per process or xdist worker.
_PACKS: dict[tuple[Any, ...], Ruleset] = {}


def _pack_key(paths: Sequence[Path], extra: Any) -> tuple[Any, ...]:
    from falcorules_ci import expand_paths

    stamp: list[tuple[str, int | None, int | None]] = []
    for p in expand_paths(paths):
        try:
            st = p.stat()
            stamp.append((str(p), st.st_mtime_ns, st.st_size))
        except OSError:
            stamp.append((str(p), None, None))
    return (tuple(stamp), extra)


# Replay sessions (a compiled engine reused for every input) by pack and options.
_SESSIONS: dict[tuple[int, EngineOptions], ReplaySession] = {}


def _session(ruleset: Ruleset, options: EngineOptions) -> ReplaySession:
    from falcorules_ci.expect.explain import ReplaySession

    key = (id(ruleset), options)
    found = _SESSIONS.get(key)
    if found is None or found.ruleset is not ruleset:
        found = _SESSIONS[key] = ReplaySession(ruleset, options)
    return found


def _default_replay(ruleset: Ruleset, fixture_input: FixtureInput, options: EngineOptions, engine: str) -> list[Any]:
    if engine == "embedded":
        # Compiling the pack's conditions costs more than replaying a small fixture: compile once.
        return list(_session(ruleset, options).alerts(fixture_input))
    from falcorules_ci.expect.inputs import replay_input

    return replay_input(ruleset, fixture_input, options, engine)  # type: ignore[arg-type]


# The replay used when no ``pytest_falco_replay`` implementation answers; tests may swap it.
_replay_impl: Callable[[Ruleset, FixtureInput, EngineOptions, str], list[Any]] = _default_replay


class FalcoRun:
    """What one process shares between items: the compiled pack and each fixture's alerts."""

    def __init__(self, settings: FalcoSettings, config: pytest.Config) -> None:
        self.settings = settings
        self.config = config
        self._alerts: dict[int, tuple[Fixture, list[Any] | BaseException]] = {}
        self._catalog: RuleCatalog | None = None
        # Inputs whose alerts came from elsewhere than the embedded engine: not explained by it.
        self._foreign: set[int] = set()

    @staticmethod
    def of(config: pytest.Config) -> FalcoRun:
        run = config.stash.get(run_key, None)
        if run is None:
            raise pytest.UsageError("no Falco rules configured: pass --falco-rules PATH or set falco_rules in the ini file")
        return run

    @property
    def attack(self) -> AttackTable:
        from falcorules_ci.expect.attack import AttackTable

        return AttackTable.load()

    def load_options(self) -> Any:
        from falcorules_ci import LoadOptions

        return LoadOptions()

    def engine_options(self) -> EngineOptions:
        from falcorules_ci.engine.options import EngineOptions

        return EngineOptions(rule_matching=self.settings.rule_matching)  # type: ignore[arg-type]

    def ruleset(self) -> Ruleset:
        """The compiled pack; raises :class:`RulesNotLoaded` with Falco's diagnostics if it failed."""
        from falcorules_ci import load_ruleset

        options = self.load_options()
        key = _pack_key(self.settings.rules, options)
        ruleset = _PACKS.get(key)
        if ruleset is None:
            ruleset = _PACKS[key] = load_ruleset(self.settings.rules, options=options)
        if not ruleset.successful:
            raise RulesNotLoaded(_load_errors(ruleset))
        return ruleset

    def catalog(self) -> RuleCatalog:
        from falcorules_ci.expect.expectations import RuleCatalog

        if self._catalog is None:
            self._catalog = RuleCatalog(self.ruleset().rules)
        return self._catalog

    def replay_input(self, fixture_input: FixtureInput) -> list[Any]:
        ruleset = self.ruleset()
        options = self.engine_options()
        result = self.config.hook.pytest_falco_replay(
            config=self.config, ruleset=ruleset, fixture_input=fixture_input, options=options
        )
        if result is not None or _replay_impl is not _default_replay or self.settings.engine != "embedded":
            self._foreign.add(id(fixture_input))
        if result is None:
            return _replay_impl(ruleset, fixture_input, options, self.settings.engine)
        return list(result)

    def explained(self, fixture: Fixture, expectation: Expectation, outcome: Outcome, alerts: list[Any]) -> Outcome:
        """A failed outcome with the clause-level explanation added, when the embedded engine
        produced the alerts (another engine's alerts are not the embedded engine's to explain)."""
        import dataclasses

        from falcorules_ci.errors import FalcoRulesError
        from falcorules_ci.expect.explain import failure_explanation

        if id(fixture.input) in self._foreign:
            return outcome
        try:
            text = failure_explanation(_session(self.ruleset(), self.engine_options()), fixture, expectation, alerts)
        except FalcoRulesError as exc:
            text = f"(no explanation: {exc})"
        except Exception as exc:  # a defect in the explainer must not hide the failure itself
            text = f"(no explanation: internal error {type(exc).__name__}: {exc})"
        return dataclasses.replace(outcome, message=f"{outcome.message}\n{text}") if text else outcome

    def alerts(self, fixture: Fixture) -> list[Any]:
        """The fixture's alerts, replayed on first use; a failed replay fails every item alike."""
        # Items of one file share one Fixture object; its identity is the cache key.
        key = id(fixture)
        if key not in self._alerts:
            try:
                result: list[Any] | BaseException = self.replay_input(fixture.input)
            except Exception as exc:
                result = exc
            self._alerts[key] = (fixture, result)
        cached = self._alerts[key][1]
        if isinstance(cached, BaseException):
            raise cached
        return cached


def _load_errors(ruleset: Ruleset, limit: int = 5) -> str:
    lines = []
    for result in ruleset.results:
        for error in result.errors:
            diag = error.diagnostic()
            lines.append(str(diag) + (f"\n{diag.snippet}" if diag.snippet else ""))
    more = f"\n... and {len(lines) - limit} more" if len(lines) > limit else ""
    return "the Falco rules failed to load:\n" + "\n".join(lines[:limit]) + more


# -- hooks ------------------------------------------------------------------------------------------------


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(FalcoHookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("falco", "Falco rule tests (falcorules-ci)")
    group.addoption("--falco-rules", action="append", dest="falco_rules", default=[], metavar="PATH",
                    help="Falco rules file or folder to test (repeatable, loaded in order). Enables the plugin.")  # fmt: skip
    group.addoption("--falco-fixtures", dest="falco_fixtures", default=None, metavar="DIR",
                    help=f"Folder of fixture YAML files (default: {DEFAULT_FIXTURES}/ under the rootdir).")  # fmt: skip
    group.addoption("--falco-engine", dest="falco_engine", choices=ENGINES, default=None,
                    help="Engine that replays fixtures (default: embedded).")  # fmt: skip
    group.addoption("--falco-rule-matching", dest="falco_rule_matching", choices=RULE_MATCHING, default=None,
                    help="Falco's rule_matching: first (default) or all.")  # fmt: skip
    group.addoption("--falco-require-tests", action="append", dest="falco_require_tests", default=[],
                    metavar="RULES", help="Rules file(s) whose every enabled rule needs a positive and a benign "
                    "fixture; each missing one is a failing item.")  # fmt: skip
    parser.addini("falco_rules", type="paths", help="Falco rules files or folders (like --falco-rules).")
    parser.addini("falco_fixtures", type="paths", help="Fixture folders (like --falco-fixtures).")
    parser.addini("falco_engine", type="string", default="", help="embedded or sysdig.")
    parser.addini("falco_rule_matching", type="string", default="", help="first or all.")
    parser.addini("falco_require_tests", type="paths", help="Rules files under the coverage gate.")


def pytest_configure(config: pytest.Config) -> None:
    settings = FalcoSettings.from_config(config)
    config.stash[settings_key] = settings
    config.addinivalue_line("markers", "falco: an expectation of a Falco fixture (falcorules-ci)")
    if not settings.active:
        return
    config.stash[run_key] = FalcoRun(settings, config)
    _register_attack_markers(config)
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        # `pytest --falco-rules rules/` must find the fixtures even when testpaths point elsewhere.
        here = config.invocation_params.dir
        given = [(here / a).resolve() for a in config.args]
        for folder in settings.fixtures:
            if folder.is_dir() and not any(_within(folder, g) for g in given):
                config.args.append(str(folder))


def _register_attack_markers(config: pytest.Config) -> None:
    from falcorules_ci.expect.attack import AttackTable

    table = AttackTable.load()
    for tactic in table.tactics.values():
        config.addinivalue_line("markers", f"{tactic.id}: ATT&CK tactic {tactic.name}")
    for tech in table.techniques.values():
        config.addinivalue_line("markers", f"{tech.id}: ATT&CK technique {tech.name}")


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    settings = config.stash.get(settings_key, None)
    if settings is None or not settings.active:
        return None
    rules = ", ".join(_display(p, config) for p in settings.rules)
    return [f"falco rules: {rules} (engine {settings.engine}, rule_matching {settings.rule_matching})"]


def _shown(path: Path, config: pytest.Config) -> Path:
    """The path as messages should show it: relative to where pytest was started, if inside."""
    try:
        return path.relative_to(config.invocation_params.dir)
    except ValueError:
        return path


def _display(path: Path, config: pytest.Config) -> str:
    try:
        return path.relative_to(config.rootpath).as_posix()
    except ValueError:
        return str(path)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    settings = parent.config.stash.get(settings_key, None)
    if settings is None or not settings.active or file_path.suffix not in (".yaml", ".yml"):
        return None
    if not settings.in_fixtures(file_path) and not parent.session.isinitpath(file_path):
        return None
    from falcorules_ci.expect.fixture import looks_like_fixture

    if not looks_like_fixture(file_path):
        return None
    return FixtureFile.from_parent(parent, path=file_path)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # tryfirst: the coverage items must exist before -k / -m deselect.
    settings = config.stash.get(settings_key, None)
    if settings is None or not settings.active:
        return
    from falcorules_ci.pytest_pack_items import attack_tag_items, coverage_items

    items.extend(attack_tag_items(session, settings))
    if settings.require_tests:
        items.extend(coverage_items(session, settings))


def pytest_collection_finish(session: pytest.Session) -> None:
    settings = session.config.stash.get(settings_key, None)
    if settings is None or not settings.active:
        return
    # Collected fixtures (with their positioned YAML) and the compiled pack live until the end of
    # the session: keep them out of the cyclic collector, whose full passes (during the run and
    # pytest's own at exit) would otherwise walk them again and again.
    gc.freeze()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    fired = getattr(item, "rules_fired", None)
    if call.when == "call" and fired is not None:
        # A report attribute travels to xdist's controller; summaries (falcorules-ci test) read it.
        report.falco_rules_fired = fired  # type: ignore[attr-defined]
    return report


# -- items ------------------------------------------------------------------------------------------------


class ExpectationFailed(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def _failure_text(excinfo: pytest.ExceptionInfo[BaseException]) -> str | None:
    """Our own report for the failures we expect; None lets pytest show a traceback (a bug)."""
    from falcorules_ci.errors import FalcoRulesError

    exc = excinfo.value
    if isinstance(exc, ExpectationFailed):
        where = f"{exc.outcome.span}: " if exc.outcome.span else ""
        return f"{where}{exc.outcome.name}: {exc.outcome.message}"
    if isinstance(exc, FalcoRulesError | RulesNotLoaded):
        return str(exc)
    return None


class FixtureFile(pytest.File):
    """One fixture file: an item per expectation, or one failing item if the file is broken."""

    def collect(self) -> Iterator[pytest.Item]:
        from falcorules_ci.errors import FalcoRulesError
        from falcorules_ci.expect.expectations import expectations_of
        from falcorules_ci.expect.fixture import load_fixture

        attack = FalcoRun.of(self.config).attack
        try:
            fixture = load_fixture(_shown(self.path, self.config), attack=attack)
        except FalcoRulesError as exc:
            yield FixtureErrorItem.from_parent(self, name="fixture", error=exc)
            return
        for finding in fixture.warnings:
            self.warn(FalcoAttackWarning(f"{fixture.path}: ioa: {finding.message}"))
        marks = _marks_for(fixture, attack)
        for expectation in expectations_of(fixture, attack):
            item = ExpectationItem.from_parent(self, name=expectation.name, fixture=fixture, expectation=expectation)
            for mark in marks:
                item.add_marker(mark)
            yield item


def _marks_for(fixture: Fixture, attack: AttackTable) -> list[str]:
    marks = ["falco"]
    ioa = fixture.ioa
    if ioa is None or not ioa.technique:
        return marks
    technique = ioa.technique
    marks.append(technique)
    if "." in technique:
        marks.append(technique.split(".", 1)[0])
    if ioa.tactic:
        marks.append(ioa.tactic)
    else:
        marks.extend(t.id for t in attack.tactics_of(technique))
    return list(dict.fromkeys(marks))


class ExpectationItem(pytest.Item):
    """One expectation of a fixture, checked against the fixture's shared alerts."""

    def __init__(self, *, fixture: Fixture, expectation: Expectation, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fixture = fixture
        self.expectation = expectation
        self.rules_fired: tuple[str, ...] | None = None  # once run: the rules the input fired
        if fixture.ioa is not None:
            self.user_properties.append(("ioa", fixture.ioa.name))
            if fixture.ioa.technique:
                self.user_properties.append(("technique", fixture.ioa.technique))

    def runtest(self) -> None:
        run = FalcoRun.of(self.config)
        alerts = run.alerts(self.fixture)
        self.rules_fired = tuple(dict.fromkeys(a.rule for a in alerts))
        outcome = self.expectation.check(alerts, run.catalog())
        span = self.expectation.span
        for text in outcome.warnings:
            # attributed to the fixture line, not to this module
            warnings.warn_explicit(FalcoAttackWarning(text), FalcoAttackWarning, str(self.path),
                                   span.line if span is not None else 0)  # fmt: skip
        if not outcome.passed:
            raise ExpectationFailed(run.explained(self.fixture, self.expectation, outcome, alerts))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        return _failure_text(excinfo) or super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        span = self.expectation.span
        return self.path, (span.line - 1 if span and span.line else None), f"{self.fixture.id}::{self.name}"


class FixtureErrorItem(pytest.Item):
    """A fixture that could not be loaded: fails with the position and the fix."""

    def __init__(self, *, error: Exception, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error
        self.add_marker("falco")

    def runtest(self) -> None:
        raise self.error

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        return _failure_text(excinfo) or super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        span = getattr(self.error, "span", None)
        return self.path, (span.line - 1 if span is not None and span.line else None), f"{self.path.name}: invalid fixture"


# -- the coverage gate -------------------------------------------------------------------------------------


# -- fixtures for Python tests ------------------------------------------------------------------------------


def _run_for_fixture(config: pytest.Config) -> FalcoRun:
    run = config.stash.get(run_key, None)
    if run is None:
        pytest.fail("this test needs Falco rules: pass --falco-rules PATH or set falco_rules in the ini file",
                    pytrace=False)  # fmt: skip
    return run


@pytest.fixture(scope="session")
def falco_engine(pytestconfig: pytest.Config) -> Ruleset:
    """The compiled rule pack of ``--falco-rules`` (fails the test if the rules do not load)."""
    run = _run_for_fixture(pytestconfig)
    try:
        return run.ruleset()
    except RulesNotLoaded as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def falco_replay(request: pytest.FixtureRequest) -> Callable[..., list[Any]]:
    """``falco_replay(source, kind=None)``: replay a scenario/capture/audit path (relative to the
    test file's folder), an inline scenario mapping or a list of audit shorthand events, and
    return the alerts."""
    from falcorules_ci.expect.inputs import adhoc_input

    run = _run_for_fixture(request.config)
    base = Path(request.path).parent

    def replay(source: str | Path | Mapping[str, Any] | Sequence[Mapping[str, Any]], kind: str | None = None) -> list[Any]:
        try:
            return run.replay_input(adhoc_input(source, kind, base))
        except RulesNotLoaded as exc:
            pytest.fail(str(exc), pytrace=False)

    return replay
