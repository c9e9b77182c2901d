"""Semantic versions as libsinsp's ``sinsp_version`` compares them."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEMVER = re.compile(r"(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version | None:
        """``x.y.z`` at the start of the text (sscanf ``%u.%u.%u``), else None."""
        m = _SEMVER.match(text.strip())
        if not m:
            return None
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))

    def compatible_with(self, required: Version) -> bool:
        """Same major version and at least the required one."""
        return self.major == required.major and self >= required

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


FALCO_VERSION = "0.44.1"
ENGINE_VERSION = Version(0, 62, 0)  # Falco 0.44.1's engine, the release we emulate by default
DEFAULT_PLUGINS: dict[str, str] = {"container": "0.7.1", "k8saudit": "0.18.0", "json": "0.7.4"}
