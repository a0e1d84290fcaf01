"""The policy pack against checkov, over the same rendered manifests of both stacks, in one run.

    python -m bench.policy [--rounds 5] [--build build] [--json]

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
from pathlib import Path
from typing import Any

from tools import checkov_baseline, render

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("staging", "prod")
# The goal (issue: "the pack should be the faster of the two").
MAX_RATIO = 1.0


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--build", type=Path, default=ROOT / "build")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
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
