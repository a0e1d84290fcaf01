"""The WebSocket service: Deployment, Service, HPA, PDB, ServiceAccount and NetworkPolicy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import podspec
from components.values import ContainerResources
from policies.aiwfe_policies.contract import HEALTH_PORT, WEBSOCKET_PORT, image_tag


@dataclass(frozen=True)
class WebSocketSettings:
    """Sizing and rollout behaviour of the WebSocket service."""

    image: str
    min_replicas: int
    max_replicas: int
    cpu_target_percent: int
    """Of the app container's CPU request (the sidecar is not counted)."""
    memory_target_percent: int
    """Of the app container's memory request."""
    termination_grace_seconds: int
    drain_seconds: int
    """preStop pause so endpoints are withdrawn before the process gets SIGTERM."""
    connections_per_pod: int
    resources: ContainerResources
    scale_on_connections: bool = False
    """Scale on open connections per pod first (needs a custom metrics adapter in the cluster)."""
    connections_target_percent: int = 70
    """Of `connections_per_pod`: the average the HPA keeps each pod at when scaling on connections."""


# The service's own uid inside its image.
WEBSOCKET_UID = 10001


@dataclass(frozen=True)
class WebSocketServiceArgs:
    """What the WebSocket service needs from the stack and from the other components."""

    namespace: pulumi.Input[str]
    settings: WebSocketSettings
    config_map_name: pulumi.Input[str]
    config_keys: Sequence[str]
    """Keys of the ConfigMap exposed as environment variables (REDIS_URL among them)."""
    config_checksum: pulumi.Input[str]
    """Changes when the ConfigMap's data changes, so pods roll and pick up the new values."""
    secret_name: pulumi.Input[str]
    secret_version: pulumi.Input[str]
    """Changes when the Secret's content does (never the content, nor its unsalted hash), so a
    rotated password rolls the pods: environment variables are read only at container start."""
    redis_password_key: str
    redis_namespace: pulumi.Input[str]
    redis_port: pulumi.Input[int]
    peers: podspec.AppPeers
    connections_metric: str | None = None
    """The name the cluster's custom metrics API serves the pods' open-connection gauge under
    (the monitoring stack's adapter); None when the platform has no adapter."""
    name: str = "websocket"


