"""Benchmark the offline render against the floor of importing its SDKs.

    python -m bench.render [--repeats 5] [--extras 1,10,50] [--json]      (or: make bench)

Every measurement is a fresh interpreter (`python -m bench.child ...`, see bench/child.py):
- floor: import the SDK modules the program uses (pulumi, pulumi_kubernetes and the API groups
  it declares resources from, yaml, pulumi_policy), nothing else; and the same followed by
  `gc.freeze()`, the GC policy the render CLI applies after its imports (its exit then skips
  collecting the import heap, which the plain floor pays for);
- render: `tools.render.render` for each stack, in-child phase timings included;
- the same prod render through the real CLI (`python -m tools.render`), as a cross-check that the
  measuring child does not distort the figure;
- prod plus N synthetic WebSocket services (bench/synthetic.py), for the marginal cost per workload.

Runs are interleaved (round k runs every case once) so that drift in machine load spreads over all
cases; each figure is the median over the rounds. Wall time is measured here, around the child;
peak RSS is the child's own (`ru_maxrss`), cross-checked by `wait4`. This is a report: the issue's
goal (prod render <= 1.5x the floor) is printed as met or not, never asserted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STACKS = ("staging", "prod")
DEFAULT_EXTRAS = (1, 10, 50)
DEFAULT_REPEATS = 5
GOAL_RATIO = 1.5
# Per-workload cost of the last segment over that of the one before: within these bounds the
# growth is called linear (medians of a handful of runs carry a few ms of noise).
LINEAR_BAND = (0.75, 1.33)
PACKAGES = ("pulumi", "pulumi-kubernetes", "pulumi-policy", "PyYAML", "grpcio", "protobuf")
FROZEN_FLOOR_LABEL = "floor, then gc.freeze() (the CLI's GC policy after its imports)"
FLOOR_LABEL = ("floor: import pulumi, pulumi_kubernetes (+ the API groups used), pulumi_random, "
               "pulumi_gcp (+ services), yaml, pulumi_policy")


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    argv: tuple[str, ...]
    """Arguments after `python`; `{out}` is replaced by a fresh output folder."""
    stack: str | None = None
    extra: int = 0
    reports_json: bool = True
    """False for the CLI: its output is the render's own text, not a measurement."""


@dataclass
class Sample:
    wall_s: float
    rss_kb: int
    """Peak RSS: the child's own figure when it reports one, else wait4's."""
    wait4_rss_kb: int
    child: dict[str, Any] | None
    startup_s: float | None = None
    """Spawn -> the child's first measured line (interpreter, site, runpy, bench.child)."""
    shutdown_s: float | None = None
    """The child's last measured line -> reaped (atexit, module teardown, final collections)."""


@dataclass
class Summary:
    case: Case
    samples: list[Sample] = field(default_factory=list)

    @property
    def walls(self) -> list[float]:
        return [s.wall_s for s in self.samples]

    @property
    def wall_s(self) -> float:
        return statistics.median(self.walls)

    @property
    def rss_kb(self) -> float:
        return statistics.median(s.rss_kb for s in self.samples)

    def sample_median(self, name: str) -> float | None:
        values = [getattr(s, name) for s in self.samples if getattr(s, name) is not None]
        return statistics.median(values) if values else None

    def child_median(self, *path: str) -> float | None:
        values = []
        for sample in self.samples:
            value: Any = sample.child
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, (int, float)):
                values.append(value)
        return statistics.median(values) if values else None

    def child_value(self, name: str) -> Any:
        """A value every run reports identically (resource counts)."""
        return self.samples[0].child.get(name) if self.samples and self.samples[0].child else None

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.case.key,
            "label": self.case.label,
            "argv": list(self.case.argv),
            "wall_s": {"median": self.wall_s, "min": min(self.walls), "max": max(self.walls), "runs": self.walls},
            "peak_rss_kb": {"median": self.rss_kb, "runs": [s.rss_kb for s in self.samples],
                            "wait4": [s.wait4_rss_kb for s in self.samples]},
            "startup_s": [s.startup_s for s in self.samples],
            "shutdown_s": [s.shutdown_s for s in self.samples],
            "children": [s.child for s in self.samples],
        }


