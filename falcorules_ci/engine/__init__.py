"""The embedded engine: Falco 0.44.1's rule evaluation and alert output in Python.

- :func:`replay` runs captures, scenarios and audit logs through a ruleset and yields
  :class:`Alert` records (Falco's JSON and text shapes), with counters on the returned
  :class:`ReplayRun`;
- :class:`EmbeddedEngine` is the per-event core (rule selection, event-type index,
  ``rule_matching``), :class:`EngineOptions` its settings;
- :func:`compile_condition` and :func:`explain` compile one typed condition and report each
  check's truth value on an event.
"""

from __future__ import annotations

from falcorules_ci.engine.alerts import Alert, iso8601_utc
from falcorules_ci.engine.core import CompiledRule, EmbeddedEngine, EngineError, EngineStats
from falcorules_ci.engine.index import reaches_rules, select_rules
from falcorules_ci.engine.options import EngineOptions
from falcorules_ci.engine.predicate import ClauseResult, Predicate, compile_condition, explain
from falcorules_ci.engine.replay import EventStream, InputReport, ReplayRun, open_input, replay

__all__ = [
    "Alert",
    "ClauseResult",
    "CompiledRule",
    "EmbeddedEngine",
    "EngineError",
    "EngineOptions",
    "EngineStats",
    "EventStream",
    "InputReport",
    "Predicate",
    "ReplayRun",
    "compile_condition",
    "explain",
    "iso8601_utc",
    "open_input",
    "reaches_rules",
    "replay",
    "select_rules",
]
