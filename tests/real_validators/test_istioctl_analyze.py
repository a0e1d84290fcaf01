"""`istioctl analyze` (Istio's own cross-object analyzers) over each stack's rendered Istio objects.

Its analyzers match selectors against Pods and Services, which istioctl reads only from a cluster
(from files it drops them), so each stack gets its own real API server (tests/real_validators/
cluster.py) holding the stack's namespaces, ServiceAccounts, Services and Istio objects, a stub Pod
per rendered Deployment and StatefulSet (its pod template, as the controller would stamp it) and the
ingress gateway as the stack config describes it: its namespace, labels and ServiceAccount
(`mesh.*`) and a Service like Istio's gateway charts make, port 80 to `loadBalancer.gatewayHttpPort`
and the status port. In JSON mode istioctl exits 0 whatever it finds, so the test reads the messages.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.real_validators.cluster import ApiClient
from tests.real_validators.conftest import STACKS, cluster_with_crds, create_namespaces, stack_manifests, tool
from tools import render, toolchain_validators

# Findings the test accepts, each for one object, with the reason (also in the README, "Real validators").
# Error and Warning findings fail the test unless listed; Info findings too, except IST0102 on the
# namespaces the program does not own (below).
SUPPRESSED: dict[tuple[str, str], str] = {
    ("IST0133", "AuthorizationPolicy {gateway_ns}/aiwfe-edge-require-jwt"):
        "the edge DENY rules use HTTP attributes only, so on a TCP port of the gateway they would deny "
        "everything. The gateway serves no TCP port for us (TLS ends at the Google load balancer; one "
        "HTTP server), and naming ports would narrow the rule: a wrong port would switch token checks off "
        "(fail open). Denying all on an unexpected TCP port is the safe side.",
    ("IST0118", "Service {gateway_ns}/{gateway_service}"):
        "the stub of the gateway Service names its status port `status-port`, as Istio's own gateway "
        "charts do; the gateway is installed outside this program.",
}
# Namespaces the program does not own: injection there is the cluster's business (the gateway chart
# injects its pods by pod label), so "not enabled for injection" (Info IST0102) is not ours to fix.
FOREIGN_NAMESPACES = ("default", "{gateway_ns}")


def gateway_stub(stack: str) -> list[dict[str, Any]]:
    """The ingress gateway the stack's config describes (installed outside the program)."""
    settings = render.settings_of(render.load_stack_config(stack))
    mesh, lb = settings.mesh, settings.load_balancer
    namespace, labels = mesh.ingress_gateway_namespace, dict(mesh.ingress_gateway_labels)
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": mesh.ingress_gateway_service_account, "namespace": namespace}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ingress-gateway-0", "namespace": namespace,
                                                         "labels": labels},
         "spec": {"serviceAccountName": mesh.ingress_gateway_service_account,
                  "containers": [{"name": "istio-proxy", "image": f"istio/proxyv2:{mesh.istio_version}",
                                  "ports": [{"containerPort": lb.gateway_http_port, "protocol": "TCP"},
                                            {"containerPort": lb.gateway_health_port, "protocol": "TCP"}]}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": lb.neg_name, "namespace": namespace},
         "spec": {"selector": labels, "ports": [
             {"name": "http2", "port": 80, "targetPort": lb.gateway_http_port, "protocol": "TCP"},
             {"name": "status-port", "port": 15021, "targetPort": lb.gateway_health_port, "protocol": "TCP"}]}},
    ]


def injected_proxy(istio_version: str) -> dict[str, Any]:
    """The sidecar Istio's injector adds on Kubernetes 1.34 (a native sidecar: an init container that
    keeps running), reduced to what the analyzers read: its name and image."""
    return {"name": "istio-proxy", "image": f"docker.io/istio/proxyv2:{istio_version}", "restartPolicy": "Always",
            "securityContext": {"runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": True,
                                "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}}


def stub_pod(workload: dict[str, Any], istio_version: str) -> dict[str, Any]:
    """The Pod a Deployment or StatefulSet controller would create, as the sidecar injector leaves it
    (claims become volumes)."""
    template = workload["spec"]["template"]
    meta = template.get("metadata", {})
    spec = copy.deepcopy(template["spec"])
    if str(meta.get("annotations", {}).get("sidecar.istio.io/inject", "true")).lower() != "false":
        spec["initContainers"] = [injected_proxy(istio_version), *spec.get("initContainers", [])]
    for claim in workload["spec"].get("volumeClaimTemplates", []):
        name = claim["metadata"]["name"]
        spec.setdefault("volumes", []).append(
            {"name": name, "persistentVolumeClaim": {"claimName": f"{name}-{workload['metadata']['name']}-0"}})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{workload['metadata']['name']}-0", "namespace": workload["metadata"]["namespace"],
                         "labels": meta.get("labels", {}), "annotations": meta.get("annotations", {})},
            "spec": spec}


