"""Kubernetes audit logs as ``k8s_audit`` events, read the way Falco's k8saudit plugin reads them.

Inputs, told apart by content (a ``.yaml``/``.yml`` suffix means YAML):

- ``jsonl``: what the plugin reads: one JSON value per line, each an ``Event``, an ``EventList``
  or an array of those. Lines are read like Go's ``bufio.Scanner``: split at ``\\n``, one trailing
  ``\\r`` dropped, empty lines ignored, and a line of 64 KiB or more ends the input with an error
  (the plugin's quirk; ``line_limit=False`` lifts it).
- ``json``: one JSON document spread over several lines (an Event, an array, an EventList). The
  plugin itself would drop every line of such a file; here it is read as if it were one line,
  so pretty-printed fixtures work (convert with :func:`to_jsonl` to feed it to Falco).
- ``yaml``: hand-written fixtures: one or more documents, each a mapping or a list of mappings.
  A mapping with ``kind`` is a literal Event or EventList; one without is the shorthand of
  :mod:`falcorules_ci.sources.k8saudit_shorthand`.

Every event goes through the plugin's rules (:mod:`falcorules_ci.sources.k8saudit_plugin`):
what the plugin would drop is an :class:`InputError` with its position (``on_error="stop"``) or
is counted in ``SourceStats.skipped`` by reason (``on_error="skip"``). An event without
``auditID`` is kept by Falco, but no ``ka.*`` field has a value for it: an error when stopping on
errors, a warning (and the event kept) when skipping.

Events are libsinsp plugin events: ``evt.type`` is ``pluginevent``, the direction ``>`` (the
event code is an enter event), no thread (tid -1), the time is ``stageTimestamp`` in ns and the
payload the audit event dict.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from falcorules_ci.errors import Diagnostic, InputError, Severity, Span
from falcorules_ci.sources.event import K8S_AUDIT_SOURCE, Event
from falcorules_ci.sources.k8saudit_events import audit_event
from falcorules_ci.sources.k8saudit_plugin import (
    DECODER,
    LINE_LIMIT,
    MAX_EVENT_SIZE,
    PLUGIN_EVENT_CODE,
    PLUGIN_EVENT_NAME,
    PLUGIN_EVENT_TID,
    Drop,
    Found,
    Rejected,
    compact_size,
    event_time,
    find_events,
)
from falcorules_ci.sources.k8saudit_shorthand import expand_shorthand, shorthand_schema
from falcorules_ci.sources.records import SourceStats

__all__ = [
    "AuditInput", "Drop", "audit_event", "expand_shorthand", "looks_like_audit", "read_audit", "to_jsonl",
]  # fmt: skip

OnError = Literal["stop", "skip"]
Layout = Literal["jsonl", "json", "yaml"]

_YAML_SUFFIXES: Final = (".yaml", ".yml")
_JSON_LINES_SUFFIXES: Final = (".jsonl", ".ndjson", ".log")
_SNIFF_BYTES: Final = 1 << 20
_AUDIT_KIND: Final = re.compile(r'"kind"\s*:\s*"Event(?:List)?"')
_AUDIT_VERSION: Final = re.compile(r'"apiVersion"\s*:\s*"audit\.k8s\.io/')


@dataclass(slots=True)
class AuditInput:
    """An audit file ready to be replayed; iterate it for events (each pass re-reads the file and
    resets ``stats`` and ``warnings``)."""

    path: str
    layout: Layout
    on_error: OnError = "stop"
    max_event_size: int = MAX_EVENT_SIZE
    line_limit: bool = True
    stats: SourceStats = field(default_factory=SourceStats)
    warnings: list[Diagnostic] = field(default_factory=list)

    @property
    def falco_readable(self) -> bool:
        """Whether the k8saudit plugin reads this file as it is (JSON Lines)."""
        return self.layout == "jsonl"

    def __iter__(self) -> Iterator[Event]:
        self.stats = SourceStats()
        self.warnings = []
        emitter = _Emitter(self)
        if self.layout == "jsonl":
            return _read_jsonl(self, emitter)
        if self.layout == "json":
            return _read_json_document(self, emitter)
        return _read_yaml(self, emitter)

    def events(self) -> list[Event]:
        return list(self)


def read_audit(
    path: str | Path,
    on_error: OnError = "stop",
    *,
    max_event_size: int = MAX_EVENT_SIZE,
    line_limit: bool = True,
) -> AuditInput:
    """Open an audit log or fixture (JSON Lines, a JSON document, or YAML); see the module doc.

    Nothing but the layout is decided here; problems in the content surface while iterating.
    """
    if on_error not in ("stop", "skip"):
        raise ValueError(f"on_error must be 'stop' or 'skip', not {on_error!r}")
    text_path = str(path)
    try:
        with open(text_path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read audit file: {exc.strerror or exc}", Span(text_path)) from None
    return AuditInput(text_path, _detect_layout(text_path, head), on_error, max_event_size, line_limit)


def looks_like_audit(path: str | Path) -> bool:
    """Whether a file holds Kubernetes audit events (or audit shorthand), judged by content."""
    text_path = str(path)
    try:
        with open(text_path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return False
    text = head.decode("utf-8", "surrogateescape")
    if _detect_layout(text_path, head) == "yaml":
        return _yaml_looks_like_audit(text)
    first = next((line for line in text.splitlines() if line.strip()), "")
    value = _decodes(first)
    if value is _UNDECODABLE:
        value = _decodes(text)
    if value is _UNDECODABLE:
        # A document too large to sniff whole: look for an audit Event's kind and apiVersion.
        return bool(_AUDIT_KIND.search(text) and _AUDIT_VERSION.search(text))
    return _is_audit_value(value)


def to_jsonl(events: Iterable[Event | Mapping[str, Any]]) -> str:
    """JSON Lines the k8saudit plugin reads: one compact event per line."""
    lines = []
    for item in events:
        payload = item.payload if isinstance(item, Event) else item
        lines.append(json.dumps(payload, separators=(",", ":"), ensure_ascii=False) + "\n")
    return "".join(lines)


# --- layout detection --------------------------------------------------------------------------


def _detect_layout(path: str, head: bytes) -> Layout:
    lowered = path.lower()
    if lowered.endswith(_YAML_SUFFIXES):
        return "yaml"
    if lowered.endswith(_JSON_LINES_SUFFIXES):
        return "jsonl"
    text = head.decode("utf-8", "surrogateescape")
    stripped = text.lstrip(" \t\r\n")
    if not lowered.endswith(".json") and stripped[:1] not in ("{", "[", ""):
        return "yaml"
    lines = text.split("\n")
    content = [i for i, line in enumerate(lines) if line.strip(" \t\r")]
    if not content or (content[0] == len(lines) - 1 and len(head) == _SNIFF_BYTES):
        return "jsonl"
    if _decodes(lines[content[0]]) is not _UNDECODABLE:
        return "jsonl"
    # The first line alone is not JSON: either a malformed line of JSON Lines or the start of a
    # document spread over lines. A later line that holds a whole object or array settles it.
    if any(isinstance(_decodes(lines[i]), (dict, list)) for i in content[1:6]):
        return "jsonl"
    try:
        with open(path, "rb") as handle:
            whole = handle.read().decode("utf-8", "surrogateescape")
        DECODER.decode(whole)
        return "json"
    except json.JSONDecodeError as exc:
        # An error past the first line means a document spread over lines, not JSON Lines.
        return "json" if exc.lineno > content[0] + 1 and len(content) > 1 else "jsonl"
    except (ValueError, RecursionError, OSError):
        return "jsonl"


_UNDECODABLE: Final = object()


def _decodes(text: str) -> Any:
    try:
        return DECODER.decode(text)
    except (ValueError, RecursionError):
        return _UNDECODABLE


def _is_audit_object(value: Any) -> bool:
    if not isinstance(value, dict) or value.get("kind") not in ("Event", "EventList"):
        return False
    version = value.get("apiVersion")
    return (isinstance(version, str) and version.startswith("audit.k8s.io/")) or "auditID" in value


def _is_audit_value(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and _is_audit_value(value[0])
    return _is_audit_object(value)


def _yaml_looks_like_audit(text: str) -> bool:
    try:
        loader = _AuditYamlLoader(text)
    except (UnicodeError, ValueError):  # not text at all (binary, invalid UTF-8)
        return False
    try:
        node = loader.get_node() if loader.check_node() else None
        value = loader.construct_document(node) if node is not None else None
    except (yaml.YAMLError, UnicodeError, ValueError, RecursionError):
        return False
    finally:
        loader.dispose()
    first = value[0] if isinstance(value, list) and value else value
    if not isinstance(first, dict):
        return False
    if "kind" in first:
        return _is_audit_object(first)
    known = set(shorthand_schema()["properties"])
    return "user" in first and ({"verb", "exec", "attach"} & first.keys()) != set() and first.keys() <= known


# --- emitting events ---------------------------------------------------------------------------


class _Emitter:
    """Applies the plugin's per-event rules and numbers the events that pass."""

    def __init__(self, source: AuditInput) -> None:
        self.source = source
        self.count = 0

    def reject(self, reason: str, message: str, span: Span) -> None:
        if self.source.on_error == "stop":
            raise InputError(message, span)
        self.source.stats.skip(reason)
        # Skipping still says where: the first few of each reason are kept with their position.
        if self.source.stats.skipped[reason] <= SKIP_REPORT_LIMIT:
            code = "K8S_AUDIT_SKIPPED_" + reason.upper()
            self.source.warnings.append(Diagnostic(Severity.WARNING, code, message, span))

    def emit(self, candidate: Any, span: Span, raw: str | None = None, raw_size: int | None = None) -> Event | None:
        """The event for one candidate, or ``None`` if the plugin drops it (counted)."""
        try:
            ts = event_time(candidate)
        except Rejected as rejected:
            self.reject(rejected.reason, rejected.message, span)
            return None
        limit = self.source.max_event_size
        if raw_size is None or raw_size > limit:
            size = compact_size(candidate, raw)
            if size > limit:
                self.reject(
                    Drop.OVER_MAX_EVENT_SIZE,
                    f"audit event is {size} bytes as compact JSON, over the k8saudit plugin's "
                    f"maxEventSize of {limit}: the plugin drops it",
                    span,
                )
                return None
        if "auditID" not in candidate:
            message = "audit event has no 'auditID': Falco keeps it, but no ka.* field has a value for it"
            if self.source.on_error == "stop":
                raise InputError(message, span)
            self.source.warnings.append(Diagnostic(Severity.WARNING, "K8S_AUDIT_NO_AUDIT_ID", message, span))
        self.count += 1
        self.source.stats.events += 1
        return Event(
            num=self.count,
            ts=ts,
            tid=PLUGIN_EVENT_TID,
            code=PLUGIN_EVENT_CODE,
            name=PLUGIN_EVENT_NAME,
            direction=">",
            source=K8S_AUDIT_SOURCE,
            payload=candidate,
            span=span,
        )


