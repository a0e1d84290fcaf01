"""The pack-vs-checkov benchmark runs end to end (one round: its figures are not judged here, only
that both sides ran over both stacks and the verdict follows the ratio)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import policy as bench_policy
from tests.real_validators import built
from tests.test_checkov_baseline import require_checkov


def test_policy_benchmark_times_every_tool_per_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_checkov()
    built.tool(built.validators(), "kube-score")  # fails in CI, skips elsewhere, when not built
    code = bench_policy.main(["--rounds", "1", "--build", str(tmp_path), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == (0 if result["met"] else 1)
    for stack in bench_policy.STACKS:
        seconds = result["seconds"][stack]
        assert set(seconds) == {"pack", "checkov", "kube-score"} and all(v > 0 for v in seconds.values())
        assert result["ratios"][stack]["pack/checkov"] == pytest.approx(seconds["pack"] / seconds["checkov"])
        assert (tmp_path / stack / "resources.json").exists() and (tmp_path / stack / "manifests").is_dir()
    assert result["met"] == all(r["pack/checkov"] < bench_policy.MAX_RATIO for r in result["ratios"].values())
    # The findings table: every peer check that fires is listed with the rule covering it; none unlisted.
    rows = {(row["peer"], row["check"]): row for row in result["findings"]}
    assert all(row["covered_by"] != "UNLISTED" for row in rows.values()), rows
    assert rows[("kube-score", "container-image-pull-policy")]["objects"] > 0
    assert rows[("checkov", "CKV_K8S_43")]["objects"] > 0
    assert set(result["refused"]) == {"polaris", "kube-linter"}


def test_median() -> None:
    assert bench_policy.median([3.0, 1.0, 2.0]) == 2.0 and bench_policy.median([1.0, 4.0]) == 2.5


def test_scale_mode_reports_each_step(capsys: pytest.CaptureFixture[str]) -> None:
    code = bench_policy.main(["--scale", "--sizes", "1,4", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == (0 if result["met"] else 1)
    first, second = result["steps"]
    # Each synthetic service adds eleven (its component, six Kubernetes objects and four mesh objects for
    # its host); the stack still passes.
    assert second["resources"] - first["resources"] == 3 * 11
    assert first["mandatory_failures"] == second["mandatory_failures"] == 0
    assert result["growth"] == [pytest.approx(second["ms_per_resource"] / first["ms_per_resource"])]


def test_scale_mode_refuses_bad_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_policy.main(["--scale", "--sizes", "1,x"]) == 2
    assert capsys.readouterr().err.startswith("error: --sizes")


def test_the_scale_series_spreads_services_over_namespaces_with_their_baseline() -> None:
    from bench.synthetic import synthetic_namespace, synthetic_program
    from tools import render

    assert [synthetic_namespace(i, 20) for i in (1, 20, 21, 41)] == [
        "synthetic-ns-1", "synthetic-ns-1", "synthetic-ns-2", "synthetic-ns-3"]
    config = render.load_stack_config("prod")
    resources = render.resources_document(config, render.run_program(synthetic_program(41, 20), config))["resources"]
    in_namespace: dict[str, set[str]] = {}
    for r in resources:
        meta = r["props"].get("metadata") or {}
        if str(meta.get("namespace", "")).startswith("synthetic-ns-"):
            in_namespace.setdefault(meta["namespace"], set()).add(r["props"]["kind"])
    assert sorted(in_namespace) == ["synthetic-ns-1", "synthetic-ns-2", "synthetic-ns-3"]
    for kinds in in_namespace.values():
        assert {"Deployment", "Service", "NetworkPolicy", "PeerAuthentication", "AuthorizationPolicy",
                "VirtualService", "DestinationRule", "RequestAuthentication", "ConfigMap", "Secret"} <= kinds
    # One Gateway, one DENY-without-token policy and one URL map per namespace, for its hosts.
    gateways = [r for r in resources if r["props"].get("kind") == "Gateway"]
    assert len(gateways) == 1 + 3
    url_maps = [r for r in resources if r["type"] == "gcp:compute/uRLMap:URLMap"]
    assert sorted(r["props"]["name"] for r in url_maps if r["props"]["name"].startswith("synthetic")) == [
        "synthetic-ns-1-https", "synthetic-ns-2-https", "synthetic-ns-3-https"]


def test_every_synthetic_host_is_traced_to_its_own_pods() -> None:
    """The scale series is many routes and hosts, not copies: each synthetic host's WebSocket paths
    are followed by the pack from the URL map to that service's Deployment, unbroken."""
    from bench.synthetic import synthetic_host, synthetic_name, synthetic_program
    from policies.aiwfe_policies.offline import load_resources
    from policies.aiwfe_policies.rules.paths import trace_websocket_paths
    from tools import render

    config = render.load_stack_config("prod")
    document = render.resources_document(config, render.run_program(synthetic_program(25, 20), config))
    traces = trace_websocket_paths(load_resources(document))
    product = next(r["props"]["spec"]["hosts"][0] for r in document["resources"]
                   if r["name"] == "mesh-product-routes")
    for index in range(1, 26):
        name = synthetic_name(index)
        mine = [t for t in traces if t.host == synthetic_host(name, product)]
        assert len(mine) == 4, name  # /ws, /websocket and a path below each
        for trace in mine:
            assert trace.broken is None, (name, trace.broken)
            assert [d.name for d in trace.deployments] == [f"{name}-deployment"]
            assert trace.destination_rule is not None and trace.destination_rule.name == f"{name}-destinationrule"
