"""Known-good Kubernetes resources in the provider's wire form, for the policy rule tests.

Every builder returns fresh props (camelCase, numbers as floats, as pulumi-kubernetes sends them
to the engine), so a test can mutate one thing without touching the others. `change` applies
dotted-path edits; `to_resource` turns wire props into what a rule sees (analyzer proxies).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policies.aiwfe_policies.engine import Resource, analyzer_props
from policies.aiwfe_policies.rules.kubernetes import (
    CRON_JOB,
    DEPLOYMENT,
    HPA,
    JOB,
    NETWORK_POLICY,
    PDB,
    SERVICE,
)

PROJECT = "aiwfe-platform"
NAMESPACE = "aiwfe"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""pulumi_policy's sentinel for a string unknown at preview (pulumi_policy.proxy.UNKNOWN_STRING_VALUE)."""

DELETE = object()
"""A `change` value that removes the key."""

POD = "spec.template.spec."
CONTAINER = POD + "containers.0."


@dataclass(frozen=True)
class Wire:
    """One declared resource as the engine receives it."""

    type: str
    name: str
    props: dict[str, Any]
    protect: bool = False


def urn(resource_type: str, name: str, stack: str = "prod") -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{resource_type}::{name}"


def to_resource(wire: Wire, stack: str) -> Resource:
    return Resource(type=wire.type, name=wire.name, urn=urn(wire.type, wire.name, stack),
                    props=analyzer_props(wire.props), protect=wire.protect)