def _decode_error(exc: ValueError | RecursionError) -> tuple[str, int, int]:
    """Message, line and column (1-based, relative to the decoded text) of a JSON error."""
    if isinstance(exc, json.JSONDecodeError):
        # json's "Unterminated string starting at" expects its own position suffix.
        return exc.msg.removesuffix(" starting at"), exc.lineno, exc.colno
    if isinstance(exc, RecursionError):
        return "nested too deeply", 1, 1
    return str(exc), 1, 1


SKIP_REPORT_LIMIT = 20  # skipped items reported by position, per reason (all are counted)


# --- JSON Lines --------------------------------------------------------------------------------


def _read_jsonl(source: AuditInput, emitter: _Emitter) -> Iterator[Event]:
    path = source.path
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, 1):
            source.stats.bytes += len(raw)
            line = raw[:-1] if raw.endswith(b"\n") else raw
            if source.line_limit and len(line) >= LINE_LIMIT:
                message = (
                    f"line is {len(line)} bytes: the k8saudit plugin reads files with Go's bufio.Scanner, "
                    f"whose {LINE_LIMIT}-byte line buffer (newline included) overflows here, and Falco "
                    "stops reading with 'bufio.Scanner: token too long'"
                )
                emitter.reject(Drop.LINE_TOO_LONG, message, Span(path, line_no, 1))
                unread = sum(1 for rest in handle if rest.rstrip(b"\r\n"))
                if unread:
                    source.stats.skip(Drop.UNREAD_AFTER_LONG_LINE, unread)
                return
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                continue
            text = line.decode("utf-8", "surrogateescape")
            start = len(text) - len(text.lstrip(" \t\r\n"))
            if start == len(text):
                source.stats.skip(Drop.WHITESPACE_LINE)
                continue
            try:
                value = DECODER.decode(text)
            except (ValueError, RecursionError) as exc:
                message, _, col = _decode_error(exc)
                emitter.reject(
                    Drop.MALFORMED_JSON,
                    f"malformed JSON: {message} (the k8saudit plugin drops the line)",
                    Span(path, line_no, col),
                )
                continue
            try:
                found = find_events(value, text, start)
            except Rejected as rejected:
                emitter.reject(rejected.reason, rejected.message, Span(path, line_no, rejected.offset + 1))
                continue
            whole_line = len(found) == 1 and found[0].event is value
            for candidate in found:
                event = emitter.emit(
                    candidate.event,
                    Span(path, line_no, candidate.offset + 1),
                    raw=text if whole_line else None,
                    raw_size=len(line),
                )
                if event is not None:
                    yield event