def analysis_input(stack: str) -> list[dict[str, Any]]:
    """What the cluster holds for the analysis, in the order it can be created."""
    objects = stack_manifests(stack)
    order = ("Namespace", "ServiceAccount", "Service")
    kept = sorted((o for o in objects if o["kind"] in order), key=lambda o: order.index(o["kind"]))
    kept += [o for o in objects if o["apiVersion"].split("/")[0].endswith("istio.io")]
    istio_version = render.settings_of(render.load_stack_config(stack)).mesh.istio_version
    kept += [stub_pod(o, istio_version) for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    return gateway_stub(stack) + kept


@dataclass
class Cluster:
    stack: str
    client: ApiClient
    kubeconfig: Path
    objects: list[dict[str, Any]]


def create(client: ApiClient, objects: list[dict[str, Any]]) -> None:
    create_namespaces(client, objects)
    for obj in objects:
        if obj["kind"] != "Namespace":
            answer = client.apply(obj, dry_run=False)
            assert answer.ok, f"{obj['kind']} {obj['metadata']['name']}: {answer.message}"


def analyze(istioctl: Path, cluster: Cluster) -> list[dict[str, Any]]:
    result = subprocess.run([str(istioctl), "analyze", "--kubeconfig", str(cluster.kubeconfig), "--all-namespaces",
                             "--output", "json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"istioctl analyze exited {result.returncode}: {result.stderr[-2000:]}"
    return json.loads(result.stdout or "[]")


def accepted(stack: str) -> set[tuple[str, str]]:
    """(code, origin) of every finding the test accepts on the stack."""
    settings = render.settings_of(render.load_stack_config(stack))
    names = {"gateway_ns": settings.mesh.ingress_gateway_namespace,
             "gateway_service": settings.load_balancer.neg_name}
    allowed = {(code, origin.format(**names)) for code, origin in SUPPRESSED}
    return allowed | {("IST0102", f"Namespace {ns.format(**names)}") for ns in FOREIGN_NAMESPACES}


def unsuppressed(messages: list[dict[str, Any]], stack: str) -> list[str]:
    allowed = accepted(stack)
    return [f"{m['level']} {m['code']} {m['origin']}: {m['message']}" for m in messages
            if (m["code"], m["origin"]) not in allowed]


@pytest.fixture(scope="module")
def istioctl(validators: toolchain_validators.Validators) -> Path:
    return tool(validators, "istioctl")


@pytest.fixture(scope="module", params=STACKS)
def cluster(request: pytest.FixtureRequest, validators: toolchain_validators.Validators,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    stack = request.param
    with cluster_with_crds(validators) as client:
        objects = analysis_input(stack)
        create(client, objects)
        yield Cluster(stack, client, client.write_kubeconfig(tmp_path_factory.mktemp(stack) / "kubeconfig"),
                      objects)


def test_istioctl_analyze_finds_nothing_unexplained(istioctl: Path, cluster: Cluster) -> None:
    stack = cluster.stack
    assert {"Gateway", "VirtualService", "DestinationRule", "AuthorizationPolicy", "PeerAuthentication",
            "RequestAuthentication", "Telemetry", "Pod", "Service"} <= {o["kind"] for o in cluster.objects}
    messages = analyze(istioctl, cluster)
    assert unsuppressed(messages, stack) == []
    # Each accepted finding still occurs: an exception that no longer applies is removed.
    assert {(m["code"], m["origin"]) for m in messages} == accepted(stack)


def _find(cluster: Cluster, kind: str, name: str) -> dict[str, Any]:
    return copy.deepcopy(next(o for o in cluster.objects if o["kind"] == kind and o["metadata"]["name"] == name))


def test_istioctl_analyze_reports_broken_variants(istioctl: Path, cluster: Cluster) -> None:
    """Each variant is applied, analyzed and put back, so the next one starts from the stack."""
    stack = cluster.stack
    gateway_service = render.settings_of(render.load_stack_config(stack)).load_balancer.neg_name
    service = _find(cluster, "Service", gateway_service)
    service["spec"]["ports"][0].update(port=8081, targetPort=8081)  # the Gateway's port 80 is gone
    route = _find(cluster, "VirtualService", "aiwfe-product")
    route["spec"]["gateways"] = ["istio-ingress/no-such-gateway"]
    # IST0162: GatewayPortNotDefinedOnService; IST0101: ReferencedResourceNotFound.
    for code, broken in (("IST0162", service), ("IST0101", route)):
        assert cluster.client.apply(broken, dry_run=False).ok
        try:
            found = {m["code"] for m in analyze(istioctl, cluster)}
        finally:
            original = _find(cluster, broken["kind"], broken["metadata"]["name"])
            assert cluster.client.apply(original, dry_run=False).ok
        assert code in found, (code, found)
