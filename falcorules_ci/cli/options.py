"""Options shared by commands that load rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from falcorules_ci import DEFAULT_PLUGINS, ENGINE_VERSION, LoadOptions, Version

F = TypeVar("F", bound=Callable[..., Any])


def load_options(func: F) -> F:
    func = click.option(
        "--engine-version",
        default=str(ENGINE_VERSION),
        show_default=True,
        help="Falco engine version to emulate for required_engine_version checks.",
    )(func)
    func = click.option(
        "--plugin",
        "plugins",
        multiple=True,
        metavar="NAME=VERSION",
        help="Declare a loaded plugin (repeatable). Default: " + ", ".join(f"{k}={v}" for k, v in DEFAULT_PLUGINS.items()),
    )(func)
    return func


def build_load_options(engine_version: str, plugins: tuple[str, ...], suggested_output: bool = True) -> LoadOptions:
    version = Version.parse(engine_version)
    if version is None:
        raise click.BadParameter(f"not an x.y.z version: {engine_version}", param_hint="--engine-version")
    declared = dict(DEFAULT_PLUGINS)
    if plugins:
        declared = {}
        for item in plugins:
            name, sep, ver = item.partition("=")
            if not sep or not name or Version.parse(ver) is None:
                raise click.BadParameter(f"expected NAME=x.y.z, got {item!r}", param_hint="--plugin")
            declared[name] = ver
    return LoadOptions(engine_version=version, plugins=tuple(declared.items()), suggested_output=suggested_output)
