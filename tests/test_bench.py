"""The benchmark's machinery (not its timings): synthetic stacks, the floor, the child's report."""

from __future__ import annotations

import gc
import json
import math
import subprocess
import sys
from importlib import _bootstrap_external, import_module
from pathlib import Path

import pytest

from bench import child
from bench import render as bench_render
from bench.synthetic import synthetic_program
from tools import render as render_tool

ROOT = Path(__file__).resolve().parent.parent


def registered(extra: int) -> list[render_tool.Registration]:
    return render_tool.run_program(synthetic_program(extra), render_tool.load_stack_config("prod"))


def test_synthetic_stacks_grow_by_whole_websocket_services() -> None:
    base = len(registered(0))
    per_workload = len(registered(1)) - base
    assert per_workload == 7, "WebSocketService: component, SA, Deployment, Service, HPA, PDB, NetworkPolicy"
    three = registered(3)
    assert len(three) == base + 3 * per_workload
    names = {r.name for r in three if r.type == "kubernetes:apps/v1:Deployment"}
    assert {"synthetic-1-deployment", "synthetic-2-deployment", "synthetic-3-deployment"} <= names


def test_synthetic_services_are_wired_like_the_real_one() -> None:
    deployments = {r.name: r.props for r in registered(1) if r.type == "kubernetes:apps/v1:Deployment"}
    real, extra = deployments["websocket-deployment"], deployments["synthetic-1-deployment"]
    real_env = real["spec"]["template"]["spec"]["containers"][0]["env"]
    extra_env = extra["spec"]["template"]["spec"]["containers"][0]["env"]
    assert real_env == extra_env


