"""Shared building blocks for Kubernetes workloads: labels, hardened pods, probes, peers.

Every component builds its pods through these helpers so that one hardening baseline applies
everywhere (and the policy pack checks the same list).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

PART_OF = "aiwfe"
MANAGED_BY = "pulumi"

# Writable scratch space for images that need it while the root filesystem stays read-only.
TMP_VOLUME = "tmp"


def selector_labels(name: str) -> dict[str, str]:
    """The immutable labels a Deployment selects on (never include versions here)."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}


def labels(name: str, component: str, version: str | None = None) -> dict[str, str]:
    """Recommended Kubernetes labels plus Istio's `app`/`version` for telemetry."""
    result = {
        **selector_labels(name),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app": name,
    }
    if version:
        result["app.kubernetes.io/version"] = version
        result["version"] = version
    return result


def metadata(name: str, namespace: Any, object_labels: Mapping[str, str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(object_labels), **extra}


def container_security_context() -> dict[str, Any]:
    """Non-root, read-only root filesystem, no privilege escalation, no capabilities."""
    return {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context(uid: int, gid: int | None = None) -> dict[str, Any]:
    """Pod-level identity: a high, non-zero uid (scanners want >= 10000) and RuntimeDefault seccomp."""
    if uid < 10000:
        raise ValueError(f"uid {uid} must be >= 10000")
    group = gid if gid is not None else uid
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": group,
        "fsGroup": group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def http_probe(path: str, port: str | int, *, period: int, timeout: int, failures: int,
               initial_delay: int = 0) -> dict[str, Any]:
    probe = {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }
    if initial_delay:
        probe["initialDelaySeconds"] = initial_delay
    return probe


def tcp_probe(port: str | int, *, period: int, timeout: int, failures: int) -> dict[str, Any]:
    """A liveness check that the process still accepts connections, apart from the readiness check
    that it can serve: a dependency's outage then makes the pod unready, never restarts it
    (kube-score's pod-probes-identical)."""
    return {"tcpSocket": {"port": port}, "periodSeconds": period, "timeoutSeconds": timeout,
            "failureThreshold": failures}


def tmp_volume(size_limit: str = "64Mi") -> dict[str, Any]:
    return {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": size_limit}}


def tmp_mount() -> dict[str, Any]:
    return {"name": TMP_VOLUME, "mountPath": "/tmp"}  # noqa: S108 (an emptyDir in the pod)


def topology_spread(match_labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """Spread over zones first, then nodes; soft on zones so a zone outage cannot block scheduling.

    Only nodes the pods tolerate count as domains (`nodeTaintsPolicy: Honor`, else tainted pools
    would leave pods Pending), and each rollout's pods are spread on their own (`matchLabelKeys`)."""
    common = {"maxSkew": 1, "labelSelector": {"matchLabels": dict(match_labels)},
              "matchLabelKeys": ["pod-template-hash"], "nodeTaintsPolicy": "Honor"}
    return [
        {**common, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"},
        {**common, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"},
    ]


def hardened_pod_spec(
    *,
    containers: Sequence[dict[str, Any]],
    service_account: Any,
    uid: int,
    match_labels: Mapping[str, str],
    termination_grace_seconds: int = 30,
    volumes: Sequence[dict[str, Any]] = (),
    gid: int | None = None,
) -> dict[str, Any]:
    """A pod spec with the hardening baseline applied to the pod and to every container."""
    hardened = [{**c, "securityContext": container_security_context()} for c in containers]
    return {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "securityContext": pod_security_context(uid, gid),
        "terminationGracePeriodSeconds": termination_grace_seconds,
        "topologySpreadConstraints": topology_spread(match_labels),
        "containers": hardened,
        "volumes": list(volumes),
    }


def namespace_peer(namespace: Any, pod_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A NetworkPolicy peer: pods (optionally by label) in the namespace of that name."""
    peer: dict[str, Any] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
    }
    if pod_labels:
        peer["podSelector"] = {"matchLabels": dict(pod_labels)}
    return peer


def tcp_ports(*ports: int | str) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


# GKE answers DNS on link-local addresses when NodeLocal DNSCache (always on in Autopilot) or
# Cloud DNS is enabled, instead of through the kube-dns pods.
NODE_LOCAL_DNS = "169.254.20.10/32"
CLOUD_DNS = "169.254.169.254/32"


# The cluster's DNS pods and istiod, as every pod's NetworkPolicy (and the intended flows) name them.
KUBE_DNS_NAMESPACE = "kube-system"
KUBE_DNS_LABELS: Mapping[str, str] = MappingProxyType({"k8s-app": "kube-dns"})
DNS_PORT = 53
ISTIOD_LABELS: Mapping[str, str] = MappingProxyType({"app": "istiod"})
ISTIOD_XDS_PORT = 15012


def dns_egress() -> dict[str, Any]:
    """Egress to the cluster DNS on UDP and TCP 53: kube-dns pods, NodeLocal DNSCache, Cloud DNS."""
    return {
        "to": [namespace_peer(KUBE_DNS_NAMESPACE, dict(KUBE_DNS_LABELS)),
               {"ipBlock": {"cidr": NODE_LOCAL_DNS}}, {"ipBlock": {"cidr": CLOUD_DNS}}],
        "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}],
    }


def istiod_egress(istiod_namespace: str) -> dict[str, Any]:
    """Sidecars fetch config and certificates from istiod (xDS/CA on 15012)."""
    return {"to": [namespace_peer(istiod_namespace, dict(ISTIOD_LABELS))], "ports": tcp_ports(ISTIOD_XDS_PORT)}


@dataclass(frozen=True)
class AppPeers:
    """Who an application pod talks to, for its NetworkPolicy: the mesh's ingress gateway (the only
    way in), the metrics scraper, and istiod (sidecars need it)."""

    ingress_gateway_namespace: str
    ingress_gateway_labels: Mapping[str, str]
    monitoring_namespace: str
    istiod_namespace: str
    scraper_labels: Mapping[str, str] | None = None
    """The scraper's pod labels; None admits any pod of the monitoring namespace."""


# The Istio sidecar's merged Prometheus endpoint.
SIDECAR_METRICS_PORT = 15020


def flow_end(namespace: Any, app: str, ports: Mapping[str, Any] | None = None, *,
             scraped: Sequence[str] | None = None, holds_data: bool = False) -> pulumi.Output[dict[str, Any]]:
    """A workload as the platform's flows name it (`stacks/flows.py`): its namespace and
    `app.kubernetes.io/name`, its ports by role, the roles the scraper reads (`scraped`, to which the
    sidecar's merged metrics port is added; None: not scraped) and whether it holds data. A component
    output, so the flows follow what the component actually declared."""
    named = dict(ports or {})
    if unknown := [role for role in scraped or () if role not in named]:
        raise ValueError(f"{app}: scraped port roles {unknown} are not among its ports {sorted(named)}")
    if scraped is not None:
        named["sidecar-metrics"] = SIDECAR_METRICS_PORT
    scraped_roles = [*scraped, "sidecar-metrics"] if scraped is not None else []
    return pulumi.Output.all(namespace, named).apply(lambda values: {
        "namespace": values[0], "workload": app, "ports": {k: int(v) for k, v in values[1].items()},
        "scraped": scraped_roles, "holdsData": holds_data})


def default_deny(resource_name: str, namespace: Any, object_labels: Mapping[str, str],
                 opts: pulumi.ResourceOptions | None = None) -> k8s.networking.v1.NetworkPolicy:
    """Every pod of the namespace starts closed both ways; each workload opens what it needs."""
    return k8s.networking.v1.NetworkPolicy(
        resource_name,
        metadata=metadata("default-deny", namespace, object_labels),
        spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        opts=opts,
    )


def workload_network_policy(resource_name: str, app: str, namespace: Any, object_labels: Mapping[str, str],
                            match: Mapping[str, str], *, istiod_namespace: Any,
                            ingress: Sequence[dict[str, Any]] = (), egress: Sequence[dict[str, Any]] = (),
                            opts: pulumi.ResourceOptions | None = None) -> k8s.networking.v1.NetworkPolicy:
    """The pods `match` selects admit only `ingress` and reach only DNS, istiod and `egress`
    (the namespace's default-deny closes everything else)."""
    return k8s.networking.v1.NetworkPolicy(
        resource_name,
        metadata=metadata(app, namespace, object_labels),
        spec={
            "podSelector": {"matchLabels": dict(match)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": list(ingress),
            "egress": [dns_egress(), istiod_egress(istiod_namespace), *egress],
        },
        opts=opts,
    )


def app_network_policy(resource_name: str, app: str, namespace: Any, object_labels: Mapping[str, str],
                       match: Mapping[str, str], peers: AppPeers, *, app_ports: Sequence[int],
                       metrics_ports: Sequence[int] = (), extra_egress: Sequence[dict[str, Any]] = (),
                       opts: pulumi.ResourceOptions | None = None) -> k8s.networking.v1.NetworkPolicy:
    """Ingress from the gateway to `app_ports` and from the scraper to the metrics ports; egress to
    DNS, istiod and `extra_egress` only. Everything else stays denied."""
    return workload_network_policy(
        resource_name, app, namespace, object_labels, match, istiod_namespace=peers.istiod_namespace,
        ingress=[
            {"from": [namespace_peer(peers.ingress_gateway_namespace, peers.ingress_gateway_labels)],
             "ports": tcp_ports(*app_ports)},
            {"from": [namespace_peer(peers.monitoring_namespace, peers.scraper_labels)],
             "ports": tcp_ports(*metrics_ports, SIDECAR_METRICS_PORT)},
        ],
        egress=extra_egress, opts=opts)


def disruption_budget(resource_name: str, app: str, namespace: Any, object_labels: Mapping[str, str],
                      match: Mapping[str, str],
                      opts: pulumi.ResourceOptions | None = None) -> k8s.policy.v1.PodDisruptionBudget:
    """One pod at a time may be evicted: drains proceed, and never take every replica."""
    return k8s.policy.v1.PodDisruptionBudget(
        resource_name,
        metadata=metadata(app, namespace, object_labels),
        spec={"maxUnavailable": 1, "selector": {"matchLabels": dict(match)}},
        opts=opts,
    )


def service_account(resource_name: str, app: str, namespace: Any, object_labels: Mapping[str, str],
                    opts: pulumi.ResourceOptions | None = None) -> k8s.core.v1.ServiceAccount:
    """One identity per workload, with no API token mounted (the apps never call the API)."""
    return k8s.core.v1.ServiceAccount(
        resource_name,
        metadata=metadata(app, namespace, object_labels),
        automount_service_account_token=False,
        opts=opts,
    )


def http_port(name: str, port: int, target: str) -> dict[str, Any]:
    """A Service port Istio treats as HTTP (so routes, retries and JWT rules apply)."""
    return {"name": name, "port": port, "targetPort": target, "protocol": "TCP", "appProtocol": "http"}


def cluster_service(resource_name: str, app: str, namespace: Any, object_labels: Mapping[str, str],
                    match: Mapping[str, str], ports: Sequence[dict[str, Any]],
                    opts: pulumi.ResourceOptions | None = None) -> tuple[k8s.core.v1.Service, pulumi.Output[str]]:
    """A ClusterIP Service (never exposed outside the cluster) and its cluster DNS name."""
    service = k8s.core.v1.Service(
        resource_name,
        metadata=metadata(app, namespace, object_labels),
        spec={"type": "ClusterIP", "selector": dict(match), "ports": list(ports)},
        opts=opts,
    )
    host = pulumi.Output.concat(service.metadata["name"], ".", service.metadata["namespace"], ".svc.cluster.local")
    return service, host


# Envoy drops these stats unless asked (Istio's default stats): the circuit-breaker alert, its
# `absent()` twin and the mesh dashboard read them.
OUTLIER_STATS = (".*outlier_detection.*", ".*upstream_rq_pending_overflow.*")


def proxy_config(*, outlier_stats: bool, **settings: Any) -> str:
    """The `proxy.istio.io/config` annotation: the sidecar is up before the app starts; with
    `outlier_stats`, it keeps the outlier-detection and overflow stats (for the workloads whose
    DestinationRules eject); plus any other ProxyConfig fields."""
    config: dict[str, Any] = {"holdApplicationUntilProxyStarts": True, **settings}
    if outlier_stats:
        config["proxyStatsMatcher"] = {"inclusionRegexps": list(OUTLIER_STATS)}
    return json.dumps(config, sort_keys=True)

