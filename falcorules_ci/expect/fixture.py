"""Fixture files: one Falcon IOA, one input, and the rules expected to fire or stay quiet.

A fixture is YAML, checked against ``schemas/fixture.schema.json`` and then against the ATT&CK
table; every problem is an :class:`InputError` whose span is the offending YAML node and whose
message says how to fix it. See the schema for the format; in short::

    id: crwd-reverse-shell
    title: Reverse shell from a web container
    ioa: {name: ReverseShell, id: 10197, technique: T1059.004, tactic: TA0002, origin: sensor}
    scenario_file: scenarios/reverse_shell.yaml     # or scenario / capture / audit / audit_events
    fires:
      - rule: Redirect STDOUT/STDIN to Network Connection in Container
        priority: Notice
        output_fields: {proc.name: bash}
    not_fires: any
    technique_policy: parent

A YAML file is taken to be a fixture when its top level names an input or an expectation
(:data:`FIXTURE_KEYS`); other YAML files beside fixtures (scenario or audit inputs) are left alone.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml
from jsonschema.exceptions import ValidationError

from falcorules_ci.errors import InputError, Span
from falcorules_ci.expect.attack import AttackTable, Finding, TechniquePolicy
from falcorules_ci.rules.model import Priority
from falcorules_ci.schemas import load_schema, validator
from falcorules_ci.sources.scenario_yaml import Document

YAML_SUFFIXES = (".yaml", ".yml")
MAX_FIXTURE_BYTES = 4 * 1024 * 1024


class InputKind(enum.Enum):
    SCENARIO = "scenario"
    SCENARIO_FILE = "scenario_file"
    CAPTURE = "capture"
    AUDIT = "audit"
    AUDIT_EVENTS = "audit_events"

    @property
    def is_file(self) -> bool:
        return self in (InputKind.SCENARIO_FILE, InputKind.CAPTURE, InputKind.AUDIT)

    @property
    def event_source(self) -> str:
        """The Falco event source the input feeds."""
        return "k8s_audit" if self in (InputKind.AUDIT, InputKind.AUDIT_EVENTS) else "syscall"


INPUT_KEYS = tuple(k.value for k in InputKind)
FIXTURE_KEYS = frozenset({*INPUT_KEYS, "ioa", "fires", "not_fires", "technique_policy"})
_INPUT_LABEL = {
    InputKind.SCENARIO_FILE: "scenario file",
    InputKind.CAPTURE: "capture file",
    InputKind.AUDIT: "audit log",
}

Locator = Callable[[Sequence[str | int]], Span | None]


@dataclass(frozen=True, slots=True)
class FixtureInput:
    """What a fixture replays: a resolved file, or inline data with a way to locate its parts."""

    kind: InputKind
    span: Span  # the input key's value in the fixture
    path: Path | None = None  # resolved, for file kinds
    data: Any = field(default=None, compare=False)  # inline scenario mapping or audit event list
    locate: Locator | None = field(default=None, compare=False)  # path inside ``data`` → fixture span
    text: str | None = field(default=None, compare=False, repr=False)  # inline input as positioned YAML
    base_dir: Path = Path(".")  # the fixture's folder: inline inputs resolve their own paths from it

    @property
    def event_source(self) -> str:
        return self.kind.event_source

    def describe(self) -> str:
        if self.path is not None:
            return f"{self.kind.value} {self.path}"
        return f"inline {self.kind.value} at {self.span}"


@dataclass(frozen=True, slots=True)
class Ioa:
    """The Falcon detection the fixture reproduces."""

    name: str
    id: str | None = None
    technique: str | None = None
    tactic: str | None = None
    origin: str | None = None
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class FireSpec:
    """One ``fires`` entry: the rule, and what its alerts must look like."""

    rule: str
    span: Span
    priority: Priority | None = None
    count: int | None = None
    output_fields: tuple[tuple[str, Any], ...] = ()
    output_contains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Fixture:
    path: Path
    id: str
    input: FixtureInput
    title: str = ""
    description: str = ""
    ioa: Ioa | None = None
    fires: tuple[FireSpec, ...] = ()
    not_fires: tuple[str, ...] | Literal["any"] | None = None
    not_fires_spans: tuple[Span, ...] = ()  # one per listed rule, or the 'any' value
    technique_policy: TechniquePolicy = "exact"
    span: Span = field(default_factory=lambda: Span("<fixture>", 1, 1))
    warnings: tuple[Finding, ...] = ()  # ATT&CK findings on the IOA's technique and tactic

    @property
    def benign(self) -> bool:
        """No rule may fire on this input."""
        return not self.fires

    @property
    def expected_rules(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.rule for f in self.fires))


# -- schema ------------------------------------------------------------------------------------------


def fixture_schema() -> dict[str, Any]:
    """The fixture JSON Schema."""
    return load_schema("fixture")


def _validator() -> jsonschema.protocols.Validator:
    return validator("fixture")


def _where(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "top level"


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(choices)}"


def _explain(doc: Document, error: ValidationError) -> list[tuple[Span, str]]:
    """Turn one schema error into messages that point at the node and name the fix."""
    path: tuple[str | int, ...] = tuple(error.absolute_path)
    where = _where(path)
    instance = error.instance
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = sorted(schema.get("properties", {}))
        extra = [k for k in instance if k not in allowed]
        return [(doc.span((*path, k), key=True), f"{where}: unknown key {k!r}; {_did_you_mean(k, allowed)}")
                for k in extra]  # fmt: skip
    if error.validator == "oneOf" and not path and isinstance(instance, dict):
        present = [k for k in INPUT_KEYS if k in instance]
        if not present:
            return [(doc.span(()), "a fixture needs exactly one input: scenario (inline), scenario_file, capture, "
                                   "audit or audit_events")]  # fmt: skip
        lines = ", ".join(f"{k} (line {doc.span((k,), key=True).line})" for k in present)
        return [(doc.span((present[1],), key=True), f"a fixture takes exactly one input, found {lines}; keep one")]
    if error.validator == "oneOf" and path and path[-1] == "not_fires":
        return [(doc.span(path), "not_fires must be 'any' or a list of rule names (without duplicates)")]
    if error.validator == "oneOf" and path and path[-1] == "output_contains":
        return [(doc.span(path), f"{where} must be a text or a list of texts")]
    if error.validator == "required":
        missing = [k for k in _as_list(error.validator_value) if isinstance(instance, dict) and k not in instance]
        return [(doc.span(path), f"{where}: missing required key {m!r}") for m in missing]
    if error.validator == "enum":
        choices = [str(c) for c in _as_list(error.validator_value)]
        return [(doc.span(path), f"{where}: {instance!r} is not allowed; {_did_you_mean(str(instance), choices)}")]
    if error.validator == "pattern":
        return [(doc.span(path), _pattern_message(path, instance))]
    return [(doc.span(path), f"{where}: {error.message}")]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _pattern_message(path: Sequence[str | int], value: Any) -> str:
    key = path[-1] if path else ""
    if key == "technique":
        return f"ioa.technique {value!r} is not an ATT&CK technique id: write T#### or T####.### (e.g. T1059.004)"
    if key == "tactic":
        return f"ioa.tactic {value!r} is not an ATT&CK tactic id: write TA#### (e.g. TA0002 for Execution)"
    if key == "capture":
        return f"capture {value!r} must be a .scap file (use audit for Kubernetes audit logs)"
    if key == "audit":
        return f"audit {value!r} must be a .json, .jsonl, .yaml or .yml Kubernetes audit log"
    if key == "id":
        return f"id {value!r} may only use letters, digits and _ . : / - (and must start with a letter or digit)"
    return f"{_where(path)}: {value!r} does not match the expected form"


def _schema_errors(doc: Document) -> list[tuple[Span, str]]:
    found: list[tuple[Span, str]] = []
    for error in _validator().iter_errors(doc.data):
        found.extend(_explain(doc, error))
    return found


def _raise(problems: list[tuple[Span, str]]) -> None:
    if not problems:
        return
    problems = sorted(dict.fromkeys(problems), key=lambda p: (p[0].line, p[0].col))
    first_span, first = problems[0]
    rest = "".join(f"\n{span}: {msg}" for span, msg in problems[1:])
    raise InputError(first + rest, first_span)


# -- loading ------------------------------------------------------------------------------------------


def read_document(path: Path) -> Document:
    """The fixture's YAML with positions; unreadable or non-YAML files are InputErrors."""
    return Document(str(path), read_text(path))


