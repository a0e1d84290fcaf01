"""The benchmark's machinery (not its timings): synthetic stacks, the floor, the child's report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import child
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


def test_floor_imports_exactly_the_api_groups_a_render_loads(tmp_path: Path) -> None:
    """A fresh interpreter renders prod; the Kubernetes API modules it loaded are the floor's."""
    script = (
        "import sys, json, pathlib; from tools import render; "
        f"render.render('prod', pathlib.Path({str(tmp_path)!r})); "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pulumi_kubernetes.') "
        "and m.count('.') == 2 and m.rsplit('.', 1)[1].startswith('v'))))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == sorted(child.KUBERNETES_API_MODULES)


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
