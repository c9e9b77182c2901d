"""The ``sysdig`` engine: rules evaluated by Debian's sysdig 0.29.3 (libsinsp of March 2022).

Each selected rule's fully expanded condition (macros, lists and exceptions resolved) is printed
in sysdig's filter syntax and evaluated by sysdig on the capture; the matches become the same
:class:`~falcorules_ci.engine.alerts.Alert` records the embedded engine produces, so the two can
be compared directly::

    run = replay(ruleset, ["trace.scap", "tests/scenarios/x.fire.yaml"], EngineOptions(legacy_enter_events=True))
    alerts = list(run)
    run.not_checkable        # {rule name: why sysdig cannot evaluate it}

How (details in :mod:`~falcorules_ci.engine.sysdig_runner`): per input, one sysdig process
evaluates every checkable rule (one chisel per rule, filters applied after the state engine, as
Falco does), then a second one prints the output fields of the matched events. Inputs are
handled ``workers`` at a time (default 2). Scenarios and event streams are first written as a
capture with :func:`~falcorules_ci.sources.scap.writer.write_capture`.

Semantics and where they differ from the embedded engine:

- Rule selection (priority, ``-t``/``-T``/``-D``) is the embedded engine's. ``rule_matching:
  first`` is applied after collecting every rule's matches: per event, the first matching rule in
  load order among the *checkable* rules (a not-checkable rule cannot take an event away).
- sysdig evaluates enter events; unless ``legacy_enter_events`` is set, matches on syscall enter
  events are dropped, as current Falco never shows enter events to rules. State is sysdig's own
  (enter events included), so a cross-check against the embedded engine is exact only in legacy
  mode.
- Rules that are not syscall rules, use a field sysdig 0.29.3 does not know, use syntax it cannot
  express (transformers, ``val()``, modifiers, ``bcontains``, ...) or whose filter it rejects are
  not evaluated; :attr:`SysdigRun.not_checkable` names each with the reason.
- Alert texts come from sysdig's printed values; output fields it cannot print are ``<NA>``
  (:attr:`SysdigRun.unprintable`). Time fields are rendered from the event timestamp in the
  engine's time zone, as the embedded engine does.
- Event numbers are ours (our reader's order): sysdig's numbering is mapped onto it, since sysdig
  skips event types newer than it.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from falcorules_ci.engine.alerts import Alert
from falcorules_ci.engine.index import reaches_rules, select_rules
from falcorules_ci.engine.options import EngineOptions, utc_offset_seconds
from falcorules_ci.engine.replay import EventStream
from falcorules_ci.engine.sysdig_events import CaptureEvents, SysdigFormat
from falcorules_ci.engine.sysdig_filters import RulePlan, plan_rules
from falcorules_ci.engine.sysdig_runner import (
    SysdigError,
    SysdigRunner,
    SysdigUnavailable,
    require_sysdig,
    sysdig_binary,
)
from falcorules_ci.engine.timefmt import time_field_text
from falcorules_ci.errors import Diagnostic, InputError, Severity, Span, UsageError
from falcorules_ci.fields import default_registry
from falcorules_ci.fields.event_table import event_table
from falcorules_ci.fields.registry import FieldRegistry
from falcorules_ci.ruleset.model import Rule, Ruleset
from falcorules_ci.sources.event import SYSCALL_SOURCE, Event

SCAP_MAGIC = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(slots=True)
class SysdigInputReport:
    """One input: the capture sysdig read, how many events it read, and each rule's matches (our
    event numbers, before enter events are dropped and ``rule_matching`` is applied)."""

    name: str
    capture: str
    source: str = SYSCALL_SOURCE
    events_read: int = 0  # events sysdig read (and evaluated every checked rule on)
    skipped: dict[str, int] = field(default_factory=dict)
    matches: dict[str, tuple[int, ...]] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)
    sysdig_seconds: float = 0.0


@dataclass(slots=True)
class _InputResult:
    report: SysdigInputReport
    alerts: list[Alert]
    rejected: dict[int, str]


class SysdigRun(Iterator[Alert]):
    """A sysdig replay in progress: iterate it for alerts; counters are complete once exhausted."""

    def __init__(
        self,
        ruleset: Ruleset | Iterable[Rule],
        inputs: Iterable[Any] | str | os.PathLike[str],
        options: EngineOptions | None = None,
        *,
        registry: FieldRegistry | None = None,
        runner: SysdigRunner | None = None,
        binary: str | os.PathLike[str] | None = None,
        workers: int = 2,
    ) -> None:
        if workers < 1:
            raise UsageError("the sysdig engine needs at least one worker")
        self.options = options or EngineOptions()
        self.registry = registry or default_registry()
        rules = ruleset.rules if isinstance(ruleset, Ruleset) else list(ruleset)
        self.plans: list[RulePlan] = plan_rules(select_rules(rules, self.options), self.registry)
        self.not_checkable: dict[str, str] = {p.name: p.reason for p in self.plans if p.reason is not None}
        self.unprintable: dict[str, tuple[str, ...]] = {p.name: p.unprintable for p in self.plans if p.unprintable}
        self.inputs: list[SysdigInputReport] = []
        self.alerts_by_rule: Counter[str] = Counter()
        self.hostname = self.options.resolved_hostname()
        self.utc_offset = utc_offset_seconds(self.options.timezone)
        self._own_runner = runner is None
        self.runner = runner if runner is not None else SysdigRunner(binary)
        self._pending: list[Any] = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
        self._workers = workers
        self._checkable = [p for p in self.plans if p.filter is not None]
        self._formats: dict[str, tuple[SysdigFormat, tuple[tuple[str, SysdigFormat, bool], ...]]] = {}
        self._alerts = self._run()

    def __next__(self) -> Alert:
        return next(self._alerts)

    def __iter__(self) -> SysdigRun:
        return self

    # -- counters ---------------------------------------------------------------------------------

    @property
    def checked(self) -> tuple[str, ...]:
        """The rules sysdig evaluated, in load order."""
        return tuple(p.name for p in self._checkable if p.name not in self.not_checkable)

    @property
    def events_read(self) -> dict[str, int]:
        return {r.name: r.events_read for r in self.inputs}

    @property
    def events_evaluated(self) -> int:
        return sum(r.events_read for r in self.inputs)

    @property
    def skipped(self) -> dict[str, dict[str, int]]:
        return {r.name: dict(r.skipped) for r in self.inputs if r.skipped}

    # -- the loop ---------------------------------------------------------------------------------

    def _run(self) -> Iterator[Alert]:
        pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="sysdig")
        scratch = tempfile.TemporaryDirectory(prefix="falcorules-sysdig-inputs-")
        try:
            futures: list[Future[_InputResult]] = [
                pool.submit(self._replay_one, item, scratch.name, k) for k, item in enumerate(self._pending)
            ]
            for future in futures:
                result = future.result()
                self.inputs.append(result.report)
                for index, message in result.rejected.items():
                    self.not_checkable.setdefault(self._checkable[index].name,
                                                  f"sysdig 0.29.3 rejects the filter: {message}")  # fmt: skip
                for alert in result.alerts:
                    self.alerts_by_rule[alert.rule] += 1
                    yield alert
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            scratch.cleanup()
            if self._own_runner:
                self.runner.close()

    def _replay_one(self, item: Any, scratch: str, k: int) -> _InputResult:
        name, capture = capture_of(item, scratch, k)
        report = SysdigInputReport(name, capture)
        plans = self._checkable
        found = self.runner.match_filters(capture, [p.filter or "" for p in plans])
        report.sysdig_seconds = found.seconds
        events = CaptureEvents(capture)
        report.events_read = len(events)
        if events.unread_by_sysdig:
            report.skipped["event types newer than sysdig 0.29.3"] = events.unread_by_sysdig
        by_event: dict[int, list[int]] = {}  # sysdig evt.num -> plan indexes, in load order
        for index, nums in enumerate(found.matches):
            if index in found.rejected:
                continue
            if nums:
                report.matches[plans[index].name] = tuple(events.ours(n) for n in nums)
            for num in nums:
                by_event.setdefault(num, []).append(index)
        alerts = self._alerts_of(report, events, by_event)
        return _InputResult(report, alerts, found.rejected)

    def _alerts_of(self, report: SysdigInputReport, events: CaptureEvents, by_event: dict[int, list[int]]) -> list[Alert]:
        capture = report.capture
        table = event_table().by_code
        legacy = self.options.legacy_enter_events
        chosen: dict[int, list[int]] = {}
        for num in sorted(by_event):
            code = events.code(num)
            info = table.get(code)
            if not reaches_rules(code, info.direction if info else "<", legacy):
                continue
            indexes = by_event[num]
            chosen[num] = indexes[:1] if self.options.rule_matching == "first" else indexes
        if not chosen:
            return []
        formats = {i: self._format(self._checkable[i].rule) for ids in chosen.values() for i in ids}
        fields: dict[str, None] = {}
        for main, extras in formats.values():
            fields.update(dict.fromkeys(main.printed))
            for _, fmt, _ in extras:
                fields.update(dict.fromkeys(fmt.printed))
        names = ["evt.rawtime", *fields]
        printed = self.runner.print_fields(capture, names, only=chosen)
        if printed.crashed:
            report.warnings.append(Diagnostic(
                Severity.WARNING, "SYSDIG_CRASH",
                f"sysdig 0.29.3 crashed printing {', '.join(printed.crashed)}; those values show as <NA>",
                Span(capture)))  # fmt: skip
        alerts: list[Alert] = []
        for num, indexes in chosen.items():
            row = printed.rows.get(num)
            if row is None or row[0] is None:
                raise SysdigError(f"sysdig printed nothing for its event {num}", Span(capture))
            values = {name: text for name, text in zip(names, row, strict=True) if text is not None}
            ts = events.check(num, row[0])
            for index in indexes:
                alerts.append(self._alert(self._checkable[index].rule, formats[index], events.ours(num), ts, values))
        return alerts

    def _format(self, rule: Rule) -> tuple[SysdigFormat, tuple[tuple[str, SysdigFormat, bool], ...]]:
        found = self._formats.get(rule.name)
        if found is None:
            main = SysdigFormat(rule.output, self.registry, rule.source)
            extras = tuple((name, SysdigFormat(fmt if fmt is not None else "%" + name, self.registry, rule.source),
                            fmt is None) for name, fmt in rule.extra_fields if fmt is None or fmt)  # fmt: skip
            found = self._formats[rule.name] = (main, extras)
        return found

    def _alert(self, rule: Rule, formats: tuple[SysdigFormat, tuple[tuple[str, SysdigFormat, bool], ...]],
               num: int, ts: int, values: dict[str, str]) -> Alert:  # fmt: skip
        main, extras = formats
        message = main.render(values, ts, self.utc_offset)
        time_key = "evt.time.iso8601" if self.options.time_format_iso_8601 else "evt.time"
        line = f"{time_field_text(time_key, ts, self.utc_offset)}: {rule.priority.label} {message}"
        output_fields = main.fields(values, ts)
        output_fields[time_key] = ts
        for name, fmt, raw in extras:
            if raw:
                got = fmt.fields(values, ts)
                output_fields[name] = got.get(name, next(iter(got.values()), None))
            else:
                output_fields[name] = fmt.render(values, ts, self.utc_offset)
        return Alert(time=ts, rule=rule.name, priority=rule.priority, source=rule.source, tags=rule.tags,
                     output=line, message=message, output_fields=output_fields, hostname=self.hostname,
                     event_num=num)  # fmt: skip


# -- inputs ----------------------------------------------------------------------------------------


def _head(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(4096)
    except OSError as exc:
        raise InputError(f"cannot read input: {exc.strerror or exc}", Span(path)) from None


def capture_of(item: Any, scratch: str, k: int) -> tuple[str, str]:
    """(input name, capture path) for one replay input; scenarios and event streams are written
    as a capture in ``scratch`` first."""
    from falcorules_ci.sources.scap.reader import Capture

    if isinstance(item, str | os.PathLike):
        path = os.fspath(item)
        if not os.path.isfile(path):
            raise InputError("input not found" if not os.path.exists(path) else "input is not a file", Span(path))
        head = _head(path)
        if head.startswith(SCAP_MAGIC) or head.startswith(GZIP_MAGIC):
            return path, path
        if path.endswith((".yaml", ".yml")) or any(
            line.startswith(("scenario:", "events:")) for line in head.decode("utf-8", "replace").splitlines()
        ):
            from falcorules_ci.sources.scap.writer import compile_scenario

            out = os.path.join(scratch, f"input-{k}.scap")
            compile_scenario(path, out)
            return path, out
        raise UsageError(f"the sysdig engine replays captures and scenarios only, not {path}")
    if isinstance(item, Capture):
        return item.path, item.path
    if isinstance(item, EventStream):
        if item.source != SYSCALL_SOURCE:
            raise UsageError(f"the sysdig engine replays syscall events only, not {item.source} ({item.name})")
        return item.name, _write(item.header, item.events(), scratch, k)
    if hasattr(item, "header") and callable(getattr(item, "events", None)):
        name = str(getattr(item, "path", "") or getattr(item, "title", "") or type(item).__name__)
        return name, _write(item.header, item.events(), scratch, k)
    if hasattr(item, "layout") and hasattr(item, "stats"):
        raise UsageError("the sysdig engine cannot replay Kubernetes audit inputs (sysdig 0.29.3 has no k8saudit plugin)")
    if isinstance(item, Iterable):
        return type(item).__name__, _write(None, item, scratch, k)
    raise UsageError(f"not a replay input: {type(item).__name__}")


def _write(header: Any, events: Iterable[Event], scratch: str, k: int) -> str:
    from falcorules_ci.sources.records import CaptureHeader
    from falcorules_ci.sources.scap.writer import write_capture

    out = os.path.join(scratch, f"input-{k}.scap")
    write_capture(header if header is not None else CaptureHeader(), events, out)
    return out


def replay(
    ruleset: Ruleset | Iterable[Rule],
    inputs: Iterable[Any] | str | os.PathLike[str],
    options: EngineOptions | None = None,
    *,
    registry: FieldRegistry | None = None,
    runner: SysdigRunner | None = None,
    binary: str | os.PathLike[str] | None = None,
    workers: int = 2,
) -> SysdigRun:
    """Replay inputs through sysdig 0.29.3; iterate the result for alerts (same records as the
    embedded engine's), then read ``not_checkable`` and the counters.

    ``inputs`` are ``.scap`` captures (plain or gzip'd), scenario YAML files, or already-open
    captures, scenarios, event streams or iterables of syscall events. ``runner`` shares a
    :class:`SysdigRunner` (and its cache) between runs; ``binary`` picks the sysdig to run
    (default ``$FALCORULES_SYSDIG``, then /usr/bin/sysdig). Raises :class:`SysdigUnavailable`
    when there is none.
    """
    return SysdigRun(ruleset, inputs, options, registry=registry, runner=runner, binary=binary, workers=workers)


__all__ = [
    "SysdigError",
    "SysdigInputReport",
    "SysdigRun",
    "SysdigRunner",
    "SysdigUnavailable",
    "capture_of",
    "replay",
    "require_sysdig",
    "sysdig_binary",
]
