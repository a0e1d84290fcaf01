"""The measuring child of the benchmark: one measurement per fresh interpreter, one JSON line out.

    python -m bench.child floor [--freeze]
    python -m bench.child render --stack STACK --out DIR [--extra N]

`floor` imports the SDKs the program uses and nothing else (with --freeze, then calls
`gc.freeze()`, the GC policy `python -m tools.render` applies after its imports). `render` calls `tools.render.render`
as the CLI does (with the synthetic program when --extra > 0) and reports where the time went:
the functions `render` calls are wrapped by name for the duration, module executions and
garbage collections are timed. Both report their own peak RSS (`getrusage(RUSAGE_SELF)`), so the
figure is this process's, not the benchmark's.

Only the standard library is imported at module level, and only what both modes need, so the
floor and the render pay the same for the child's own machinery.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

_STARTED = time.perf_counter()
_STARTED_AT = time.time()  # wall clock, shared with the parent: its spawn -> here is start-up
_MODULES_AT_START = frozenset(sys.modules)

# The SDK modules the program uses, and pulumi_policy because render evaluates the pack.
# pulumi_kubernetes loads its API groups lazily: the groups a render executes (those the components
# declare resources from) are part of the floor. The older versions named by type aliases
# (apps.v1beta1, autoscaling.v2beta2, ...) only get a lazy stub in sys.modules and never run, so
# they are not (tests/test_bench.py keeps this list equal to what a render really executes).
KUBERNETES_API_MODULES = tuple(f"pulumi_kubernetes.{module}" for module in (
    "apps.v1", "autoscaling.v2", "batch.v1", "core.v1", "meta.v1", "networking.v1", "policy.v1",
))
# The other providers' SDKs the components use, with the submodules a render executes.
PROVIDER_MODULES = ("pulumi_kubernetes.apiextensions", "pulumi_random", "pulumi_gcp", "pulumi_gcp.compute",
                    "pulumi_gcp.projects", "pulumi_gcp.serviceaccount", "pulumi_gcp.sql")
FLOOR_MODULES = ("pulumi", "pulumi_kubernetes", "yaml", "pulumi_policy", *KUBERNETES_API_MODULES, *PROVIDER_MODULES)
# Functions `tools.render.render` calls, by (module, attribute) -> phase name.
RENDER_PHASES = (
    ("tools.render", "load_stack_config", "config"),
    ("tools.render", "run_program", "program"),
    ("tools.render", "resources_document", "document"),
    ("tools.render", "write_outputs", "write"),
    ("policies.aiwfe_policies.offline", "evaluate_document", "policy"),
)
TOP_IMPORTS = 8


def peak_rss_kb() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class GcTimer:
    """Time spent in the cyclic garbage collector, via `gc.callbacks`."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started: float | None = None

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1
            self._started = None

    @contextmanager
    def installed(self) -> Iterator[GcTimer]:
        gc.callbacks.append(self)
        try:
            yield self
        finally:
            gc.callbacks.remove(self)


