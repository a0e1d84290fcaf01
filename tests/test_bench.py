"""The benchmark's machinery (bench/): what the synthetic stacks declare, and that the measuring
child reports well-formed figures. Nothing here asserts on time."""

from __future__ import annotations

import gc
import json
import math
from importlib import _bootstrap_external
from pathlib import Path

import pytest

from bench import child
from bench import render as bench_render
from bench.synthetic import synthetic_name, synthetic_program
from tools import render as render_tool

WEBSOCKET_TYPE = "aiwfe:platform:WebSocketService"


@pytest.fixture(scope="module")
def prod_config() -> render_tool.StackConfig:
    return render_tool.load_stack_config("prod")


def registered(program, config) -> list[render_tool.Registration]:
    return render_tool.run_program(program, config)


def test_synthetic_program_adds_n_websocket_services(prod_config: render_tool.StackConfig) -> None:
    plain = registered(render_tool.platform_program, prod_config)
    one = registered(synthetic_program(1), prod_config)
    three = registered(synthetic_program(3), prod_config)

    per_workload = len(one) - len(plain)
    assert per_workload > 0
    assert len(three) - len(plain) == 3 * per_workload

    # The per-workload count is exactly what prod's own WebSocket service registers.
    (websocket,) = [r for r in plain if r.type == WEBSOCKET_TYPE]
    assert per_workload == 1 + sum(1 for r in plain if r.parent == websocket.urn)

    # Plain prod is untouched; the extras are distinct, named synthetic-<i>.
    plain_urns = {r.urn for r in plain}
    assert plain_urns <= {r.urn for r in three}
    names = sorted(r.name for r in three if r.type == WEBSOCKET_TYPE)
    assert names == sorted(["websocket", *(synthetic_name(i) for i in (1, 2, 3))])
    assert len({r.urn for r in three}) == len(three)


def test_synthetic_program_with_no_extra_is_plain_prod(prod_config: render_tool.StackConfig) -> None:
    plain = {r.urn for r in registered(render_tool.platform_program, prod_config)}
    assert {r.urn for r in registered(synthetic_program(0), prod_config)} == plain
    with pytest.raises(ValueError, match="extra"):
        synthetic_program(-1)


def _finite_non_negative(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def test_child_render_measurement_is_well_formed(tmp_path: Path, prod_config: render_tool.StackConfig) -> None:
    originals = {(module, name): getattr(__import__(module, fromlist=[name]), name)
                 for module, name, _ in child.RENDER_PHASES}
    exec_module = _bootstrap_external._LoaderBasics.exec_module
    callbacks = list(gc.callbacks)

    result = child.measure_render("prod", str(tmp_path / "out"), extra=2)

    expected = len(registered(synthetic_program(2), prod_config))
    assert result["kind"] == "render"
    assert (result["stack"], result["extra"]) == ("prod", 2)
    assert result["resources"] == expected
    assert result["manifests"] == len(list((tmp_path / "out" / "manifests").glob("*.yaml")))
    assert result["mandatory_failures"] == 0
    for key in ("eager_import_s", "render_s", "lazy_import_s", "gc_s", "total_s", "cpu_s",
                "started_at", "finished_at"):
        assert _finite_non_negative(result[key]), key
    assert isinstance(result["peak_rss_kb"], int) and result["peak_rss_kb"] > 0
    assert set(result["phases_s"]) == {"config", "program", "document", "write", "policy", "other"}
    assert all(_finite_non_negative(v) for v in result["phases_s"].values())
    assert all(_finite_non_negative(v) for v in result["phases_gc_s"].values())
    assert len(result["gc_collections"]) == 3
    assert result["finished_at"] >= result["started_at"]
    json.dumps(result)  # what the child prints

    # Everything wrapped for the measurement is back as it was.
    for (module, name), original in originals.items():
        assert getattr(__import__(module, fromlist=[name]), name) is original
    assert _bootstrap_external._LoaderBasics.exec_module is exec_module
    assert gc.callbacks == callbacks


def test_child_main_prints_one_json_line() -> None:
    lines: list[str] = []
    assert child.main(["floor"], emit=lines.append) == 0
    (line,) = lines
    result = json.loads(line)
    assert result["kind"] == "floor"
    assert result["imported"] == list(child.FLOOR_MODULES)
    assert _finite_non_negative(result["import_s"]) and result["peak_rss_kb"] > 0


def test_floor_in_a_fresh_interpreter(tmp_path: Path) -> None:
    (floor,) = [c for c in bench_render.build_cases(["prod"], []) if c.key == "floor"]
    sample = bench_render.run_case(floor, tmp_path / "floor")
    assert sample.child is not None and sample.child["kind"] == "floor"
    assert _finite_non_negative(sample.wall_s) and sample.wall_s > 0
    assert sample.rss_kb > 0 and sample.wait4_rss_kb > 0
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
    assert [c.key for c in cases] == ["floor", "render-staging", "render-prod", "cli-prod",
                                      "prod+1", "prod+10", "prod+50"]
    assert all("{out}" in c.argv for c in cases if c.key != "floor")
