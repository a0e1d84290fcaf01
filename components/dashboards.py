"""Grafana dashboards as code: plain functions returning dashboard JSON models.

Each panel queries only metrics that the scraped components expose (Keycloak's management port,
the Redis exporter, the WebSocket service's own `/metrics`, Istio sidecars, kube-state-metrics);
tests/test_observability.py checks every query against those lists. The `Observability`
component ships each dashboard as a ConfigMap that the Grafana sidecar loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from policies.aiwfe_policies.contract import WEBSOCKET_CONNECTIONS_METRIC as CONNECTIONS

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class Panel:
    title: str
    queries: Sequence[tuple[str, str]]
    """(PromQL, legend) pairs."""
    unit: str = "short"
    kind: str = "timeseries"


@dataclass(frozen=True)
class DashboardScope:
    """The namespaces the dashboards filter on (so two stacks in one Prometheus stay apart)."""

    app_namespace: str
    keycloak_namespace: str
    redis_namespace: str
    realm: str | None = None
    """Keycloak realm to filter auth events by; None shows every realm."""
    gateway_namespace: str | None = None
    """The ingress gateway's namespace (its Envoy ejects failing app endpoints too)."""


def _dashboard(uid: str, title: str, panels: Sequence[Panel], tags: Sequence[str]) -> dict[str, Any]:
    built = []
    for index, panel in enumerate(panels):
        built.append({
            "id": index + 1,
            "type": panel.kind,
            "title": panel.title,
            "datasource": DATASOURCE,
            # Two panels per row, 8 grid units high.
            "gridPos": {"x": (index % 2) * 12, "y": (index // 2) * 8, "w": 12, "h": 8},
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
            "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                        for i, (expr, legend) in enumerate(panel.queries)],
        })
    return {
        "uid": uid,
        "title": title,
        "tags": ["aiwfe", *tags],
        "schemaVersion": SCHEMA_VERSION,
        "editable": False,
        "timezone": "utc",
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "label": "Data source", "type": "datasource",
                                 "query": "prometheus", "hide": 0}]},
        "panels": built,
    }


def authentication(scope: DashboardScope) -> dict[str, Any]:
    """Keycloak: logins and token grants, failures by reason, request latency (management port metrics)."""
    realm = f', realm="{scope.realm}"' if scope.realm else ""
    events = f'keycloak_user_events_total{{namespace="{scope.keycloak_namespace}"{realm}'
    http = f'namespace="{scope.keycloak_namespace}"'
    return _dashboard("aiwfe-authentication", "AIWFE / Authentication", [
        Panel("Successful authentications per second", [
            (f'sum by (event) (rate({events}, error="", '
             'event=~"login|code_to_token|refresh_token|client_login"}[5m]))',
             "{{event}}")], unit="reqps"),
        Panel("Authentication failures per second (by reason)", [
            (f'sum by (event, error) (rate({events}, error!=""}}[5m]))', "{{event}}: {{error}}")], unit="reqps"),
        Panel("Failure ratio", [
            (f'sum(rate({events}, error!=""}}[5m])) / clamp_min(sum(rate({events}}}[5m])), 1e-9)', "failed / all")],
            unit="percentunit"),
        Panel("Request latency (p50 / p99)", [
            (f"histogram_quantile(0.5, sum by (le) (rate(http_server_requests_seconds_bucket{{{http}}}[5m])))", "p50"),
            (f"histogram_quantile(0.99, sum by (le) (rate(http_server_requests_seconds_bucket{{{http}}}[5m])))",
             "p99")], unit="s"),
        Panel("Requests per second by status", [
            (f"sum by (status) (rate(http_server_requests_seconds_count{{{http}}}[5m]))", "{{status}}")],
            unit="reqps"),
        Panel("Pods ready", [
            (f'sum(kube_pod_status_ready{{namespace="{scope.keycloak_namespace}", condition="true"}})', "ready")],
            kind="stat"),
    ], ["keycloak"])


def websocket(scope: DashboardScope) -> dict[str, Any]:
    """The WebSocket service: open connections, upgrade success, message rate and latency, replicas."""
    ns = f'namespace="{scope.app_namespace}"'
    return _dashboard("aiwfe-websocket", "AIWFE / WebSocket", [
        Panel("Open connections", [
            (f"sum({CONNECTIONS}{{{ns}}})", "total"),
            (f"sum by (pod) ({CONNECTIONS}{{{ns}}})", "{{pod}}")]),
        Panel("Upgrade success ratio", [
            (f'sum(rate(websocket_upgrades_total{{{ns}, result="success"}}[5m])) / '
             f"clamp_min(sum(rate(websocket_upgrades_total{{{ns}}}[5m])), 1e-9)", "success")], unit="percentunit"),
        Panel("Messages per second", [
            (f"sum by (direction) (rate(websocket_messages_total{{{ns}}}[5m]))", "{{direction}}")], unit="reqps"),
        Panel("Message latency (p99)", [
            (f"histogram_quantile(0.99, sum by (le) (rate(websocket_message_latency_seconds_bucket{{{ns}}}[5m])))",
             "p99")], unit="s"),
        Panel("Upgrade responses at the sidecar (101 vs errors)", [
            (f'sum by (response_code) (rate(istio_requests_total{{reporter="destination", '
             f'destination_workload_namespace="{scope.app_namespace}", destination_workload="websocket"}}[5m]))',
             "{{response_code}}")], unit="reqps"),
        Panel("Replicas (HPA current / max)", [
            (f"kube_horizontalpodautoscaler_status_current_replicas{{{ns}}}", "current {{horizontalpodautoscaler}}"),
            (f"kube_horizontalpodautoscaler_spec_max_replicas{{{ns}}}", "max {{horizontalpodautoscaler}}")]),
    ], ["websocket"])


