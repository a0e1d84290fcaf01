"""Observability: scrape configuration, alert rules and Grafana dashboards for the platform.

`monitoring.provider` picks the API the stack's Prometheus reads:
- `prometheus-operator`: `PodMonitor`s and one `PrometheusRule` in the monitoring namespace
  (`monitoring.coreos.com/v1`), labelled with `monitoring.resourceLabels` for the operator's selectors;
- `managed-prometheus` (Google Managed Prometheus): a `PodMonitoring` in each scraped namespace and
  one cluster-wide `ClusterRules` (`monitoring.googleapis.com/v1`).
Dashboards are ConfigMaps labelled for the Grafana sidecar (`monitoring.dashboardLabels`).
kube-state-metrics (pod readiness, HPA replicas) is expected from the monitoring stack itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import pulumi
import pulumi_kubernetes as k8s

from components import podspec
from components.alert_rules import AlertScope, RedisLayoutCounts, alerts
from components.dashboards import DashboardScope, all_dashboards

# The Grafana chart's dashboard sidecar loads ConfigMaps with this label by default.
DASHBOARD_LABELS = {"grafana_dashboard": "1"}


@dataclass(frozen=True)
class MonitoringSettings:
    """Where the metrics scraper runs (the only peer allowed to reach metrics ports), which scrape
    and rule API it reads, and where dashboards go."""

    namespace: str
    scraper_labels: Mapping[str, str] | None
    """Labels of the scraper's pods; None admits any pod of the monitoring namespace."""
    provider: str = "prometheus-operator"
    """`prometheus-operator` (PodMonitor + PrometheusRule) or `managed-prometheus` (GMP PodMonitoring +
    ClusterRules)."""
    resource_labels: Mapping[str, str] | None = None
    """Extra labels on PodMonitors/PrometheusRules so the operator's Prometheus selects them."""
    dashboard_namespace: str = ""
    """Where the Grafana dashboard ConfigMaps go (default: `namespace`)."""
    dashboard_labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType(dict(DASHBOARD_LABELS)))
    """The label the Grafana sidecar watches for."""
    runbook_base_url: str | None = None
    """Prefix of alert runbook links (e.g. the repository's web URL + `/blob/main/`); None keeps repo paths."""
    scrape_interval_seconds: int = 30


OPERATOR_API = "monitoring.coreos.com/v1"
GMP_API = "monitoring.googleapis.com/v1"
ISTIO_PROXY_CONTAINER = "istio-proxy"
# Label Istio's injector puts on every pod with a sidecar.
SIDECAR_LABEL = "security.istio.io/tlsMode"


@dataclass(frozen=True)
class ScrapeTarget:
    """Pods to scrape: their namespace and labels, the container port (name or number) and path."""

    name: str
    namespace: pulumi.Input[str]
    pod_labels: Mapping[str, str]
    port: str | int
    path: str = "/metrics"


@dataclass(frozen=True)
class ObservabilityArgs:
    """What to scrape and alert on. Namespaces used inside PromQL are plain strings."""

    monitoring: MonitoringSettings
    targets: Sequence[ScrapeTarget]
    """Keycloak (management port), the Redis exporter, the WebSocket service's health port."""
    meshed_namespaces: Sequence[pulumi.Input[str]]
    """Namespaces whose Istio sidecars are scraped on the merged-metrics port."""
    sidecar_metrics_port: int
    app_namespace: str
    keycloak_namespace: str
    redis_namespace: str
    redis_health_timeout_seconds: int
    redis_layout: RedisLayoutCounts
    """The Redis cluster's planned nodes and shards (its component's outputs)."""
    keycloak_realm: str | None = None
    gateway_namespace: str | None = None
    """The ingress gateway's namespace: its proxy is scraped like a sidecar (outlier ejections of
    the apps it routes to are counted there; its installation must include those stats)."""


def custom_metric_name(provider: str, metric: str) -> str:
    """The name an HPA asks the custom metrics API for, to get a Prometheus gauge per pod.

    prometheus-adapter's default rules keep the series name; Google's custom-metrics adapter serves
    Managed Prometheus series as `prometheus.googleapis.com|<name>|<kind>`."""
    if provider == "managed-prometheus":
        return f"prometheus.googleapis.com|{metric}|gauge"
    return metric