def _api_groups_executed(script: str) -> list[str]:
    """Run `script` in a fresh interpreter; the Kubernetes API group modules whose code then ran
    (pulumi_kubernetes registers lazy stubs in sys.modules that only run at first access)."""
    script += ("; from bench import child; import json; "
               "print(json.dumps([m for m in child.executed_modules('pulumi_kubernetes.') "
               "if m.count('.') == 2 and m.rsplit('.', 1)[1].startswith('v')]))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_floor_imports_exactly_the_api_groups_a_render_executes(tmp_path: Path) -> None:
    rendered = _api_groups_executed(
        f"import pathlib; from tools import render; render.render('prod', pathlib.Path({str(tmp_path)!r}))")
    assert rendered == sorted(child.KUBERNETES_API_MODULES)
    assert _api_groups_executed("from bench import child; child.measure_imports()") == rendered


def test_floor_imports_the_provider_sdk_modules_a_render_executes(tmp_path: Path) -> None:
    """pulumi_gcp's service modules (compute, sql, ...) are part of the floor when a render runs them."""
    script = (f"import pathlib; from tools import render; render.render('prod', pathlib.Path({str(tmp_path)!r}))"
              "; from bench import child; import json; "
              "print(json.dumps([m for m in child.executed_modules('pulumi_gcp.') if m.count('.') == 1]))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    executed = set(json.loads(result.stdout.strip().splitlines()[-1]))
    services = {m for m in child.PROVIDER_MODULES if m.startswith("pulumi_gcp.")}
    assert services <= executed
    # Every gcp service module a render runs is in the floor (helpers like _utilities aside).
    assert {m for m in executed if not m.split(".")[1].startswith("_") and "_" not in m.split(".")[1]
            and m != "pulumi_gcp.provider"} == services
    # And the floor runs them (not only names them: a lazy stub costs nothing until first access).
    floor = subprocess.run([sys.executable, "-c", "from bench import child; import json; child.measure_imports(); "
                            "print(json.dumps(child.executed_modules('pulumi_gcp.')))"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert floor.returncode == 0, floor.stderr
    assert services <= set(json.loads(floor.stdout.strip().splitlines()[-1]))


def test_child_reports_well_formed_measurements(tmp_path: Path) -> None:
    lines: list[str] = []
    assert child.main(["render", "--stack", "staging", "--out", str(tmp_path), "--extra", "2"], emit=lines.append) == 0
    report = json.loads(lines[-1])
    assert report["kind"] == "render" and report["extra"] == 2
    assert report["mandatory_failures"] == 0
    assert report["resources"] == len(json.loads((tmp_path / "resources.json").read_text())["resources"])
    for key in ("render_s", "eager_import_s", "gc_s", "total_s", "cpu_s"):
        assert isinstance(report[key], float) and report[key] >= 0, key
    assert report["peak_rss_kb"] > 10_000
    assert set(report["phases_s"]) >= {"program", "write", "policy"}
    assert child.main(["floor"], emit=lines.append) == 0
    floor = json.loads(lines[-1])
    assert floor["imported"] == list(child.FLOOR_MODULES)


def test_child_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        child.main(["render", "--stack", "prod"], emit=print)
    with pytest.raises(SystemExit):
        child.main(["nonsense"], emit=print)


WEBSOCKET_TYPE = "aiwfe:platform:WebSocketService"


def test_per_workload_count_is_what_prod_websocket_registers() -> None:
    plain = render_tool.run_program(render_tool.platform_program, render_tool.load_stack_config("prod"))
    per_workload = len(registered(1)) - len(plain)
    (websocket,) = [r for r in plain if r.type == WEBSOCKET_TYPE]
    assert per_workload == 1 + sum(1 for r in plain if r.parent == websocket.urn)
    three = registered(3)
    assert {r.urn for r in plain} <= {r.urn for r in three}
    assert len({r.urn for r in three}) == len(three)
    assert {r.urn for r in registered(0)} == {r.urn for r in plain}
    with pytest.raises(ValueError, match="extra"):
        synthetic_program(-1)


def _finite_non_negative(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def test_in_process_measurement_restores_what_it_wrapped(tmp_path: Path) -> None:
    originals = {(module, name): getattr(import_module(module), name) for module, name, _ in child.RENDER_PHASES}
    exec_module = _bootstrap_external._LoaderBasics.exec_module
    callbacks = list(gc.callbacks)

    report = child.measure_render("prod", str(tmp_path), extra=1, freeze=False)

    assert report["manifests"] == len(list(tmp_path.glob("*/*.yaml")))
    for key in ("lazy_import_s", "gc_eager_import_s", "started_at", "finished_at"):
        assert _finite_non_negative(report[key]), key
    assert report["finished_at"] >= report["started_at"]
    assert set(report["phases_s"]) == {"config", "program", "document", "write", "policy", "other"}
    assert all(_finite_non_negative(v) for v in [*report["phases_s"].values(), *report["phases_gc_s"].values()])
    assert len(report["gc_collections"]) == 3
    for (module, name), original in originals.items():
        assert getattr(import_module(module), name) is original
    assert _bootstrap_external._LoaderBasics.exec_module is exec_module
    assert gc.callbacks == callbacks


def test_floor_sample_from_a_fresh_interpreter(tmp_path: Path) -> None:
    (floor,) = [c for c in bench_render.build_cases(["prod"], []) if c.key == "floor"]
    sample = bench_render.run_case(floor, tmp_path / "floor")
    assert sample.child is not None and sample.child["kind"] == "floor"
    assert sample.wall_s > 0 and sample.rss_kb > 0 and sample.wait4_rss_kb > 0
    assert sample.startup_s is not None and math.isfinite(sample.startup_s)
    assert sample.shutdown_s is not None and math.isfinite(sample.shutdown_s)


def test_marginal_cost_and_linearity_verdicts() -> None:
    linear = bench_render.marginal_segments([(0, 1.0), (1, 1.02), (10, 1.2), (50, 2.0)])
    assert [(a, b) for a, b, _ in linear] == [(0, 1), (1, 10), (10, 50)]
    assert linear[-1][2] == pytest.approx(0.02)
    assert bench_render.linearity(linear)[1] == "linear"
    growing = bench_render.marginal_segments([(1, 1.0), (10, 1.09), (50, 2.0)])
    assert bench_render.linearity(growing)[1].startswith("superlinear")
    assert bench_render.linearity(growing[:1])[0] is None
    assert bench_render.linearity([(1, 10, 0.01), (10, 50, -0.001)])[0] is None


def test_cases_cover_floor_stacks_cli_and_extras() -> None:
    cases = bench_render.build_cases(["staging", "prod"], [1, 10, 50])
    assert [c.key for c in cases] == ["floor", "floor-frozen", "render-staging", "render-prod", "cli-prod",
                                      "prod+1", "prod+10", "prod+50"]
    assert all("{out}" in c.argv for c in cases if not c.key.startswith("floor"))
