"""Every rendered object of both stacks, admitted by a real kube-apiserver (1.34, the stacks' minor)
with Istio 1.30.3's CRDs and the prometheus-operator CRDs installed.

The namespaces are created for real with the program's own labels, so Pod Security Admission judges
each pod template at the levels its namespace declares (enforce=baseline, warn and audit=restricted);
everything else is a server-side apply with `dryRun=All` and strict field validation. The broken
variants show the harness can fail: a CEL rule of an Istio CRD, the namespace's enforce level, its
warn level, and an unknown field are each refused or reported.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from tests.real_validators.cluster import Answer, ApiClient
from tests.real_validators.conftest import STACKS, cluster_with_crds, create_namespaces, stack_manifests
from tools import toolchain_validators

# Pod templates allowed to draw a Pod Security warning, with the reason. Empty: every pod template
# of both stacks meets `restricted`, the level each namespace warns at.
PSA_WARNING_EXCEPTIONS: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def api(validators: toolchain_validators.Validators) -> Iterator[ApiClient]:
    with cluster_with_crds(validators) as client:
        yield client


def label(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']} {meta.get('namespace', '-')}/{meta['name']}"


def admit(client: ApiClient, obj: dict[str, Any]) -> Answer:
    return client.apply(obj)


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_is_admitted_without_warnings(api: ApiClient, stack: str) -> None:
    objects = stack_manifests(stack)
    declared = create_namespaces(api, objects)
    assert declared, "the stack declares no namespace"
    for name in declared:
        labels = api.request("GET", f"/api/v1/namespaces/{name}").body["metadata"]["labels"]
        assert labels.get("pod-security.kubernetes.io/warn") == "restricted", (name, labels)
    refused, warned, admitted = [], {}, 0
    for obj in objects:
        if obj["kind"] == "Namespace":
            continue
        answer = admit(api, obj)
        if not answer.ok:
            refused.append(f"{label(obj)}: {answer.status} {answer.message}")
            continue
        admitted += 1
        key = (obj["kind"], obj["metadata"]["name"])
        if answer.warnings and key not in PSA_WARNING_EXCEPTIONS:
            warned[label(obj)] = answer.warnings
    assert not refused, "refused by the API server:\n" + "\n".join(refused)
    assert not warned, f"warnings: {warned}"
    assert admitted > 50, admitted  # the whole stack went through, not a handful
    kinds = {o["kind"] for o in objects}
    # The set reaches every admission path: core, apps, batch, autoscaling, policy, networking,
    # the Istio CRDs (CEL rules) and the monitoring CRDs.
    assert {"Deployment", "StatefulSet", "Job", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "NetworkPolicy", "AuthorizationPolicy", "DestinationRule", "VirtualService", "Gateway",
            "Telemetry", "PodMonitor", "PrometheusRule"} <= kinds


def _find(stack: str, kind: str, name: str | None = None) -> dict[str, Any]:
    for obj in stack_manifests(stack):
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name):
            return copy.deepcopy(obj)
    raise LookupError(f"{stack} declares no {kind} {name or ''}")


def _websocket_deployment(stack: str) -> dict[str, Any]:
    for obj in stack_manifests(stack):
        if obj["kind"] == "Deployment" and "websocket" in obj["metadata"]["name"]:
            return copy.deepcopy(obj)
    raise LookupError("no WebSocket Deployment")


@pytest.mark.parametrize("stack", STACKS)
def test_broken_variants_are_refused(api: ApiClient, stack: str) -> None:
    objects = stack_manifests(stack)
    create_namespaces(api, objects)

    # A CEL rule of Istio's CRD: an AuthorizationPolicy may not have both a selector and targetRefs.
    policy = next(o for o in objects if o["kind"] == "AuthorizationPolicy" and o["spec"].get("selector"))
    policy = copy.deepcopy(policy)
    policy["spec"]["targetRefs"] = [{"kind": "Service", "group": "", "name": "websocket"}]
    answer = admit(api, policy)
    assert answer.status == 422 and "only one of targetRefs or selector can be set" in answer.message, answer

    # Another CEL rule: a DestinationRule idle timeout must be longer than 1 ms.
    rule = copy.deepcopy(next(o for o in objects if o["kind"] == "DestinationRule"))
    rule["spec"].setdefault("trafficPolicy", {}).setdefault("connectionPool", {}).setdefault("http", {})[
        "idleTimeout"] = "0.5ms"
    answer = admit(api, rule)
    assert answer.status == 422 and "must be a valid duration greater than 1ms" in answer.message, answer

    # The namespace's enforce level (baseline) refuses a privileged pod outright.
    deployment = _websocket_deployment(stack)
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "privileged", "namespace": deployment["metadata"]["namespace"]},
           "spec": copy.deepcopy(deployment["spec"]["template"]["spec"])}
    account = next(o for o in objects if o["kind"] == "ServiceAccount"
                   and o["metadata"]["name"] == pod["spec"]["serviceAccountName"])
    assert api.apply(account, dry_run=False).ok  # a Pod's account must exist (no controller makes it)
    pod["spec"]["containers"][0]["securityContext"]["privileged"] = True
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    answer = admit(api, pod)
    assert answer.status == 403 and 'violates PodSecurity "baseline' in answer.message, answer

    # The warn level (restricted) reports a pod template that may escalate privileges.
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"].pop("allowPrivilegeEscalation")
    answer = admit(api, deployment)
    assert answer.ok, answer.message
    assert any('would violate PodSecurity "restricted' in w and "allowPrivilegeEscalation" in w
               for w in answer.warnings), answer.warnings

    # Strict field validation: a misspelt field is an error, not silently dropped.
    service = _find(stack, "Service")
    service["spec"]["sessionAfinity"] = "None"
    answer = admit(api, service)
    # (server-side apply answers 500 for a field its schema lacks)
    assert not answer.ok and "sessionAfinity: field not declared in schema" in answer.message, answer
