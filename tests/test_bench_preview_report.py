"""bench/preview.py and bench/flat_program.py logic that needs no engine."""

from __future__ import annotations

from bench.flat_program import sdk_module
from bench.preview import _segments, as_text


def test_sdk_modules_of_type_tokens() -> None:
    assert sdk_module("kubernetes:apps/v1:Deployment") == "pulumi_kubernetes.apps.v1"
    assert sdk_module("kubernetes:core/v1:Service") == "pulumi_kubernetes.core.v1"
    assert sdk_module("kubernetes:networking.k8s.io/v1:NetworkPolicy") == "pulumi_kubernetes.networking.v1"
    assert sdk_module("kubernetes:networking.istio.io/v1:VirtualService") == "pulumi_kubernetes.apiextensions"
    assert sdk_module("gcp:compute/urlMap:URLMap") == "pulumi_gcp.compute"
    assert sdk_module("random:index/randomPassword:RandomPassword") == "pulumi_random"


def test_segments_are_per_workload_costs_between_sizes() -> None:
    figures = {"prod": {"wall_s": 1.0}, "prod+10": {"wall_s": 2.0}, "prod+50": {"wall_s": 10.0}}
    assert _segments(figures, "prod", (10, 50)) == [{"from": 0, "to": 10, "ms_per_workload": 100.0},
                                                    {"from": 10, "to": 50, "ms_per_workload": 200.0}]


def test_the_report_says_when_goals_are_missed() -> None:
    report = {"pulumi": "v3", "repeats": 1, "figures": {"flat": {"resources": 2, "wall_s": 1.0, "peak_rss_mib": 1.0}},
              "ratio_prod_to_flat": 2.0, "ratio_goal_met": False, "ratio_prod_to_flat_sdk": 1.5,
              "segments": [{"from": 0, "to": 10, "ms_per_workload": 5.0}],
              "floor_segments": [{"from": 0, "to": 10, "ms_per_workload": 4.0}],
              "ratio_to_flat_per_size": {"prod+10": 1.1}, "segment_ratios": [2.0], "linear": False}
    text = as_text(report)
    assert "goal <= 1.3x: NOT met" in text and "linear within (0.75, 1.33): NO" in text
    assert "(flat floor: 4.0 ms)" in text
