"""Benchmark real `pulumi preview` of prod against the engine's floor, and its growth per workload.

    python -m bench.preview [--repeats 3] [--extras 10,50,200] [--json]      (or: make bench-preview)

Cases, each a real `pulumi preview --stack prod` with the toolchain of `make toolchain` on a file://
backend (kubernetes provider in render mode, gcp recording double):
- flat: bench/flat_program.py registering the custom resources of prod's offline render with the
  same types, names, inputs and providers (no components, no logic: the engine's own floor);
- flat+sdk: the same after importing the provider SDK modules those types live in (the floor of any
  program written with the SDKs; their lazily loaded modules cost most of the difference);
- prod: the program itself;
- prod + N: the program plus N extra WebSocket services (bench/synthetic.py), and flat + N, the
  flat program registering what prod + N renders offline (the floor at that size).
Rounds are interleaved; each figure is the median over the rounds. Wall time is measured around the
CLI; peak memory is the largest resident set among the CLI and everything it started (the
`ru_maxrss` of waited-for descendants, read in a fresh wrapper process per run). A report: the goals
(prod <= 1.3x flat; each segment's per-workload cost within 0.75-1.33x of the one before) are printed
as met or not, never asserted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.synthetic import synthetic_program
from tools import render as render_tool
from tools import toolchain as toolchain_tool

ROOT = Path(__file__).resolve().parent.parent
STACK = "prod"
GOAL_RATIO = 1.3
LINEAR_BAND = (0.75, 1.33)
DEFAULT_EXTRAS = (10, 50, 200)
OUT = ROOT / "build" / "bench" / "preview.json"  # the last report, also printed
PROGRAM_FILES = ("Pulumi.yaml", "requirements.txt", f"Pulumi.{STACK}.yaml")
PROGRAM_DIRS = ("stacks", "components", "policies", "bench", "tools")
SECRETS = ("keycloakGoogleClientSecret", "keycloakGithubClientSecret")
# Runs one command and prints its wall seconds and the peak RSS (KiB) of it and its descendants.
_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.monotonic()\n"
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)\n"
    "w = time.monotonic() - t\n"
    "if r.returncode: sys.stderr.write(r.stderr[-3000:]); sys.exit(r.returncode)\n"
    "n = sum(len(s.get('steps', [])) for s in [__import__('json').loads(r.stdout)])\n"
    "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, n)\n"
)


@dataclass(frozen=True)
class Case:
    key: str
    project: Path
    env: dict[str, str]
    extra: int = 0


def _pulumi(env: dict[str, str], cwd: Path, *args: str) -> None:
    subprocess.run(["pulumi", *args, "--non-interactive"], cwd=cwd, env=env, check=True, capture_output=True,
                   text=True)


def _project(base: Path, name: str, main: str, env: dict[str, str],
             tc: toolchain_tool.Toolchain) -> tuple[Path, dict[str, str]]:
    """A copy of the program with `main` as its entry, on a file:// backend of its own."""
    work = base / name
    work.mkdir()
    (base / f"{name}-state").mkdir()
    env = {**env, "PULUMI_BACKEND_URL": f"file://{base / f'{name}-state'}"}
    for file in PROGRAM_FILES:
        shutil.copy2(ROOT / file, work / file)
    for folder in PROGRAM_DIRS:
        shutil.copytree(ROOT / folder, work / folder, ignore=shutil.ignore_patterns("__pycache__", "venv"))
    (work / "__main__.py").write_text(main)
    (work / ".venv").symlink_to(tc.program_venv)
    _pulumi(env, work, "stack", "init", STACK)
    for key in SECRETS:
        _pulumi(env, work, "config", "set", "--secret", "--stack", STACK, key, f"bench-{key}")
    _pulumi(env, work, "config", "rm", "--stack", STACK, "kubernetes:context")
    _pulumi(env, work, "config", "set", "--stack", STACK, "kubernetes:renderYamlToDirectory",
            str(base / f"{name}-yaml"))
    return work, env


