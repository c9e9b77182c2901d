"""Alert records and their renderings: Falco 0.44.1's JSON shape and text line, and the output
format semantics (<NA>, widths, lists, print formats, output_fields)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from falcorules_ci import AppendOutput, LoadOptions, Priority, Ruleset, load_ruleset
from falcorules_ci.engine import Alert, EmbeddedEngine, EngineOptions
from falcorules_ci.engine.alerts import dump_json, iso8601_utc
from falcorules_ci.engine.formatter import fit_width, number_text
from falcorules_ci.extract.base import Extractor
from falcorules_ci.fields.registry import FieldMatch, FieldType
from falcorules_ci.sources.event import Event

TS = 1_704_067_200_123_456_789  # 2024-01-01T00:00:00.123456789Z


def fake_resolver(match: FieldMatch, source: str, output: bool) -> Extractor:
    key = match.text
    return lambda event, state: event.params.get(key)


def ruleset_of(output: str, *, condition: str = "evt.type = open", priority: str = "WARNING",
               tags: str = "[b_tag, a_tag]", load: LoadOptions | None = None) -> Ruleset:  # fmt: skip
    text = (f"- rule: Test rule\n  desc: d\n  condition: {json.dumps(condition)}\n"
            f"  output: {json.dumps(output)}\n  priority: {priority}\n  tags: {tags}\n")  # fmt: skip
    ruleset = load_ruleset(texts=[("t.yaml", text)], options=load or LoadOptions(suggested_output=False))
    assert ruleset.successful, [e.message for r in ruleset.results for e in r.errors]
    return ruleset


def fire(ruleset: Ruleset, options: EngineOptions | None = None, **fields: Any) -> Alert:
    options = options or EngineOptions(hostname="testhost", timezone="UTC")
    engine = EmbeddedEngine(ruleset, options, resolver=fake_resolver)
    params = {"evt.type": "open", **{k.replace("__", "."): v for k, v in fields.items()}}
    alerts = engine.process(Event(7, TS, 42, 3, "open", params=params), None)
    assert len(alerts) == 1
    return alerts[0]


def test_json_shape_and_key_order() -> None:
    alert = fire(ruleset_of("proc=%proc.name uid=%user.uid"), proc__name="bash", user__uid=0)
    line = alert.to_json()
    obj = json.loads(line)
    assert list(obj) == ["hostname", "output", "output_fields", "priority", "rule", "source", "tags", "time"]
    assert obj["hostname"] == "testhost"
    assert obj["priority"] == "Warning"
    assert obj["rule"] == "Test rule"
    assert obj["source"] == "syscall"
    assert obj["tags"] == ["a_tag", "b_tag"]
    assert obj["time"] == "2024-01-01T00:00:00.123456789Z"
    assert obj["output"] == "00:00:00.123456789: Warning proc=bash uid=0"
    assert obj["output_fields"] == {"evt.time": TS, "proc.name": "bash", "user.uid": 0}
    assert list(obj["output_fields"]) == sorted(obj["output_fields"])
    assert line.startswith('{"hostname":"testhost","output":')  # compact, like nlohmann's dump()


def test_text_line_and_iso_time() -> None:
    alert = fire(ruleset_of("proc=%proc.name"), proc__name="bash")
    assert alert.to_text() == "00:00:00.123456789: Warning proc=bash"
    assert alert.message == "proc=bash"
    iso = fire(ruleset_of("proc=%proc.name"), EngineOptions(hostname="h", time_format_iso_8601=True),
               proc__name="bash")  # fmt: skip
    assert iso.output == "2024-01-01T00:00:00.123456789+0000: Warning proc=bash"
    assert iso.output_fields["evt.time.iso8601"] == TS
    assert "evt.time" not in iso.output_fields


def test_text_time_uses_the_chosen_offset() -> None:
    alert = fire(ruleset_of("x"), EngineOptions(hostname="h", timezone="+02:00"))
    assert alert.output.startswith("02:00:00.123456789: Warning")


def test_missing_values_print_na_and_are_null() -> None:
    alert = fire(ruleset_of("a=%proc.name b=%fd.name"), proc__name="bash")
    assert alert.message == "a=bash b=<NA>"
    assert alert.output_fields["fd.name"] is None
    assert json.loads(alert.to_json())["output_fields"]["fd.name"] is None


def test_width_pads_and_truncates_bytes() -> None:
    alert = fire(ruleset_of("[%6proc.name][%2fd.name]"), proc__name="sh", fd__name="/etc")
    assert alert.message == "[sh    ][/e]"
    assert fit_width("é", 1) == "\udcc3"  # cut inside a multi-byte character, as C does


def test_lists_bools_numbers_and_addresses() -> None:
    import ipaddress

    ruleset = ruleset_of("types=%fd.types w=%evt.is_open_write sip=%fd.sip net=%fd.snet uid=%user.uid")
    alert = fire(ruleset, fd__types=["file", "ipv4"], evt__is_open_write=True,
                 fd__sip=ipaddress.ip_address("10.0.0.1"), fd__snet=ipaddress.ip_address("10.0.0.1"),
                 user__uid=4294967295)  # fmt: skip
    assert alert.message == "types=(file,ipv4) w=true sip=10.0.0.1 net=<IPNET> uid=4294967295"
    fields = alert.output_fields
    assert fields["fd.types"] == ["file", "ipv4"]
    assert fields["evt.is_open_write"] is True
    assert fields["fd.sip"] == "10.0.0.1"
    assert fields["fd.snet"] == "<IPNET>"
    assert fields["user.uid"] == 4294967295


def test_transformed_tokens_leave_only_their_fields_in_json() -> None:
    alert = fire(ruleset_of("n=%toupper(proc.name) l=%len(proc.name)"), proc__name="bash")
    # len() keeps the string field's print format, which libsinsp cannot apply to a number.
    assert alert.message == "n=BASH l=<NA>"
    assert set(alert.output_fields) == {"evt.time", "proc.name"}


def test_text_is_not_json_escaped_but_is_sanitised() -> None:
    alert = fire(ruleset_of("cmd=%proc.cmdline"), proc__cmdline='echo "a\\b"\tx')
    assert alert.message == 'cmd=echo "a\\b"\ufffdx'
    assert json.loads(alert.to_json())["output_fields"]["proc.cmdline"] == 'echo "a\\b"\ufffdx'


def test_print_formats() -> None:
    assert number_text(255, FieldType.UINT32, "PF_HEX") == "FF"
    assert number_text(-1, FieldType.INT64, "PF_DEC") == "-1"
    assert number_text(-1, FieldType.UINT32, "PF_DEC") == "4294967295"
    assert number_text(42, FieldType.UINT64, "PF_10_PADDED_DEC") == "000000042"
    assert number_text(42, FieldType.UINT64, "PF_NA") is None


def test_event_time_fields_in_the_message() -> None:
    alert = fire(ruleset_of("t=%evt.time s=%evt.time.s d=%evt.datetime.s"))
    assert alert.message == "t=00:00:00.123456789 s=00:00:00 d=2024-01-01 00:00:00"
    assert alert.output_fields["evt.datetime.s"] == TS


def test_append_output_extra_fields() -> None:
    extra = AppendOutput(extra_output="pid=%proc.pid", extra_fields=(("who", "%user.name!"), ("proc.name", None)))
    load = LoadOptions(suggested_output=False, append_output=(extra,))
    alert = fire(ruleset_of("x", load=load), proc__pid=12, user__name="root", proc__name="bash")
    assert alert.message == "x pid=12"
    assert alert.output_fields["who"] == "root!"
    assert alert.output_fields["proc.name"] == "bash"


def test_json_include_options() -> None:
    alert = fire(ruleset_of("x"))
    obj = json.loads(alert.to_json(include_output=False, include_tags=False, include_message=True))
    assert "output" not in obj and "tags" not in obj
    assert obj["message"] == "x"


def test_dump_json_replaces_invalid_utf8() -> None:
    assert dump_json({"b": "x\udcff", "a": 1}) == '{"a":1,"b":"x\ufffd"}'


@pytest.mark.parametrize(("ts", "text"), [(0, "1970-01-01T00:00:00.000000000Z"), (TS, "2024-01-01T00:00:00.123456789Z")])
def test_iso8601_utc(ts: int, text: str) -> None:
    assert iso8601_utc(ts) == text


def test_alert_record_is_frozen() -> None:
    alert = fire(ruleset_of("x"))
    assert alert.priority is Priority.WARNING
    assert alert.event_num == 7
    with pytest.raises(AttributeError):
        alert.rule = "other"  # type: ignore[misc]
