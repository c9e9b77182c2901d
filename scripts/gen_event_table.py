"""Generate falcorules_ci/data/event_table.json from the libscap event tables in shared/reference.

Usage: python scripts/gen_event_table.py [REFERENCE_DIR] [PPM_EVENTS_PUBLIC_H]

The reference folder holds the event tables of three libs versions as JSON (codes, names,
directions, parameter lists). The optional header (libs ``driver/ppm_events_public.h``) supplies
the syscall names libsinsp accepts for ``evt.type`` on generic events; without it the names
already in the data file are kept.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "falcorules_ci" / "data" / "event_table.json"


def compact(table: dict[str, dict[str, object]]) -> dict[str, object]:
    events: dict[str, object] = {}
    for enum_name, info in table.items():
        code = int(info["code"])  # type: ignore[call-overload]
        events[str(code)] = {
            "enum": enum_name,
            "name": info["name"],
            "dir": ">" if enum_name.endswith("_E") else "<",
            "flags": [f.strip() for f in str(info["flags"]).split("|") if f.strip() and f.strip() != "EF_NONE"],
            "category": [c.strip() for c in str(info["cat"]).split("|") if c.strip()],
            "params": info["params"],
        }
    return events


def main() -> None:
    ref = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "reference" / "event-tables"
    head = json.loads((ref / "libs-48dfd53c-head.json").read_text())
    legacy = json.loads((ref / "libs-e5c53d64-sysdig-0.29.3.json").read_text())
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    syscalls: list[str] = previous.get("syscall_names", [])
    syscall_codes: dict[str, str] = previous.get("syscall_codes", {})
    if len(sys.argv) > 2:
        text = Path(sys.argv[2]).read_text()
        pairs = re.findall(r"PPM_SC_X\(([A-Z0-9_]+), (\d+)\)", text)
        syscall_codes = {code: name.lower() for name, code in pairs if name != "UNKNOWN"}
        syscalls = sorted(set(syscall_codes.values()))
    data = {
        "about": "libscap event table facts: codes, names, directions, parameters (see scripts/gen_event_table.py)",
        "head": compact(head),
        "legacy_nparams": {str(v["code"]): v["nparams"] for v in legacy.values()},
        "syscall_names": syscalls,
        "syscall_codes": syscall_codes,
    }
    OUT.write_text(json.dumps(data, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {OUT} ({len(data['head'])} events, {len(syscalls)} syscall names)")


if __name__ == "__main__":
    main()