def measure(case: Case) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (KiB) and the number of resource steps the preview planned."""
    run_env = {**case.env, "AIWFE_BENCH_EXTRA": str(case.extra)}
    out = subprocess.run([sys.executable, "-c", _MEASURE, "pulumi", "preview", "--stack", STACK, "--non-interactive",
                          "--json"],
                         cwd=case.project, env=run_env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"preview of {case.key} failed: {out.stderr.strip()[-2000:]}")
    wall, rss, steps = out.stdout.split()
    return float(wall), int(rss), int(steps)


def _segments(figures: dict, base: str, extras: tuple[int, ...]) -> list[dict]:
    """Milliseconds per extra workload between successive sizes of `base` (`base`, `base+N`, ...)."""
    segments = []
    previous_n, previous_key = 0, base
    for n in extras:
        key = f"{base}+{n}"
        per = (figures[key]["wall_s"] - figures[previous_key]["wall_s"]) / (n - previous_n) * 1000
        segments.append({"from": previous_n, "to": n, "ms_per_workload": round(per, 1)})
        previous_n, previous_key = n, key
    return segments


def run(repeats: int, extras: tuple[int, ...]) -> dict:
    tc = toolchain_tool.current()
    if not tc.complete():
        raise SystemExit(f"no toolchain in {tc.home}: run `make toolchain` first")
    base = Path(tempfile.mkdtemp(prefix="bench-preview-"))
    try:
        env = toolchain_tool.toolchain_env(tc)
        offline = render_tool.render(STACK, base / "offline")
        env["AIWFE_FLAT_RESOURCES"] = str(base / "offline" / "resources.json")
        flat, flat_env = _project(base, "flat", (ROOT / "bench" / "flat_program.py").read_text(), env, tc)
        program, program_env = _project(base, "program", (
            "import os\n\nfrom bench.synthetic import synthetic_program\n\n"
            "synthetic_program(int(os.environ.get('AIWFE_BENCH_EXTRA', '0')))()\n"), env, tc)
        cases = [Case("flat", flat, flat_env), Case("flat+sdk", flat, {**flat_env, "AIWFE_FLAT_SDK_IMPORTS": "1"}),
                 Case("prod", program, program_env)]
        config = render_tool.load_stack_config(STACK)
        for n in extras:
            # The floor at this size: the same resources, rendered offline, registered flat.
            document = render_tool.resources_document(config, render_tool.run_program(synthetic_program(n), config))
            resources = base / f"resources-{n}.json"
            resources.write_text(json.dumps(document))
            cases += [Case(f"prod+{n}", program, program_env, n),
                      Case(f"flat+{n}", flat, {**flat_env, "AIWFE_FLAT_RESOURCES": str(resources)})]
        samples: dict[str, list[tuple[float, int, int]]] = {c.key: [] for c in cases}
        for _ in range(repeats):
            for case in cases:
                samples[case.key].append(measure(case))
        figures = {key: {"wall_s": round(statistics.median(w for w, _, _ in s), 2),
                         "peak_rss_mib": round(statistics.median(r for _, r, _ in s) / 1024, 1),
                         "resources": s[0][2]}
                   for key, s in samples.items()}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    ratio = figures["prod"]["wall_s"] / figures["flat"]["wall_s"]
    ratio_sdk = figures["prod"]["wall_s"] / figures["flat+sdk"]["wall_s"]
    segments = _segments(figures, "prod", extras)
    ratios = [b["ms_per_workload"] / a["ms_per_workload"] for a, b in itertools.pairwise(segments)
              if a["ms_per_workload"] > 0]
    # The floor's own growth over the same segments: the engine's share of any superlinearity.
    floor_segments = _segments(figures, "flat", extras)
    size_ratios = {f"prod+{n}": round(figures[f"prod+{n}"]["wall_s"] / figures[f"flat+{n}"]["wall_s"], 2)
                   for n in extras}
    return {
        "pulumi": json.loads(tc.manifest.read_text())["pulumi_cli"],
        "resources": len(offline.document["resources"]),
        "custom_resources": sum(1 for r in offline.document["resources"] if r["custom"]),
        "repeats": repeats,
        "figures": figures,
        "ratio_prod_to_flat": round(ratio, 2),
        "ratio_goal_met": ratio <= GOAL_RATIO,
        "ratio_prod_to_flat_sdk": round(ratio_sdk, 2),
        "segments": segments,
        "floor_segments": floor_segments,
        "ratio_to_flat_per_size": size_ratios,
        "segment_ratios": [round(r, 2) for r in ratios],
        "linear": all(LINEAR_BAND[0] <= r <= LINEAR_BAND[1] for r in ratios),
    }


def as_text(report: dict) -> str:
    lines = [f"pulumi {report['pulumi']}: real `pulumi preview --stack prod`, median of {report['repeats']} rounds",
             f"{'case':<12} {'resources':>9} {'wall s':>8} {'peak MiB':>9}"]
    for key, f in report["figures"].items():
        lines.append(f"{key:<12} {f['resources']:>9} {f['wall_s']:>8.2f} {f['peak_rss_mib']:>9.1f}")
    lines.append(f"prod / flat: {report['ratio_prod_to_flat']:.2f}x (goal <= {GOAL_RATIO}x: "
                 f"{'met' if report['ratio_goal_met'] else 'NOT met'})")
    lines.append(f"prod / flat+sdk: {report['ratio_prod_to_flat_sdk']:.2f}x")
    for s, f in zip(report["segments"], report["floor_segments"], strict=True):
        lines.append(f"workloads {s['from']}->{s['to']}: {s['ms_per_workload']:.1f} ms per workload "
                     f"(flat floor: {f['ms_per_workload']:.1f} ms)")
    for key, ratio in report["ratio_to_flat_per_size"].items():
        lines.append(f"{key} / the flat floor of the same resources: {ratio:.2f}x")
    lines.append(f"segment ratios {report['segment_ratios']} (linear within {LINEAR_BAND}: "
                 f"{'yes' if report['linear'] else 'NO'})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--extras", default=",".join(map(str, DEFAULT_EXTRAS)),
                        help="comma-separated extra WebSocket services, increasing")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        extras = tuple(int(x) for x in args.extras.split(","))
    except ValueError:
        print(f"error: --extras {args.extras!r}: must be comma-separated integers", file=sys.stderr)
        return 2
    if args.repeats < 1 or not extras or list(extras) != sorted(set(extras)) or extras[0] <= 0:
        print("error: --repeats must be >= 1 and --extras increasing positive integers", file=sys.stderr)
        return 2
    started = time.monotonic()
    report = run(args.repeats, extras)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2) if args.json else as_text(report))
    print(f"(took {time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
