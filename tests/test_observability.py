"""Observability: dashboards query real metrics, alerts parse as PromQL and link existing runbooks,
the provider setting switches APIs, and the scraper can reach every contract metrics port."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import promql_parser
import pytest
import yaml

from components import dashboards
from components.alert_rules import AlertScope, RedisLayoutCounts, alerts
from stacks.settings import parse_settings
from tests import monitoring_schemas
from tests.conftest import one, resources_of
from tools import render as render_tool

ROOT = Path(__file__).resolve().parent.parent
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
POD_MONITORING = "kubernetes:monitoring.googleapis.com/v1:PodMonitoring"
CLUSTER_RULES = "kubernetes:monitoring.googleapis.com/v1:ClusterRules"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"

# ---------------------------------------------------------------- test data: metrics each scraped source exposes
# Only names the dashboards/alerts may use; each list names where the names come from.
KNOWN_METRICS: dict[str, set[str]] = {
    # Keycloak 26 observability guide, "Self-provided metrics" (keycloak_user_events_total, needs
    # --event-metrics-user-enabled=true) and "HTTP metrics" (Micrometer http_server_requests_seconds;
    # the _bucket series need --http-metrics-histograms-enabled=true), served on :9000/metrics.
    "keycloak": {"keycloak_user_events_total", "http_server_requests_seconds_count",
                 "http_server_requests_seconds_sum", "http_server_requests_seconds_bucket",
                 "http_server_requests_seconds_max"},
    # oliver006/redis_exporter (exporter/metrics and the README's metric list), :9121/metrics.
    "redis_exporter": {"redis_up", "redis_cluster_state", "redis_memory_used_bytes", "redis_memory_max_bytes",
                       "redis_evicted_keys_total", "redis_commands_duration_seconds_total", "redis_commands_total",
                       "redis_connected_clients", "redis_cluster_known_nodes", "redis_cluster_size",
                       "redis_cluster_slots_fail", "redis_cluster_slots_pfail", "redis_master_link_up",
                       "redis_master_sync_in_progress", "redis_connected_slaves", "redis_instance_info"},
    # Istio "Istio Standard Metrics" (istio_requests_total, istio_request_duration_milliseconds) and Envoy's
    # cluster statistics (outlier_detection.*, upstream_rq_pending_overflow) as the sidecar's Prometheus
    # endpoint names them; the envoy_cluster_* ones need proxyStatsMatcher inclusion (docs/observability.md).
    "istio": {"istio_requests_total", "istio_request_duration_milliseconds_bucket",
              "istio_request_duration_milliseconds_sum", "istio_request_duration_milliseconds_count",
              "envoy_cluster_outlier_detection_ejections_active",
              "envoy_cluster_outlier_detection_ejections_enforced_total", "envoy_cluster_upstream_rq_pending_overflow"},
    # kube-state-metrics docs/metrics/workload/pod-metrics.md and horizontalpodautoscaler-metrics.md.
    "kube_state_metrics": {"kube_pod_status_ready", "kube_pod_status_phase", "kube_pod_container_status_restarts_total",
                           "kube_horizontalpodautoscaler_status_current_replicas",
                           "kube_horizontalpodautoscaler_spec_max_replicas"},
    # This project's contract for the WebSocket service's own /metrics on :8081 (docs/observability.md,
    # "Metrics the WebSocket service must expose"): the app defines them, not a third party.
    "websocket_app": {"websocket_connections_active", "websocket_upgrades_total", "websocket_messages_total",
                      "websocket_message_latency_seconds_bucket", "websocket_message_latency_seconds_sum",
                      "websocket_message_latency_seconds_count", "websocket_redis_health_check_duration_seconds_bucket",
                      "websocket_redis_health_check_duration_seconds_sum",
                      "websocket_redis_health_check_duration_seconds_count"},
}
ALL_KNOWN = set().union(*KNOWN_METRICS.values())


def metric_names(expr: str) -> set[str]:
    """Every metric an expression selects (raises ValueError when it is not valid PromQL)."""
    found: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def test_metric_checker_catches_typos_and_bad_promql() -> None:
    """Guards the tests below."""
    assert metric_names('min(redis_cluster_sate{namespace="x"}) < 1') - ALL_KNOWN == {"redis_cluster_sate"}
    with pytest.raises(ValueError):
        metric_names("sum(rate(redis_commands_total[5m])")


def test_websocket_metric_contract_is_documented() -> None:
    text = (ROOT / "docs" / "observability.md").read_text()
    section = text.split("## Metrics the WebSocket service must expose", 1)[1].split("\n## ", 1)[0]
    for name in KNOWN_METRICS["websocket_app"]:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert f"`{base}`" in section, f"docs/observability.md does not define {base}"


# ---------------------------------------------------------------- dashboards

def rendered_dashboards(result: render_tool.RenderResult) -> dict[str, dict]:
    found = {}
    for resource in resources_of(result, CONFIG_MAP):
        meta = resource["props"]["metadata"]
        if meta["labels"].get("grafana_dashboard") == "1":
            ((key, text),) = resource["props"]["data"].items()
            found[key] = json.loads(text)
    return found


def test_dashboards_are_config_maps_for_the_grafana_sidecar(rendered: dict, stack: str) -> None:
    found = rendered_dashboards(rendered[stack])
    assert set(found) == {f"aiwfe-{name}.json" for name in dashboards.DASHBOARDS}
    for resource in resources_of(rendered[stack], CONFIG_MAP):
        if resource["name"].startswith("observability-dashboard-"):
            assert resource["props"]["metadata"]["namespace"] == "monitoring"
    s = parse_settings(render_tool.load_stack_config(stack).values, stack=stack,
                       secret_keys=render_tool.load_stack_config(stack).secret_keys)
    scope = dashboards.DashboardScope(s.app_namespace, s.keycloak.namespace, s.redis.namespace, s.keycloak.realm,
                                      s.mesh.ingress_gateway_namespace)
    assert found == {f"aiwfe-{name}.json": model for name, model in dashboards.all_dashboards(scope).items()}
    assert len({d["uid"] for d in found.values()}) == len(found)


@pytest.mark.parametrize("name", sorted(dashboards.DASHBOARDS))
def test_every_panel_queries_known_metrics(rendered: dict, name: str) -> None:
    model = rendered_dashboards(rendered["prod"])[f"aiwfe-{name}.json"]
    assert model["panels"], name
    for panel in model["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names and names <= ALL_KNOWN, (panel["title"], names - ALL_KNOWN)


REQUIRED_PANELS = {
    "authentication": ["authentications per second", "failures", "latency"],
    "websocket": ["open connections", "upgrade success", "messages per second"],
    "redis": ["cluster state", "memory", "evicted", "command latency"],
    "mesh": ["ejected by outlier detection", "5xx"],
}


@pytest.mark.parametrize("name", sorted(REQUIRED_PANELS))
def test_dashboards_show_what_the_issue_asks_for(name: str) -> None:
    model = dashboards.all_dashboards(dashboards.DashboardScope("aiwfe", "keycloak", "aiwfe-redis"))[name]
    titles = " | ".join(p["title"].lower() for p in model["panels"])
    for words in REQUIRED_PANELS[name]:
        assert words in titles, f"{name} dashboard lacks a panel about {words}: {titles}"


# ---------------------------------------------------------------- alerts

REQUIRED_ALERTS = {"KeycloakAuthFailureRateHigh", "WebSocketUpgradeSuccessLow", "RedisClusterStateNotOk",
                   "RedisHealthCheckSlow", "MeshOutlierEjectionsPersistent", "MeshOutlierStatsMissing",
                   "KeycloakPodsNotReady", "RedisPodsNotReady", "WebSocketHpaAtMaxReplicas",
                   "RedisClusterMembershipWrong", "RedisNodeDown", "RedisReplicasNotSynced"}


def rendered_rules(result: render_tool.RenderResult) -> list[dict]:
    (rule,) = resources_of(result, PROMETHEUS_RULE)
    return [r for group in rule["props"]["spec"]["groups"] for r in group["rules"]]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_alerts_parse_use_known_metrics_and_link_existing_runbooks(rendered: dict, stack: str) -> None:
    rules = rendered_rules(rendered[stack])
    assert {r["alert"] for r in rules} == REQUIRED_ALERTS
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names and names <= ALL_KNOWN, (rule["alert"], names - ALL_KNOWN)
        assert rule["labels"]["severity"] in ("warning", "critical")
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        target = ROOT / path
        assert target.is_file(), f"{rule['alert']}: {path} does not exist"
        anchors = {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", target.read_text(), re.MULTILINE)}
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor} in {path}"


def test_redis_alerts_compare_every_node_with_the_planned_layout(rendered: dict, stack: str) -> None:
    """REQUIREMENTS: 3 masters + 3 replicas, in both stacks; a node that sees a seventh identity (a
    volume lost at the same IP leaves one, tests/test_redis_faults.py) or two shards must fire."""
    rules = {r["alert"]: r for r in rendered_rules(rendered[stack])}
    membership = rules["RedisClusterMembershipWrong"]["expr"]
    for agg in ("max", "min"):
        assert f'{agg}(redis_cluster_known_nodes{{namespace="aiwfe-redis"}}) != 6' in membership
        assert f'{agg}(redis_cluster_size{{namespace="aiwfe-redis"}}) != 3' in membership
    assert "< 1" in rules["RedisReplicasNotSynced"]["expr"], "a master without its one replica"


def test_alert_thresholds_follow_the_requirements(rendered: dict) -> None:
    rules = {r["alert"]: r for r in rendered_rules(rendered["prod"])}
    assert rules["WebSocketUpgradeSuccessLow"]["expr"].endswith("< 0.99")
    assert rules["RedisHealthCheckSlow"]["expr"].endswith(">= 3")
    assert rules["MeshOutlierEjectionsPersistent"]["for"] == "5m"
    # The ejection alert's blind spot is itself alerted on: no stats from the gateway or the apps.
    assert rules["MeshOutlierStatsMissing"]["expr"] == (
        'absent(envoy_cluster_outlier_detection_ejections_active{namespace="istio-ingress"}) or '
        'absent(envoy_cluster_outlier_detection_ejections_active{namespace="aiwfe"})')
    assert 'namespace="keycloak"' in rules["KeycloakPodsNotReady"]["expr"]
    assert 'namespace="aiwfe-redis"' in rules["RedisPodsNotReady"]["expr"]
    assert "kube_horizontalpodautoscaler_spec_max_replicas" in rules["WebSocketHpaAtMaxReplicas"]["expr"]


def test_runbook_anchor_check_would_catch_a_missing_heading() -> None:
    """Guards the runbook test: an anchor without a heading is not found."""
    text = (ROOT / "docs" / "troubleshooting.md").read_text()
    anchors = {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}
    assert "redis-failover" in anchors and "redis-fail-over" not in anchors
    scope = AlertScope("a", "k", "r", 3, RedisLayoutCounts(6, 3, 1))
    assert {a.runbook.split("#")[1] for a in alerts(scope)} <= anchors


# ---------------------------------------------------------------- scrape config

def test_operator_pod_monitors_scrape_the_contract_ports(rendered: dict, stack: str) -> None:
    monitors = {r["props"]["metadata"]["name"]: r["props"] for r in resources_of(rendered[stack], POD_MONITOR)}
    expected = {
        "aiwfe-keycloak": ("keycloak", "keycloak", "http-management"),
        "aiwfe-redis": ("aiwfe-redis", "redis-cluster", "http-metrics"),
        "aiwfe-websocket": ("aiwfe", "websocket", "http-health"),
    }
    for name, (namespace, app, port) in expected.items():
        spec = monitors[name]["spec"]
        assert monitors[name]["metadata"]["namespace"] == "monitoring"
        assert monitors[name]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert spec["namespaceSelector"] == {"matchNames": [namespace]}
        assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": app}}
        assert [(e["port"], e["path"]) for e in spec["podMetricsEndpoints"]] == [(port, "/metrics")]
    sidecars = monitors["aiwfe-istio-sidecars"]["spec"]
    # The meshed namespaces and the ingress gateway namespace (the gateway applies the DestinationRules).
    assert sorted(sidecars["namespaceSelector"]["matchNames"]) == ["aiwfe", "aiwfe-redis", "istio-ingress", "keycloak"]
    (endpoint,) = sidecars["podMetricsEndpoints"]
    assert endpoint["path"] == "/stats/prometheus"
    assert endpoint["relabelings"][-1]["replacement"] == "$1:15020"
    assert resources_of(rendered[stack], POD_MONITORING) == resources_of(rendered[stack], CLUSTER_RULES) == []


def test_scraper_may_reach_the_websocket_metrics_ports(rendered: dict, stack: str) -> None:
    """The NetworkPolicy admits the scraper (monitoring namespace + scraper labels) to :8081 and :15020."""
    policy = one(rendered[stack], NETPOL, "websocket-network-policy")["props"]["spec"]
    scraper = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
               "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    ports = {int(p["port"]) for rule in policy["ingress"] if scraper in rule["from"] for p in rule["ports"]}
    assert {8081, 15020} <= ports


def managed_config(**changes: object) -> render_tool.StackConfig:
    config = render_tool.load_stack_config("prod")
    monitoring = json.loads(config.values["aiwfe-platform:monitoring"])
    monitoring.update({"provider": "managed-prometheus", "namespace": "gmp-system",
                       "scraperLabels": {"app.kubernetes.io/name": "collector"}, "dashboardNamespace": "monitoring"})
    monitoring.update(changes)
    config.values["aiwfe-platform:monitoring"] = json.dumps(monitoring)
    return config


def test_managed_prometheus_uses_pod_monitoring_and_cluster_rules(tmp_path: Path) -> None:
    result = render_tool.render("prod", tmp_path, config=managed_config(
        runbookBaseUrl="https://git.example.com/aiwfe/platform/blob/main/"))
    assert resources_of(result, POD_MONITOR) == resources_of(result, PROMETHEUS_RULE) == []
    monitorings = [r["props"] for r in resources_of(result, POD_MONITORING)]
    by_namespace = {(m["metadata"]["namespace"], m["metadata"]["name"]): m["spec"] for m in monitorings}
    assert by_namespace[("keycloak", "aiwfe-keycloak")]["endpoints"][0]["port"] == "http-management"
    assert by_namespace[("aiwfe-redis", "aiwfe-redis")]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "redis-cluster"}}
    for namespace in ("aiwfe", "keycloak", "aiwfe-redis"):
        assert by_namespace[(namespace, "aiwfe-istio-sidecars")]["endpoints"][0]["port"] == 15020
    (rules,) = resources_of(result, CLUSTER_RULES)
    assert "namespace" not in rules["props"]["metadata"]
    urls = [r["annotations"]["runbook_url"] for g in rules["props"]["spec"]["groups"] for r in g["rules"]]
    assert urls and all(u.startswith("https://git.example.com/aiwfe/platform/blob/main/docs/") for u in urls)
    assert result.report.violations == [], result.report.as_text()
    for path in result.manifests:
        manifest = yaml.safe_load(path.read_text())
        if monitoring_schemas.handles(manifest):
            monitoring_schemas.validate(manifest)


def test_monitoring_schemas_reject_a_misspelt_field(rendered: dict) -> None:
    """Guards the render test's validation path for monitoring kinds."""
    path = next(p for p in rendered["prod"].manifests if "-podmonitor-" in p.name)
    manifest = yaml.safe_load(path.read_text())
    monitoring_schemas.validate(manifest)
    manifest["spec"]["podMetricEndpoints"] = manifest["spec"].pop("podMetricsEndpoints")
    with pytest.raises(jsonschema.ValidationError):
        monitoring_schemas.validate(manifest)


