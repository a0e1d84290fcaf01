"""Alert rules as data: one list, rendered as a Prometheus Operator `PrometheusRule` or as Google
Managed Prometheus `ClusterRules` by the `Observability` component.

Every alert links a runbook section in `docs/` (`runbook_url`); tests check the file and the
heading behind each anchor exist, that every expression parses as PromQL, and that it uses only
metrics the scraped components expose.
"""

from __future__ import annotations

from dataclasses import dataclass

# Thresholds. REQUIREMENTS: auth 99.9 % success, WebSocket upgrade success, Redis health checks
# time out at 3 s, outlier detection ejects for 30 s at a time (so > 5 min means a persistent fault).
AUTH_FAILURE_RATIO = 0.05
"""Failed / all authentication events. Wrong passwords count as failures, so well above 0.1 %."""
WEBSOCKET_UPGRADE_SUCCESS = 0.99
OUTLIER_EJECTION_FOR = "5m"
# Stats missing for this long is a configuration gap, not a scrape hiccup.
OUTLIER_STATS_MISSING_FOR = "30m"
POD_NOT_READY_FOR = "5m"
# Longer than a failover and a rejoin (node timeout, election, full sync of a replica).
REDIS_MEMBERSHIP_FOR = "5m"
REDIS_NODE_DOWN_FOR = "2m"
REDIS_REPLICA_UNSYNCED_FOR = "10m"
HPA_AT_MAX_FOR = "15m"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    duration: str
    severity: str
    summary: str
    runbook: str
    """Repository path with anchor, e.g. `docs/troubleshooting.md#redis-failover`."""

    def rule(self, runbook_base_url: str | None) -> dict[str, object]:
        """The rule as both PrometheusRule and GMP Rules spell it."""
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.duration,
            "labels": {"severity": self.severity, "team": "platform"},
            "annotations": {"summary": self.summary, "runbook_url": f"{runbook_base_url or ''}{self.runbook}"},
        }


@dataclass(frozen=True)
class RedisLayoutCounts:
    """The Redis cluster as planned: what every node must agree on."""

    nodes: int
    masters: int
    replicas_per_master: int


@dataclass(frozen=True)
class AlertScope:
    app_namespace: str
    keycloak_namespace: str
    redis_namespace: str
    redis_health_timeout_seconds: int
    redis_layout: RedisLayoutCounts
    gateway_namespace: str | None = None
    """The ingress gateway's namespace: its Envoy applies the DestinationRules' outlier detection
    to the apps it routes to, so its ejections count too."""


def _running(selector: str) -> str:
    # Only pods in phase Running: completed Job pods (bootstrap, realm reconcile) are never Ready.
    return f'* on (namespace, pod) group_left () (kube_pod_status_phase{{{selector}, phase="Running"}} == 1)'