# --- one JSON document -------------------------------------------------------------------------


class _Positions:
    """Character offsets of a text turned into 1-based line and column spans."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.starts = [0]
        index = text.find("\n")
        while index >= 0:
            self.starts.append(index + 1)
            index = text.find("\n", index + 1)

    def span(self, offset: int) -> Span:
        line = bisect.bisect_right(self.starts, offset)
        return Span(self.path, line, offset - self.starts[line - 1] + 1)


def _read_json_document(source: AuditInput, emitter: _Emitter) -> Iterator[Event]:
    with open(source.path, "rb") as handle:
        data = handle.read()
    source.stats.bytes = len(data)
    text = data.decode("utf-8", "surrogateescape")
    try:
        value = DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        message, line, col = _decode_error(exc)
        emitter.reject(Drop.MALFORMED_JSON, f"malformed JSON: {message}", Span(source.path, line, col))
        return
    positions = _Positions(source.path, text)
    start = len(text) - len(text.lstrip(" \t\r\n"))
    try:
        found = find_events(value, text, start)
    except Rejected as rejected:
        emitter.reject(rejected.reason, rejected.message, positions.span(rejected.offset))
        return
    for candidate in found:
        event = emitter.emit(candidate.event, positions.span(candidate.offset))
        if event is not None:
            yield event


# --- YAML --------------------------------------------------------------------------------------

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _AuditYamlLoader(_BaseLoader):  # type: ignore[misc]
    """YAML's safe loader without YAML 1.1 timestamps: ``stageTimestamp: 2024-05-01T12:00:00Z``
    stays the text Go parses instead of becoming a ``datetime``."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }


