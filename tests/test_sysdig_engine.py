"""The sysdig engine: which rules it can check, how it runs sysdig, and the alerts it makes.

The first group needs no sysdig binary (rule planning, text and JSON values, output rendering);
the rest run Debian's sysdig 0.29.3 (marked ``sysdig``, skipped when it is not installed).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CAPTURES, ROOT

from falcorules_ci import LoadOptions, Priority, Ruleset, UsageError, load_ruleset
from falcorules_ci.engine import EngineOptions, EventStream
from falcorules_ci.engine import replay as embedded_replay
from falcorules_ci.engine.sysdig import SysdigRun, capture_of, replay
from falcorules_ci.engine.sysdig_events import CaptureEvents, SysdigFormat, json_from_text
from falcorules_ci.engine.sysdig_filters import plan_rule, plan_rules
from falcorules_ci.engine.sysdig_runner import (
    SysdigError,
    SysdigRunner,
    SysdigUnavailable,
    filter_line,
    sysdig_binary,
)
from falcorules_ci.fields import default_registry
from falcorules_ci.fields.registry import FieldType
from falcorules_ci.sources.scenario import load_scenario

SCENARIOS = ROOT / "tests" / "scenarios"
HAS_SYSDIG = sysdig_binary() is not None
sysdig_only = pytest.mark.skipif(not HAS_SYSDIG, reason="sysdig 0.29.3 is not installed")
LEGACY_ALL = EngineOptions(legacy_enter_events=True, rule_matching="all", timezone="UTC", hostname="h")

SHADOW_SCENARIO = """
scenario: cat reads shadow on the host
processes:
  - {pid: 4400, exe: /bin/bash, args: [-i], tty: pts/0}
events:
  - {pid: 4400, spawn: {pid: 4411, exe: /bin/cat, args: [/etc/shadow]}}
  - {pid: 4411, read_file: /etc/shadow}
