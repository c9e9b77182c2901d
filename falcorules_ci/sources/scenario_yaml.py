"""Scenario YAML with positions: plain values for the schema, cursors with spans for the builder.

A scenario is composed (libyaml when available) rather than loaded, so every value keeps the node
it came from. Scalars are typed the YAML 1.1 way except timestamps, which stay text (the scenario
parses its own times), and every scalar keeps its source text, which is how ``mode: 644`` can mean
octal 644. Keys are always their text. Duplicate keys are errors, ``<<`` merges are honoured, and
aliases are followed with a budget so an alias bomb fails fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NoReturn

import jsonschema
import yaml
from jsonschema.exceptions import ValidationError, best_match

from falcorules_ci.errors import InputError, Span
from falcorules_ci.schemas import load_schema, validator

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

Path = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
NODE_BUDGET = 1_000_000
_SCALARS = yaml.constructor.SafeConstructor()


class Document:
    """A composed scenario: its plain value plus the node behind every path."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.nodes: dict[Path, yaml.Node] = {}
        self.key_nodes: dict[Path, yaml.Node] = {}
        self._visits = 0
        root = self._compose(text)
        self.data: Any = {} if root is None else self._convert(root, ())

    def root(self) -> Cursor:
        return Cursor(self.data, (), self)

    def span(self, path: Path, *, key: bool = False) -> Span:
        """Where the value (or, with ``key``, the mapping key) at ``path`` is, else its nearest parent."""
        node = self.key_nodes.get(path) if key else None
        probe = path
        while node is None:
            node = self.nodes.get(probe)
            if node is None and not probe:
                return Span(self.name, 1, 1)
            probe = probe[:-1]
        mark = node.start_mark
        return Span(self.name, mark.line + 1, mark.column + 1)

    def raw_text(self, path: Path) -> str | None:
        node = self.nodes.get(path)
        return node.value if isinstance(node, yaml.ScalarNode) else None

    def _compose(self, text: str) -> yaml.Node | None:
        try:
            loader = _Loader(text)
            try:
                node: yaml.Node | None = loader.get_single_node()
                return node
            finally:
                loader.dispose()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            span = Span(self.name, mark.line + 1, mark.column + 1) if mark else Span(self.name)
            parts = [p for p in (exc.context, exc.problem) if p]
            raise InputError("invalid YAML: " + (", ".join(parts) or "syntax error"), span) from None
        except yaml.YAMLError as exc:
            raise InputError(f"invalid YAML: {exc}".strip(), Span(self.name)) from None

    def _convert(self, node: yaml.Node, path: Path) -> Any:
        self._visits += 1
        if self._visits > NODE_BUDGET:
            raise InputError("too many YAML nodes (alias expansion?)", self.span(path))
        self.nodes[path] = node
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(item, (*path, i)) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        raise InputError("unsupported YAML node", self.span(path))  # pragma: no cover

    def _scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        tag = node.tag
        if tag == _TAG + "str" or tag == _TAG + "timestamp":
            return node.value
        if tag == _TAG + "null":
            return None
        try:
            if tag == _TAG + "bool":
                return _SCALARS.construct_yaml_bool(node)
            if tag == _TAG + "int":
                return _SCALARS.construct_yaml_int(node)
            if tag == _TAG + "float":
                return _SCALARS.construct_yaml_float(node)
            if tag == _TAG + "binary":
                return _SCALARS.construct_yaml_binary(node)
        except (yaml.YAMLError, ValueError) as exc:
            raise InputError(f"bad {tag.removeprefix(_TAG)} value {node.value!r}: {exc}", self.span(path)) from None
        raise InputError(f"unsupported YAML tag {tag}", self.span(path))

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merges: list[tuple[yaml.Node, Path]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                merges.append((value_node, path))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                mark = key_node.start_mark
                raise InputError("mapping keys must be plain scalars", Span(self.name, mark.line + 1, mark.column + 1))
            key = key_node.value
            if key in result:
                mark = key_node.start_mark
                raise InputError(f"duplicate key {key!r}", Span(self.name, mark.line + 1, mark.column + 1))
            self.key_nodes[(*path, key)] = key_node
            result[key] = self._convert(value_node, (*path, key))
        for value_node, base in merges:
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    mark = source.start_mark
                    raise InputError("<< merges need mappings", Span(self.name, mark.line + 1, mark.column + 1))
                for key_node, inner in source.value:
                    key = key_node.value
                    if isinstance(key_node, yaml.ScalarNode) and key not in result:
                        self.key_nodes[(*base, key)] = key_node
                        result[key] = self._convert(inner, (*base, key))
        return result


class Cursor:
    """A value inside a :class:`Document` that knows where it came from."""

    __slots__ = ("doc", "path", "value")

    def __init__(self, value: Any, path: Path, doc: Document) -> None:
        self.value = value
        self.path = path
        self.doc = doc

    @property
    def span(self) -> Span:
        return self.doc.span(self.path)

    @property
    def text(self) -> str:
        """The scalar's source text (``0644`` stays ``0644``); other values as ``str``."""
        raw = self.doc.raw_text(self.path)
        if raw is not None and not isinstance(self.value, (dict, list)):
            return raw
        return str(self.value)

    @property
    def where(self) -> str:
        """The dotted path, for messages: ``events[3].args.flags``."""
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out or "document"

    def fail(self, message: str, *, key: bool = False) -> NoReturn:
        raise InputError(message, self.doc.span(self.path, key=key))

    def get(self, key: str) -> Cursor | None:
        if isinstance(self.value, dict) and key in self.value:
            return Cursor(self.value[key], (*self.path, key), self.doc)
        return None

    def has(self, key: str) -> bool:
        return isinstance(self.value, dict) and key in self.value

    def items(self) -> Iterator[tuple[str, Cursor]]:
        if isinstance(self.value, dict):
            for key, value in self.value.items():
                yield key, Cursor(value, (*self.path, key), self.doc)

    def elements(self) -> Iterator[Cursor]:
        if isinstance(self.value, list):
            for i, value in enumerate(self.value):
                yield Cursor(value, (*self.path, i), self.doc)

    def child(self, key: str) -> Cursor:
        found = self.get(key)
        if found is None:
            self.fail(f"{self.where}: missing {key!r}")
        return found


def scenario_schema() -> dict[str, Any]:
    """The scenario JSON Schema."""
    return load_schema("scenario")


def _validator() -> jsonschema.protocols.Validator:
    return validator("scenario")


def validate_document(doc: Document) -> None:
    """Check the document against the scenario JSON Schema; the first error cites the YAML line."""
    errors = list(_validator().iter_errors(_plain(doc.data)))
    if not errors:
        return
    error = best_match(errors)
    assert error is not None
    path: Path = tuple(error.absolute_path)
    message, span = _explain(doc, error, path)
    more = f" (and {len(errors) - 1} more schema errors)" if len(errors) > 1 else ""
    raise InputError(message + more, span)


def _plain(value: Any) -> Any:
    """The document as JSON Schema sees it: ``!!binary`` values count as strings."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def _explain(doc: Document, error: ValidationError, path: Path) -> tuple[str, Span]:
    where = Cursor(None, path, doc).where
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator in ("additionalProperties", "unevaluatedProperties") and isinstance(error.instance, dict):
        extra = [k for k in re.findall(r"'([^']*)'", error.message) if k in error.instance]
        if extra:
            return (f"{where}: unknown key {extra[0]!r}", doc.span((*path, extra[0]), key=True))
    if error.validator == "oneOf" and "actions" in str(schema.get("$comment", "")):
        present = [k for k in error.instance if k in _ACTION_KEYS] if isinstance(error.instance, dict) else []
        if len(present) > 1:
            return (f"{where}: an event takes exactly one action, found {', '.join(present)}", doc.span(path))
        if not present:
            return (f"{where}: an event needs one action key: {', '.join(_ACTION_KEYS)}", doc.span(path))
    if error.validator == "not" and isinstance(error.instance, dict) and {"ppid", "parent"} <= set(error.instance):
        return (f"{where}: give ppid or parent, not both", doc.span(path))
    if error.validator == "anyOf" and isinstance(error.validator_value, list):
        needed = [key for option in error.validator_value for key in option.get("required", [])]
        if needed and len(needed) == len(error.validator_value):
            return (f"{where}: needs {' or '.join(needed)}", doc.span(path))
    if error.validator == "dependentRequired":
        return (f"{where}: {error.message.replace('is a dependency of', 'is needed with')}", doc.span(path))
    return (f"{where}: {error.message}", doc.span(path))


_ACTION_KEYS = (
    "syscall", "spawn", "exec", "exit", "open", "read_file", "write_file", "connect", "listen", "accept",
    "send", "recv", "close", "dup", "setuid", "setgid", "chdir",
)
