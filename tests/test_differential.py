"""Differential tests against real libsinsp: Debian's sysdig 0.29.3 versus the embedded engine.

On every sample capture (../shared/upstream/captures) and on the compiled capture of every
scenario in tests/scenarios, in the embedded engine's legacy mode (enter events evaluated, as
libsinsp < 0.22 and sysdig do):

- rule matches: for every upstream rule (stable, incubating, sandbox) sysdig can evaluate, the
  events our engine matches equal the events sysdig's filter accepts;
- field values: for every syscall field both know that sysdig can print (every such field of the
  registry without an argument, every field-with-argument the upstream rules use, and sample
  arguments for the other argument fields: ARGUMENT_SAMPLES), the value our formatter prints
  equals the value ``sysdig -p`` prints, event by event. All fields of a capture go through one
  sysdig run.

Disagreements that are genuine differences between sysdig 0.29.3 (libs of March 2022) and the
libs Falco 0.44 uses, or values sysdig 0.29.3 reads from memory it never initialised, are
allowances (tests/differential_allowances.py): each one named, explained (with the libs source
that shows it), narrowly matched and counted. A rule-match disagreement is allowed only when the
rule's own condition fields disagree on that event and every one of those disagreements is
allowed. Our own bugs are KNOWN_BUGS there: excluded from the per-input checks and asserted by a
strict xfail each, so a fix shows up as XPASS. Fields that cannot be compared at all are listed
with the reason (NOT_COMPARED). Everything else fails, listing
(capture, rule, evt.num, field, ours, sysdig).

The (capture, rule) and (event, field) pair counts, the number of fields, the fields left out and
each allowance's count are printed by test_every_allowance_is_needed_and_totals (the counts are
also recorded as test properties).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import pickle
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CAPTURES, INCUBATING, ROOT, SANDBOX, STABLE
from differential_allowances import (
    ALLOWANCE_NAMES,
    ALLOWANCES,
    KNOWN_BUGS,
    NOT_COMPARED,
    PARAM_ALLOWANCES,
    CaptureFacts,
    KnownBug,
    facts_of,
    field_reasons,
)

from falcorules_ci import Ruleset, load_ruleset
from falcorules_ci.condition.typecheck import field_matches
from falcorules_ci.engine.sysdig_diff import (
    DIFF_OPTIONS,
    FIELD_KEYS,
    EmbeddedSide,
    FieldDisagreement,
    MatchDisagreement,
    comparable_fields,
    compare_fields,
    compare_matches,
    sysdig_spelling,
)
from falcorules_ci.engine.sysdig_events import CaptureEvents
from falcorules_ci.engine.sysdig_filters import plan_rules
from falcorules_ci.engine.sysdig_runner import SysdigRunner, sysdig_binary
from falcorules_ci.fields import default_registry
from falcorules_ci.fields.registry import FieldRegistry
from falcorules_ci.ruleset.model import Rule
from falcorules_ci.sources.scap import read_capture

pytestmark = [
    pytest.mark.sysdig,
    pytest.mark.skipif(sysdig_binary() is None, reason="sysdig (Debian's 0.29.3) is not installed"),
]

NA = "<NA>"
SCENARIOS = ROOT / "tests" / "scenarios"
# sysdig 0.29.3 cannot read this one (a block newer than its reader); tested separately.
UNREADABLE_BY_SYSDIG = frozenset({"curl_google_comments.scap"})
# Arguments tried for the fields that need one, beside those the rules use: parameters by position
# and by name (raw ones of the types 0.29.3 can print), ancestors, cgroup subsystems, mounts by
# position and by path, label keys, environment variables.
ARGUMENT_SAMPLES = (
    "evt.arg[0]", "evt.arg[1]", "evt.arg.res", "evt.arg.size", "evt.arg.data", "evt.arg.dirfd", "evt.arg.pid",
    "evt.arg.tuple", "evt.arg.exe", "evt.arg.args", "evt.arg.sig", "evt.rawarg.res", "evt.rawarg.size",
    "evt.rawarg.name", "evt.rawarg.pid", "evt.rawarg.uid", "evt.rawarg.fd", "evt.rawarg.flags", "evt.rawarg.dirfd",
    "evt.rawarg.mode", "evt.type.is.open", "evt.type.is.execve", "evt.type.is.5", "proc.aname[0]", "proc.apid[0]",
    "proc.apid[1]", "proc.apid[2]", "proc.apid[3]", "thread.cgroup.cpuacct", "thread.cgroup.memory",
    "thread.cgroup.pids", "container.mount[0]", "container.mount.source[0]", "container.mount.dest[0]",
    "container.mount.mode[0]", "container.mount.rdwr[0]", "container.mount.propagation[0]",
    "container.mount.source[/var/run/docker.sock]", "k8s.pod.label[app]", "k8s.ns.label[app]", "k8s.rc.label[app]",
    "k8s.svc.label[app]", "k8s.rs.label[app]", "k8s.deployment.label[app]", "proc.env[PATH]", "proc.env[HOME]",
)  # fmt: skip
# sysdig 0.29.3 cannot print the filter-only fields: a rule-match disagreement on them is judged by
# the printable fields they are made of.
FILTER_ONLY_PROXIES = {
    "fd.ip": ("fd.cip", "fd.sip"), "fd.port": ("fd.cport", "fd.sport"), "fd.net": ("fd.cip", "fd.sip"),
    "fd.cnet": ("fd.cip",), "fd.snet": ("fd.sip",), "fd.lnet": ("fd.lip",), "fd.rnet": ("fd.rip",),
    "fd.proto": ("fd.cproto", "fd.sproto"),
}  # fmt: skip


# -- the inputs ---------------------------------------------------------------------------------


def capture_inputs() -> list[Path]:
    return sorted(p for p in CAPTURES.glob("*.scap") if p.name not in UNREADABLE_BY_SYSDIG)


def scenario_inputs() -> list[Path]:
    return sorted(SCENARIOS.rglob("*.yaml"))


def input_id(path: Path) -> str:
    return str(path.relative_to(SCENARIOS)) if path.is_relative_to(SCENARIOS) else path.name


INPUTS = [*capture_inputs(), *scenario_inputs()]



# -- computing the comparisons once per test run -------------------------------------------------


@dataclass(slots=True)
class InputResult:
    """What the tests need of one input's comparison (small enough to share between workers)."""

    name: str
    compile_error: str | None = None
    unexplained: list[str] = dataclasses.field(default_factory=list)
    known: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    field_reasons: Counter[str] = dataclasses.field(default_factory=Counter)
    match_reasons: Counter[str] = dataclasses.field(default_factory=Counter)
    disagreeing_fields: Counter[str] = dataclasses.field(default_factory=Counter)
    rejected: dict[str, str] = dataclasses.field(default_factory=dict)  # rules sysdig rejects, with why
    rule_pairs: int = 0
    event_field_pairs: int = 0
    events: int = 0
    unread_by_sysdig: int = 0


