"""The rules loader: every Falco loading behaviour, with small inline YAML."""

from __future__ import annotations

import textwrap

import pytest

from falcorules_ci import LoadOptions, Priority, Ruleset, Version, load_ruleset

HEADER = ""


def load(*texts: str, options: LoadOptions | None = None) -> Ruleset:
    return load_ruleset(
        texts=[(f"f{i}.yaml", textwrap.dedent(t)) for i, t in enumerate(texts)],
        options=options or LoadOptions(suggested_output=False),
    )


def only_error(rs: Ruleset) -> tuple[str, str, int, int]:
    errors = [e for r in rs.results for e in r.errors]
    assert len(errors) == 1, [str(e.diagnostic()) for e in errors]
    e = errors[0]
    return e.code, e.message, e.context.span.line, e.context.span.col


def warning_codes(rs: Ruleset) -> list[str]:
    return [w.code for r in rs.results for w in r.warnings]


RULE = """
- rule: r
  desc: d
  condition: evt.type=open and proc.name=cat
  output: "%proc.name"
  priority: WARNING
"""


def test_rule_fields_and_tags_sorted_set() -> None:
    rs = load(RULE.replace("priority: WARNING", "priority: warning\n  tags: [b, a, b, T1059, mitre_execution]"))
    assert rs.successful
    rule = rs.rule("r")
    assert rule.priority is Priority.WARNING
    assert rule.tags == ("T1059", "a", "b", "mitre_execution")
    assert rule.attack_ids == ("T1059",)
    assert rule.source == "syscall" and rule.enabled


@pytest.mark.parametrize("text,expected", [("info", Priority.INFORMATIONAL), ("INFORMATIONAL", Priority.INFORMATIONAL),
                                           ("Emergency", Priority.EMERGENCY), ("debug", Priority.DEBUG)])
def test_priorities_case_insensitive(text: str, expected: Priority) -> None:
    assert load(RULE.replace("WARNING", text)).rule("r").priority is expected


def test_invalid_priority_error_position() -> None:
    code, msg, line, col = only_error(load(RULE.replace("WARNING", "loud")))
    assert (code, msg, line, col) == ("LOAD_ERR_YAML_VALIDATE", "Invalid priority", 6, 13)


def test_missing_required_key() -> None:
    code, msg, line, col = only_error(load(RULE.replace("  desc: d\n", "")))
    assert (code, msg, line) == ("LOAD_ERR_YAML_VALIDATE", "Item has no mapping for key 'desc'", 2)


def test_condition_error_points_inside_the_condition() -> None:
    code, msg, line, col = only_error(load(RULE.replace("proc.name=cat", "proc.nme=cat")))
    assert code == "LOAD_ERR_COMPILE_CONDITION"
    assert "proc.nme" in msg
    assert (line, col) == (4, 32)


def test_condition_error_in_folded_block_scalar() -> None:
    rs = load("""
        - rule: r
          desc: d
          condition: >
            evt.type=open and
            proc.nme=cat
          output: x
          priority: INFO
        """)
    code, msg, line, col = only_error(rs)
    assert code == "LOAD_ERR_COMPILE_CONDITION"
    assert (line, col) == (6, 5)


def test_lists_substitution_nesting_and_visibility() -> None:
    rs = load("""
        - list: inner
          items: [a, "b c"]
        - list: outer
          items: [inner, later, x]
        - list: later
          items: [z]
        - rule: r
          desc: d
          condition: evt.type=open and proc.name in (outer)
          output: x
          priority: INFO
        """)
    assert rs.successful, rs.results
    assert rs.lists["outer"] == ("a", "b c", "later", "x")
    assert rs.rule("r").expanded is not None
    # 'later' was defined after 'outer', so it stays a literal inside outer; the textual substitution
    # of 'later' then still replaces it in the condition, as Falco does (definition order, no visibility).
    from falcorules_ci.condition.printer import to_text

    assert "later" not in to_text(rs.rule("r").expanded)
    assert '"b c"' in to_text(rs.rule("r").expanded)


def test_empty_list_eats_a_comma() -> None:
    rs = load("""
        - list: empty
          items: []
        - rule: r
          desc: d
          condition: evt.type=open and proc.name in (cat, empty)
          output: x
          priority: INFO
        """)
    assert rs.successful
    from falcorules_ci.condition.printer import to_text

    assert "cat" in to_text(rs.rule("r").expanded)


