"""The policy pack against checkov, over the same rendered manifests of both stacks, in one run.

    python -m bench.policy [--rounds 5] [--build build] [--json]
    python -m bench.policy --scale [--sizes 100,700,2800]    # the pack's growth on bigger stacks

`--scale` renders prod plus N synthetic WebSocket services per size (bench/synthetic.py, each a real
WebSocketService: Deployment, Service, HPA, PDB, ServiceAccount, NetworkPolicy) and times the offline
runner's load + evaluation in this process; it exits 1 when a step's cost per resource exceeds
MAX_GROWTH times the step before it.

Both stacks are rendered first (into --build). Each round times, from a cold start as CI runs them:
the pack's offline runner over `staging` then `prod` (two processes, each reading resources.json
and the stack's pack config), and one checkov process over both stacks' `manifests/` (its fastest
form; see tools/checkov_baseline.py), alternating which goes first. The report gives each side's
median wall time and the ratio pack / checkov; it exits 1 when the pack is not the faster (ratio
>= MAX_RATIO), 2 when checkov is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from tools import checkov_baseline, render

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("staging", "prod")
# The goal (issue: "the pack should be the faster of the two").
MAX_RATIO = 1.0
# Per-resource cost may grow at most this much from one size to the next (linear, with slack).
MAX_GROWTH = 1.33
DEFAULT_SIZES = (100, 700, 2800)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def time_pack(build: Path) -> float:
    start = time.perf_counter()
    for stack in STACKS:
        done = subprocess.run([sys.executable, "-m", "policies.aiwfe_policies.offline",
                               str(build / stack / "resources.json"), "--json"],
                              cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the pack failed on {stack} (exit {done.returncode}): {done.stderr[-300:]}")
    return time.perf_counter() - start


def time_checkov(build: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(checkov_baseline.command(build), capture_output=True, text=True, check=False,
                          env={**os.environ, **checkov_baseline.OFFLINE_ENV})
    if done.returncode not in (0, 1) or not done.stdout.strip():  # 1: it found something; still a full run
        raise RuntimeError(f"checkov failed (exit {done.returncode}): {done.stderr[-300:] or done.stdout[-300:]}")
    return time.perf_counter() - start


def report(build: Path, rounds: int) -> dict[str, Any]:
    for stack in STACKS:
        render.render(stack, build / stack)
    runs: dict[str, list[float]] = {"pack": [], "checkov": []}
    for index in range(rounds):
        order = ("pack", "checkov") if index % 2 == 0 else ("checkov", "pack")
        for side in order:
            runs[side].append(time_pack(build) if side == "pack" else time_checkov(build))
    pack, checkov = median(runs["pack"]), median(runs["checkov"])
    return {"rounds": rounds, "stacks": list(STACKS), "pack_seconds": pack, "checkov_seconds": checkov,
            "ratio": pack / checkov, "max_ratio": MAX_RATIO, "met": pack / checkov < MAX_RATIO, "runs": runs}


def scale_report(sizes: tuple[int, ...]) -> dict[str, Any]:
    from bench.synthetic import synthetic_program
    from policies.aiwfe_policies.offline import collector_paused, evaluate_document
    from stacks.stack_file import load_stack_config

    config = load_stack_config("prod")
    steps = []
    for extra in sizes:
        document = render.resources_document(config, render.run_program(synthetic_program(extra), config))
        with collector_paused():  # as the offline runner judges
            start = time.perf_counter()
            verdict = evaluate_document(document)
            seconds = time.perf_counter() - start
        steps.append({"extra_services": extra, "resources": len(document["resources"]), "seconds": seconds,
                      "ms_per_resource": 1000 * seconds / len(document["resources"]),
                      "mandatory_failures": len(verdict.mandatory_failures)})
    growth = [b["ms_per_resource"] / a["ms_per_resource"] for a, b in pairwise(steps)]
    return {"steps": steps, "growth": growth, "max_growth": MAX_GROWTH, "met": all(g <= MAX_GROWTH for g in growth)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--build", type=Path, default=ROOT / "build")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--scale", action="store_true", help="the pack's growth on bigger synthetic stacks")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="extra WebSocket services per step (comma-separated)")
    args = parser.parse_args(argv)
    if args.scale:
        try:
            sizes = tuple(int(s) for s in args.sizes.split(","))
        except ValueError:
            print(f"error: --sizes {args.sizes!r}: expected whole numbers separated by commas", file=sys.stderr)
            return 2
        scaled = scale_report(sizes)
        if args.json:
            print(json.dumps(scaled, indent=2))
        else:
            for step in scaled["steps"]:
                print(f"  {step['resources']:>6} resources: {step['seconds']:6.2f} s "
                      f"({step['ms_per_resource']:.3f} ms per resource)")
            print(f"  growth per step: {', '.join(f'{g:.2f}' for g in scaled['growth'])} "
                  f"(goal <= {MAX_GROWTH}: {'met' if scaled['met'] else 'NOT MET'})")
        return 0 if scaled["met"] else 1
    try:
        checkov_baseline.checkov_binary()
    except checkov_baseline.CheckovMissingError as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    result = report(args.build, args.rounds)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"policy pack vs checkov over {', '.join(STACKS)} (median of {args.rounds} rounds, cold processes)")
        print(f"  pack (offline runner, both stacks): {result['pack_seconds']:.3f} s")
        print(f"  checkov (kubernetes, both stacks):  {result['checkov_seconds']:.3f} s")
        print(f"  ratio pack / checkov: {result['ratio']:.2f} (goal < {MAX_RATIO:.1f}: "
              f"{'met' if result['met'] else 'NOT MET'})")
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
