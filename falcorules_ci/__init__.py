"""falcorules-ci: a rules-as-code test framework for Falco.

The public API: load rule packs exactly as Falco does, inspect their compiled rules and load
diagnostics. Replay engines, fixtures and reports build on these.
"""

from __future__ import annotations

from falcorules_ci.errors import ConditionError, Diagnostic, FalcoRulesError, InputError, Span, UsageError
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
    "AppendOutput",
    "ConditionError",
    "Diagnostic",
    "FalcoRulesError",
    "FileResult",
    "InputError",
    "LoadMessage",
    "LoadOptions",
    "Priority",
    "Rule",
    "Ruleset",
    "Span",
    "UsageError",
    "Version",
    "__version__",
    "expand_paths",
    "load_ruleset",
]