class WebSocketService(pulumi.ComponentResource):
    """A horizontally scaled WebSocket service that drains connections on shutdown.

    Outputs: `service_name`, `service_host` (cluster DNS name), `websocket_port`, `health_port`, `flow_end`.
    """

    service_name: pulumi.Output[str]
    service_host: pulumi.Output[str]
    websocket_port: pulumi.Output[int]
    health_port: pulumi.Output[int]

    def __init__(self, name: str, args: WebSocketServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiwfe:platform:WebSocketService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        s = args.settings
        app = args.name
        version = image_tag(s.image)
        match = podspec.selector_labels(app)
        object_labels = podspec.labels(app, "realtime")
        pod_labels = podspec.labels(app, "realtime", version)

        account = podspec.service_account(f"{name}-service-account", app, args.namespace, object_labels, child)

        env = [
            {"name": "DEPLOYMENT_MODE", "value": "kubernetes"},
            {"name": "PORT", "value": str(WEBSOCKET_PORT)},
            {"name": "HEALTH_PORT", "value": str(HEALTH_PORT)},
            *(
                {"name": key, "valueFrom": {"configMapKeyRef": {"name": args.config_map_name, "key": key}}}
                for key in args.config_keys
            ),
            {
                "name": "REDIS_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": args.secret_name, "key": args.redis_password_key}},
            },
        ]
        container = {
            "name": app,
            "image": s.image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [
                {"name": "http-ws", "containerPort": WEBSOCKET_PORT, "protocol": "TCP"},
                {"name": "http-health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
            ],
            "env": env,
            "resources": s.resources.as_k8s(),
            # Startup may take up to 30 s (REQUIREMENTS: pod start < 30 s) before liveness applies.
            "startupProbe": podspec.http_probe("/health", "http-health", period=2, timeout=2, failures=15),
            "livenessProbe": podspec.http_probe("/health", "http-health", period=10, timeout=3, failures=3),
            "readinessProbe": podspec.http_probe("/ready", "http-health", period=5, timeout=3, failures=2),
            # Stay in the endpoints list while load balancers stop sending new upgrades; SIGTERM follows.
            "lifecycle": {"preStop": {"sleep": {"seconds": s.drain_seconds}}},
            "volumeMounts": [podspec.tmp_mount()],
        }
        pod_spec = podspec.hardened_pod_spec(
            containers=[container],
            service_account=account.metadata["name"],
            uid=WEBSOCKET_UID,
            match_labels=match,
            termination_grace_seconds=s.termination_grace_seconds,
            volumes=[podspec.tmp_volume()],
        )
        # The sidecar starts before the app and outlives its drain: with EXIT_ON_ZERO_ACTIVE_CONNECTIONS
        # the agent waits until the last connection has closed (bounded by the pod's grace period) and
        # ignores terminationDrainDuration, so none is set (it would only mislead). Its
        # DestinationRule ejects: the sidecar keeps the outlier stats the alerts read.
        proxy_config = podspec.proxy_config(outlier_stats=True,
                                            proxyMetadata={"EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true"})
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=podspec.metadata(app, args.namespace, object_labels),
            spec={
                # No `replicas`: the HPA owns the count; declaring it would reset the scale on every `pulumi up`.
                "selector": {"matchLabels": match},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
                "minReadySeconds": 5,
                "revisionHistoryLimit": 5,
                "progressDeadlineSeconds": 300,
                "template": {
                    "metadata": {
                        "labels": pod_labels,
                        "annotations": {
                            "proxy.istio.io/config": proxy_config,
                            "checksum/config": args.config_checksum,
                            "aiwfe.io/app-secrets-version": args.secret_version,
                            # The health/metrics port bypasses the sidecar, like Keycloak's 9000 and the
                            # Redis exporter's 9121: under STRICT mTLS a plaintext scrape of it would fail.
                            # Its NetworkPolicy admits only the scraper (kubelet probes are not policed).
                            "traffic.sidecar.istio.io/excludeInboundPorts": str(HEALTH_PORT),
                        },
                    },
                    "spec": pod_spec,
                },
            },
            opts=child,
        )

        service, service_host = podspec.cluster_service(
            f"{name}-service", app, args.namespace, object_labels, match,
            [podspec.http_port("http-ws", WEBSOCKET_PORT, "http-ws"),
             podspec.http_port("http-health", HEALTH_PORT, "http-health")],
            child)

        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-autoscaler",
            metadata=podspec.metadata(app, args.namespace, object_labels),
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment.metadata["name"]},
                "minReplicas": s.min_replicas,
                "maxReplicas": s.max_replicas,
                "metrics": hpa_metrics(app, s, args.connections_metric),
                "behavior": {
                    # Double (or +4 pods) every 15 s with no stabilisation: new capacity well within 60 s.
                    "scaleUp": {
                        "stabilizationWindowSeconds": 0,
                        "selectPolicy": "Max",
                        "policies": [
                            {"type": "Percent", "value": 100, "periodSeconds": 15},
                            {"type": "Pods", "value": 4, "periodSeconds": 15},
                        ],
                    },
                    # Scale down slowly: each removed pod drops its long-lived connections.
                    "scaleDown": {
                        "stabilizationWindowSeconds": 300,
                        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                    },
                },
            },
            opts=child,
        )

        podspec.disruption_budget(f"{name}-disruption-budget", app, args.namespace, object_labels, match,
                                  opts=child)
        podspec.app_network_policy(
            f"{name}-network-policy", app, args.namespace, object_labels, match, args.peers,
            app_ports=[WEBSOCKET_PORT],
            metrics_ports=[HEALTH_PORT],
            extra_egress=[{"to": [podspec.namespace_peer(args.redis_namespace)],
                           "ports": podspec.tcp_ports(args.redis_port)}],
            opts=child,
        )

        self.service_name = service.metadata["name"]
        self.service_host = service_host
        self.websocket_port = pulumi.Output.from_input(WEBSOCKET_PORT)
        self.health_port = pulumi.Output.from_input(HEALTH_PORT)
        self.flow_end = podspec.flow_end(args.namespace, app, {"websocket": WEBSOCKET_PORT, "health": HEALTH_PORT},
                                         scraped=("health",))
        self.register_outputs({
            "service_name": self.service_name,
            "service_host": self.service_host,
            "websocket_port": self.websocket_port,
            "health_port": self.health_port,
            "flow_end": self.flow_end,
        })


def hpa_metrics(container: str, s: WebSocketSettings, connections_metric: str | None) -> list[dict]:
    """What the HPA scales on: open connections per pod first when an adapter serves them, then the
    app container's own CPU and memory (`ContainerResource`: a `Resource` metric would add the
    istio-proxy's usage and requests to the pod's and scale on the sidecar's share)."""
    metrics = []
    if s.scale_on_connections and connections_metric:
        per_pod = max(1, s.connections_per_pod * s.connections_target_percent // 100)
        metrics.append({"type": "Pods", "pods": {"metric": {"name": connections_metric},
                                                 "target": {"type": "AverageValue", "averageValue": str(per_pod)}}})
    for resource, percent in (("cpu", s.cpu_target_percent), ("memory", s.memory_target_percent)):
        metrics.append({"type": "ContainerResource", "containerResource": {
            "name": resource, "container": container,
            "target": {"type": "Utilization", "averageUtilization": percent}}})
    return metrics
