"""Compiled rules and the options that shape loading, as Falco's engine holds them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from falcorules_ci.condition.ast import Node
from falcorules_ci.errors import Span
from falcorules_ci.rules.model import Priority
from falcorules_ci.rules.result import FileResult
from falcorules_ci.rules.versions import DEFAULT_PLUGINS, ENGINE_VERSION, Version

# The suffix Falco 0.44 appends to syscall rule outputs when the container plugin suggests fields
# (append_output with suggested_output: true, the packaged default).
CONTAINER_SUGGESTED_OUTPUT = (
    "container_id=%container.id container_name=%container.name "
    "container_image_repository=%container.image.repository container_image_tag=%container.image.tag "
    "k8s_pod_name=%k8s.pod.name k8s_ns_name=%k8s.ns.name"
)

SOURCE_PLUGINS: dict[str, tuple[str, ...]] = {
    "k8s_audit": ("k8saudit", "k8saudit-aks", "k8saudit-eks", "k8saudit-gke", "k8saudit-ovh"),
    "aws_cloudtrail": ("cloudtrail",),
    "okta": ("okta",),
    "gcp_auditlog": ("gcpaudit",),
    "github": ("github",),
}
SUPPORTED_SOURCES = ("syscall", "k8s_audit")

_ATTACK_TAG = re.compile(r"^(T\d{4}(?:\.\d{3})?|TA\d{4})$")


@dataclass(frozen=True, slots=True)
class AppendOutput:
    """One ``append_output`` entry of falco.yaml: what to add to which rules' outputs."""

    extra_output: str = ""
    extra_fields: tuple[tuple[str, str | None], ...] = ()  # (name, format) or (field, None) for raw
    source: str = ""
    tags: frozenset[str] = frozenset()
    rule: str = ""

    def matches(self, rule_source: str, rule_tags: set[str] | frozenset[str], rule_name: str) -> bool:
        return (
            (not self.source or self.source == rule_source)
            and self.tags <= set(rule_tags)
            and (not self.rule or self.rule == rule_name)
        )


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How rules are loaded: the engine and plugins we emulate, and output additions."""

    engine_version: Version = ENGINE_VERSION
    plugins: tuple[tuple[str, str], ...] = tuple(DEFAULT_PLUGINS.items())
    suggested_output: bool = True
    append_output: tuple[AppendOutput, ...] = ()

    @property
    def plugin_versions(self) -> dict[str, str]:
        return dict(self.plugins)

    def known_source(self, source: str) -> bool:
        if source == "syscall":
            return True
        names = self.plugin_versions
        return any(p in names for p in SOURCE_PLUGINS.get(source, ()))

    def output_additions(self) -> tuple[AppendOutput, ...]:
        extra = self.append_output
        if self.suggested_output and "container" in self.plugin_versions:
            extra = (AppendOutput(extra_output=CONTAINER_SUGGESTED_OUTPUT, source="syscall"), *extra)
        return extra


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule, ready for an engine."""

    name: str
    description: str
    source: str
    priority: Priority
    enabled: bool
    tags: tuple[str, ...]
    condition: str  # the condition text with exceptions applied, before list substitution
    expanded: Node  # the AST with lists substituted and macros resolved
    checked: Any  # the typed AST from condition.typecheck
    output: str  # the output format with append_output additions
    extra_fields: tuple[tuple[str, str | None], ...]
    evttypes: frozenset[int] | None  # syscall event codes the rule is indexed under
    exception_fields: frozenset[str]
    capture: bool
    capture_duration: int
    span: Span
    index: int

    @property
    def attack_ids(self) -> tuple[str, ...]:
        """The ATT&CK technique and tactic ids among the tags (``T1059``, ``T1611.001``, ``TA0002``)."""
        return tuple(t for t in self.tags if _ATTACK_TAG.match(t))


@dataclass(slots=True)
class Ruleset:
    """Everything loaded: compiled rules in load order, and each file's result."""

    rules: list[Rule] = field(default_factory=list)
    results: list[FileResult] = field(default_factory=list)
    options: LoadOptions = field(default_factory=LoadOptions)
    required_engine_version: Version | None = None
    macros: dict[str, Node] = field(default_factory=dict)
    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def successful(self) -> bool:
        return all(r.successful for r in self.results)

    def rule(self, name: str) -> Rule:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(name)

    def by_source(self, source: str) -> list[Rule]:
        return [r for r in self.rules if r.source == source]