def build_cases(stacks: Sequence[str], extras: Sequence[int], cli: bool = True) -> list[Case]:
    child = ("-m", "bench.child")
    cases = [Case("floor", FLOOR_LABEL, (*child, "floor")),
             Case("floor-frozen", FROZEN_FLOOR_LABEL, (*child, "floor", "--freeze"))]
    for stack in stacks:
        cases.append(Case(f"render-{stack}", f"render {stack}",
                          (*child, "render", "--stack", stack, "--out", "{out}"), stack=stack))
    if cli and "prod" in stacks:
        cases.append(Case("cli-prod", "render prod via `python -m tools.render`",
                          ("-m", "tools.render", "--stack", "prod", "--out", "{out}"), stack="prod",
                          reports_json=False))
    for extra in extras:
        cases.append(Case(f"prod+{extra}", f"prod + {extra} synthetic WebSocketService",
                          (*child, "render", "--stack", "prod", "--out", "{out}", "--extra", str(extra)),
                          stack="prod", extra=extra))
    return cases


def run_case(case: Case, out: Path, python: str = sys.executable) -> Sample:
    """One fresh interpreter; wall time around it, its peak RSS from itself and from wait4."""
    argv = [python, *(str(out) if a == "{out}" else a for a in case.argv)]
    with tempfile.TemporaryFile() as stderr:
        spawned_at = time.time()
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr)
        assert process.stdout is not None
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        wall_s = time.perf_counter() - started
        reaped_at = time.time()
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stdout.close()
        if process.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}:\n{tail}")
    wait4_rss_kb = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
    child = None
    if case.reports_json:
        lines = stdout.decode().strip().splitlines()
        child = json.loads(lines[-1])
    sample = Sample(wall_s=wall_s, rss_kb=int(child["peak_rss_kb"]) if child else wait4_rss_kb,
                    wait4_rss_kb=wait4_rss_kb, child=child)
    if child:
        sample.startup_s = child["started_at"] - spawned_at
        sample.shutdown_s = reaped_at - child["finished_at"]
    return sample


def run_benchmark(cases: Sequence[Case], repeats: int, warmup: int = 1, log: Any = None) -> dict[str, Summary]:
    summaries = {case.key: Summary(case) for case in cases}
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        # Warm-up: bytecode caches and the page cache, not counted.
        for _ in range(warmup):
            for case in cases:
                run_case(case, Path(tmp) / case.key)
        for round_index in range(repeats):
            started = time.perf_counter()
            for case in cases:
                summaries[case.key].samples.append(run_case(case, Path(tmp) / case.key))
            if log:
                log(f"round {round_index + 1}/{repeats}: {time.perf_counter() - started:.1f}s")
    return summaries


# ---------------------------------------------------------------- analysis


def marginal_segments(points: Sequence[tuple[int, float]]) -> list[tuple[int, int, float]]:
    """[(extra, seconds)] sorted by extra -> [(from, to, seconds per extra workload)]."""
    ordered = sorted(points)
    return [(a, b, (tb - ta) / (b - a)) for (a, ta), (b, tb) in itertools.pairwise(ordered) if b > a]