def read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FIXTURE_BYTES:
            raise InputError(f"fixture is larger than {MAX_FIXTURE_BYTES} bytes", Span(str(path)))
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"fixture file not found: {path.resolve()}", Span(str(path))) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"fixture is not UTF-8 text (byte {exc.start})", Span(str(path))) from None
    except OSError as exc:
        raise InputError(f"cannot read fixture: {exc.strerror or exc}", Span(str(path))) from None
    return text


def load_fixture(path: str | Path, *, attack: AttackTable | None = None) -> Fixture:
    """Read, validate and resolve one fixture file.

    Raises :class:`InputError` (file:line:col, message naming the fix) for YAML errors, schema
    violations, unknown priorities or ATT&CK ids, and input files that do not exist.
    """
    path = Path(path)
    text = read_text(path)
    doc = Document(str(path), text)
    if not doc.nodes:
        raise InputError("the fixture file is empty; a fixture needs an id, one input and its expectations",
                         doc.span(()))  # fmt: skip
    if not isinstance(doc.data, dict):
        raise InputError("a fixture is a YAML mapping (id, ioa, an input, fires / not_fires)", doc.span(()))
    _raise(_schema_errors(doc))
    attack = attack or AttackTable.load()
    data: dict[str, Any] = doc.data
    problems: list[tuple[Span, str]] = []
    warnings: list[Finding] = []

    ioa = _read_ioa(doc, attack, problems, warnings)
    fires = tuple(_read_fire(doc, i, entry, problems) for i, entry in enumerate(data.get("fires") or ()))
    not_fires, not_fires_spans = _read_not_fires(doc, fires, problems)
    fixture_input = _read_input(doc, text, path, problems)
    _raise(problems)
    assert fixture_input is not None
    return Fixture(
        path=path,
        id=str(data["id"]),
        input=fixture_input,
        title=str(data.get("title") or ""),
        description=str(data.get("description") or ""),
        ioa=ioa,
        fires=fires,
        not_fires=not_fires,
        not_fires_spans=not_fires_spans,
        technique_policy=data.get("technique_policy", "exact"),
        span=doc.span(()),
        warnings=tuple(warnings),
    )