def change(props: Mapping[str, Any], edits: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of `props` with each `"a.b.0.c": value` edit applied (DELETE removes the key)."""
    result = copy.deepcopy(dict(props))
    for path, value in edits.items():
        *parents, last = path.split(".")
        node: Any = result
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            if value is DELETE:
                del node[int(last)]
            else:
                node[int(last)] = value
        elif value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return result


# ---------------------------------------------------------------- building blocks

def selector_labels(app: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "aiwfe"}


def pod_labels(app: str) -> dict[str, str]:
    return selector_labels(app) | {"app.kubernetes.io/version": "1.9.0"}


def container(name: str = "app", image: str = "ghcr.io/aiwfe/web:1.9.0") -> dict[str, Any]:
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10.0, "failureThreshold": 3.0}
    return {
        "name": name,
        "image": image,
        "ports": [{"containerPort": 8080.0, "name": "http", "protocol": "TCP"}],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "web", "key": "token"}}},
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
        "readinessProbe": copy.deepcopy(probe),
        "livenessProbe": copy.deepcopy(probe),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def pod_spec(app: str) -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10101.0,
            "runAsGroup": 10101.0,
            "fsGroup": 10101.0,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container()],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        "topologySpreadConstraints": [
            {"maxSkew": 1.0, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": selector_labels(app)}}
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ],
    }


# ---------------------------------------------------------------- known-good resources

def deployment(app: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "namespace": NAMESPACE, "labels": selector_labels(app)},
        "spec": {
            "replicas": 3.0,
            "selector": {"matchLabels": selector_labels(app)},
            "template": {"metadata": {"labels": pod_labels(app)}, "spec": pod_spec(app)},
        },
    }


def hpa(app: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": app, "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
            "minReplicas": 3.0,
            "maxReplicas": 6.0,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70.0}}}],
        },
    }


def pdb(app: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": app, "namespace": NAMESPACE},
        "spec": {"maxUnavailable": 1.0, "selector": {"matchLabels": selector_labels(app)}},
    }


def network_policy(app: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": app, "namespace": NAMESPACE},
        "spec": {
            "podSelector": {"matchLabels": selector_labels(app)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"port": 8080.0, "protocol": "TCP"}]}],
            "egress": [{"ports": [{"port": 53.0, "protocol": "UDP"}]}],
        },
    }


def service(app: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": app, "namespace": NAMESPACE},
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(app),
            "ports": [{"name": "http", "port": 80.0, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def job(app: str = "migrate", *, cron: bool = False) -> dict[str, Any]:
    """A batch workload: hardened like the Deployment, but no probes and no spread."""
    spec = change(pod_spec(app), {"restartPolicy": "Never", "topologySpreadConstraints": DELETE,
                                  "containers.0.readinessProbe": DELETE, "containers.0.livenessProbe": DELETE})
    template = {"metadata": {"labels": pod_labels(app)}, "spec": spec}
    body = {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}} if cron \
        else {"template": template}
    return {"apiVersion": "batch/v1", "kind": "CronJob" if cron else "Job",
            "metadata": {"name": app, "namespace": NAMESPACE}, "spec": body}


def web_stack(*, deployment_edits: Mapping[str, Any] | None = None, hpa_edits: Mapping[str, Any] | None = None,
              pdb_edits: Mapping[str, Any] | None = None, netpol_edits: Mapping[str, Any] | None = None,
              service_edits: Mapping[str, Any] | None = None, without: Iterable[str] = (),
              extra: Iterable[Wire] = ()) -> list[Wire]:
    """The hardened `web` app (Deployment, Service, HPA, PDB, NetworkPolicy) with edits applied;
    `without` drops resources by type."""
    parts = [
        Wire(DEPLOYMENT, "web-deployment", change(deployment(), deployment_edits or {})),
        Wire(SERVICE, "web-service", change(service(), service_edits or {})),
        Wire(HPA, "web-autoscaler", change(hpa(), hpa_edits or {})),
        Wire(PDB, "web-disruption-budget", change(pdb(), pdb_edits or {})),
        Wire(NETWORK_POLICY, "web-network-policy", change(network_policy(), netpol_edits or {})),
    ]
    dropped = set(without)
    return [w for w in parts if w.type not in dropped] + list(extra)


def batch_stack(*, cron: bool = False, edits: Mapping[str, Any] | None = None) -> list[Wire]:
    """A Job (or CronJob) with the NetworkPolicy that selects it."""
    kind = CRON_JOB if cron else JOB
    return [Wire(kind, "migrate", change(job(cron=cron), edits or {})),
            Wire(NETWORK_POLICY, "migrate-network-policy", network_policy("migrate"))]


def document(stack: str, wires: Iterable[Wire], format_version: Any = 1) -> dict[str, Any]:
    """A resources.json document, as tools.render writes it."""
    return {
        "formatVersion": format_version,
        "stack": stack,
        "project": PROJECT,
        "resources": [
            {"urn": urn(w.type, w.name, stack), "type": w.type, "name": w.name, "parent": "", "custom": True,
             "props": w.props, "dependencies": [], "protect": False, "retainOnDelete": False, "provider": ""}
            for w in wires
        ],
    }


# ---------------------------------------------------------------- GCP load balancer

GCP_BASE = "https://www.googleapis.com/compute/v1/projects/aiwfe-prod/global/"
BASE = GCP_BASE


def gcp_backend(name: str, timeout: float) -> dict[str, Any]:
    return {
        "name": name,
        "loadBalancingScheme": "EXTERNAL_MANAGED",
        "protocol": "HTTP",
        "timeoutSec": timeout,
        "connectionDrainingTimeoutSec": 60.0,
        "healthChecks": BASE + "healthChecks/aiwfe-gateway-ready",
        "securityPolicy": BASE + "securityPolicies/aiwfe-edge-policy",
        "customRequestHeaders": ["X-Client-Region:{client_region}"],
        "logConfig": {"enable": True, "sampleRate": 1.0},
        "backends": [{"group": "https://www.googleapis.com/compute/v1/projects/aiwfe-prod/zones/europe-west1-b/"
                               "networkEndpointGroups/istio-ingressgateway",
                      "balancingMode": "RATE", "maxRatePerEndpoint": 1000.0}],
    }