class Differential:
    """The rules, fields and engines compiled once per worker; each input compared once per test
    run. Under xdist every worker shares one results folder: an input is computed by whichever
    worker asks first (under a file lock) and read back by the others, so the totals test does
    not redo the other worker's inputs."""

    def __init__(self, shared: Path) -> None:
        self.shared = shared
        self.folder = tempfile.TemporaryDirectory(prefix="falcorules-diff-")
        self.registry = default_registry()
        ruleset = load_ruleset([STABLE, INCUBATING, SANDBOX])
        assert ruleset.successful
        self.ruleset: Ruleset = ruleset
        self.rules = [dataclasses.replace(r, enabled=True) for r in ruleset.rules]
        plans = plan_rules(self.rules, self.registry)
        self.checkable = [p.rule for p in plans if p.filter is not None]
        self.filters = [p.filter for p in plans if p.filter is not None]
        self.fields = compared_fields(self.rules, self.registry)
        self.side = EmbeddedSide(self.checkable, self.fields, DIFF_OPTIONS)
        self.runner = SysdigRunner()
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="differential")
        self.paths = {input_id(path): path for path in INPUTS}
        self._results: dict[str, InputResult] = {}

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.runner.close()
        self.folder.cleanup()

    def result(self, name: str) -> InputResult:
        found = self._results.get(name)
        if found is None:
            found = self._results[name] = self._shared_result(name)
        return found

    def _shared_result(self, name: str) -> InputResult:
        key = hashlib.sha256(name.encode()).hexdigest()[:24]
        stored = self.shared / f"{key}.pickle"
        with open(self.shared / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if stored.exists():
                loaded: InputResult = pickle.loads(stored.read_bytes())
                return loaded
            result = self._compute(name)
            partial = stored.with_suffix(".partial")
            partial.write_bytes(pickle.dumps(result))
            partial.replace(stored)
            return result

    def _capture(self, name: str) -> str:
        path = self.paths[name]
        if path.suffix == ".scap":
            return str(path)
        from falcorules_ci.sources.scap.writer import compile_scenario

        out = os.path.join(self.folder.name, name.replace(os.sep, "__").replace(".yaml", ".scap"))
        compile_scenario(path, out)
        return out

    def _sysdig_matches(self, capture: str) -> tuple[dict[str, set[int]], dict[str, str]]:
        """Each rule's matches as sysdig sees them, in our event numbers, and the rules whose filter
        sysdig rejects (the sysdig engine does the same, plus formatting alerts:
        test_sysdig_engine.py covers that part)."""
        found = self.runner.match_filters(capture, self.filters)
        events = CaptureEvents(capture)
        matches = {rule.name: {events.ours(n) for n in nums}
                   for rule, nums in zip(self.checkable, found.matches, strict=True) if nums}  # fmt: skip
        rejected = {self.checkable[k].name: message for k, message in found.rejected.items()}
        return matches, rejected

    def _compute(self, name: str) -> InputResult:
        try:
            capture = self._capture(name)
        except Exception as exc:  # a scenario the writer rejects is reported by its own test
            return InputResult(name, compile_error=f"{type(exc).__name__}: {exc}")
        # sysdig's two runs go in the background while our engine works here.
        printed = self.pool.submit(self.runner.print_fields, capture, [*FIELD_KEYS, *map(sysdig_spelling, self.fields)])
        sysdig_matches = self.pool.submit(self._sysdig_matches, capture)
        facts = facts_of(capture)
        ours, errors = self.side.matches(capture)
        printed.result()  # then compare_fields finds sysdig's values in the runner's cache
        fields = compare_fields(capture, self.fields, self.runner, DIFF_OPTIONS, events=CaptureEvents(capture),
                                side=self.side)  # fmt: skip
        theirs, rejected = sysdig_matches.result()
        names = [r.name for r in self.checkable if r.name not in rejected]
        matches = compare_matches(capture, ours, theirs, names, errors)
        result = InputResult(name, rejected=rejected, rule_pairs=len(matches.rules) - len(matches.engine_errors),
                             event_field_pairs=fields.pairs, events=fields.events,
                             unread_by_sysdig=fields.unread_by_sysdig)  # fmt: skip
        by_event: dict[int, list[FieldDisagreement]] = {}
        for d in fields.disagreements:
            by_event.setdefault(d.evt_num, []).append(d)
            result.disagreeing_fields[d.field] += 1
            bug = next((b for b in KNOWN_BUGS if b.field(d)), None)
            if bug is not None:
                result.known.setdefault(bug.name, []).append(_describe_field(name, d))
                continue
            reasons, problems = field_reasons(d, facts)
            if problems:
                result.unexplained.append(_describe_field(name, d) + " — " + "; ".join(problems))
            result.field_reasons.update(set(reasons))
        for rule, message in errors.items():
            bug = next((b for b in KNOWN_BUGS if b.engine_error(message)), None)
            if bug is not None:
                result.known.setdefault(bug.name, []).append(f"{name} | {rule} | engine error: {message}")
            else:
                result.unexplained.append(f"{name} | {rule} | our engine failed: {message}")
        for m in matches.disagreements:
            explained = self._explain_match(m, by_event.get(m.evt_num, []), facts)
            if explained is None:
                fields_there = [_describe_field(name, d) for d in by_event.get(m.evt_num, [])]
                result.unexplained.append(f"{_describe_match(name, m)}; field differences on the event: "
                                          f"{fields_there or 'none'}")  # fmt: skip
            else:
                result.match_reasons.update(explained)
        return result

    def _explain_match(self, m: MatchDisagreement, on_event: list[FieldDisagreement],
                       facts: CaptureFacts) -> set[str] | None:  # fmt: skip
        rule = next(r for r in self.checkable if r.name == m.rule)
        used = {match.text for match in field_matches(rule.checked)}
        used.update(proxy for name in list(used) for proxy in FILTER_ONLY_PROXIES.get(name, ()))
        used.discard("evt.num")  # its difference is the numbering, which the comparison maps away
        relevant = [d for d in on_event if d.field in used]
        if not relevant:
            return None
        reasons: set[str] = set()
        for d in relevant:
            found, problems = field_reasons(d, facts)
            if problems:
                return None
            reasons.update(found)
        return reasons


def compared_fields(rules: list[Rule], registry: FieldRegistry) -> tuple[str, ...]:
    """Every syscall field both know that sysdig can print (argument-less ones, those the rules use
    with an argument, ARGUMENT_SAMPLES), but those that cannot be compared at all."""
    names = set(comparable_fields(registry, rules)) | set(ARGUMENT_SAMPLES)
    return tuple(sorted(name for name in names if name not in NOT_COMPARED))


def _describe_field(name: str, d: FieldDisagreement) -> str:
    return f"{name} | evt.num {d.evt_num} ({d.evt_type}{d.evt_dir}) | {d.field} | ours {d.ours!r} | sysdig {d.sysdig!r}"


def _describe_match(name: str, m: MatchDisagreement) -> str:
    return f"{name} | {m.rule} | evt.num {m.evt_num} | ours {'match' if m.ours else 'no match'} | " \
           f"sysdig {'match' if m.sysdig else 'no match'}"  # fmt: skip


@pytest.fixture(scope="session")
def differential(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Differential]:
    base = tmp_path_factory.getbasetemp()
    # xdist workers get a folder each under one folder of the run: share that one.
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "sysdig-differential"
    shared.mkdir(exist_ok=True)
    diff = Differential(shared)
    yield diff
    diff.close()


# -- the tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", INPUTS, ids=input_id)
def test_embedded_engine_agrees_with_sysdig(differential: Differential, path: Path) -> None:
    result = differential.result(input_id(path))
    if result.compile_error is not None:
        pytest.fail(f"the writer could not compile this scenario: {result.compile_error}")
    assert not result.unexplained, (
        f"{len(result.unexplained)} disagreement(s) between the embedded engine and sysdig 0.29.3 "
        "(capture | rule or evt.num | field | ours | sysdig):\n" + "\n".join(result.unexplained[:60])
    )


@pytest.mark.parametrize("bug", [
    pytest.param(b, id=b.name, marks=pytest.mark.xfail(strict=True, reason=f"known bug in {b.where}"))
    for b in KNOWN_BUGS
])  # fmt: skip
def test_known_bug_is_fixed(differential: Differential, bug: KnownBug) -> None:
    hits = [line for name in differential.paths for line in differential.result(name).known.get(bug.name, [])]
    assert not hits, f"{bug.where}: {bug.evidence}\n" + "\n".join(hits[:20])


def test_every_allowance_is_needed_and_totals(differential: Differential, capsys: pytest.CaptureFixture[str],
                                               record_property: Callable[[str, object], None]) -> None:  # fmt: skip
    field_counts: Counter[str] = Counter()
    match_counts: Counter[str] = Counter()
    disagreeing: Counter[str] = Counter()
    rule_pairs = event_field_pairs = events = unread = captures = 0
    rejected: dict[str, str] = {}
    for name in differential.paths:
        result = differential.result(name)
        captures += result.compile_error is None
        field_counts.update(result.field_reasons)
        match_counts.update(result.match_reasons)
        disagreeing.update(result.disagreeing_fields)
        rejected.update(result.rejected)
        rule_pairs += result.rule_pairs
        event_field_pairs += result.event_field_pairs
        events += result.events
        unread += result.unread_by_sysdig
    fields = differential.fields
    registry_fields = {info.name for name in fields
                       if (info := differential.registry.resolve(name.split("[", 1)[0], "syscall")) is not None}  # fmt: skip
    record_property("capture_rule_pairs", rule_pairs)
    record_property("event_field_pairs", event_field_pairs)
    record_property("fields_compared", len(fields))
    record_property("registry_fields_compared", len(registry_fields))
    kinds = {a.name: a.kind for a in ALLOWANCES}
    with capsys.disabled():
        print(f"\ndifferential vs sysdig 0.29.3: {captures} captures, {len(differential.checkable)} rules sysdig "
              f"can evaluate ({len(rejected)} of them rejected by its filter compiler)")
        print(f"  fields compared: {len(fields)} (of {len(registry_fields)} registry fields, arguments included), "
              f"{len(fields) - len(disagreeing)} of them agreeing on every event")
        print(f"  (capture, rule) pairs compared: {rule_pairs}")
        print(f"  (event, field) pairs compared: {event_field_pairs} over {events} events "
              f"({unread} events of types sysdig 0.29.3 skips not compared)")
        print(f"  fields not compared: {len(NOT_COMPARED)}")
        for field, why in sorted(NOT_COMPARED.items()):
            print(f"    {field}: {why}")
        for label, counts in (("field", field_counts), ("rule match", match_counts)):
            for item, count in sorted(counts.items()):
                print(f"  allowed {label} disagreements, {item} [{kinds.get(item, '0.29.3')}]: {count}")
        print(f"  allowances: {sum(k == '0.29.3' for k in kinds.values())} libs 0.29.3-vs-current, "
              f"{sum(k == 'run' for k in kinds.values())} uninitialised in 0.29.3, "
              f"{len(PARAM_ALLOWANCES)} evt.args parameter reasons; {len(KNOWN_BUGS)} known bugs of ours")
    unused = sorted(ALLOWANCE_NAMES - set(field_counts) - set(match_counts))
    assert not unused, f"allowances no input needs any more (remove them): {unused}"


def test_sysdig_cannot_read_the_newer_capture_our_reader_reads() -> None:
    path = CAPTURES / "curl_google_comments.scap"
    events = sum(1 for _ in read_capture(path).events(decode=lambda code: False))
    assert events > 0
    runner = SysdigRunner()
    try:
        from falcorules_ci.engine.sysdig_runner import SysdigError

        with pytest.raises(SysdigError, match="Is the file truncated"):
            runner.print_fields(path, ["evt.type"])
    finally:
        runner.close()


def test_counting_fields_start_afresh_per_capture_and_count_formatted_events_only() -> None:
    # util.cnt and evt.deltatime keep state in their extractors: each capture gets a fresh runtime
    # (sysdig is a fresh process per capture), and only the events sysdig printed are formatted.
    path = CAPTURES / "cat_write.scap"
    side = EmbeddedSide((), ("util.cnt", "evt.deltatime"), DIFF_OPTIONS)
    first, again = side.texts(path), side.texts(path)
    assert first.texts == again.texts
    assert [first.texts[n][0] for n in (1, 2, 3)] == ["1", "2", "3"]
    some = side.texts(path, {5, 9})
    assert sorted(some.texts) == [5, 9] and [some.texts[n][0] for n in (5, 9)] == ["1", "2"]
    assert some.texts[5][1] == "0" and len(some.stored) == len(first.stored)