def test_workloads_whose_destination_rules_eject_keep_the_outlier_stats(rendered: dict, stack: str) -> None:
    """Istio drops envoy_cluster_outlier_detection_* unless the proxy asks for them."""
    ejecting = {r["props"]["spec"]["host"].split(".")[0] for r in resources_of(
        rendered[stack], "kubernetes:networking.istio.io/v1:DestinationRule")
        if "outlierDetection" in r["props"]["spec"].get("trafficPolicy", {})}
    assert ejecting == {"websocket", "user-frontend", "admin-frontend", "keycloak"}
    for r in resources_of(rendered[stack], "kubernetes:apps/v1:Deployment"):
        template = r["props"]["spec"]["template"]
        name = template["metadata"]["labels"]["app.kubernetes.io/name"]
        if name not in ejecting:
            continue
        config = json.loads(template["metadata"]["annotations"]["proxy.istio.io/config"])
        regexps = config["proxyStatsMatcher"]["inclusionRegexps"]
        for stat in ("cluster.outbound|8080||websocket.aiwfe.svc.cluster.local.outlier_detection.ejections_active",
                     "cluster.outbound|80||user-frontend.aiwfe.svc.cluster.local.upstream_rq_pending_overflow"):
            assert any(re.fullmatch(rx, stat) for rx in regexps), (name, stat)
        assert config["holdApplicationUntilProxyStarts"] is True