def test_macro_forward_reference_is_an_error_even_if_unused() -> None:
    rs = load("""
        - macro: a
          condition: b and proc.name=x
        - macro: b
          condition: evt.type=open
        """)
    code, msg, line, _ = only_error(rs)
    assert (code, msg, line) == ("LOAD_ERR_VALIDATE", "Undefined macro 'b' used in filter.", 2)


def test_rules_see_all_macros_and_unused_warnings() -> None:
    rs = load("""
        - rule: r
          desc: d
          condition: m
          output: x
          priority: INFO
        - macro: m
          condition: evt.type=open
        - macro: unused
          condition: evt.type=close
        - list: unused_list
          items: [a]
        """)
    assert rs.successful
    codes = warning_codes(rs)
    assert codes.count("LOAD_UNUSED_MACRO") == 1 and codes.count("LOAD_UNUSED_LIST") == 1


def test_macro_reference_loop() -> None:
    rs = load("""
        - macro: a
          condition: evt.type=open
        - macro: a
          override: {condition: append}
          condition: or a
        """)
    code, msg, _, _ = only_error(rs)
    assert code == "LOAD_ERR_VALIDATE"
    assert msg in ("reference loop in macro 'a'", "Undefined macro 'a' used in filter.")


def test_deprecated_append_for_list_macro_rule() -> None:
    rs = load(
        """
        - list: l
          items: [cat]
        - macro: m
          condition: evt.type=open
        - rule: r
          desc: d
          condition: m
          output: x
          priority: INFO
        """,
        """
        - list: l
          items: [dog]
          append: true
        - macro: m
          condition: or evt.type=close
          append: true
        - rule: r
          condition: and proc.name in (l)
          append: true
        """,
    )
    assert rs.successful, [str(e.diagnostic()) for r in rs.results for e in r.errors]
    assert rs.lists["l"] == ("cat", "dog")
    assert rs.rule("r").condition == "m and proc.name in (l)"
    assert warning_codes(rs).count("LOAD_DEPRECATED_ITEM") == 3


@pytest.mark.parametrize(
    "item,message",
    [
        ("- list: nope\n  items: [a]\n  append: true",
         "List uses 'append' or 'override.items: append' but no list by that name already exists"),
        ("- macro: nope\n  condition: a\n  append: true",
         "Macro uses 'append' or 'override.condition: append' but no macro by that name already exists"),
        ("- rule: nope\n  condition: a\n  append: true",
         "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists"),
        ("- rule: nope\n  priority: INFO\n  override: {priority: replace}",
         "An 'override.<key>: replace' to a rule was requested but no rule by that name already exists"),
        ("- rule: nope\n  enabled: false",
         "Rule has 'enabled' key but no rule by that name already exists"),
    ],
)
def test_no_previous_item_errors(item: str, message: str) -> None:
    code, msg, line, _ = only_error(load(item))
    assert (code, msg, line) == ("LOAD_ERR_VALIDATE", message, 1)


def test_override_append_and_replace() -> None:
    rs = load(RULE, """
        - rule: r
          condition: and fd.name=/etc/passwd
          output: "%fd.name"
          tags: [x]
          override: {condition: append, output: append, tags: append}
        - rule: r
          priority: ERROR
          enabled: false
          override: {priority: replace, enabled: replace}
        """)
    assert rs.successful, [str(e.diagnostic()) for r in rs.results for e in r.errors]
    rule = rs.rule("r")
    assert rule.condition == "evt.type=open and proc.name=cat and fd.name=/etc/passwd"
    assert rule.output == "%proc.name %fd.name"
    assert rule.tags == ("x",)
    assert rule.priority is Priority.ERROR and not rule.enabled


@pytest.mark.parametrize(
    "item,code,message",
    [
        ("- rule: r\n  condition: a\n  append: true\n  override: {condition: append}", "LOAD_ERR_YAML_VALIDATE",
         "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. 'condition: "
         "append') under 'override' instead."),
        ("- rule: r\n  override: {output: append}", "LOAD_ERR_YAML_VALIDATE",
         "An append override for 'output' was specified but 'output' is not defined"),
        ("- rule: r\n  desc: x\n  priority: INFO\n  override: {priority: replace}", "LOAD_ERR_YAML_VALIDATE",
         "Unexpected key 'desc': no corresponding entry under 'override' is defined."),
        ("- rule: r\n  priority: INFO\n  override: {priority: append}", "LOAD_ERR_YAML_VALIDATE",
         "Key 'priority' cannot be appended to, use 'replace' instead"),
        ("- rule: r\n  desc: x\n  override: {desc: merge}", "LOAD_ERR_YAML_VALIDATE",
         "Invalid override operation for key 'desc': 'merge'. Allowed values are: append replace "),
        ("- rule: r\n  source: k8s_audit\n  condition: and x\n  override: {condition: append}", "LOAD_ERR_VALIDATE",
         "Rule has been re-defined with a different source"),
    ],
)
def test_override_errors(item: str, code: str, message: str) -> None:
    got = only_error(load(RULE, item))
    assert got[:2] == (code, message)