def alerts(scope: AlertScope) -> list[Alert]:
    kc = f'namespace="{scope.keycloak_namespace}"'
    app = f'namespace="{scope.app_namespace}"'
    rd = f'namespace="{scope.redis_namespace}"'
    layout = scope.redis_layout
    auth_events = f'{kc}, event=~"login|code_to_token|refresh_token|client_login"'
    # Outlier detection runs in the caller's Envoy: the gateway and the meshed pods.
    callers = "|".join(sorted({scope.app_namespace, scope.keycloak_namespace, scope.redis_namespace}
                              | ({scope.gateway_namespace} if scope.gateway_namespace else set())))
    # The gateway calls every ejecting service; the app pods' sidecars carry the annotation.
    outlier_stat_namespaces = [ns for ns in (scope.gateway_namespace, scope.app_namespace) if ns]
    return [
        Alert(
            "KeycloakAuthFailureRateHigh",
            f'sum(rate(keycloak_user_events_total{{{auth_events}, error!=""}}[5m])) / '
            f"sum(rate(keycloak_user_events_total{{{auth_events}}}[5m])) > {AUTH_FAILURE_RATIO}",
            "10m", "warning",
            f"More than {AUTH_FAILURE_RATIO:.0%} of authentications fail",
            "docs/troubleshooting.md#authentication-failures"),
        Alert(
            "WebSocketUpgradeSuccessLow",
            f'sum(rate(websocket_upgrades_total{{{app}, result="success"}}[5m])) / '
            f"sum(rate(websocket_upgrades_total{{{app}}}[5m])) < {WEBSOCKET_UPGRADE_SUCCESS}",
            "10m", "critical",
            f"Fewer than {WEBSOCKET_UPGRADE_SUCCESS:.0%} of WebSocket upgrades succeed",
            "docs/troubleshooting.md#websocket-drops-and-failed-upgrades"),
        Alert(
            "RedisClusterStateNotOk",
            f"min(redis_cluster_state{{{rd}}}) < 1 or absent(redis_cluster_state{{{rd}}})",
            "2m", "critical",
            "Redis reports cluster_state other than ok (or no exporter answers)",
            "docs/troubleshooting.md#redis-failover"),
        Alert(
            # cluster_state stays ok when a shard's slots point at an identity whose address another
            # node took (noaddr) or at a failed master: count the nodes and shards every node sees.
            "RedisClusterMembershipWrong",
            " or ".join(f"{agg}(redis_cluster_{field}{{{rd}}}) != {count}"
                        for field, count in (("known_nodes", layout.nodes), ("size", layout.masters))
                        for agg in ("max", "min"))
            + f" or max(redis_cluster_slots_fail{{{rd}}} + redis_cluster_slots_pfail{{{rd}}}) > 0",
            REDIS_MEMBERSHIP_FOR, "critical",
            f"Redis nodes do not all see {layout.nodes} nodes and {layout.masters} serving masters, or slots "
            "are served by a failing master",
            "docs/troubleshooting.md#redis-failover"),
        Alert(
            # The exporter answers while its Redis does not: a node that crash-loops on its data or
            # holds its start until its shard is served by another node.
            "RedisNodeDown",
            f"max by (namespace, pod) (redis_up{{{rd}}}) == 0 or sum by (namespace, pod) "
            f'(increase(kube_pod_container_status_restarts_total{{{rd}, container="redis"}}[15m])) > 2',
            REDIS_NODE_DOWN_FOR, "critical",
            "A Redis node does not answer or keeps restarting",
            "docs/troubleshooting.md#redis-failover"),
        Alert(
            "RedisReplicasNotSynced",
            f"max by (namespace, pod) (redis_master_link_up{{{rd}}}) == 0 or max by (namespace, pod) "
            f"(redis_master_sync_in_progress{{{rd}}}) == 1"
            + (f" or sum by (namespace, pod) (redis_connected_slaves{{{rd}}} and on (namespace, pod) "
               f'redis_instance_info{{{rd}, role="master"}}) < {layout.replicas_per_master}'
               if layout.replicas_per_master else ""),
            REDIS_REPLICA_UNSYNCED_FOR, "warning",
            "A Redis replica has no live link to its master, or a master has fewer replicas than planned",
            "docs/troubleshooting.md#redis-failover"),
        Alert(
            "RedisHealthCheckSlow",
            "histogram_quantile(0.99, sum by (le) (rate(websocket_redis_health_check_duration_seconds_bucket"
            f"{{{app}}}[5m]))) >= {scope.redis_health_timeout_seconds}",
            "5m", "critical",
            f"Redis health checks take {scope.redis_health_timeout_seconds} s (the timeout) at p99",
            "docs/troubleshooting.md#redis-health-checks-slow"),
        Alert(
            "MeshOutlierEjectionsPersistent",
            "sum by (namespace, pod, cluster_name) "
            f'(envoy_cluster_outlier_detection_ejections_active{{namespace=~"{callers}"}}) > 0',
            OUTLIER_EJECTION_FOR, "warning",
            "Outlier detection has kept hosts ejected for more than 5 minutes",
            "docs/troubleshooting.md#outlier-ejections"),
        Alert(
            # The alert above is blind when the proxies drop these stats (Istio's default): say so.
            "MeshOutlierStatsMissing",
            " or ".join(f'absent(envoy_cluster_outlier_detection_ejections_active{{namespace="{ns}"}})'
                        for ns in outlier_stat_namespaces),
            OUTLIER_STATS_MISSING_FOR, "warning",
            "No outlier-detection stats from the ingress gateway or the apps: the ejection alert cannot fire",
            "docs/troubleshooting.md#outlier-stats-missing"),
        Alert(
            "KeycloakPodsNotReady",
            f'sum by (namespace, pod) (kube_pod_status_ready{{{kc}, condition="false"}} {_running(kc)}) > 0',
            POD_NOT_READY_FOR, "critical",
            "A Keycloak pod has been running but not ready for 5 minutes",
            "docs/troubleshooting.md#keycloak-not-ready"),
        Alert(
            "RedisPodsNotReady",
            f'sum by (namespace, pod) (kube_pod_status_ready{{{rd}, condition="false"}} {_running(rd)}) > 0',
            POD_NOT_READY_FOR, "critical",
            "A Redis pod has been running but not ready for 5 minutes",
            "docs/troubleshooting.md#redis-failover"),
        Alert(
            "WebSocketHpaAtMaxReplicas",
            f"kube_horizontalpodautoscaler_status_current_replicas{{{app}}} >= on (namespace, horizontalpodautoscaler) "
            f"kube_horizontalpodautoscaler_spec_max_replicas{{{app}}}",
            HPA_AT_MAX_FOR, "warning",
            "An autoscaler has been at its maximum replicas for 15 minutes: no headroom left",
            "docs/troubleshooting.md#autoscaler-at-maximum"),
    ]