class Observability(pulumi.ComponentResource):
    """Scrape config, alert rules and dashboards, for the provider the stack's settings choose.

    Outputs: `provider`, `dashboards` (ConfigMap names), `alerts` (alert names), `rule_name`.
    """

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiwfe:platform:Observability", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        mon = args.monitoring
        interval = f"{mon.scrape_interval_seconds}s"
        object_labels = {**podspec.labels("aiwfe-observability", "observability"), **(mon.resource_labels or {})}
        managed = mon.provider == "managed-prometheus"

        for target in args.targets:
            endpoint = {"port": target.port, "path": target.path, "interval": interval}
            if managed:
                self._pod_monitoring(f"{name}-{target.name}", f"aiwfe-{target.name}", target.namespace,
                                     {"matchLabels": dict(target.pod_labels)}, [endpoint], object_labels, child)
            else:
                self._pod_monitor(f"{name}-{target.name}", f"aiwfe-{target.name}", mon.namespace, [target.namespace],
                                  {"matchLabels": dict(target.pod_labels)}, [{**endpoint, "scheme": "http"}],
                                  object_labels, child)

        # Istio sidecars: the merged endpoint on 15020 (the NetworkPolicies admit the scraper there).
        sidecars = {"matchExpressions": [{"key": SIDECAR_LABEL, "operator": "Exists"}]}
        sidecar_path = "/stats/prometheus"
        if managed:
            for index, namespace in enumerate(args.meshed_namespaces):
                self._pod_monitoring(f"{name}-istio-sidecars-{index}", "aiwfe-istio-sidecars", namespace, sidecars,
                                     [{"port": args.sidecar_metrics_port, "path": sidecar_path, "interval": interval}],
                                     object_labels, child)
        else:
            # 15020 is not a named container port: keep the istio-proxy container's targets and point
            # them at the pod IP on the merged-metrics port.
            relabel = [
                {"sourceLabels": ["__meta_kubernetes_pod_container_name"], "regex": ISTIO_PROXY_CONTAINER,
                 "action": "keep"},
                {"sourceLabels": ["__meta_kubernetes_pod_ip"], "regex": "(.+)", "action": "replace",
                 "targetLabel": "__address__", "replacement": f"$1:{args.sidecar_metrics_port}"},
            ]
            self._pod_monitor(f"{name}-istio-sidecars", "aiwfe-istio-sidecars", mon.namespace,
                              list(args.meshed_namespaces), sidecars,
                              [{"path": sidecar_path, "interval": interval, "scheme": "http", "relabelings": relabel}],
                              object_labels, child)

        alert_list = alerts(AlertScope(args.app_namespace, args.keycloak_namespace, args.redis_namespace,
                                       args.redis_health_timeout_seconds, args.redis_layout, args.gateway_namespace))
        groups = [{"name": "aiwfe-platform", "interval": "60s",
                   "rules": [a.rule(mon.runbook_base_url) for a in alert_list]}]
        rule_name = "aiwfe-platform-alerts"
        if managed:
            # ClusterRules: cluster-scoped, so rules see series of every namespace (Keycloak, Redis, app,
            # kube-state-metrics); namespaced GMP Rules would only see their own namespace.
            k8s.apiextensions.CustomResource(
                f"{name}-alerts", api_version=GMP_API, kind="ClusterRules",
                metadata={"name": rule_name, "labels": object_labels},
                spec={"groups": groups}, opts=child)
        else:
            k8s.apiextensions.CustomResource(
                f"{name}-alerts", api_version=OPERATOR_API, kind="PrometheusRule",
                metadata=podspec.metadata(rule_name, mon.namespace, object_labels),
                spec={"groups": groups}, opts=child)

        dashboard_labels = {**podspec.labels("aiwfe-dashboards", "observability"), **dict(mon.dashboard_labels)}
        scope = DashboardScope(args.app_namespace, args.keycloak_namespace, args.redis_namespace, args.keycloak_realm,
                               args.gateway_namespace)
        dashboard_names = []
        for short, model in all_dashboards(scope).items():
            config_map = k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{short}",
                metadata=podspec.metadata(f"aiwfe-dashboard-{short}", mon.dashboard_namespace, dashboard_labels),
                data={f"aiwfe-{short}.json": json.dumps(model, indent=2, sort_keys=True)},
                opts=child,
            )
            dashboard_names.append(config_map.metadata["name"])

        self.provider = pulumi.Output.from_input(mon.provider)
        self.dashboards = pulumi.Output.all(*dashboard_names)
        self.alerts = pulumi.Output.from_input([a.name for a in alert_list])
        self.rule_name = pulumi.Output.from_input(rule_name)
        self.register_outputs({"provider": self.provider, "dashboards": self.dashboards, "alerts": self.alerts,
                               "rule_name": self.rule_name})

    @staticmethod
    def _pod_monitor(resource_name: str, name: str, namespace: str, target_namespaces: Sequence[pulumi.Input[str]],
                     selector: dict, endpoints: list[dict], object_labels: Mapping[str, str],
                     opts: pulumi.ResourceOptions) -> None:
        k8s.apiextensions.CustomResource(
            resource_name, api_version=OPERATOR_API, kind="PodMonitor",
            metadata=podspec.metadata(name, namespace, object_labels),
            spec={"namespaceSelector": {"matchNames": list(target_namespaces)}, "selector": selector,
                  "podMetricsEndpoints": endpoints},
            opts=opts)

    @staticmethod
    def _pod_monitoring(resource_name: str, name: str, namespace: pulumi.Input[str], selector: dict,
                        endpoints: list[dict], object_labels: Mapping[str, str],
                        opts: pulumi.ResourceOptions) -> None:
        k8s.apiextensions.CustomResource(
            resource_name, api_version=GMP_API, kind="PodMonitoring",
            metadata=podspec.metadata(name, namespace, object_labels),
            spec={"selector": selector, "endpoints": endpoints},
            opts=opts)