def _mark_span(path: str, node: yaml.Node) -> Span:
    return Span(path, node.start_mark.line + 1, node.start_mark.column + 1)


def _node_locator(path: str, root: yaml.Node) -> Any:
    def locate(keys: Sequence[str | int]) -> Span | None:
        node: yaml.Node = root
        for position, key in enumerate(keys):
            if isinstance(node, yaml.MappingNode):
                pair = next(((k, v) for k, v in node.value if k.value == key), None)
                if pair is None:
                    return _mark_span(path, node)
                if position == len(keys) - 1:
                    return _mark_span(path, pair[0])
                node = pair[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
            else:
                return _mark_span(path, node)
        return _mark_span(path, node)

    return locate


def _jsonable(value: Any, path: str, node: yaml.Node) -> Any:
    """A YAML value as JSON would hold it: string keys, JSON scalars only, fresh containers."""
    if isinstance(value, dict):
        pairs = node.value if isinstance(node, yaml.MappingNode) else []
        children = {k.value: v for k, v in pairs if isinstance(k, yaml.ScalarNode)}
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, (str, bool, int, float)) and key is not None:
                raise InputError("a mapping key must be a scalar in an audit event", _mark_span(path, node))
            text_key = key if isinstance(key, str) else json.dumps(key)
            out[text_key] = _jsonable(item, path, children.get(text_key, node))
        return out
    if isinstance(value, list):
        items = node.value if isinstance(node, yaml.SequenceNode) else []
        return [_jsonable(v, path, items[i] if i < len(items) else node) for i, v in enumerate(value)]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise InputError(f"a {type(value).__name__} value has no JSON form in an audit event", _mark_span(path, node))