def test_enabled_only_item_toggles_with_deprecation_warning() -> None:
    rs = load(RULE, "- rule: r\n  enabled: false\n")
    assert rs.successful and not rs.rule("r").enabled
    assert "LOAD_DEPRECATED_ITEM" in warning_codes(rs)


def test_exceptions_single_and_tuple_forms_text() -> None:
    rs = load("""
        - rule: r
          desc: d
          condition: evt.type=open
          output: x
          priority: INFO
          exceptions:
            - name: procs
              fields: proc.name
              values: [cat, "my app"]
            - name: pairs
              fields: [proc.name, fd.directory]
              comps: [=, in]
              values: [[my-app, [/etc, /var]], [a b, /x]]
        """)
    assert rs.successful, [str(e.diagnostic()) for r in rs.results for e in r.errors]
    assert rs.rule("r").condition == (
        '(evt.type=open) and not (proc.name in (cat, "my app")) and not '
        '(( proc.name = my-app and  fd.directory in (/etc, /var)) or ( proc.name = "a b" and  fd.directory in (/x)))'
    )
    assert rs.rule("r").exception_fields == {"proc.name", "fd.directory"}


@pytest.mark.parametrize(
    "exc,message",
    [
        ("{name: e, fields: [proc.name, fd.name], comps: [=]}", "Fields and comps lists must have equal length"),
        ("{name: e, fields: [proc.name], comps: [like]}", "'like' is not a supported comparison operator"),
        ("{name: e, fields: proc.nope}", "'proc.nope' is not a supported filter field"),
        ("{name: e, fields: proc.name, comps: '='}",
         "When fields is a single value, comps must be one of (in, pmatch, intersects) or a modifier operator "
         "(e.g. startswith oneof)"),
        ("{name: e, fields: [proc.name], values: [[a, b]]}", "Fields and values lists must have equal length"),
    ],
)
def test_exception_errors(exc: str, message: str) -> None:
    item = RULE + f"  exceptions: [{exc}]\n"
    code, msg, _, _ = only_error(load(item))
    assert (code, msg) == ("LOAD_ERR_VALIDATE", message)


def test_exception_without_fields_in_a_definition() -> None:
    code, msg, _, _ = only_error(load(RULE + "  exceptions: [{name: e, values: [a]}]\n"))
    assert (code, msg) == ("LOAD_ERR_YAML_VALIDATE", "Item has no mapping for key 'fields'")


def test_exception_append_values_and_duplicate_name_warning() -> None:
    rs = load(
        RULE + "  exceptions: [{name: e, fields: proc.name, values: [a]}, {name: e, fields: proc.name, values: [c]}]\n",
        "- rule: r\n  exceptions: [{name: e, values: [b]}]\n  override: {exceptions: append}\n",
    )
    assert rs.successful
    assert "proc.name in (a, b)" in rs.rule("r").condition
    assert "LOAD_EXCEPTION_NAME_NOT_UNIQUE" in warning_codes(rs)


@pytest.mark.parametrize("value,ok", [("15", True), ("0.57.0", True), ("0.62.0", True), ("0.63.0", False),
                                      ("1.0.0", False), ("70", False)])
def test_required_engine_version(value: str, ok: bool) -> None:
    rs = load(f"- required_engine_version: {value}\n")
    assert rs.successful is ok
    if not ok:
        code, msg, _, _ = only_error(rs)
        assert code == "LOAD_ERR_VALIDATE" and msg.startswith("Rules require engine version")
        assert msg.endswith("but engine version is 0.62.0")


def test_required_engine_version_setting_and_bad_semver() -> None:
    assert load("- required_engine_version: 0.63.0\n",
                options=LoadOptions(engine_version=Version(0, 63, 0))).successful
    code, msg, _, _ = only_error(load("- required_engine_version: latest\n"))
    assert msg == "Unable to parse engine version 'latest' as a semver string. Expected \"x.y.z\" semver format."