"""


def rules_of(*rules: tuple[str, str, str], priority: str = "WARNING", source: str = "syscall") -> Ruleset:
    text = "".join(
        f"- rule: {name}\n  desc: d\n  condition: {json.dumps(condition)}\n  output: {json.dumps(output)}\n"
        f"  priority: {priority}\n  source: {source}\n  tags: [t]\n"
        for name, condition, output in rules
    )
    plugins = (("k8saudit", "0.18.0"), ("json", "0.7.4")) if source != "syscall" else ()
    ruleset = load_ruleset(texts=[("rules.yaml", text)],
                           options=LoadOptions(suggested_output=False, plugins=plugins))  # fmt: skip
    assert ruleset.successful, [e.message for r in ruleset.results for e in r.errors]
    return ruleset


# -- planning, values and rendering (no sysdig needed) -------------------------------------------


def test_plans_name_every_rule_that_cannot_be_checked() -> None:
    ruleset = rules_of(
        ("Known", "evt.type = openat and fd.name startswith /etc", "%proc.name %fd.name"),
        ("Unknown field", "evt.type = execve and proc.is_exe_upper_layer = true", "%proc.name"),
        ("Transformer", "evt.type = openat and tolower(fd.name) = /etc/shadow", "%proc.name"),
        ("Dns", "evt.type = connect and fd.sip.name = example.com", "%fd.name"),
        ("Bcontains", "evt.type = write and evt.buffer bcontains 4142", "%proc.name"),
    )
    plans = {p.name: p for p in plan_rules(ruleset.rules, default_registry())}
    assert plans["Known"].checkable and plans["Known"].filter is not None
    assert "fd.name startswith /etc" in plans["Known"].filter
    assert plans["Unknown field"].reason == "fields unknown to sysdig 0.29.3: proc.is_exe_upper_layer"
    assert "transformer" in (plans["Transformer"].reason or "")
    assert "fd.sip.name" in (plans["Dns"].reason or "") and "DNS" in (plans["Dns"].reason or "")
    assert "bcontains" in (plans["Bcontains"].reason or "")
    assert not any(plans[n].checkable for n in ("Unknown field", "Transformer", "Dns", "Bcontains"))


def test_plugin_source_rules_are_not_checkable() -> None:
    ruleset = rules_of(("Audit", "ka.verb = create", "%ka.user.name"), source="k8s_audit")
    plan = plan_rule(ruleset.rules[0], default_registry())
    assert plan.filter is None and plan.reason is not None and "k8s_audit" in plan.reason


def test_unprintable_output_fields_are_listed() -> None:
    ruleset = rules_of(("R", "evt.type = openat", "%proc.name %proc.pexe %fd.net %proc.aname %proc.aname[2]"))
    plan = plan_rule(ruleset.rules[0], default_registry())
    # unknown to 0.29.3 / filter-only there / misprinted by its formatter without an index
    assert plan.unprintable == ("proc.pexe", "fd.net", "proc.aname")
    assert plan.printed == ("proc.name", "proc.aname[2]")


def test_filter_lines_never_contain_line_breaks() -> None:
    assert filter_line('fd.name = "a\nb\rc"') == 'fd.name = "a\\x0ab\\x0dc"'


@pytest.mark.parametrize(("text", "ftype", "decimal", "expected"), [
    ("<NA>", FieldType.CHARBUF, False, None),
    ("true", FieldType.BOOL, False, True),
    ("false", FieldType.BOOL, False, False),
    ("42", FieldType.UINT32, True, 42),
    ("-1", FieldType.INT64, True, -1),
    ("563A", FieldType.UINT32, False, "563A"),  # printed in hex: kept as text, like Falco's JSON
    ("bash", FieldType.CHARBUF, False, "bash"),
    ("x1", FieldType.UINT64, True, "x1"),
])  # fmt: skip
def test_json_values_from_printed_text(text: str, ftype: FieldType, decimal: bool, expected: object) -> None:
    assert json_from_text(text, ftype, decimal) == expected


def test_output_rendering_from_printed_values() -> None:
    registry = default_registry()
    fmt = SysdigFormat("%evt.time %5proc.name|%3fd.name|%proc.pexe|%user.uid %tolower(proc.name)", registry, "syscall")
    assert fmt.printed == ("proc.name", "fd.name", "user.uid")
    values = {"proc.name": "cat", "fd.name": "/etc/shadow", "user.uid": "0"}
    ts = 1_704_067_200_123_456_789
    assert fmt.render(values, ts, 0) == "00:00:00.123456789 cat  |/et|<NA>|0 <NA>"
    assert fmt.fields(values, ts) == {"evt.time": ts, "proc.name": "cat", "fd.name": "/etc/shadow",
                                      "proc.pexe": None, "user.uid": 0}  # fmt: skip


def test_missing_binary_is_reported() -> None:
    with pytest.raises(SysdigUnavailable, match="sysdig not found at /nonexistent/sysdig"):
        SysdigRunner("/nonexistent/sysdig")
    assert sysdig_binary("/nonexistent/sysdig") is None


def test_audit_inputs_are_refused(tmp_path: Path) -> None:
    class AuditLike:
        layout = "jsonl"
        stats = None

    with pytest.raises(UsageError, match="Kubernetes audit"):
        capture_of(AuditLike(), str(tmp_path), 0)
    with pytest.raises(UsageError, match="syscall events only"):
        capture_of(EventStream("audit", [], source="k8s_audit"), str(tmp_path), 0)
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(UsageError, match="captures and scenarios only"):
        capture_of(str(text), str(tmp_path), 0)


# -- running sysdig -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runner() -> Iterator[SysdigRunner]:
    if not HAS_SYSDIG:
        pytest.skip("sysdig 0.29.3 is not installed")
    with SysdigRunner() as shared:
        yield shared


@pytest.fixture(scope="module")
def shadow_capture(tmp_path_factory: pytest.TempPathFactory) -> str:
    from falcorules_ci.sources.scap.writer import write_capture

    scenario = load_scenario(SHADOW_SCENARIO, name="shadow.yaml")
    path = tmp_path_factory.mktemp("sysdig") / "shadow.scap"
    write_capture(scenario.header, scenario.events(), path)
    return str(path)


def _direct(capture: str, flt: str) -> list[int]:
    """sysdig's own command line: display filter after parsing (-d), internal events shown (-D)."""
    out = subprocess.run(["sysdig", "-r", capture, "-D", "-d", "-p", "%evt.num", flt], capture_output=True,
                         text=True, check=True, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"}).stdout  # fmt: skip
    return [int(line) for line in out.split()]


@pytest.mark.sysdig
@sysdig_only
@pytest.mark.parametrize("capture", ["cat_write.scap", "curl_google.scap", "sample.scap"])
def test_chisel_batch_equals_one_sysdig_run_per_filter(runner: SysdigRunner, capture: str) -> None:
    filters = [
        "evt.type = open and evt.dir = <",
        "fd.name contains /lib and evt.is_open_read = true",
        "evt.type in (connect, sendto) and fd.l4proto = udp",
        "proc.name = curl and not evt.type in (read, write)",
        "evt.type = procinfo",
    ]
    path = str(CAPTURES / capture)
    found = runner.match_filters(path, filters)
    assert not found.rejected
    assert [list(nums) for nums in found.matches] == [_direct(path, f) for f in filters]
    assert sum(map(len, found.matches)) > 0


@pytest.mark.sysdig
@sysdig_only
def test_rejected_filters_carry_sysdig_message(runner: SysdigRunner) -> None:
    path = str(CAPTURES / "cat_write.scap")
    found = runner.match_filters(path, ["evt.type = open", "proc.vpid = proc.pid", "evt.type = close"])
    assert found.rejected == {1: "filter error at position 20: proc.pid is not a valid number"}
    assert found.matches[0] and found.matches[2] and not found.matches[1]


@pytest.mark.sysdig
@sysdig_only
def test_printing_survives_a_sysdig_crash(runner: SysdigRunner, tmp_path: Path) -> None:
    from falcorules_ci.sources.scap.writer import compile_scenario

    path = tmp_path / "bpf.scap"
    compile_scenario(SCENARIOS / "incubating" / "bpf-program-not-profiled.fire.yaml", path)
    printed = runner.print_fields(path, ["evt.type", "evt.res", "proc.name"])
    assert printed.crashed == ("evt.res",)  # 0.29.3 segfaults printing evt.res of the old bpf exit
    assert [row[0] for row in printed.rows.values()] == ["bpf", "bpf"]
    assert all(row[2] == "bpfdoor" for row in printed.rows.values())


@pytest.mark.sysdig
@sysdig_only
def test_unreadable_capture_is_an_error(runner: SysdigRunner) -> None:
    with pytest.raises(SysdigError, match="Is the file truncated"):
        runner.match_filters(CAPTURES / "curl_google_comments.scap", ["evt.type = open"])


@pytest.mark.sysdig
@sysdig_only
def test_event_numbers_are_ours_when_sysdig_skips_newer_events(tmp_path: Path) -> None:
    from falcorules_ci.sources.scap.writer import compile_scenario

    path = tmp_path / "memfd.scap"
    compile_scenario(SCENARIOS / "examples" / "fileless_memfd.yaml", path)
    events = CaptureEvents(path)
    assert events.unread_by_sysdig > 0  # memfd_create is newer than sysdig 0.29.3
    ruleset = rules_of(("Exec", "evt.type = execve and evt.dir = <", "%proc.name %evt.num"))
    ours = list(embedded_replay(ruleset, [str(path)], LEGACY_ALL))
    theirs = list(replay(ruleset, [str(path)], LEGACY_ALL))
    assert [a.event_num for a in theirs] == [a.event_num for a in ours] != []
    # the printed evt.num is sysdig's own count; the record's number is ours
    assert theirs[0].output_fields["evt.num"] == theirs[0].event_num - events.unread_by_sysdig


@pytest.mark.sysdig
@sysdig_only
def test_alerts_are_the_embedded_engine_records(shadow_capture: str) -> None:
    ruleset = rules_of(
        ("Shadow read", "evt.type in (open, openat) and evt.is_open_read = true and fd.name = /etc/shadow",
         "file=%fd.name proc=%proc.name parent=%proc.pname uid=%user.uid tty=%proc.tty exepath=%proc.exepath"),
    )  # fmt: skip
    ours = list(embedded_replay(ruleset, [shadow_capture], LEGACY_ALL))
    run = replay(ruleset, [shadow_capture], LEGACY_ALL)
    theirs = list(run)
    assert theirs == ours and len(ours) == 1
    assert theirs[0].output.endswith("Warning file=/etc/shadow proc=cat parent=bash uid=0 tty=34816 exepath=/bin/cat")
    assert run.not_checkable == {} and run.checked == ("Shadow read",)
    assert run.events_read == {shadow_capture: run.inputs[0].events_read}
    assert run.alerts_by_rule == {"Shadow read": 1}


@pytest.mark.sysdig
@sysdig_only
def test_scenarios_streams_and_captures_are_all_inputs(shadow_capture: str, tmp_path: Path) -> None:
    scenario_file = tmp_path / "shadow.yaml"
    scenario_file.write_text(SHADOW_SCENARIO)
    scenario = load_scenario(SHADOW_SCENARIO, name="inline.yaml")
    from falcorules_ci.sources.scap import read_capture

    ruleset = rules_of(("Open", "evt.type = openat and evt.dir = < and fd.name = /etc/shadow", "%proc.name"))
    inputs = [str(scenario_file), scenario, EventStream("stream", list(scenario.events()), header=scenario.header),
              read_capture(shadow_capture)]  # fmt: skip
    run = replay(ruleset, inputs, LEGACY_ALL)
    alerts = list(run)
    assert [r.name for r in run.inputs] == [str(scenario_file), "inline.yaml", "stream", shadow_capture]
    assert len(alerts) == 4 and {a.message for a in alerts} == {"cat"}


@pytest.mark.sysdig
@sysdig_only
def test_enter_events_only_reach_rules_in_legacy_mode(shadow_capture: str) -> None:
    ruleset = rules_of(("Open", "evt.type = openat and proc.name = cat", "%evt.dir"))
    legacy = list(replay(ruleset, [shadow_capture], LEGACY_ALL))
    current = list(replay(ruleset, [shadow_capture], EngineOptions(hostname="h", timezone="UTC")))
    assert [a.message for a in legacy] == [">", "<"]
    assert [a.message for a in current] == ["<"]


@pytest.mark.sysdig
@sysdig_only
def test_rule_matching_and_selection(shadow_capture: str) -> None:
    ruleset = rules_of(
        ("First", "evt.type = openat and evt.dir = <", "first"),
        ("Second", "evt.type = openat and evt.dir = < and fd.name = /etc/shadow", "second"),
        ("Unknown", "evt.type = openat and proc.is_exe_upper_layer = false", "unknown"),
    )
    first = list(replay(ruleset, [shadow_capture], EngineOptions(hostname="h", timezone="UTC")))
    everything = list(replay(ruleset, [shadow_capture], LEGACY_ALL))
    quiet = replay(ruleset, [shadow_capture], EngineOptions(min_priority=Priority.ERROR, hostname="h"))
    assert [a.rule for a in first] == ["First"]
    assert sorted(a.rule for a in everything) == ["First", "Second"]
    assert list(quiet) == [] and quiet.checked == () and quiet.not_checkable == {}
    run = replay(ruleset, [shadow_capture], LEGACY_ALL)
    list(run)
    assert run.not_checkable == {"Unknown": "fields unknown to sysdig 0.29.3: proc.is_exe_upper_layer"}


@pytest.mark.sysdig
@sysdig_only
def test_filters_sysdig_rejects_become_not_checkable(shadow_capture: str) -> None:
    # Falco takes IPv6 networks; sysdig 0.29.3's compiler does not.
    ruleset = rules_of(("Ipv6", 'evt.type = openat and fd.net = "2001:db8::/32"', "%proc.name"),
                       ("Fine", "evt.type = openat and evt.dir = <", "%proc.name"))  # fmt: skip
    run = SysdigRun(ruleset, [shadow_capture], LEGACY_ALL)
    assert [a.rule for a in run] == ["Fine"]
    assert run.not_checkable == {"Ipv6": "sysdig 0.29.3 rejects the filter: filter error at position 44: "
                                         "unrecognized IPv6 address 2001:db8::/32"}  # fmt: skip
    assert run.checked == ("Fine",)


@pytest.mark.sysdig
@sysdig_only
def test_the_fixture_plugin_can_select_the_sysdig_engine(tmp_path: Path) -> None:
    from falcorules_ci.expect.inputs import adhoc_input, replay_input

    scenario_file = tmp_path / "shadow.yaml"
    scenario_file.write_text(SHADOW_SCENARIO)
    ruleset = rules_of(("Open", "evt.type = openat and fd.name = /etc/shadow", "%proc.name"))
    alerts = replay_input(ruleset, adhoc_input(scenario_file), EngineOptions(hostname="h"), "sysdig")
    assert [a.rule for a in alerts] == ["Open"]
