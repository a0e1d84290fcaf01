"""The platform's intended flows come from what the components declared (their `flow_ends`
outputs), through the program's exports, into the pack config: they follow a component's port and
the stack's namespaces, match the rendered workloads, and bad ends fail with one line."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pulumi
import pytest

import components.keycloak
import components.redis_cluster
from policies.aiwfe_policies import offline
from policies.aiwfe_policies.rules.reachability import FLOWS
from stacks import flows as platform_flows
from stacks import mock_run, policy_config
from stacks.stack_file import StackConfig, load_stack_config, settings_of
from tools import render

STACKS = ("staging", "prod")
SIDECAR_METRICS = "15020"


def run(config: StackConfig) -> tuple[dict[str, Any], policy_config.PlatformFlows]:
    registrations = render.run_program(render.platform_program, config)
    return render.resources_document(config, registrations), policy_config.PlatformFlows.from_exports()


def by_name(flows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {flow["name"]: flow for flow in flows}


def pod_templates(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(namespace, app.kubernetes.io/name) -> the pod spec of each rendered workload."""
    found = {}
    for resource in document["resources"]:
        kind = resource["type"].split(":")[-1]
        if kind not in ("Deployment", "StatefulSet", "Job"):
            continue
        props = resource["props"]
        template = props["spec"]["template"]
        app = template["metadata"]["labels"]["app.kubernetes.io/name"]
        found[(props["metadata"]["namespace"], app)] = template["spec"]
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_every_flow_names_a_rendered_workload_and_a_port_it_opens(stack: str) -> None:
    document, exported = run(load_stack_config(stack))
    pods = pod_templates(document)
    assert len(exported.flows) > 20
    for flow in exported.flows:
        for end in (flow["from"], flow["to"]):
            if "workload" in end:
                assert (end["namespace"], end["workload"]) in pods, flow["name"]
        destination = flow["to"]
        if "workload" not in destination:
            continue
        containers = pods[destination["namespace"], destination["workload"]]["containers"]
        opened = {str(int(p["containerPort"])) for c in containers for p in c.get("ports", [])}
        # The sidecar's merged metrics port is the injected proxy's, not in the rendered template.
        assert set(flow["ports"]) - {SIDECAR_METRICS} <= opened, (flow["name"], flow["ports"], opened)
    stores = {(s["namespace"], s["workload"]) for s in exported.data_stores}
    settings = settings_of(load_stack_config(stack))
    expected = {(settings.redis.namespace, "redis-cluster")}
    if settings.keycloak.database.in_cluster:
        expected.add((settings.keycloak.namespace, "keycloak-postgres"))
    assert stores == expected


def test_the_flows_follow_the_namespaces_the_stack_configures() -> None:
    config = load_stack_config("staging")
    redis = json.loads(config.values["aiwfe-platform:redis"])
    moved = dataclasses.replace(config, values={**config.values,
                                                "aiwfe-platform:redis": json.dumps({**redis, "namespace": "sessions"})})
    document, exported = run(moved)
    flows = by_name(exported.flows)
    assert flows["websocket -> redis-cluster"]["to"] == {"namespace": "sessions", "workload": "redis-cluster"}
    assert {"namespace": "sessions", "workload": "redis-cluster"} in exported.data_stores
    settings = settings_of(moved)
    report = offline.evaluate_document(document, config=policy_config.pack_config(settings, exported))
    assert not [v for v in report.violations if v.policy == FLOWS]


def test_the_flows_and_the_mesh_follow_keycloaks_port(monkeypatch: pytest.MonkeyPatch) -> None:
    # One constant of the Keycloak component: its ends, Deployment, Service, NetworkPolicy and, wired
    # through its outputs, the mesh's AuthorizationPolicy all move with it.
    monkeypatch.setattr(components.keycloak, "HTTP_PORT", 8181)
    config = load_stack_config("prod")
    document, exported = run(config)
    flows = by_name(exported.flows)
    assert flows["ingress-gateway -> keycloak"]["ports"] == ["8181"]
    assert flows["keycloak-realm-reconcile -> keycloak"]["ports"] == ["8181"]
    authorization = next(r for r in document["resources"] if r["name"] == "mesh-keycloak-authorization")
    assert authorization["props"]["spec"]["rules"][0]["to"][0]["operation"]["ports"] == ["8181"]
    report = offline.evaluate_document(document, config=policy_config.pack_config(settings_of(config), exported))
    assert not [v for v in report.violations if v.policy == FLOWS], report.as_text()