def _read_ioa(doc: Document, attack: AttackTable, problems: list[tuple[Span, str]],
              warnings: list[Finding]) -> Ioa | None:  # fmt: skip
    raw = doc.data.get("ioa")
    if raw is None:
        return None
    technique = raw.get("technique")
    tactic = raw.get("tactic")
    if technique is not None:
        for finding in attack.check_tag(technique):
            if finding.is_error:
                problems.append((doc.span(("ioa", "technique")), f"ioa.technique: {finding.message}"))
            else:
                warnings.append(finding)
    if tactic is not None:
        if attack.tactic(tactic) is None:
            known = ", ".join(f"{t.id} {t.name}" for t in sorted(attack.tactics.values(), key=lambda t: t.order))
            problems.append((doc.span(("ioa", "tactic")),
                             f"ioa.tactic: {tactic} is not an ATT&CK Enterprise {attack.version} tactic ({known})"))  # fmt: skip
        elif technique is not None and attack.technique(technique) is not None:
            warnings.extend(f for f in attack.check_tags([technique, tactic]) if f.code == "ATTACK_TACTIC_MISMATCH")
    ioa_id = raw.get("id")
    return Ioa(
        name=str(raw["name"]),
        id=None if ioa_id is None else str(ioa_id),
        technique=technique,
        tactic=tactic,
        origin=raw.get("origin"),
        span=doc.span(("ioa",)),
    )


_PRIORITY_NAMES = tuple(p.label for p in Priority)