def _yaml_documents(source: AuditInput, emitter: _Emitter, text: str) -> Iterator[tuple[yaml.Node, Any]]:
    loader = _AuditYamlLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            yield node, loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        span = Span(source.path, mark.line + 1, mark.column + 1) if mark else Span(source.path)
        emitter.reject(Drop.MALFORMED_YAML, f"malformed YAML: {exc.problem or exc}", span)
    except yaml.YAMLError as exc:
        emitter.reject(Drop.MALFORMED_YAML, f"malformed YAML: {exc}", Span(source.path))
    finally:
        loader.dispose()


def _read_yaml(source: AuditInput, emitter: _Emitter) -> Iterator[Event]:
    path = source.path
    with open(path, "rb") as handle:
        data = handle.read()
    source.stats.bytes = len(data)
    sequence = 0
    for doc_node, doc in _yaml_documents(source, emitter, data.decode("utf-8", "surrogateescape")):
        if doc is None:
            continue
        if isinstance(doc, dict):
            items = [(doc, doc_node)]
        elif isinstance(doc, list) and isinstance(doc_node, yaml.SequenceNode):
            items = list(zip(doc, doc_node.value, strict=True))
        else:
            emitter.reject(
                Drop.NOT_AUDIT_EVENT,
                "a YAML document must be a mapping or a list of mappings",
                _mark_span(path, doc_node),
            )
            continue
        for item, item_node in items:
            yield from _yaml_item(source, emitter, item, item_node, sequence)
            sequence += 1


def _yaml_item(source: AuditInput, emitter: _Emitter, item: Any, node: yaml.Node, sequence: int) -> Iterator[Event]:
    path = source.path
    span = _mark_span(path, node)
    try:
        value = _jsonable(item, path, node)
    except InputError as exc:
        emitter.reject(Drop.NOT_AUDIT_EVENT, exc.message, exc.span or span)
        return
    if isinstance(value, dict) and "kind" not in value:
        try:
            event = expand_shorthand(value, span, locate=_node_locator(path, node), sequence=sequence)
        except InputError as exc:
            emitter.reject(Drop.INVALID_SHORTHAND, exc.message, exc.span or span)
            return
        emitted = emitter.emit(event, span)
        if emitted is not None:
            yield emitted
        return
    try:
        found: list[Found] = find_events(value, None, 0)
    except Rejected as rejected:
        emitter.reject(rejected.reason, rejected.message, span)
        return
    item_nodes = _event_list_item_nodes(node)
    for candidate in found:
        where = span
        if item_nodes is not None and candidate.offset < len(item_nodes):
            where = _mark_span(path, item_nodes[candidate.offset])
        emitted = emitter.emit(candidate.event, where)
        if emitted is not None:
            yield emitted


def _event_list_item_nodes(node: yaml.Node) -> list[yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key, value in node.value:
        if key.value == "items" and isinstance(value, yaml.SequenceNode):
            return list(value.value)
    return None