class ImportTimer:
    """Time spent executing Python modules, charged to the outermost one (nothing counts twice).

    pulumi_kubernetes loads its API groups lazily (importlib.util.LazyLoader): `k8s.core.v1` runs
    at first attribute access, i.e. inside the program. Every source module, lazy or not, runs
    through `_LoaderBasics.exec_module`, which is wrapped here. Extension modules and the finders'
    path scans are not counted.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.modules = 0
        self.by_module: dict[str, float] = {}
        self._depth = 0

    @contextmanager
    def installed(self) -> Iterator[ImportTimer]:
        from importlib import _bootstrap_external

        loader_class = _bootstrap_external._LoaderBasics
        original = loader_class.exec_module
        timer = self

        def exec_module(loader: Any, module: Any) -> None:
            timer._depth += 1
            started = time.perf_counter()
            try:
                original(loader, module)
            finally:
                timer._depth -= 1
                timer.modules += 1
                if timer._depth == 0:
                    spent = time.perf_counter() - started
                    timer.seconds += spent
                    timer.by_module[module.__name__] = timer.by_module.get(module.__name__, 0.0) + spent

        loader_class.exec_module = exec_module
        try:
            yield self
        finally:
            loader_class.exec_module = original

    def top(self, count: int = TOP_IMPORTS) -> dict[str, float]:
        ranked = sorted(self.by_module.items(), key=lambda item: item[1], reverse=True)
        return dict(ranked[:count])


class PhaseTimer:
    """Wraps named functions for the duration; sums the wall time and GC time spent in each."""

    def __init__(self, gc_timer: GcTimer) -> None:
        self.seconds: dict[str, float] = {}
        self.gc_seconds: dict[str, float] = {}
        self._gc = gc_timer
        self._restore: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, attribute: str, phase: str) -> None:
        original = getattr(owner, attribute)
        self.seconds.setdefault(phase, 0.0)
        self.gc_seconds.setdefault(phase, 0.0)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started, gc_started = time.perf_counter(), self._gc.seconds
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - started
                self.gc_seconds[phase] += self._gc.seconds - gc_started

        setattr(owner, attribute, timed)
        self._restore.append((owner, attribute, original))

    def restore(self) -> None:
        while self._restore:
            owner, attribute, original = self._restore.pop()
            setattr(owner, attribute, original)


def measure_imports(modules: Sequence[str] = FLOOR_MODULES, freeze: bool = False) -> dict[str, Any]:
    """Import `modules` (already imported ones cost nothing); report time and peak RSS.
    `freeze`: then move everything to the permanent generation, as the render CLI does, so the
    final collections at exit skip it."""
    import importlib

    started = time.perf_counter()
    with GcTimer().installed() as gc_timer:
        for name in modules:
            # Touch an ordinary attribute: a module the SDK registered lazily only runs at first
            # access, and pulumi's lazy modules answer introspection names (`__doc__`, `__file__`,
            # ...) without loading. A missing name runs the module, then falls back to None.
            getattr(importlib.import_module(name), "_bench_force_load", None)
    import_s = time.perf_counter() - started
    if freeze:
        gc.freeze()
    return {
        "kind": "floor",
        "freeze": freeze,
        "imported": list(modules),
        "import_s": import_s,
        "gc_s": gc_timer.seconds,
        **_process_totals(),
    }


def executed_modules(prefix: str) -> list[str]:
    """Modules under `prefix` whose code has run (not lazy stubs waiting for a first access)."""
    return sorted(name for name, module in list(sys.modules.items())
                  if name.startswith(prefix) and type(module).__name__ != "_LazyModule")


def measure_render(stack: str, out: str, extra: int = 0, freeze: bool = True) -> dict[str, Any]:
    """Render `stack` (plus `extra` synthetic WebSocket services) into `out` with
    `tools.render.render`, timing each step it takes. Restores everything it wrapped, so it can
    also run inside another process (the tests do)."""
    import importlib

    started = time.perf_counter()
    gc_timer = GcTimer()
    import_timer = ImportTimer()
    phases = PhaseTimer(gc_timer)
    with gc_timer.installed():
        # What `render` imports before running the program (it imports policies.aiwfe_policies.offline itself;
        # importing it here first, at the same cost, lets its entry point be wrapped).
        import policies.aiwfe_policies.offline  # noqa: F401 (its entry point is wrapped below)
        import tools.render as render_tool
        eager_import_s = time.perf_counter() - started
        gc_eager_import_s = gc_timer.seconds
        if freeze:
            gc.freeze()  # as `python -m tools.render` does after its imports

        from pathlib import Path  # loaded by tools.render already

        kwargs: dict[str, Any] = {}
        if extra:
            from bench.synthetic import synthetic_program

            kwargs["program"] = synthetic_program(extra)
        try:
            for module, attribute, phase in RENDER_PHASES:
                phases.wrap(importlib.import_module(module), attribute, phase)
            with import_timer.installed():
                render_started = time.perf_counter()
                result = render_tool.render(stack, Path(out), **kwargs)
                render_s = time.perf_counter() - render_started
        finally:
            phases.restore()
    if freeze:
        gc.freeze()  # as `python -m tools.render` does again before it exits
    phases_s = dict(phases.seconds)
    phases_s["other"] = max(render_s - sum(phases_s.values()), 0.0)
    return {
        "kind": "render",
        "stack": stack,
        "extra": extra,
        "resources": len(result.document["resources"]),
        "manifests": len(result.manifests),
        "mandatory_failures": len(result.report.mandatory_failures),
        "eager_import_s": eager_import_s,
        "render_s": render_s,
        "phases_s": phases_s,
        "phases_gc_s": phases.gc_seconds,
        "lazy_import_s": import_timer.seconds,
        "lazy_import_modules": import_timer.modules,
        "lazy_import_top_s": import_timer.top(),
        "gc_s": gc_timer.seconds,
        "gc_eager_import_s": gc_eager_import_s,
        "gc_collections": gc_timer.collections,
        **_process_totals(),
    }


def _process_totals() -> dict[str, Any]:
    """What every measurement reports about the whole child process so far."""
    return {
        "total_s": time.perf_counter() - _STARTED,
        "cpu_s": cpu_seconds(),
        "peak_rss_kb": peak_rss_kb(),
        "modules_loaded": len(set(sys.modules) - _MODULES_AT_START),
        **_clock(),
    }


def _clock() -> dict[str, float]:
    """Wall-clock start and end of the measured part; the parent derives start-up and shutdown."""
    return {"started_at": _STARTED_AT, "finished_at": time.time()}


def _option(argv: list[str], name: str, default: str | None = None) -> str | None:
    if name not in argv:
        return default
    index = argv.index(name)
    if index + 1 >= len(argv):
        raise SystemExit(f"{name} needs a value")
    return argv[index + 1]


def main(argv: list[str] | None = None, emit: Callable[[str], Any] = print) -> int:
    # No argparse on purpose: the floor would pay for importing it.
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("floor", "render"):
        raise SystemExit(__doc__)
    if argv[0] == "floor":
        result = measure_imports(FLOOR_MODULES, freeze="--freeze" in argv[1:])
    else:
        stack, out = _option(argv, "--stack"), _option(argv, "--out")
        if not stack or not out:
            raise SystemExit("render needs --stack and --out")
        result = measure_render(stack, out, int(_option(argv, "--extra", "0") or "0"))
    emit(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