def _read_fire(doc: Document, index: int, entry: Mapping[str, Any], problems: list[tuple[Span, str]]) -> FireSpec:
    base = ("fires", index)
    priority: Priority | None = None
    if "priority" in entry:
        priority = Priority.parse(str(entry["priority"]))
        if priority is None:
            text = str(entry["priority"])
            problems.append((doc.span((*base, "priority")),
                             f"fires[{index}].priority: {text!r} is not a Falco priority; "
                             f"{_did_you_mean(text.capitalize(), _PRIORITY_NAMES)}"))  # fmt: skip
    contains = entry.get("output_contains")
    return FireSpec(
        rule=entry["rule"],
        span=doc.span((*base, "rule")),
        priority=priority,
        count=entry.get("count"),
        output_fields=tuple((entry.get("output_fields") or {}).items()),
        output_contains=(contains,) if isinstance(contains, str) else tuple(contains or ()),
    )


def _read_not_fires(doc: Document, fires: tuple[FireSpec, ...], problems: list[tuple[Span, str]]
                    ) -> tuple[tuple[str, ...] | Literal["any"] | None, tuple[Span, ...]]:  # fmt: skip
    raw = doc.data.get("not_fires")
    if raw is None:
        return None, ()
    if raw == "any":
        return "any", (doc.span(("not_fires",)),)
    expected = {f.rule for f in fires}
    for i, rule in enumerate(raw):
        if rule in expected:
            problems.append((doc.span(("not_fires", i)),
                             f"not_fires[{i}]: rule {rule!r} is also in fires; a rule cannot be expected both to "
                             "fire and not to fire on one input"))  # fmt: skip
    return tuple(raw), tuple(doc.span(("not_fires", i)) for i in range(len(raw)))


def _read_input(doc: Document, text: str, path: Path, problems: list[tuple[Span, str]]) -> FixtureInput | None:
    key = next(k for k in INPUT_KEYS if k in doc.data)
    kind = InputKind(key)
    span = doc.span((key,))
    base_dir = path.parent.resolve()
    if not kind.is_file:
        def locate(inner: Sequence[str | int]) -> Span | None:
            return doc.span((key, *inner))

        return FixtureInput(kind, span, data=doc.data[key], locate=locate, base_dir=base_dir,
                            text=_inline_text(text, doc.nodes[(key,)]))  # fmt: skip
    target = (base_dir / str(doc.data[key])).resolve()
    label = _INPUT_LABEL[kind]
    if not target.exists():
        problems.append((span, f"{key}: {label} not found: {target} (paths are relative to the fixture's folder "
                               f"{base_dir})"))  # fmt: skip
        return None
    if not target.is_file():
        problems.append((span, f"{key}: {target} is a directory; name the {label} itself"))
        return None
    return FixtureInput(kind, span, path=target, base_dir=base_dir)


def _inline_text(text: str, node: yaml.Node) -> str:
    """The inline input as a YAML document of its own whose lines and columns are the fixture's:
    blank lines before it, and spaces in place of whatever precedes it on its first line (a YAML
    root collection may be indented)."""
    start, end = node.start_mark, node.end_mark
    return "\n" * start.line + " " * start.column + text[start.index : end.index]


# -- discovery ----------------------------------------------------------------------------------------


def is_fixture_document(data: Any) -> bool:
    """A YAML document is a fixture when its top level names an input or an expectation. A
    scenario file has a ``scenario`` key too, but as its title (text), not as a mapping."""
    if not isinstance(data, dict):
        return False
    if isinstance(data.get("scenario"), dict):
        return True
    return any(k in data for k in FIXTURE_KEYS - {"scenario"})


def looks_like_fixture(path: Path) -> bool:
    """Whether to treat a YAML file as a fixture. Unparseable YAML counts as a fixture so that its
    error is reported rather than the file silently skipped."""
    if path.suffix not in YAML_SUFFIXES:
        return False
    try:
        doc = read_document(path)
    except InputError:
        return True
    return is_fixture_document(doc.data)


def discover_fixtures(directory: str | Path) -> list[Path]:
    """Every fixture file under ``directory`` (recursively), sorted by path."""
    root = Path(directory)
    if root.is_file():
        return [root] if looks_like_fixture(root) else []
    return sorted(p for p in _yaml_files(root) if looks_like_fixture(p))


def _yaml_files(root: Path) -> Iterator[Path]:
    for p in root.rglob("*"):
        hidden = any(part.startswith(".") for part in p.relative_to(root).parts)
        if p.suffix in YAML_SUFFIXES and not hidden and p.is_file():
            yield p
