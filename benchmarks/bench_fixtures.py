"""Wall time of ``pytest --falco-rules`` over 1,000 generated fixtures against the full upstream pack.

The pack is stable + incubating + sandbox (``FALCORULES_UPSTREAM``, see ``_common.py``). Fixtures
are written into a temporary project, each with an inline scenario:

- templates are the hand-written scenarios under ``tests/scenarios/`` (``*.fire.yaml`` /
  ``*.miss.yaml`` pairs for upstream rules, plus ``examples/``); each is replayed once through the
  embedded engine to record what fires (a calibration, so that the timed runs measure the passing
  path unless ``--failing`` asks for failures);
- every fixture varies its template (title, start time, host name, a random prefix of benign
  activity of its own: a process reading files in its home and changing folder) and gets
  ``fires`` with the recorded rules plus ``not_fires: any``, or for a silent input a benign
  fixture naming the template's rule in ``not_fires``; fires fixtures carry an IOA with the
  ATT&CK technique their rules share, so the ``attack_parity`` items run too;
- ``--failing N`` turns N fixtures into failing ones (a rule that does not fire is expected), so
  the cost of the failure explanations shows.

Then ``python -m pytest`` runs on the folder, serial and with ``-n 2``, each in a fresh process
(start-up, rule-pack compile, collection and replays included), and the wall times are printed.

Usage: python benchmarks/bench_fixtures.py [--fixtures N] [--seed S] [--failing N] [--keep DIR]
                                           [--only serial|parallel] [--repeat N] [--profile]
Target: under 10 s with ``-n 2`` on a 2-core machine.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from _common import INCUBATING, ROOT, SANDBOX, STABLE

from falcorules_ci import EngineOptions, Rule, Ruleset, load_ruleset, replay
from falcorules_ci.sources.scenario import load_scenario

PACK = (STABLE, INCUBATING, SANDBOX)
TEMPLATES = ROOT / "tests" / "scenarios"
TARGET_SECONDS = 10.0
# Installed pytest plugins unrelated to Falco fixtures, left out as a project without them would
# (hypothesis alone imports for ~1 s at the end of every session).
QUIET_PLUGINS = ("-p", "no:hypothesispytest", "-p", "no:benchmark")
_TECHNIQUE = re.compile(r"^T\d{4}(?:\.\d{3})?$")


@dataclass(frozen=True, slots=True)
class Template:
    """A scenario and what the calibration replay saw fire on it."""

    name: str
    data: dict[str, Any]
    fired: tuple[str, ...]  # distinct rules, in alert order
    subject: str | None  # the upstream rule the scenario was written for (from its file name)


class _TemplateLoader(yaml.SafeLoader):
    """Keeps numbers written with a leading zero (modes such as ``0755``) as text: the scenario
    reader reads them as octal, which a YAML int round trip would lose."""


def _int_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    text = str(node.value)
    if len(text) > 1 and text.startswith("0") and text.isdigit():
        return text
    return int(loader.construct_yaml_int(node))


_TemplateLoader.add_constructor("tag:yaml.org,2002:int", _int_or_text)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def load_templates(ruleset: Ruleset) -> list[Template]:
    """Every template scenario, replayed once to record the rules that fire on it."""
    by_slug = {_slug(r.name): r.name for r in ruleset.rules}
    options = EngineOptions(hostname="bench", timezone="UTC")
    out = []
    for path in sorted(TEMPLATES.glob("*/*.yaml")):
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_TemplateLoader)
        alerts = replay(ruleset, [load_scenario(path)], options)
        fired = tuple(dict.fromkeys(a.rule for a in alerts))
        out.append(Template(f"{path.parent.name}/{path.stem}", data, fired, by_slug.get(path.name.split(".")[0])))
    if not out:
        raise SystemExit(f"no template scenarios under {TEMPLATES}")
    return out


def _shared_technique(rules: list[Rule]) -> str | None:
    """A technique (at parent level) every rule is tagged with, so attack_parity passes."""
    shared: set[str] | None = None
    for rule in rules:
        parents = {t.split(".")[0] for t in rule.tags if _TECHNIQUE.match(t)}
        shared = parents if shared is None else shared & parents
    return min(shared) if shared else None


def _noise(rng: random.Random, data: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A host process of the fixture's own doing quiet things before the template's events: the
    same kind of activity on every fixture, with varied names and pids so no two are alike."""
    used = {p.get("pid") for p in data.get("processes") or () if isinstance(p, dict)}
    pid = rng.choice([p for p in range(20000, 30000) if p not in used])
    user = rng.choice(["alice", "bob", "carol", "dave"])
    file = rng.choice(["notes.txt", "report.csv", "todo.md", "data.json"])
    process = {"pid": pid, "exe": "/usr/bin/python3", "args": ["-m", "worker"], "user": 1000 + rng.randrange(50),
               "cwd": f"/home/{user}"}  # fmt: skip
    events: list[dict[str, Any]] = [{"pid": pid, "read_file": f"/home/{user}/{file}"}
                                    for _ in range(rng.randrange(1, 4))]
    events.append({"pid": pid, "chdir": f"/home/{user}/src"})
    return [process], events