def linearity(segments: Sequence[tuple[int, int, float]]) -> tuple[float | None, str]:
    """Compare the per-workload cost of the last segment with the one before it."""
    if len(segments) < 2:
        return None, "n/a (needs three workload counts)"
    if segments[-2][2] <= 0 or segments[-1][2] <= 0:
        return None, "n/a (a segment's cost is within noise of zero)"
    ratio = segments[-1][2] / segments[-2][2]
    low, high = LINEAR_BAND
    if ratio > high:
        verdict = "superlinear (each extra workload costs more as the stack grows)"
    elif ratio < low:
        verdict = "sublinear (fixed costs still amortising)"
    else:
        verdict = "linear"
    return ratio, verdict


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "packages": {},
    }
    for package in PACKAGES:
        try:
            info["packages"][package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info["packages"][package] = None
    try:
        import yaml

        info["libyaml"] = bool(yaml.__with_libyaml__)
    except ImportError:
        info["libyaml"] = None
    return info


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def analyse(summaries: dict[str, Summary], extras: Sequence[int], goal: float = GOAL_RATIO) -> dict[str, Any]:
    floor = summaries["floor"]
    analysis: dict[str, Any] = {"goal_ratio": goal}
    prod = summaries.get("render-prod")
    if prod:
        wall_ratio = prod.wall_s / floor.wall_s
        rss_ratio = prod.rss_kb / floor.rss_kb
        analysis["prod_vs_floor"] = {"wall_ratio": wall_ratio, "rss_ratio": rss_ratio,
                                     "wall_goal_met": wall_ratio <= goal, "rss_goal_met": rss_ratio <= goal}
        frozen = summaries.get("floor-frozen")
        if frozen:
            # The render CLI freezes its import heap, so its exit skips collecting it; the plain
            # floor pays that collection. Same GC policy on both sides:
            analysis["prod_vs_frozen_floor"] = {"wall_ratio": prod.wall_s / frozen.wall_s,
                                                "wall_goal_met": prod.wall_s / frozen.wall_s <= goal}
    if prod and extras:
        per_metric: dict[str, Any] = {}
        metrics = {
            "wall": lambda s: s.wall_s,
            "render": lambda s: s.child_median("render_s"),
            "program": lambda s: s.child_median("phases_s", "program"),
            "write": lambda s: s.child_median("phases_s", "write"),
            "policy": lambda s: s.child_median("phases_s", "policy"),
            "gc": lambda s: s.child_median("gc_s"),
        }
        for name, pick in metrics.items():
            points = [(0, pick(prod))] + [(n, pick(summaries[f"prod+{n}"])) for n in extras]
            if any(value is None for _, value in points):
                continue
            segments = marginal_segments(points)
            ratio, verdict = linearity(segments)
            per_metric[name] = {"segments": [{"from": a, "to": b, "s_per_workload": v} for a, b, v in segments],
                                "last_over_previous": ratio, "verdict": verdict}
        # What the render costs without the garbage collector, to tell GC growth from the rest.
        no_gc = [(0, _minus(prod.child_median("render_s"), prod.child_median("gc_s")))]
        for n in extras:
            synthetic = summaries[f"prod+{n}"]
            no_gc.append((n, _minus(synthetic.child_median("render_s"), synthetic.child_median("gc_s"))))
        if all(v is not None for _, v in no_gc):
            segments = marginal_segments(no_gc)  # type: ignore[arg-type]
            ratio, verdict = linearity(segments)
            per_metric["render_without_gc"] = {
                "segments": [{"from": a, "to": b, "s_per_workload": v} for a, b, v in segments],
                "last_over_previous": ratio, "verdict": verdict}
        analysis["synthetic"] = per_metric
        first = summaries[f"prod+{extras[0]}"]
        resources_per_workload = (first.child_value("resources") - prod.child_value("resources")) / extras[0]
        analysis["resources_per_workload"] = resources_per_workload
    return analysis


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


# ---------------------------------------------------------------- report


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.1f}"


def _mib(kb: float | None) -> str:
    return "–" if kb is None else f"{kb / 1024:.1f}"