def redis(scope: DashboardScope) -> dict[str, Any]:
    """The Redis cluster (redis_exporter): cluster state, memory, evictions, command latency, health checks."""
    ns = f'namespace="{scope.redis_namespace}"'
    return _dashboard("aiwfe-redis", "AIWFE / Redis cluster", [
        Panel("Cluster state (1 = ok)", [(f"min(redis_cluster_state{{{ns}}})", "cluster_state")], kind="stat"),
        Panel("Memory used / max", [
            (f"sum by (pod) (redis_memory_used_bytes{{{ns}}})", "used {{pod}}"),
            (f"max(redis_memory_max_bytes{{{ns}}})", "maxmemory")], unit="bytes"),
        Panel("Evicted keys per second", [
            (f"sum by (pod) (rate(redis_evicted_keys_total{{{ns}}}[5m]))", "{{pod}}")], unit="ops"),
        Panel("Average command latency (top commands)", [
            (f"topk(5, sum by (cmd) (rate(redis_commands_duration_seconds_total{{{ns}}}[5m])) / "
             f"clamp_min(sum by (cmd) (rate(redis_commands_total{{{ns}}}[5m])), 1e-9))", "{{cmd}}")], unit="s"),
        Panel("Health check latency seen by the WebSocket service (p99)", [
            (f"histogram_quantile(0.99, sum by (le) (rate(websocket_redis_health_check_duration_seconds_bucket"
             f'{{namespace="{scope.app_namespace}"}}[5m])))', "p99")], unit="s"),
        Panel("Connected clients", [(f"sum by (pod) (redis_connected_clients{{{ns}}})", "{{pod}}")]),
    ], ["redis"])


def mesh(scope: DashboardScope) -> dict[str, Any]:
    """Istio: outlier ejections (circuit breaking), overflowed requests, 5xx by destination."""
    namespaces = "|".join(sorted({scope.app_namespace, scope.keycloak_namespace, scope.redis_namespace}))
    # Envoy stats live in the caller: the gateway and the meshed pods.
    callers = "|".join(sorted(set(namespaces.split("|"))
                              | ({scope.gateway_namespace} if scope.gateway_namespace else set())))
    selected = f'namespace=~"{callers}"'
    return _dashboard("aiwfe-mesh", "AIWFE / Mesh", [
        Panel("Hosts ejected by outlier detection", [
            (f"sum by (cluster_name) (envoy_cluster_outlier_detection_ejections_active{{{selected}}})",
             "{{cluster_name}}")]),
        Panel("Ejections enforced per second", [
            ("sum by (cluster_name) "
             f"(rate(envoy_cluster_outlier_detection_ejections_enforced_total{{{selected}}}[5m]))",
             "{{cluster_name}}")], unit="ops"),
        Panel("Requests rejected by connection-pool limits", [
            (f"sum by (cluster_name) (rate(envoy_cluster_upstream_rq_pending_overflow{{{selected}}}[5m]))",
             "{{cluster_name}}")], unit="reqps"),
        Panel("5xx responses per second by destination", [
            (f'sum by (destination_workload_namespace, destination_workload) (rate(istio_requests_total{{'
             f'reporter="destination", destination_workload_namespace=~"{namespaces}", response_code=~"5.."}}[5m]))',
             "{{destination_workload_namespace}}/{{destination_workload}}")], unit="reqps"),
        Panel("5xx ratio by destination", [
            (f'sum by (destination_workload) (rate(istio_requests_total{{reporter="destination", '
             f'destination_workload_namespace=~"{namespaces}", response_code=~"5.."}}[5m])) / '
             f'clamp_min(sum by (destination_workload) (rate(istio_requests_total{{reporter="destination", '
             f'destination_workload_namespace=~"{namespaces}"}}[5m])), 1e-9)', "{{destination_workload}}")],
            unit="percentunit"),
        Panel("Request latency p99 by destination", [
            (f"histogram_quantile(0.99, sum by (le, destination_workload) (rate("
             f'istio_request_duration_milliseconds_bucket{{reporter="destination", '
             f'destination_workload_namespace=~"{namespaces}"}}[5m])))', "{{destination_workload}}")], unit="ms"),
    ], ["istio"])


DASHBOARDS = {"authentication": authentication, "websocket": websocket, "redis": redis, "mesh": mesh}


def all_dashboards(scope: DashboardScope) -> dict[str, dict[str, Any]]:
    """{short name: dashboard JSON model} for every dashboard."""
    return {name: build(scope) for name, build in DASHBOARDS.items()}