def test_required_plugin_versions() -> None:
    ok = "- required_plugin_versions:\n  - name: container\n    version: 0.4.0\n"
    assert load(ok).successful
    rs = load("- required_plugin_versions:\n  - name: cloudtrail\n    version: 0.10.0\n")
    assert only_error(rs)[1] == "Plugin requirement not satisfied, must load one of: cloudtrail (>= 0.10.0)"
    rs = load("- required_plugin_versions:\n  - name: container\n    version: 0.9.0\n")
    assert only_error(rs)[1] == ("Plugin 'container' version '0.7.1' is not compatible with required plugin "
                                 "version '0.9.0'")
    rs = load("- required_plugin_versions:\n  - {name: a, version: 1.0.0, alternatives: [{name: a, version: 1.0.0}]}\n")
    assert only_error(rs)[1] == "Defined multiple alternative version requirements for plugin 'a'"


def test_unknown_keys_items_and_sources() -> None:
    rs = load(RULE.replace("priority: WARNING", "priority: WARNING\n  colour: red"), "- foo: bar\n",
              "- rule: ct\n  desc: d\n  condition: ct.name=x\n  output: x\n  priority: INFO\n  source: aws_cloudtrail\n")
    assert rs.successful
    codes = warning_codes(rs)
    assert "LOAD_UNKNOWN_KEY" in codes and "LOAD_UNKNOWN_ITEM" in codes and "LOAD_UNKNOWN_SOURCE" in codes
    assert [r.name for r in rs.rules] == ["r"]


def test_empty_source_is_an_error() -> None:
    code, msg, _, _ = only_error(load(RULE.replace("priority: WARNING", "priority: WARNING\n  source: ''")))
    assert msg == "Value must be non-empty"


def test_skip_if_unknown_filter_downgrades_to_warning() -> None:
    text = RULE.replace("proc.name=cat", "proc.nonexistent=cat").replace(
        "priority: WARNING", "priority: WARNING\n  skip-if-unknown-filter: true")
    rs = load(text)
    assert rs.successful and not rs.rules
    assert "LOAD_UNKNOWN_FILTER" in warning_codes(rs)


def test_warn_evttypes() -> None:
    no_type = RULE.replace("evt.type=open and ", "")
    assert "LOAD_NO_EVTTYPE" in warning_codes(load(no_type))
    assert "LOAD_NO_EVTTYPE" not in warning_codes(
        load(no_type.replace("priority: WARNING", "priority: WARNING\n  warn_evttypes: false")))


def test_invalid_names_warn() -> None:
    rs = load("- macro: 'bad-name'\n  condition: evt.type=open\n- list: 'bad list'\n  items: []\n")
    codes = warning_codes(rs)
    assert "LOAD_INVALID_MACRO_NAME" in codes and "LOAD_INVALID_LIST_NAME" in codes


def test_redefinition_keeps_position() -> None:
    rs = load(RULE + RULE.replace("- rule: r", "- rule: s"), RULE.replace("proc.name=cat", "proc.name=dog"))
    assert [r.name for r in rs.rules] == ["r", "s"]
    assert "dog" in rs.rule("r").condition


def test_stops_at_first_failing_file() -> None:
    rs = load(RULE, "- rule: [", RULE)
    assert [r.successful for r in rs.results] == [True, False]
    assert rs.results[1].errors[0].code == "LOAD_ERR_YAML_PARSE"


def test_shape_errors() -> None:
    assert only_error(load("a: b\n"))[1] == "Rules content is not yaml array of objects"
    assert only_error(load("- [1, 2]\n"))[1] == "Unexpected element type. Each element should be a yaml associative array."
    assert only_error(load("- list: l\n  items: x\n"))[1] == "Value is not a sequence"
    assert only_error(load("- list: l\n  items: [[a]]\n"))[1] == "sequence value is not scalar"
    assert only_error(load(RULE.replace("priority: WARNING", "priority: WARNING\n  enabled: maybe")))[1] == (
        "Can't decode YAML scalar value")


@pytest.mark.parametrize("word,value", [("yes", True), ("Off", False), ("TRUE", True), ("n", False)])
def test_yaml_cpp_booleans(word: str, value: bool) -> None:
    rs = load(RULE.replace("priority: WARNING", f"priority: WARNING\n  enabled: {word}"))
    assert rs.rule("r").enabled is value


def test_json_shape() -> None:
    rs = load(RULE.replace("WARNING", "loud"))
    payload = rs.results[0].as_json()
    assert payload["successful"] is False
    err = payload["errors"][0]
    assert set(err) == {"context", "code", "codedesc", "message"}
    assert err["codedesc"] == "Error validating internal structure of YAML file"
    locs = err["context"]["locations"]
    assert locs[0]["item_type"] == "rules content" and locs[-1]["item_type"] == "rule priority"
    assert locs[1]["item_name"] == "r"
    assert err["context"]["snippet"].endswith("^\n")