def markdown_report(summaries: dict[str, Summary], analysis: dict[str, Any], info: dict[str, Any],
                    repeats: int, extras: Sequence[int], elapsed_s: float, warmup: int = 1) -> str:
    floor = summaries["floor"]
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v)
    lines = [
        "## Offline render benchmark",
        "",
        f"Machine: nproc {info['nproc']} ({info['cpu_model'] or 'unknown CPU'}), {info['platform']}, "
        f"Python {info['python']}; {packages}; libyaml {'yes' if info['libyaml'] else 'no'}.",
        f"Each row: median of {repeats} fresh interpreters (runs interleaved, {warmup} warm-up round(s)); "
        f"benchmark took {elapsed_s:.0f}s.",
        "",
        "### Fresh interpreter per run",
        "",
        "| run | resources | wall median (s) | wall min–max (s) | peak RSS (MiB) | wall ÷ floor | RSS ÷ floor |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for summary in summaries.values():
        resources = summary.child_value("resources")
        lines.append(
            f"| {summary.case.label} | {resources if resources is not None else '–'} | {_s(summary.wall_s)} | "
            f"{min(summary.walls):.3f}–{max(summary.walls):.3f} | {_mib(summary.rss_kb)} | "
            f"{summary.wall_s / floor.wall_s:.2f}× | {summary.rss_kb / floor.rss_kb:.2f}× |")
    goal = analysis.get("prod_vs_floor")
    if goal:
        lines += [
            "",
            f"**Goal (prod render ≤ {analysis['goal_ratio']}× the floor):** "
            f"wall time {goal['wall_ratio']:.2f}× → {'MET' if goal['wall_goal_met'] else 'NOT MET'}; "
            f"peak RSS {goal['rss_ratio']:.2f}× → {'MET' if goal['rss_goal_met'] else 'NOT MET'}.",
        ]
        frozen = analysis.get("prod_vs_frozen_floor")
        if frozen:
            lines.append(f"Against the floor under the CLI's GC policy (gc.freeze() after imports): wall time "
                         f"{frozen['wall_ratio']:.2f}× → {'MET' if frozen['wall_goal_met'] else 'NOT MET'}.")
    lines += _phase_table(summaries)
    if "synthetic" in analysis:
        lines += _synthetic_tables(summaries, analysis, extras)
    return "\n".join(lines) + "\n"


def _is_floor(summary: Summary) -> bool:
    return summary.case.key.startswith("floor")


def _phase_table(summaries: dict[str, Summary]) -> list[str]:
    columns = [s for s in summaries.values() if s.case.reports_json]
    if len(columns) < 2:
        return []

    def render_only(pick: Any) -> Any:
        return lambda s: None if _is_floor(s) else pick(s)

    def phase(name: str, gc: bool = False) -> Any:
        return render_only(lambda s: s.child_median("phases_gc_s" if gc else "phases_s", name))

    rows: list[tuple[str, Any]] = [
        ("start-up: interpreter, site, runpy (spawn → child's first line)", lambda s: s.sample_median("startup_s")),
        ("imports up front (floor: the SDK modules; render: tools.render + policies)",
         lambda s: s.child_median("import_s" if _is_floor(s) else "eager_import_s")),
        ("program under the mock engine (`run_program`)", phase("program")),
        ("  of which lazy module imports (k8s API groups, project code)",
         render_only(lambda s: s.child_median("lazy_import_s"))),
        ("  of which GC", phase("program", gc=True)),
        ("write resources.json + manifests (`write_outputs`)", phase("write")),
        ("policy pack (`evaluate_document`)", phase("policy")),
        ("config + document + rest of `render`", render_only(lambda s: sum(
            s.child_median("phases_s", k) or 0 for k in ("config", "document", "other")))),
        ("shutdown: module teardown, final GC (child's last line → reaped)", lambda s: s.sample_median("shutdown_s")),
        ("**wall, whole run**", lambda s: s.wall_s),
        ("GC while measured (all phases, not shutdown)", lambda s: s.child_median("gc_s")),
    ]
    lines = [
        "",
        "### Where the time goes (medians, ms)",
        "",
        "| phase | " + " | ".join({"floor": "floor", "floor-frozen": "floor + freeze"}.get(s.case.key) or
                                 s.case.label.replace(" synthetic WebSocketService", "") for s in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for label, pick in rows:
        lines.append(f"| {label} | " + " | ".join(_ms(pick(s)) for s in columns) + " |")
    prod = summaries.get("render-prod")
    if prod and prod.samples[0].child:
        top = prod.samples[0].child.get("lazy_import_top_s") or {}
        ranked = sorted(top.items(), key=lambda item: item[1], reverse=True)
        lines += ["", "Slowest lazy imports in a prod render (first run): "
                  + ", ".join(f"`{name}` {seconds * 1000:.0f} ms" for name, seconds in ranked[:5]) + "."]
        cli = summaries.get("cli-prod")
        if cli:
            cli_rss = statistics.median(s.wait4_rss_kb for s in cli.samples)
            lines.append(f"Cross-check: prod through the CLI takes {cli.wall_s:.3f}s vs {prod.wall_s:.3f}s through "
                         f"the measuring child; peak RSS (wait4) {_mib(cli_rss)} vs {_mib(prod.rss_kb)} MiB.")
    return lines


def _synthetic_tables(summaries: dict[str, Summary], analysis: dict[str, Any], extras: Sequence[int]) -> list[str]:
    prod = summaries["render-prod"]
    synthetic = analysis["synthetic"]
    lines = [
        "",
        f"### Synthetic stacks: prod + N WebSocketService ({analysis['resources_per_workload']:g} resources each)",
        "",
        "| N | resources | wall median (s) | Δ wall vs prod (s) | wall per workload (ms) | "
        "render in child (s) | render per workload (ms) | GC in child (s) | peak RSS (MiB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| 0 | {prod.child_value('resources')} | {_s(prod.wall_s)} | – | – | "
        f"{_s(prod.child_median('render_s'))} | – | {_s(prod.child_median('gc_s'))} | {_mib(prod.rss_kb)} |",
    ]
    for n in extras:
        s = summaries[f"prod+{n}"]
        render_delta = _minus(s.child_median("render_s"), prod.child_median("render_s"))
        lines.append(
            f"| {n} | {s.child_value('resources')} | {_s(s.wall_s)} | {_s(s.wall_s - prod.wall_s)} | "
            f"{_ms((s.wall_s - prod.wall_s) / n)} | {_s(s.child_median('render_s'))} | "
            f"{_ms(None if render_delta is None else render_delta / n)} | {_s(s.child_median('gc_s'))} | "
            f"{_mib(s.rss_kb)} |")
    names = [("wall", "wall"), ("render", "render (child)"), ("program", "program"), ("write", "write"),
             ("policy", "policy"), ("gc", "GC"), ("render_without_gc", "render − GC")]
    names = [(key, label) for key, label in names if key in synthetic]
    segments = [(seg["from"], seg["to"]) for seg in synthetic["wall"]["segments"]]
    lines += [
        "",
        "Marginal cost per extra workload, by segment (ms per workload):",
        "",
        "| segment | " + " | ".join(label for _, label in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for index, (a, b) in enumerate(segments):
        lines.append(f"| {a}→{b} | " + " | ".join(
            _ms(synthetic[key]["segments"][index]["s_per_workload"]) for key, _ in names) + " |")
    lines.append("| last ÷ previous | " + " | ".join(
        "–" if synthetic[key]["last_over_previous"] is None else f"{synthetic[key]['last_over_previous']:.2f}"
        for key, _ in names) + " |")
    low, high = LINEAR_BAND
    lines += [
        "",
        f"**Growth** (last segment's per-workload cost ÷ the previous one's; linear within {low}–{high}): "
        f"wall → {synthetic['wall']['verdict']}"
        + (f"; render in child → {synthetic['render']['verdict']}" if "render" in synthetic else "")
        + (f"; render without GC → {synthetic['render_without_gc']['verdict']}"
           if "render_without_gc" in synthetic else "") + ".",
    ]
    return lines


# ---------------------------------------------------------------- entry point


def _int_list(text: str) -> list[int]:
    values = sorted({int(part) for part in text.split(",") if part.strip()})
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("extras must be positive integers")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                        help=f"fresh interpreters per row, median reported (default {DEFAULT_REPEATS})")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted warm-up rounds (default 1)")
    parser.add_argument("--extras", type=_int_list, default=list(DEFAULT_EXTRAS),
                        help="synthetic workload counts added to prod (default 1,10,50)")
    parser.add_argument("--stacks", default=",".join(DEFAULT_STACKS), help="stacks to render (default staging,prod)")
    parser.add_argument("--no-cli", action="store_true", help="skip the `python -m tools.render` cross-check row")
    parser.add_argument("--goal", type=float, default=GOAL_RATIO, help="prod ÷ floor target (default 1.5)")
    parser.add_argument("--json", action="store_true", help="print every run and the analysis as JSON instead")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    stacks = [s for s in args.stacks.split(",") if s]
    extras = args.extras if "prod" in stacks else []

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    info = machine_info()
    cases = build_cases(stacks, extras, cli=not args.no_cli)
    log(f"bench: {len(cases)} cases × ({args.warmup} warm-up + {args.repeats}) fresh interpreters")
    started = time.perf_counter()
    summaries = run_benchmark(cases, args.repeats, warmup=args.warmup, log=log)
    elapsed = time.perf_counter() - started
    analysis = analyse(summaries, extras, goal=args.goal)
    if args.json:
        print(json.dumps({"machine": info, "repeats": args.repeats, "elapsed_s": elapsed, "analysis": analysis,
                          "cases": [s.as_json() for s in summaries.values()]}, indent=2))
    else:
        print(markdown_report(summaries, analysis, info, args.repeats, extras, elapsed, args.warmup), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
