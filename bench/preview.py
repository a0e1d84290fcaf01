"""Benchmark real `pulumi preview` of prod against the engine's floor, and its growth per workload.

    python -m bench.preview [--repeats 3] [--extras 10,50,200] [--json]      (or: make bench-preview)

Cases, each a real `pulumi preview --stack prod` with the toolchain of `make toolchain` on a file://
backend (kubernetes provider in render mode, gcp recording double):
- flat: bench/flat_program.py registering the custom resources of prod's offline render with the
  same types, names, inputs and providers (no components, no logic: the engine's own floor);
- prod: the program itself;
- prod + N: the program plus N extra WebSocket services (bench/synthetic.py).
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

from tools import render as render_tool
from tools import toolchain as toolchain_tool

ROOT = Path(__file__).resolve().parent.parent
STACK = "prod"
GOAL_RATIO = 1.3
LINEAR_BAND = (0.75, 1.33)
DEFAULT_EXTRAS = (10, 50, 200)
PROGRAM_FILES = ("Pulumi.yaml", "requirements.txt", f"Pulumi.{STACK}.yaml")
PROGRAM_DIRS = ("stacks", "components", "policies", "bench", "tools")
SECRETS = ("keycloakGoogleClientSecret", "keycloakGithubClientSecret")
# Runs one command and prints its wall seconds and the peak RSS (KiB) of it and its descendants.
_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.monotonic()\n"
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
    "w = time.monotonic() - t\n"
    "if r.returncode: sys.stderr.write(r.stderr[-3000:]); sys.exit(r.returncode)\n"
    "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


@dataclass(frozen=True)
class Case:
    key: str
    project: Path
    extra: int = 0


def _pulumi(env: dict[str, str], cwd: Path, *args: str) -> None:
    subprocess.run(["pulumi", *args, "--non-interactive"], cwd=cwd, env=env, check=True, capture_output=True,
                   text=True)


def _project(base: Path, name: str, main: str, env: dict[str, str], tc: toolchain_tool.Toolchain) -> Path:
    work = base / name
    work.mkdir()
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
    return work


def measure(case: Case, env: dict[str, str]) -> tuple[float, int]:
    run_env = {**env, "AIWFE_BENCH_EXTRA": str(case.extra)}
    out = subprocess.run([sys.executable, "-c", _MEASURE, "pulumi", "preview", "--stack", STACK, "--non-interactive"],
                         cwd=case.project, env=run_env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"preview of {case.key} failed: {out.stderr.strip()[-2000:]}")
    wall, rss = out.stdout.split()
    return float(wall), int(rss)


def run(repeats: int, extras: tuple[int, ...]) -> dict:
    tc = toolchain_tool.current()
    if not tc.complete():
        raise SystemExit(f"no toolchain in {tc.home}: run `make toolchain` first")
    base = Path(tempfile.mkdtemp(prefix="bench-preview-"))
    try:
        env = toolchain_tool.toolchain_env(tc)
        env["PULUMI_BACKEND_URL"] = f"file://{base / 'state'}"
        (base / "state").mkdir()
        offline = render_tool.render(STACK, base / "offline")
        env["AIWFE_FLAT_RESOURCES"] = str(base / "offline" / "resources.json")
        flat = _project(base, "flat", (ROOT / "bench" / "flat_program.py").read_text(), env, tc)
        program = _project(base, "program", (
            "import os\n\nfrom bench.synthetic import synthetic_program\n\n"
            "synthetic_program(int(os.environ.get('AIWFE_BENCH_EXTRA', '0')))()\n"), env, tc)
        cases = [Case("flat", flat), Case("prod", program)] + [Case(f"prod+{n}", program, n) for n in extras]
        samples: dict[str, list[tuple[float, int]]] = {c.key: [] for c in cases}
        for _ in range(repeats):
            for case in cases:
                samples[case.key].append(measure(case, env))
        figures = {key: {"wall_s": round(statistics.median(w for w, _ in s), 2),
                         "peak_rss_mib": round(statistics.median(r for _, r in s) / 1024, 1)}
                   for key, s in samples.items()}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    ratio = figures["prod"]["wall_s"] / figures["flat"]["wall_s"]
    segments = []
    previous_n, previous_key = 0, "prod"
    for n in extras:
        key = f"prod+{n}"
        per = (figures[key]["wall_s"] - figures[previous_key]["wall_s"]) / (n - previous_n) * 1000
        segments.append({"from": previous_n, "to": n, "ms_per_workload": round(per, 1)})
        previous_n, previous_key = n, key
    ratios = [b["ms_per_workload"] / a["ms_per_workload"] for a, b in itertools.pairwise(segments)
              if a["ms_per_workload"] > 0]
    return {
        "pulumi": json.loads(tc.manifest.read_text())["pulumi_cli"],
        "resources": len(offline.document["resources"]),
        "repeats": repeats,
        "figures": figures,
        "ratio_prod_to_flat": round(ratio, 2),
        "ratio_goal_met": ratio <= GOAL_RATIO,
        "segments": segments,
        "segment_ratios": [round(r, 2) for r in ratios],
        "linear": all(LINEAR_BAND[0] <= r <= LINEAR_BAND[1] for r in ratios),
    }


def as_text(report: dict) -> str:
    lines = [f"pulumi {report['pulumi']}: real `pulumi preview --stack prod`, median of {report['repeats']} rounds",
             f"{'case':<12} {'wall s':>8} {'peak MiB':>9}"]
    for key, f in report["figures"].items():
        lines.append(f"{key:<12} {f['wall_s']:>8.2f} {f['peak_rss_mib']:>9.1f}")
    lines.append(f"prod / flat: {report['ratio_prod_to_flat']:.2f}x (goal <= {GOAL_RATIO}x: "
                 f"{'met' if report['ratio_goal_met'] else 'NOT met'})")
    for s in report["segments"]:
        lines.append(f"workloads {s['from']}->{s['to']}: {s['ms_per_workload']:.1f} ms per workload")
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
    print(json.dumps(report, indent=2) if args.json else as_text(report))
    print(f"(took {time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
