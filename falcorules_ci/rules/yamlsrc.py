"""Rules-file YAML as Falco's yaml-cpp sees it: untyped scalars with positions.

Files are composed (not constructed) with libyaml when available, so every node keeps its start
mark and every scalar stays text; values are decoded by hand the way yaml-cpp's ``as<T>`` does.
Aliases are followed with a budget so that alias bombs fail fast instead of exhausting memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import yaml

from falcorules_ci.errors import FalcoRulesError, Span

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

NULL_TAG = "tag:yaml.org,2002:null"
NODE_BUDGET = 100_000  # node visits per file, aliases included (the upstream packs use a few thousand)

_TRUE = {"y", "yes", "true", "on"}
_FALSE = {"n", "no", "false", "off"}


class YamlError(FalcoRulesError):
    """The content is not YAML at all (LOAD_ERR_YAML_PARSE)."""


@dataclass(frozen=True, slots=True)
class Source:
    """One rules file: its name as the user gave it and its text."""

    name: str
    text: str

    def span(self, node: yaml.Node | None) -> Span:
        if node is None:
            return Span(self.name, 1, 1)
        mark = node.start_mark
        return Span(self.name, mark.line + 1, mark.column + 1, offset=mark.index)

    def position(self, node: yaml.Node | None) -> tuple[int, int, int]:
        """Falco's 0-based (offset, line, column) for a node."""
        if node is None:
            return (0, 0, 0)
        mark = node.start_mark
        return (mark.index, mark.line, mark.column)


def compose_documents(source: Source) -> list[yaml.Node | None]:
    """Every YAML document of the file as a node tree (None for empty documents)."""
    try:
        loader = _Loader(source.text)
        try:
            docs: list[yaml.Node | None] = []
            while loader.check_node():
                docs.append(loader.get_node())
            return docs
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        span = Span(source.name, mark.line + 1, mark.column + 1, offset=mark.index) if mark else None
        raise YamlError(_yaml_message(exc), span, "LOAD_ERR_YAML_PARSE") from None
    except yaml.YAMLError as exc:
        raise YamlError(str(exc).strip(), Span(source.name), "LOAD_ERR_YAML_PARSE") from None
    except RecursionError:
        raise YamlError("YAML nesting is too deep", Span(source.name), "LOAD_ERR_YAML_PARSE") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise YamlError(f"file is not valid text: {exc}", Span(source.name), "LOAD_ERR_YAML_PARSE") from None


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    return ", ".join(parts) if parts else "invalid YAML"


def is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG)


def is_scalar(node: yaml.Node | None) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag != NULL_TAG


def is_map(node: yaml.Node | None) -> bool:
    return isinstance(node, yaml.MappingNode)


def is_seq(node: yaml.Node | None) -> bool:
    return isinstance(node, yaml.SequenceNode)


class Budget:
    """Counts node visits so that alias expansion cannot blow up."""

    __slots__ = ("left", "source")

    def __init__(self, source: Source, limit: int = NODE_BUDGET) -> None:
        self.left = limit
        self.source = source

    def spend(self, node: yaml.Node, count: int = 1) -> None:
        self.left -= count
        if self.left < 0:
            raise YamlError(
                "YAML document expands to too many nodes (alias expansion?)",
                self.source.span(node),
                "LOAD_ERR_YAML_PARSE",
            )


def mapping_get(node: yaml.Node, key: str) -> yaml.Node | None:
    """yaml-cpp's ``item[key]``: the value of the first entry whose key text equals ``key``."""
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v  # type: ignore[no-any-return]
    return None


def mapping_items(node: yaml.MappingNode) -> Iterator[tuple[yaml.Node, yaml.Node]]:
    yield from node.value


def key_text(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    return yaml.dump(yaml.load(yaml.serialize(node), Loader=yaml.SafeLoader), default_flow_style=True).strip()


def decode_bool(text: str) -> bool | None:
    """yaml-cpp's bool conversion: y/yes/true/on and n/no/false/off, lower, Capitalised or UPPER."""
    if text in _cased(_TRUE):
        return True
    if text in _cased(_FALSE):
        return False
    return None


def _cased(words: set[str]) -> set[str]:
    return words | {w.capitalize() for w in words} | {w.upper() for w in words}


_UINT = re.compile(r"\+?[0-9]+")


def decode_uint(text: str, bits: int) -> int | None:
    """yaml-cpp's unsigned conversion: decimal (hex/octal prefixes too), the whole text, in range."""
    t = text.strip()
    value: int | None = None
    if _UINT.fullmatch(t):
        value = int(t)
    elif re.fullmatch(r"0x[0-9a-fA-F]+", t):
        value = int(t, 16)
    elif re.fullmatch(r"0o[0-7]+", t):
        value = int(t[2:], 8)
    if value is None or value >= 1 << bits:
        return None
    return value


def scalar_index_span(source: Source, node: yaml.ScalarNode, index: int) -> Span:
    """The file position of character ``index`` of a scalar's value.

    Plain and quoted single-line scalars map directly. Multi-line plain and block scalars are
    folded or kept by YAML; we walk their lines to map the value's characters back. Escapes in
    quoted scalars make the mapping approximate, which is still far better than the node start.
    """
    mapping = _scalar_offsets(source, node)
    if not mapping:
        return source.span(node)
    offset = mapping[min(max(index, 0), len(mapping) - 1)]
    line = source.text.count("\n", 0, offset)
    col = offset - (source.text.rfind("\n", 0, offset) + 1)
    return Span(source.name, line + 1, col + 1, offset=offset)


def _scalar_offsets(source: Source, node: yaml.ScalarNode) -> list[int]:
    """For each character of the scalar's value, its offset in the file (best effort)."""
    start, end = node.start_mark.index, node.end_mark.index
    raw = source.text[start:end]
    value = str(node.value)
    style = node.style
    if style in ("|", ">"):
        first_nl = raw.find("\n")
        if first_nl < 0:
            return []
        pos = start + first_nl + 1
        lines = source.text[pos:end].split("\n")
        content = [ln for ln in lines if ln.strip()]
        indent = min((len(ln) - len(ln.lstrip(" ")) for ln in content), default=0)
        return _map_lines(value, [(pos + sum(len(x) + 1 for x in lines[:i]) + indent, ln[indent:])
                                  for i, ln in enumerate(lines)])
    if style in ("'", '"'):
        start += 1
        raw = raw[1:]
    lines = raw.split("\n")
    pieces: list[tuple[int, str]] = []
    pos = start
    for i, ln in enumerate(lines):
        stripped = ln.lstrip(" \t") if i else ln
        pieces.append((pos + (len(ln) - len(stripped)), stripped))
        pos += len(ln) + 1
    return _map_lines(value, pieces)


def _map_lines(value: str, pieces: list[tuple[int, str]]) -> list[int]:
    """Greedy alignment of the value's characters to the source lines they came from."""
    out: list[int] = []
    vi = 0
    for offset, text in pieces:
        ti = 0
        while vi < len(value) and ti < len(text) and value[vi] == text[ti]:
            out.append(offset + ti)
            vi += 1
            ti += 1
        if vi < len(value) and value[vi] in " \n":
            out.append(offset + len(text))
            vi += 1
    while len(out) < len(value):
        out.append(out[-1] if out else pieces[0][0] if pieces else 0)
    return out
