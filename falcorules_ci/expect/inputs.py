"""A fixture's input opened with the matching reader, and replayed through an engine.

This is the one place that knows which reader serves which input kind and which engine a name
selects; readers and engines are imported when first needed, so loading fixtures never pays for
them.

===============  =====================================================================
input kind        reader
===============  =====================================================================
scenario_file     ``sources.scenario.load_scenario(path)``
scenario          ``load_scenario(text, name=fixture)``: the inline mapping, positioned
capture           ``sources.scap.read_capture(path)``
audit             ``sources.k8saudit.read_audit(path)``
audit_events      ``read_audit`` of the inline list, positioned as in the fixture
===============  =====================================================================
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import yaml

from falcorules_ci.errors import FalcoRulesError, InputError, Span, UsageError
from falcorules_ci.expect.fixture import FixtureInput, InputKind

EngineName = Literal["embedded", "sysdig"]
ENGINES: tuple[EngineName, ...] = ("embedded", "sysdig")
# The module of each engine; each offers ``replay(ruleset, inputs, options) -> Iterator[Alert]``.
ENGINE_MODULES: dict[EngineName, str] = {
    "embedded": "falcorules_ci.engine.replay",
    "sysdig": "falcorules_ci.engine.sysdig",
}


class EngineUnavailable(UsageError):
    """The selected engine or reader is not part of this installation."""


def _import(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            raise EngineUnavailable(f"{what} is not available: module {module} is missing") from None
        raise


def fixture_name(fixture_input: FixtureInput) -> str:
    """The file name inline inputs report in positions: the fixture's own."""
    return fixture_input.span.path


@contextmanager
def open_input(fixture_input: FixtureInput) -> Iterator[Any]:
    """The reader's object for a fixture input (a Scenario, a capture, an AuditInput)."""
    kind = fixture_input.kind
    if kind is InputKind.SCENARIO_FILE:
        yield _import("falcorules_ci.sources.scenario", "the scenario reader").load_scenario(fixture_input.path)
    elif kind is InputKind.SCENARIO:
        scenario = _import("falcorules_ci.sources.scenario", "the scenario reader")
        yield scenario.load_scenario(_inline(fixture_input), name=fixture_name(fixture_input))
    elif kind is InputKind.CAPTURE:
        yield _import("falcorules_ci.sources.scap", "the capture reader").read_capture(fixture_input.path)
    elif kind is InputKind.AUDIT:
        yield _import("falcorules_ci.sources.k8saudit", "the audit reader").read_audit(fixture_input.path)
    else:
        with _inline_audit(fixture_input) as audit:
            yield audit


def _inline(fixture_input: FixtureInput) -> str:
    if fixture_input.text is None:
        raise InputError(f"inline {fixture_input.kind.value} has no text", fixture_input.span)
    return fixture_input.text


@contextmanager
def _inline_audit(fixture_input: FixtureInput) -> Iterator[Any]:
    """The audit reader reads files; the inline list is written to one, positioned line for line
    as in the fixture, and positions are renamed back to the fixture."""
    k8saudit = _import("falcorules_ci.sources.k8saudit", "the audit reader")
    name = fixture_name(fixture_input)
    fd, temp = tempfile.mkstemp(prefix="falcorules-audit-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(_inline(fixture_input))
        audit = k8saudit.read_audit(temp)
        yield _Renamed(audit, temp, name)
    finally:
        os.unlink(temp)


class _Renamed:
    """An audit input whose events and errors name the fixture instead of the temporary file."""

    def __init__(self, inner: Any, temp: str, name: str) -> None:
        self._inner = inner
        self._temp = temp
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    def _span(self, span: Span | None) -> Span | None:
        if span is not None and span.path == self._temp:
            return dataclasses.replace(span, path=self._name)
        return span

    def __iter__(self) -> Iterator[Any]:
        try:
            for event in self._inner:
                event.span = self._span(event.span)
                yield event
        except FalcoRulesError as exc:
            exc.span = self._span(exc.span)
            raise

    def events(self) -> list[Any]:
        return list(self)


def replay_input(ruleset: Any, fixture_input: FixtureInput, options: Any, engine: EngineName = "embedded") -> list[Any]:
    """Every alert of one replay of the input through the selected engine."""
    if engine not in ENGINE_MODULES:
        raise UsageError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    module = _import(ENGINE_MODULES[engine], f"the {engine} engine")
    with open_input(fixture_input) as source:
        return list(module.replay(ruleset, [source], options))


def adhoc_input(source: Any, kind: str | None = None, base: Path | None = None) -> FixtureInput:
    """A fixture input built from a path (relative to ``base`` if it exists there), an inline
    scenario mapping or a list of audit events; the kind follows the suffix or the content
    unless given (``scenario_file``, ``capture``, ``audit``, ``scenario``, ``audit_events``)."""
    base = base or Path.cwd()
    if isinstance(source, Mapping | list | tuple):
        default = InputKind.SCENARIO if isinstance(source, Mapping) else InputKind.AUDIT_EVENTS
        chosen = InputKind(kind) if kind else default
        data = dict(source) if isinstance(source, Mapping) else list(source)
        span = Span(f"<inline {chosen.value}>", 1, 1)
        return FixtureInput(chosen, span, data=data, text=yaml.safe_dump(data, sort_keys=False), base_dir=base)
    path = Path(source)
    if not path.is_absolute() and (base / path).exists():
        path = base / path
    path = path.resolve()
    if not path.is_file():
        raise InputError(f"replay input not found: {path}", Span(str(path)))
    chosen = InputKind(kind) if kind else _kind_of(path)
    return FixtureInput(chosen, Span(str(path)), path=path, base_dir=path.parent)


def _kind_of(path: Path) -> InputKind:
    if path.suffix == ".scap":
        return InputKind.CAPTURE
    if path.suffix in (".json", ".jsonl", ".ndjson", ".log"):
        return InputKind.AUDIT
    k8saudit = _import("falcorules_ci.sources.k8saudit", "the audit reader")
    return InputKind.AUDIT if k8saudit.looks_like_audit(path) else InputKind.SCENARIO_FILE