def fixture_document(index: int, template: Template, rng: random.Random, ruleset: Ruleset,
                     failing: bool) -> dict[str, Any]:  # fmt: skip
    scenario = dict(template.data)
    scenario["scenario"] = f"{template.data.get('scenario', template.name)} (variant {index})"
    day = 1 + rng.randrange(28)
    scenario["time"] = {**(scenario.get("time") or {}), "start": f"2024-06-{day:02d}T{rng.randrange(24):02d}:00:00Z"}
    scenario["host"] = {**(scenario.get("host") or {}), "hostname": f"node-{rng.randrange(1000):03d}"}
    if "users" not in scenario and "processes" in scenario and rng.random() < 0.5:
        processes, events = _noise(rng, scenario)
        scenario["processes"] = [*scenario["processes"], *processes]
        scenario["events"] = [*events, *scenario["events"]]
    doc: dict[str, Any] = {"id": f"bench-{index:04d}-{_slug(template.name)}", "title": scenario["scenario"],
                           "scenario": scenario}  # fmt: skip
    fired = list(template.fired)
    if failing:
        # Expect a rule that stays silent on this input: the fixture fails and gets explained.
        silent = next(r.name for r in ruleset.rules if r.enabled and r.name not in fired and r.source == "syscall")
        fired = [template.subject if template.subject and template.subject not in fired else silent]
    if fired:
        technique = _shared_technique([r for r in ruleset.rules if r.name in fired])
        if technique:
            doc["ioa"] = {"name": f"Bench{index}", "technique": technique}
            doc["technique_policy"] = "parent"
        doc["fires"] = [{"rule": name} for name in fired]
        doc["not_fires"] = "any"
    elif template.subject:
        doc["not_fires"] = [template.subject]
    return doc


def generate(folder: Path, count: int, seed: int, failing: int, ruleset: Ruleset) -> dict[str, int]:
    """Write ``count`` fixtures into ``folder``; returns how many of each kind."""
    rng = random.Random(seed)
    templates = load_templates(ruleset)
    folder.mkdir(parents=True, exist_ok=True)
    failing_at = set(rng.sample(range(count), min(failing, count)))
    kinds = {"fires": 0, "benign": 0, "failing": 0}
    for i in range(count):
        template = templates[i % len(templates)] if i < len(templates) else rng.choice(templates)
        doc = fixture_document(i, template, rng, ruleset, i in failing_at)
        kinds["failing" if i in failing_at else "fires" if "fires" in doc else "benign"] += 1
        sub = folder / _slug(template.name.split("/")[0])
        sub.mkdir(exist_ok=True)
        text = yaml.safe_dump(doc, sort_keys=False, width=120)
        (sub / f"{doc['id']}.yaml").write_text(text, encoding="utf-8")
    return kinds


def pytest_command(project: Path, workers: int | None) -> list[str]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "falcorules_ci.pytest_plugin", "-p", "no:cacheprovider",
               "-c", str(project / "pytest.ini"), "--rootdir", str(project), *QUIET_PLUGINS]  # fmt: skip
    for path in PACK:
        command += ["--falco-rules", str(path)]
    command += ["--falco-fixtures", str(project / "fixtures"), str(project / "fixtures")]
    if workers:
        command += ["-n", str(workers)]
    return command


@dataclass(frozen=True, slots=True)
class Timing:
    wall: float
    cpu: float  # user + system seconds of pytest and its workers: what the machine's load cannot inflate
    code: int
    tail: str


def run_pytest(project: Path, workers: int | None) -> Timing:
    env = {**os.environ, "CI": "true", "PYTHONDONTWRITEBYTECODE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(pytest_command(project, workers), cwd=project, env=env, capture_output=True, text=True,
                          check=False)  # fmt: skip
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return Timing(elapsed, cpu, done.returncode, lines[-1] if lines else done.stderr.strip()[-400:])


def profile_in_process(project: Path) -> None:
    """One serial run under cProfile, in this process: where the time goes."""
    import pytest

    args = pytest_command(project, None)[3:]
    profiler = cProfile.Profile()
    profiler.enable()
    pytest.main(args)
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--failing", type=int, default=0, help="fixtures that fail on purpose (explained)")
    parser.add_argument("--keep", type=Path, default=None, help="write the project here and keep it")
    parser.add_argument("--only", choices=["serial", "parallel"], default=None)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each mode (the best -n 2 run is judged)")
    parser.add_argument("--profile", action="store_true", help="profile one serial run in-process instead")
    args = parser.parse_args()

    ruleset = load_ruleset(PACK)
    if not ruleset.successful:
        raise SystemExit("the upstream pack failed to load")
    with tempfile.TemporaryDirectory(prefix="falcorules-bench-") as scratch:
        project = (args.keep or Path(scratch)).resolve()
        project.mkdir(parents=True, exist_ok=True)
        (project / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        start = time.perf_counter()
        kinds = generate(project / "fixtures", args.fixtures, args.seed, args.failing, ruleset)
        print(f"generated {args.fixtures} fixtures in {time.perf_counter() - start:.1f} s "
              f"({kinds['fires']} firing, {kinds['benign']} benign, {kinds['failing']} failing on purpose) "
              f"under {project}")  # fmt: skip
        if args.profile:
            profile_in_process(project)
            return 0
        modes = [("serial", None), ("-n 2", 2)]
        if args.only:
            modes = [modes[0]] if args.only == "serial" else [modes[1]]
        print(f"load average before the runs: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
              f"({os.cpu_count()} CPUs; wall times need an otherwise idle machine)")  # fmt: skip
        parallel = None
        for label, workers in modes:
            for _ in range(args.repeat):
                timing = run_pytest(project, workers)
                print(f"{label:>7}: {timing.wall:6.2f} s wall, {timing.cpu:6.2f} s CPU  (exit {timing.code}: {timing.tail})")
                if workers == 2 and (parallel is None or timing.wall < parallel):
                    parallel = timing.wall
        if parallel is not None:
            verdict = "within" if parallel < TARGET_SECONDS else "OVER"
            print(f"target: -n 2 under {TARGET_SECONDS:.0f} s -> {verdict} (best {parallel:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
