"""``replay()``: inputs (captures, scenarios, audit logs) through the embedded engine, as alerts.

Each input is replayed on its own, as one Falco run per file would: syscall inputs get fresh
state tables seeded from their header, and every event updates the state *before* the rules see
it (Falco's order). Enter events reach the rules only in legacy mode; ``k8s_audit`` events go to
the ``k8s_audit`` rules only.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from falcorules_ci.engine.alerts import Alert
from falcorules_ci.engine.core import EmbeddedEngine
from falcorules_ci.engine.generic import PluginState
from falcorules_ci.engine.operands import FieldResolver
from falcorules_ci.engine.options import EngineOptions
from falcorules_ci.errors import Diagnostic, InputError, Span, UsageError
from falcorules_ci.fields.registry import FieldRegistry
from falcorules_ci.ruleset.model import Rule, Ruleset
from falcorules_ci.sources.event import K8S_AUDIT_SOURCE, SYSCALL_SOURCE, Event
from falcorules_ci.sources.records import CaptureHeader, SourceStats

SourceKind = Literal["auto", "syscall", "k8s_audit"]
OnError = Literal["stop", "skip"]

SCAP_MAGIC = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"


class SyscallInput(Protocol):
    """A capture or scenario: its initial state and its events."""

    header: CaptureHeader

    def events(self) -> Iterable[Event]: ...


@dataclass(slots=True)
class EventStream:
    """Already-made events (a generated stream, a test's list) as a replay input."""

    name: str
    events_iter: Iterable[Event]
    header: CaptureHeader = field(default_factory=CaptureHeader)
    source: str = SYSCALL_SOURCE
    stats: SourceStats = field(default_factory=SourceStats)

    def events(self) -> Iterable[Event]:
        return self.events_iter


@dataclass(slots=True)
class InputReport:
    """What one input gave: events read, and what its reader skipped (by reason)."""

    name: str
    kind: str  # "scap", "scenario", "k8s_audit", "events"
    source: str
    events_read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)


# -- opening inputs ------------------------------------------------------------------------------


def _head(path: str, size: int = 4096) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError as exc:
        raise InputError(f"cannot read input: {exc.strerror or exc}", Span(path)) from None


def _is_capture(head: bytes) -> bool:
    return head.startswith(SCAP_MAGIC) or head.startswith(GZIP_MAGIC)


def _open_capture(path: str) -> Any:
    # A capture's reader has no skip mode: a malformed block always stops the replay.
    from falcorules_ci.sources.scap import read_capture

    return read_capture(path)


def _open_scenario(path: str) -> Any:
    from falcorules_ci.sources.scenario import load_scenario

    return load_scenario(Path(path))


def _open_audit(path: str, on_error: OnError) -> Any:
    from falcorules_ci.sources.k8saudit import read_audit

    return read_audit(path, on_error)


def open_input(item: str | os.PathLike[str], source: SourceKind = "auto",
               on_error: OnError = "stop") -> tuple[Any, InputReport]:  # fmt: skip
    """Open one input path, telling captures, scenarios and audit logs apart by content."""
    path = os.fspath(item)
    if not os.path.exists(path):
        raise InputError("input not found", Span(path))
    if os.path.isdir(path):
        raise InputError("input is a directory, not a file", Span(path))
    head = _head(path)
    if source == "k8s_audit":
        return _open_audit(path, on_error), InputReport(path, "k8s_audit", K8S_AUDIT_SOURCE)
    if _is_capture(head):
        return _open_capture(path), InputReport(path, "scap", SYSCALL_SOURCE)
    if source == "auto":
        from falcorules_ci.sources.k8saudit import looks_like_audit

        if looks_like_audit(path):
            return _open_audit(path, on_error), InputReport(path, "k8s_audit", K8S_AUDIT_SOURCE)
    if path.endswith((".yaml", ".yml")) or _looks_like_scenario(head):
        return _open_scenario(path), InputReport(path, "scenario", SYSCALL_SOURCE)
    raise InputError(
        "cannot tell what this input is: expected a .scap capture, a scenario (YAML) or a Kubernetes "
        "audit log (JSON Lines, JSON or YAML)",
        Span(path),
    )


def _looks_like_scenario(head: bytes) -> bool:
    text = head.decode("utf-8", "replace")
    return any(line.startswith(("scenario:", "events:")) for line in text.splitlines())


def _wrap_object(item: Any) -> tuple[Any, InputReport]:
    """An already-open source object as an input."""
    name = str(getattr(item, "path", "") or getattr(item, "name", "") or type(item).__name__)
    if isinstance(item, EventStream):
        return item, InputReport(item.name, "events", item.source)
    if hasattr(item, "header") and callable(getattr(item, "events", None)):
        kind = "scenario" if hasattr(item, "title") else "scap"
        return item, InputReport(name, kind, SYSCALL_SOURCE)
    if hasattr(item, "layout") and hasattr(item, "stats"):
        return item, InputReport(name, "k8s_audit", K8S_AUDIT_SOURCE)
    if isinstance(item, Iterable):
        return EventStream(name, item), InputReport(name, "events", SYSCALL_SOURCE)
    raise UsageError(f"not a replay input: {type(item).__name__}")


