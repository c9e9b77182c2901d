"""``load_ruleset``: rules files → compiled rules, file by file, as Falco loads ``rules_files``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from falcorules_ci.errors import Severity
from falcorules_ci.fields import default_registry
from falcorules_ci.fields.args import FieldError, match_field
from falcorules_ci.fields.registry import FieldRegistry
from falcorules_ci.rules.collector import Collector
from falcorules_ci.rules.model import Context, Location, PluginRequirementGroup
from falcorules_ci.rules.reader import Reader
from falcorules_ci.rules.result import FileResult, LoadMessage
from falcorules_ci.rules.versions import Version
from falcorules_ci.rules.yamlsrc import Source
from falcorules_ci.ruleset.compiler import Compiler
from falcorules_ci.ruleset.model import SOURCE_PLUGINS, LoadOptions, Ruleset

MAX_FILE_BYTES = 64 * 1024 * 1024


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; a directory becomes its regular ``*.yaml``/``*.yml`` files sorted by path."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(sorted(f for f in path.iterdir() if f.is_file() and f.suffix in (".yaml", ".yml")))
        else:
            out.append(path)
    return out


def load_ruleset(
    paths: Iterable[str | Path] | None = None,
    *,
    texts: Iterable[tuple[str, str]] = (),
    options: LoadOptions | None = None,
    registry: FieldRegistry | None = None,
) -> Ruleset:
    """Load rules files (and/or ``(name, text)`` pairs) in order into one ruleset.

    Loading stops at the first file with an error; ``Ruleset.results`` holds one result per file
    attempted, with Falco's codes, messages and positions. Never raises for bad rules content.
    """
    options = options or LoadOptions()
    registry = registry or default_registry()
    collector = Collector(
        engine_version=options.engine_version,
        known_source=options.known_source,
        is_valid_field=lambda name, source: _is_valid_lhs_field(registry, name, source),
    )
    ruleset = Ruleset(options=options)
    sources: list[Source] = [_read_source(p) for p in expand_paths(paths or ())]
    sources.extend(Source(name, text) for name, text in texts)
    for source in sources:
        result = _load_one(source, collector, registry, options, ruleset)
        ruleset.results.append(result)
        if not result.successful:
            break
    ruleset.required_engine_version = collector.required_engine_version
    return ruleset


def _is_valid_lhs_field(registry: FieldRegistry, text: str, source: str) -> bool:
    """Whether an exception's field compiles as a filter field for the source (with its argument)."""
    name, bracket, rest = text.partition("[")
    arg = rest[:-1] if bracket and rest.endswith("]") else None
    if bracket and arg is None:
        return False
    try:
        match_field(registry, name, arg, source)
    except FieldError:
        return False
    return True


class _Unreadable(Source):
    pass


def _read_source(path: Path) -> Source:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return _Unreadable(str(path), f"file is larger than {MAX_FILE_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        return _Unreadable(str(path), f"Could not read file: {exc.strerror or exc}")
    if b"\x00" in data[:8192]:
        return _Unreadable(str(path), "file is binary, not YAML text")
    try:
        return Source(str(path), data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return _Unreadable(str(path), f"file is not UTF-8 text (byte {exc.start})")


def _load_one(source: Source, collector: Collector, registry: FieldRegistry, options: LoadOptions,
              ruleset: Ruleset) -> FileResult:  # fmt: skip
    result = FileResult(source.name)
    root = Context((Location("rules content", "", source.name, 0, 0, 0),), source.span(None), "")
    if isinstance(source, _Unreadable):
        code = "LOAD_ERR_FILE_READ" if source.text.startswith("Could not read") else "LOAD_ERR_YAML_PARSE"
        result.errors.append(LoadMessage(Severity.ERROR, code, source.text, root))
        return result
    collector.warnings = []
    error = Reader(source, collector).read()
    result.warnings.extend(collector.warnings)
    if error is not None:
        result.errors.append(error)
        return result
    compiled = Compiler(collector, registry, options).compile()
    result.warnings.extend(compiled.warnings)
    result.errors.extend(compiled.errors)
    if result.errors:
        return result
    plugin_error = check_plugin_requirements(collector.plugin_requirements, options.plugin_versions)
    if plugin_error is not None:
        message, group = plugin_error
        result.errors.append(LoadMessage(Severity.ERROR, "LOAD_ERR_VALIDATE", message, group.context))
        return result
    ruleset.rules = compiled.rules
    ruleset.macros = compiled.macros
    ruleset.lists = compiled.lists
    return result


def check_plugin_requirements(groups: list[PluginRequirementGroup], loaded: dict[str, str]
                              ) -> tuple[str, PluginRequirementGroup] | None:  # fmt: skip
    """Falco's plugin check: in each group the first loaded alternative decides."""
    for group in groups:
        decided = False
        for req in group.alternatives:
            if req.name not in loaded:
                continue
            have = Version.parse(loaded[req.name])
            want = Version.parse(req.version)
            if have is None:
                return f"Plugin '{req.name}' has invalid version string '{loaded[req.name]}'", group
            if want is None or not have.compatible_with(want):
                return (f"Plugin '{req.name}' version '{loaded[req.name]}' is not compatible with required "
                        f"plugin version '{req.version}'", group)  # fmt: skip
            decided = True
            break
        if not decided:
            listed = ", ".join(f"{r.name} (>= {r.version})" for r in group.alternatives)
            return f"Plugin requirement not satisfied, must load one of: {listed}", group
    return None


def plugin_for_source(source: str) -> str | None:
    plugins = SOURCE_PLUGINS.get(source)
    return plugins[0] if plugins else None
