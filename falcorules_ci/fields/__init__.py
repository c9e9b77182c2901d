"""Field declarations for every event source Falco 0.44.1 gives the upstream rule packs.

- ``syscall``: libsinsp 0.25.x's built-in classes, then the container plugin (0.7.x);
- ``k8s_audit``: libsinsp's generic event fields, the k8saudit plugin (0.18.0) and the json
  plugin (0.7.4).

Other plugin sources (CloudTrail, Okta, GCP audit logs, GitHub) are deliberately not declared: a
rules file for them must fail to load with a message naming the plugin it needs
(:func:`plugin_for_unknown_source`).
"""

from __future__ import annotations

from functools import cache

from falcorules_ci.fields._declare import FieldClass
from falcorules_ci.fields.args import FieldError, is_event_param, match_field, rawarg_type
from falcorules_ci.fields.container import CONTAINER_CLASS, CONTAINER_PLUGIN
from falcorules_ci.fields.k8saudit import JSON_PLUGIN, K8S_AUDIT, K8S_AUDIT_CLASSES, K8SAUDIT_PLUGIN
from falcorules_ci.fields.registry import ArgKind, FieldInfo, FieldMatch, FieldRegistry, FieldType
from falcorules_ci.fields.syscall import SYSCALL, SYSCALL_CLASSES

__all__ = [
    "CONTAINER_PLUGIN",
    "JSON_PLUGIN",
    "K8SAUDIT_PLUGIN",
    "K8S_AUDIT",
    "SYSCALL",
    "ArgKind",
    "FieldClass",
    "FieldError",
    "FieldInfo",
    "FieldMatch",
    "FieldRegistry",
    "FieldType",
    "default_registry",
    "field_classes",
    "is_event_param",
    "match_field",
    "plugin_for_unknown_source",
    "rawarg_type",
]

# Event sources of the other falcosecurity plugins that ship rules, and the plugin that provides
# each. Their fields are not modelled.
_UNSUPPORTED_SOURCE_PLUGINS: dict[str, str] = {
    "aws_cloudtrail": "cloudtrail",
    "okta": "okta",
    "gcp_auditlog": "gcpaudit",
    "github": "github",
}


def field_classes() -> tuple[FieldClass, ...]:
    """Every declared field class, per source in Falco's filter-check registration order."""
    return (*SYSCALL_CLASSES, CONTAINER_CLASS, *K8S_AUDIT_CLASSES)


@cache
def default_registry() -> FieldRegistry:
    """The registry of every field of the ``syscall`` and ``k8s_audit`` sources."""
    return FieldRegistry(info for cls in field_classes() for info in cls.infos(_sysdig_known))


def plugin_for_unknown_source(source_name: str) -> str | None:
    """The plugin providing an event source this project does not model, if it is a known one.

    ``aws_cloudtrail`` → ``cloudtrail``, ``okta`` → ``okta``, ``gcp_auditlog`` → ``gcpaudit``,
    ``github`` → ``github``; None for anything else (including the sources that are modelled).
    """
    return _UNSUPPORTED_SOURCE_PLUGINS.get(source_name)


def _sysdig_known(source: str, name: str) -> bool:
    # Imported here so that scripts/gen_sysdig_fields.py can read the declarations before the
    # generated module exists.
    from falcorules_ci.fields.sysdig_fields import SYSDIG_FIELDS

    # sysdig has no plugins and cannot read any plugin source, so only syscall fields qualify.
    return source == SYSCALL and name in SYSDIG_FIELDS