def test_the_websocket_egress_follows_the_redis_clusters_port(monkeypatch: pytest.MonkeyPatch) -> None:
    # The WebSocket pods' egress and the mesh's Redis policy take the port from RedisCluster's
    # outputs (stacks/platform.py): a copy of the contract's constant would stay at 6379 here.
    monkeypatch.setattr(components.redis_cluster, "REDIS_PORT", 6390)
    config = load_stack_config("staging")
    document, exported = run(config)
    assert by_name(exported.flows)["websocket -> redis-cluster"]["ports"] == ["6390"]
    policy = next(r for r in document["resources"] if r["name"] == "websocket-network-policy")
    to_redis = [rule for rule in policy["props"]["spec"]["egress"]
                if rule["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "aiwfe-redis"]
    assert [p["port"] for rule in to_redis for p in rule["ports"]] == [6390.0]
    authorization = next(r for r in document["resources"] if r["name"] == "mesh-redis-authorization")
    assert "6390" in authorization["props"]["spec"]["rules"][0]["to"][0]["operation"]["ports"]
    report = offline.evaluate_document(document, config=policy_config.pack_config(settings_of(config), exported))
    assert not [v for v in report.violations if v.policy == FLOWS], report.as_text()


def end(app: str, namespace: str, **ports: int) -> dict[str, Any]:
    return {"namespace": namespace, "workload": app, "ports": ports, "scraped": [], "holdsData": False}


def test_a_workload_or_port_role_no_component_declared_is_one_line() -> None:
    settings = settings_of(load_stack_config("prod"))
    ends = {"websocket": end("websocket", "aiwfe", websocket=8080),
            "user-frontend": end("user-frontend", "aiwfe", http=8080),
            "admin-frontend": end("admin-frontend", "aiwfe", http=8080),
            "redis-cluster": end("redis-cluster", "aiwfe-redis", client=6379, bus=16379),
            "redis-cluster-bootstrap": end("redis-cluster-bootstrap", "aiwfe-redis"),
            "keycloak": end("keycloak", "keycloak", http=8080, jgroups=7800)}
    with pytest.raises(platform_flows.FlowEndError,
                       match="no component declared the workload 'keycloak-realm-reconcile'"):
        platform_flows.intended_flows(settings, ends)
    ends["keycloak-realm-reconcile"] = end("keycloak-realm-reconcile", "keycloak")
    with pytest.raises(platform_flows.FlowEndError,
                       match=r"workload 'keycloak' declares no port for \['jgroups-fd'\] "
                             r"\(declared: \['http', 'jgroups'\]\)"):
        platform_flows.intended_flows(settings, ends)
    ends["keycloak"]["ports"]["jgroups-fd"] = 57800
    assert len(platform_flows.intended_flows(settings, ends)) == 9 + 2 * len(ends)


def test_a_program_that_exports_no_flows_has_no_pack_config() -> None:
    with pytest.raises(policy_config.MissingFlowsError,
                       match=r"exported no intended_flows, data_stores \(it exported: nothing\)"):
        policy_config.program_flows(load_stack_config("prod"), program=lambda: None)


def test_the_program_exports_what_the_pack_config_carries() -> None:
    config = load_stack_config("staging")
    _, exported = run(config)
    written = policy_config.pack_config(settings_of(config), exported).as_json()
    assert written[FLOWS]["flows"] == exported.flows


def test_two_components_declaring_one_workload_is_an_error() -> None:
    ends = {"websocket": end("websocket", "aiwfe", websocket=8080)}
    assert platform_flows.merge_ends(ends, {"redis-cluster": end("redis-cluster", "aiwfe-redis")}).keys() == {
        "websocket", "redis-cluster"}
    with pytest.raises(platform_flows.FlowEndError,
                       match="two components declare the workload 'websocket' \\(in 'aiwfe' and 'other'\\)"):
        platform_flows.merge_ends(ends, {"websocket": end("websocket", "other", websocket=8080)})


@pytest.mark.parametrize(("value", "problem"), [
    (lambda: pulumi.Output.secret([{"name": "a -> b"}]), "is secret"),
    (lambda: pulumi.Output(set(), asyncio.sleep(0, None), asyncio.sleep(0, False)), "is not known"),
])
def test_a_secret_or_unknown_export_is_refused(value: Any, problem: str) -> None:
    def program() -> None:
        pulumi.export(platform_flows.FLOWS_OUTPUT, value())
        pulumi.export(platform_flows.DATA_STORES_OUTPUT, [])

    with pytest.raises(mock_run.ExportError, match=f"stack output intended_flows {problem}"):
        policy_config.program_flows(load_stack_config("prod"), program=program)


def test_a_component_cannot_scrape_a_port_it_does_not_declare() -> None:
    from components import podspec

    with pytest.raises(ValueError, match=r"redis-cluster: scraped port roles \['metrics'\] are not among its "
                                         r"ports \['client'\]"):
        podspec.flow_end("aiwfe-redis", "redis-cluster", {"client": 6379}, scraped=("metrics",))
    ends = {app: end(app, "aiwfe") for app in ("websocket", "user-frontend", "admin-frontend", "redis-cluster",
                                                "redis-cluster-bootstrap", "keycloak", "keycloak-realm-reconcile")}
    del ends["websocket"]["ports"]  # an end without its `ports` map
    with pytest.raises(platform_flows.FlowEndError,
                       match=r"'websocket' declares no port for \['websocket'\] \(declared: \[\]\)"):
        platform_flows.intended_flows(settings_of(load_stack_config("prod")), ends)