# -- the run ---------------------------------------------------------------------------------------


class ReplayRun(Iterator[Alert]):
    """A replay in progress: iterate it for alerts; its counters are complete once exhausted."""

    def __init__(
        self,
        ruleset: Ruleset | Iterable[Rule],
        inputs: Iterable[Any] | str | os.PathLike[str],
        options: EngineOptions | None = None,
        *,
        source: SourceKind = "auto",
        on_error: OnError = "stop",
        registry: FieldRegistry | None = None,
        resolver: FieldResolver | None = None,
    ) -> None:
        if source not in ("auto", "syscall", "k8s_audit"):
            raise UsageError(f"source must be auto, syscall or k8s_audit, not {source!r}")
        if on_error not in ("stop", "skip"):
            raise UsageError(f"on_error must be stop or skip, not {on_error!r}")
        self.options = options or EngineOptions()
        rules = ruleset if isinstance(ruleset, Ruleset) else list(ruleset)
        self.engine = EmbeddedEngine(rules, self.options, registry=registry, resolver=resolver)
        self.inputs: list[InputReport] = []
        self._pending: list[Any] = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
        self._source: SourceKind = source
        self._on_error: OnError = on_error
        self._alerts = self._run()

    def __next__(self) -> Alert:
        return next(self._alerts)

    def __iter__(self) -> ReplayRun:
        return self

    # -- counters --------------------------------------------------------------------------

    @property
    def events_read(self) -> dict[str, int]:
        """Events read, by input name."""
        return {r.name: r.events_read for r in self.inputs}

    @property
    def events_evaluated(self) -> int:
        """Events that reached at least one rule."""
        return sum(self.engine.stats.events_evaluated.values())

    @property
    def alerts_by_rule(self) -> Counter[str]:
        return self.engine.stats.alerts_by_rule

    @property
    def skipped(self) -> dict[str, dict[str, int]]:
        """What the sources skipped, by input name and reason."""
        return {r.name: dict(r.skipped) for r in self.inputs if r.skipped}

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> Iterator[Alert]:
        for item in self._pending:
            if isinstance(item, str | os.PathLike):
                opened, report = open_input(item, self._source, self._on_error)
            else:
                opened, report = _wrap_object(item)
            self.inputs.append(report)
            if report.source == K8S_AUDIT_SOURCE:
                yield from self._replay_plugin(opened, report)
            else:
                yield from self._replay_syscall(opened, report)
            stats = getattr(opened, "stats", None)
            if isinstance(stats, SourceStats):
                report.skipped.update(stats.skipped)
            warnings = getattr(opened, "warnings", None)
            if isinstance(warnings, list):
                report.warnings.extend(w for w in warnings if isinstance(w, Diagnostic))

    def _replay_syscall(self, opened: Any, report: InputReport) -> Iterator[Alert]:
        from falcorules_ci.state.syscall_state import SyscallState

        header = getattr(opened, "header", None) or CaptureHeader()
        state = SyscallState(header)
        plugin_state = self._plugin_state()
        process = self.engine.process
        update = state.update
        read = 0
        try:
            for event in opened.events():
                read += 1
                if event.source != SYSCALL_SOURCE:
                    # A capture may carry plugin events; they have no syscall state.
                    plugin_state.update(event)
                    yield from process(event, plugin_state)
                    continue
                update(event)
                alerts = process(event, state)
                if alerts:
                    yield from alerts
        finally:
            report.events_read += read

    def _replay_plugin(self, opened: Any, report: InputReport) -> Iterator[Alert]:
        state = self._plugin_state()
        process = self.engine.process
        events: Iterable[Event] = opened.events() if isinstance(opened, EventStream) else opened
        read = 0
        try:
            for event in events:
                read += 1
                state.update(event)
                alerts = process(event, state)
                if alerts:
                    yield from alerts
        finally:
            report.events_read += read

    def _plugin_state(self) -> PluginState:
        return PluginState(hostname=self.engine.hostname, utc_offset=self.engine.utc_offset)


def replay(
    ruleset: Ruleset | Iterable[Rule],
    inputs: Iterable[Any] | str | os.PathLike[str],
    options: EngineOptions | None = None,
    *,
    source: SourceKind = "auto",
    on_error: OnError = "stop",
    registry: FieldRegistry | None = None,
    resolver: FieldResolver | None = None,
) -> ReplayRun:
    """Replay inputs through the rules; iterate the result for alerts, then read its counters.

    ``inputs`` are paths (``.scap`` captures, scenario YAML, Kubernetes audit JSON/JSONL/YAML,
    told apart by content) or already-open sources (a scenario or capture object, an audit input,
    an :class:`EventStream` or any iterable of events).
    """
    return ReplayRun(ruleset, inputs, options, source=source, on_error=on_error, registry=registry,
                     resolver=resolver)  # fmt: skip
