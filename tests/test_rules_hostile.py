"""Hostile rules input: each gets a clear error quickly, never a traceback or a hang."""

from __future__ import annotations

import resource
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from falcorules_ci import LoadOptions, Ruleset, load_ruleset

OPTIONS = LoadOptions(suggested_output=False)


def load_text(text: str) -> Ruleset:
    return load_ruleset(texts=[("h.yaml", text)], options=OPTIONS)


def first_error(rs: Ruleset) -> tuple[str, str]:
    errors = [e for r in rs.results for e in r.errors]
    assert errors, "expected an error"
    return errors[0].code, errors[0].message


def quick(fn, limit: float = 1.0):  # type: ignore[no-untyped-def]
    """Run ``fn`` and check it used less than ``limit`` seconds of CPU (robust to a busy machine)."""
    start = time.process_time()
    out = fn()
    elapsed = time.process_time() - start
    assert elapsed < limit, f"took {elapsed:.2f}s"
    return out


def test_not_yaml() -> None:
    code, msg = first_error(quick(lambda: load_text("- rule: x\n  desc: [unclosed\n")))
    assert code == "LOAD_ERR_YAML_PARSE" and msg


def test_binary_file(tmp_path: Path) -> None:
    p = tmp_path / "bin.yaml"
    p.write_bytes(bytes(range(256)) * 64)
    rs = quick(lambda: load_ruleset([p], options=OPTIONS))
    code, msg = first_error(rs)
    assert code == "LOAD_ERR_YAML_PARSE" and "binary" in msg


def test_missing_file(tmp_path: Path) -> None:
    code, msg = first_error(load_ruleset([tmp_path / "nope.yaml"], options=OPTIONS))
    assert code == "LOAD_ERR_FILE_READ"


def test_alias_bomb_bounded() -> None:
    # Ten levels of ten aliases each: 10^10 nodes if expanded naively. Exception values accept
    # nested sequences, so the reader must walk them within a budget.
    text = "- anchors:\n    l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n"
    for i in range(1, 10):
        refs = ", ".join([f"*l{i - 1}"] * 10)
        text += f"    l{i}: &l{i} [{refs}]\n"
    text += ("- rule: r\n  desc: d\n  condition: evt.type=open\n  output: o\n  priority: INFO\n"
             "  exceptions:\n    - name: e\n      fields: [proc.name]\n      values: [*l9]\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rs = quick(lambda: load_text(text))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, msg = first_error(rs)
    assert code == "LOAD_ERR_YAML_PARSE" and "too many nodes" in msg
    assert after - before < 200_000  # KiB: bounded memory


def test_deep_parentheses_in_condition() -> None:
    cond = "(" * 5000 + "evt.type=open" + ")" * 5000
    rs = quick(lambda: load_text(f"- rule: r\n  desc: d\n  condition: {cond}\n  output: o\n  priority: INFO\n"))
    code, msg = first_error(rs)
    assert code == "LOAD_ERR_COMPILE_CONDITION"


def test_deeply_nested_yaml() -> None:
    rs = quick(lambda: load_text("[" * 20000 + "]" * 20000))
    code, _ = first_error(rs)
    assert code in ("LOAD_ERR_YAML_PARSE", "LOAD_ERR_YAML_VALIDATE")


def test_self_referencing_macro() -> None:
    rs = quick(lambda: load_text("- macro: m\n  condition: m\n- rule: r\n  desc: d\n  condition: m\n"
                                 "  output: o\n  priority: INFO\n"))
    code, msg = first_error(rs)
    assert code == "LOAD_ERR_VALIDATE"
    assert msg in ("Undefined macro 'm' used in filter.", "reference loop in macro 'm'")


def test_cyclic_macros_via_override() -> None:
    text = ("- macro: a\n  condition: evt.type=open\n- macro: b\n  condition: a\n"
            "- macro: a\n  condition: b\n- rule: r\n  desc: d\n  condition: a\n  output: o\n  priority: INFO\n")
    rs = quick(lambda: load_text(text))
    code, msg = first_error(rs)
    assert code == "LOAD_ERR_VALIDATE"


def test_huge_list() -> None:
    items = ", ".join(f"p{i}" for i in range(50_000))
    text = (f"- list: big\n  items: [{items}]\n- rule: r\n  desc: d\n  condition: evt.type=open and proc.name in (big)\n"
            "  output: o\n  priority: INFO\n")
    rs = quick(lambda: load_text(text), limit=3.0)
    assert rs.successful


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    load_text(text)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["- rule: r", "- macro: m", "- list: l", "  condition: ", "  items: [a, b]",
                                 "  desc: d", "  output: o %proc.name", "  priority: INFO", "  append: true",
                                 "  override: {condition: append}", "evt.type=open", "and", "(", ")", "m",
                                 "  exceptions:", "    - name: e", "      fields: proc.name", "      values: [x]",
                                 "  enabled: false", "  source: k8s_audit", "- required_engine_version: 15", "\n"]),
                max_size=30))
def test_random_item_soups_never_raise(parts: list[str]) -> None:
    load_text("\n".join(parts))
