"""The JSON Schemas of every user-written format, published in the package so editors can use them
(``scenario``, ``fixture``, ``audit_event_shorthand``), and their cached validators."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema


def schema_text(name: str) -> str:
    """The schema file ``<name>.schema.json`` as text."""
    return resources.files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema ``<name>.schema.json``."""
    schema: dict[str, Any] = json.loads(schema_text(name))
    return schema


@cache
def validator(name: str) -> jsonschema.protocols.Validator:
    """A validator for the schema, of the draft the schema declares (checked once)."""
    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)
