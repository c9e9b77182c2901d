"""falcorules-ci: a rules-as-code test framework for Falco.

The public API: load rule packs exactly as Falco does, inspect their compiled rules and load
diagnostics. Replay engines, fixtures and reports build on these.
"""

from __future__ import annotations

from falcorules_ci.engine.alerts import Alert
from falcorules_ci.engine.options import EngineOptions
from falcorules_ci.engine.replay import ReplayRun, replay
from falcorules_ci.errors import ConditionError, Diagnostic, FalcoRulesError, InputError, Span, UsageError
from falcorules_ci.expect.attack import AttackTable
from falcorules_ci.expect.expectations import Outcome, RuleCatalog, check_fixture, expectations_of
from falcorules_ci.expect.fixture import Fixture, discover_fixtures, load_fixture
from falcorules_ci.rules.model import Priority
from falcorules_ci.rules.result import FileResult, LoadMessage
from falcorules_ci.rules.versions import DEFAULT_PLUGINS, ENGINE_VERSION, FALCO_VERSION, Version
from falcorules_ci.ruleset.loader import expand_paths, load_ruleset
from falcorules_ci.ruleset.model import AppendOutput, LoadOptions, Rule, Ruleset

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PLUGINS",
    "ENGINE_VERSION",
    "FALCO_VERSION",
    "Alert",
    "AppendOutput",
    "AttackTable",
    "ConditionError",
    "Diagnostic",
    "EngineOptions",
    "FalcoRulesError",
    "FileResult",
    "Fixture",
    "InputError",
    "LoadMessage",
    "LoadOptions",
    "Outcome",
    "Priority",
    "ReplayRun",
    "Rule",
    "RuleCatalog",
    "Ruleset",
    "Span",
    "UsageError",
    "Version",
    "__version__",
    "check_fixture",
    "discover_fixtures",
    "expand_paths",
    "expectations_of",
    "load_fixture",
    "load_ruleset",
    "replay",
]
