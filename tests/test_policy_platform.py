"""Cases for the cross-layer rules (policies/aiwfe_policies/rules/paths.py, capacity.py, protection.py).

Every case starts from a real stack as the program renders it, judged under that stack's own pack
config (levels and targets from its settings), and changes one thing on one hop.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from policies.aiwfe_policies.engine import ADVISORY, MANDATORY
from policies.aiwfe_policies.rules import capacity
from tests.policy_cases import Case, bad, ok, run
from tests.policy_fixtures import DELETE, Wire
from tests.rendered_stacks import rendered_document, rendered_wires, stack_pack_config

WS_PATH = "platform-websocket-path-require-long-lived-end-to-end"
AUTH_PATH = "platform-auth-path-require-keycloak-jwt-and-untouched-headers"
WS_CAPACITY = capacity.WEBSOCKET_CAPACITY
KC_CAPACITY = capacity.KEYCLOAK_CAPACITY
REDIS_CAPACITY = capacity.REDIS_CAPACITY
STATEFUL = "platform-stateful-resources-require-protect"
STRICT_NAMESPACES = "istio-security-v1-peerauthentication-require-strict-namespaces"
AUTHZ_PER_NAMESPACE = "istio-security-v1-authorizationpolicy-require-per-namespace"
INJECTION = "istio-workload-disallow-sidecar-injection-disabled"
PEER_AUTHENTICATIONS = ("mesh-app-peer-authentication", "mesh-keycloak-peer-authentication",
                        "mesh-redis-peer-authentication")

WS_TIMEOUT = "gcp-compute-websocket-backend-require-long-timeout"
WS_ROUTE = "istio-networking-v1-virtualservice-require-websocket-route-without-timeout-and-retries"
WS_DESTINATION = "istio-networking-v1-destinationrule-require-websocket-long-lived-connections"
GCP_HEADERS = "gcp-compute-disallow-auth-header-rewrite"
PLACEHOLDERS = "gcp-compute-disallow-unexpanded-header-placeholders"
KC_REPLICAS = "keycloak-workload-require-ha-replicas"
JWT_PUBLIC = "istio-security-v1-authorizationpolicy-require-jwt-on-public-routes"
ISTIO_HEADERS = "istio-resource-disallow-auth-header-changes"
BACKENDS = "https://www.googleapis.com/compute/v1/projects/aiwfe-prod/global/backendServices/"
WS_BACKEND, WEB_BACKEND = BACKENDS + "aiwfe-websocket", BACKENDS + "aiwfe-web"
PDB = "kubernetes-workload-require-disruption-budget"

PROD = stack_pack_config("prod")
STAGING = stack_pack_config("staging")
CONTAINER = "spec.template.spec.containers.0."
ISSUER = "https://auth.aiwfe.example.com/realms/aiwfe-production"


def prod(edits: dict[str, dict[str, Any]] | None = None, **changes: Any) -> list[Wire]:
    return rendered_wires("prod", edits, **changes)


def with_target(rule: str, option: str, value: int) -> dict[str, Any]:
    """Prod's pack config with one target raised."""
    config = json.loads(json.dumps(PROD))
    config[rule][option] = value
    return config


def routes() -> list[dict[str, Any]]:
    doc = {r["name"]: r for r in rendered_document("prod")["resources"]}
    return list(doc["mesh-product-routes"]["props"]["spec"]["http"])


def conf_data() -> dict[str, str]:
    doc = {r["name"]: r for r in rendered_document("prod")["resources"]}
    return dict(doc["redis-cluster-config"]["props"]["data"])


def resource_props(name: str) -> dict[str, Any]:
    return json.loads(json.dumps(next(r for r in rendered_document("prod")["resources"] if r["name"] == name)["props"]))


def route_rules(*rules: tuple[float, dict[str, Any], str]) -> dict[str, Any]:
    """The product path matcher routing by route rules (GCP allows them or path rules, not both)."""
    return {"pathMatchers.0.pathRules": DELETE, "pathMatchers.0.routeRules": [
        {"priority": priority, "matchRules": [match], "service": service} for priority, match, service in rules]}


def websocket_match(**extra: Any) -> list[dict[str, Any]]:
    return [{**m, **extra} for m in routes()[0]["match"]]


def websocket_env_without_connections() -> list[dict[str, Any]]:
    env = resource_props("websocket-deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    return [e for e in env if e["name"] != "MAX_CONNECTIONS_PER_POD"]


def websocket_pod_annotations() -> dict[str, str]:
    doc = {r["name"]: r for r in rendered_document("prod")["resources"]}
    return dict(doc["websocket-deployment"]["props"]["spec"]["template"]["metadata"]["annotations"])


def conf() -> str:
    return conf_data()["redis.conf"]


def mesh_wide_strict(namespace: str = "istio-system") -> Wire:
    return Wire("kubernetes:security.istio.io/v1:PeerAuthentication", "mesh-wide-mtls", {
        "apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": namespace}, "spec": {"mtls": {"mode": "STRICT"}}})


LUA_FILTER = Wire("kubernetes:networking.istio.io/v1alpha3:EnvoyFilter", "edge-lua", {
    "apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
    "metadata": {"name": "edge-lua", "namespace": "istio-ingress"},
    "spec": {"workloadSelector": {"labels": {"istio": "ingressgateway"}}, "configPatches": [{
        "applyTo": "HTTP_FILTER", "match": {"context": "GATEWAY"}, "patch": {"operation": "INSERT_BEFORE", "value": {
            "name": "envoy.filters.http.lua", "typedConfig": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                "defaultSourceCode": {"inlineString": "function envoy_on_request(h) end"}}}}}]}})

CASES: list[Case] = [
    # ---------------------------------------------------------------- the WebSocket path
    ok(WS_PATH, "prod-as-rendered", prod(), config=PROD),
    ok(WS_PATH, "staging-as-rendered", rendered_wires("staging"), stack="staging", config=STAGING),
    bad(WS_PATH, "hop1-backend-timeout-30s", prod({"load-balancer-websocket-backend": {"timeoutSec": 30.0}}),
        also=(WS_TIMEOUT,), config=PROD),
    bad(WS_PATH, "hop1-websocket-path-rule-removed", prod({"load-balancer-url-map": {
        "pathMatchers.0.pathRules.0.paths": ["/ws", "/ws/*"]}}), also=(WS_TIMEOUT,), config=PROD),
    bad(WS_PATH, "hop2-route-retries-the-upgrade", prod({"mesh-product-routes": {
        "spec.http.0.retries.attempts": 2.0}}), also=(WS_ROUTE,), config=PROD),
    bad(WS_PATH, "hop2-upgrade-meets-the-426-route-first", prod({"mesh-product-routes": {
        "spec.http": [routes()[1], routes()[0], *routes()[2:]]}}), config=PROD),
    bad(WS_PATH, "hop3-destination-upgrades-to-h2", prod({"mesh-websocket-destination": {
        "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy": "UPGRADE"}}), also=(WS_DESTINATION,), config=PROD),
    bad(WS_PATH, "hop4-service-port-is-opaque-tcp", prod({"websocket-service": {
        "spec.ports.0.appProtocol": "tcp"}}), config=PROD),
    bad(WS_PATH, "hop5-target-port-is-the-health-port", prod({"websocket-service": {
        "spec.ports.0.targetPort": "http-health"}}), config=PROD),
    bad(WS_PATH, "hop5-readiness-on-the-websocket-port", prod({"websocket-deployment": {
        CONTAINER + "readinessProbe.httpGet.port": "http-ws"}}), config=PROD),
    # GCP's and Envoy's own matching: priorities, longest path, header conditions, other criteria.
    ok(WS_PATH, "route-rules-in-priority-order", prod({"load-balancer-url-map": route_rules(
        (1.0, {"prefixMatch": "/ws"}, WS_BACKEND), (2.0, {"prefixMatch": "/websocket"}, WS_BACKEND),
        (3.0, {"prefixMatch": "/"}, WEB_BACKEND))}), config=PROD),
    bad(WS_PATH, "catch-all-route-rule-at-a-higher-priority", prod({"load-balancer-url-map": route_rules(
        (2.0, {"prefixMatch": "/ws"}, WS_BACKEND), (3.0, {"prefixMatch": "/websocket"}, WS_BACKEND),
        (1.0, {"prefixMatch": "/"}, WEB_BACKEND))}), also=(WS_TIMEOUT,), config=PROD),
    bad(WS_PATH, "websocket-route-rule-needs-a-canary-header", prod({"load-balancer-url-map": route_rules(
        (1.0, {"prefixMatch": "/ws", "headerMatches": [{"headerName": "x-canary", "exactMatch": "1"}]}, WS_BACKEND),
        (2.0, {"prefixMatch": "/websocket"}, WS_BACKEND), (3.0, {"prefixMatch": "/"}, WEB_BACKEND))}),
        also=(WS_TIMEOUT,), config=PROD),
    ok(WS_PATH, "longest-path-rule-beats-a-catch-all", prod({"load-balancer-url-map": {
        "pathMatchers.0.pathRules": [{"paths": ["/*"], "service": WEB_BACKEND},
                                     *resource_props("load-balancer-url-map")["pathMatchers"][0]["pathRules"]]}}),
        config=PROD),
    bad(WS_PATH, "only-sub-paths-routed-bare-ws-goes-to-web", prod({"load-balancer-url-map": {
        "pathMatchers.0.pathRules.0.paths": ["/ws/*", "/websocket/*"]}}), also=(WS_TIMEOUT,), config=PROD),
    ok(WS_PATH, "websocket-route-also-matching-method-and-gateway", prod({"mesh-product-routes": {
        "spec.http.0.match": websocket_match(method={"exact": "GET"}, gateways=["istio-ingress/aiwfe-gateway"])}}),
        config=PROD),
    bad(WS_PATH, "earlier-catch-all-route-by-authority-with-a-timeout", prod({"mesh-product-routes": {
        "spec.http": [{"name": "catch-all", "match": [{"authority": {"exact": "aiwfe.example.com"},
                                                       "uri": {"prefix": "/"}}], "timeout": "30s",
                       "retries": {"attempts": 0.0},
                       "route": [{"destination": {"host": "user-frontend.aiwfe.svc.cluster.local",
                                                  "port": {"number": 80.0}}}]}, *routes()]}}), config=PROD),
    ok(WS_PATH, "idle-timeouts-turned-off", prod({"mesh-websocket-destination": {
        "spec.trafficPolicy.connectionPool.tcp.idleTimeout": "0s",
        "spec.trafficPolicy.connectionPool.http.idleTimeout": "0s"}}), config=PROD),
    ok(WS_PATH, "url-map-host-rule-for-every-host", prod({"load-balancer-url-map": {
        "hostRules.0.hosts": ["*"]}}), config=PROD),
    bad(WS_PATH, "route-to-an-undefined-subset", prod({"mesh-product-routes": {
        "spec.http.0.route.0.destination.subset": "nope"}}), also=(WS_DESTINATION,), config=PROD),
    ok(WS_PATH, "route-without-a-port-to-a-single-port-service", prod({
        "mesh-product-routes": {"spec.http.0.route.0.destination.port": DELETE},
        "websocket-service": {"spec.ports": [resource_props("websocket-service")["spec"]["ports"][0]]}}),
        config=PROD),
    bad(WS_PATH, "port-level-h2-upgrade-applies-to-a-route-without-a-port", prod({
        "mesh-product-routes": {"spec.http.0.route.0.destination.port": DELETE},
        "websocket-service": {"spec.ports": [resource_props("websocket-service")["spec"]["ports"][0]]},
        "mesh-websocket-destination": {"spec.trafficPolicy.portLevelSettings": [{
            "port": {"number": 8080.0}, "outlierDetection": {"consecutive5xxErrors": 5.0},
            "connectionPool": {"tcp": {"idleTimeout": "7200s"},
                               "http": {"h2UpgradePolicy": "UPGRADE", "idleTimeout": "7200s"}}}]}}),
        also=(WS_DESTINATION,), config=PROD),
    # A short name in match.gateways means a gateway in the VirtualService's own namespace.
    bad(WS_PATH, "match-gateways-short-name-is-another-gateway", prod({"mesh-product-routes": {
        "spec.http.0.match": websocket_match(gateways=["aiwfe-gateway"])}}), config=PROD),
    bad(WS_PATH, "destination-rule-in-an-unrelated-namespace", prod({"mesh-websocket-destination": {
        "metadata.namespace": "monitoring"}}), config=PROD),
    bad(WS_PATH, "virtual-service-bound-to-the-mesh-only", prod({"mesh-product-routes": {
        "spec.gateways": ["mesh"]}}), config=PROD),
    bad(WS_PATH, "subset-with-a-one-minute-idle-timeout", prod({
        "mesh-websocket-destination": {"spec.subsets": [{"name": "v2", "labels": {"version": "2.4.1"},
                                                         "trafficPolicy": {"connectionPool": {
                                                             "tcp": {"idleTimeout": "60s"}}}}]},
        "mesh-product-routes": {"spec.http.0.route.0.destination.subset": "v2"}}), also=(WS_DESTINATION,),
        config=PROD),

    # ---------------------------------------------------------------- the auth path
    ok(AUTH_PATH, "prod-as-rendered", prod(), config=PROD),
    ok(AUTH_PATH, "staging-as-rendered", rendered_wires("staging"), stack="staging", config=STAGING),
    bad(AUTH_PATH, "issuer-of-another-realm", prod({"mesh-edge-jwt": {
        "spec.jwtRules.0.issuer": "https://auth.aiwfe.example.com/realms/other",
        "spec.jwtRules.0.jwksUri": "https://auth.aiwfe.example.com/realms/other/protocol/openid-connect/certs"}}),
        config=PROD),
    bad(AUTH_PATH, "jwks-not-the-realm-certs", prod({"mesh-websocket-jwt": {
        "spec.jwtRules.0.jwksUri": f"{ISSUER}/protocol/openid-connect/keys"}}), config=PROD),
    bad(AUTH_PATH, "gateway-ignores-the-websocket-protocol-token", prod({"mesh-edge-jwt": {
        "spec.jwtRules.0.fromHeaders": [{"name": "Authorization", "prefix": "Bearer "}]}}), config=PROD),
    bad(AUTH_PATH, "url-map-adds-authorization-literal", prod({"load-balancer-url-map": {
        "pathMatchers.0.headerAction": {"requestHeadersToAdds": [
            {"headerName": "Authorization", "headerValue": "$http_authorization", "replace": True}]}}}),
        also=(GCP_HEADERS, PLACEHOLDERS), config=PROD),
    bad(AUTH_PATH, "envoy-filter-runs-lua-on-the-gateway", prod(add=[LUA_FILTER]), config=PROD),
    ok(AUTH_PATH, "jwks-from-the-issuers-discovery", prod({"mesh-websocket-jwt": {
        "spec.jwtRules.0.jwksUri": DELETE}}), config=PROD),
    ok(AUTH_PATH, "kc-hostname-without-a-scheme", prod({"keycloak-deployment": {
        CONTAINER + "env.0.value": "auth.aiwfe.example.com"}}), config=PROD),
    bad(AUTH_PATH, "kc-hostname-from-a-secret", prod({"keycloak-deployment": {
        CONTAINER + "env.0": {"name": "KC_HOSTNAME", "valueFrom": {"secretKeyRef": {"name": "kc", "key": "h"}}}}}),
        config=PROD),
    bad(AUTH_PATH, "deny-rule-only-when-a-header-says-so", prod({"mesh-edge-require-jwt": {
        "spec.rules.0.when": [{"key": "request.headers[x-enforce-auth]", "values": ["yes"]}]}}),
        also=(JWT_PUBLIC,), config=PROD),
    bad(AUTH_PATH, "response-loses-the-websocket-protocol", prod({"mesh-product-routes": {
        "spec.http.0.headers": {"response": {"remove": ["Sec-WebSocket-Protocol"]}}}}),
        also=(ISTIO_HEADERS,), config=PROD),
    ok(AUTH_PATH, "envoy-filter-without-lua-or-auth-headers", prod(add=[Wire(
        "kubernetes:networking.istio.io/v1alpha3:EnvoyFilter", "stats-tags", {
            "apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
            "metadata": {"name": "stats-tags", "namespace": "istio-ingress"},
            "spec": {"configPatches": [{"applyTo": "LISTENER", "patch": {"operation": "MERGE", "value": {
                "per_connection_buffer_limit_bytes": 32768.0, "stat_prefix": "evaluated_listener"}}}]}})]),
        config=PROD),
    bad(AUTH_PATH, "websocket-listed-as-anonymous", prod({"mesh-edge-require-jwt": {
        "spec.rules.0.to.0.operation.notPaths": ["/user", "/user/*", "/admin", "/admin/*", "/ws", "/ws/*"]}}),
        config=PROD),

    # ---------------------------------------------------------------- capacity
    ok(WS_CAPACITY, "prod-holds-10000", prod(), config=PROD),
    ok(WS_CAPACITY, "staging-holds-its-2000", rendered_wires("staging"), stack="staging", config=STAGING),
    bad(WS_CAPACITY, "hpa-max-5", prod({"websocket-autoscaler": {"spec.maxReplicas": 5.0}}), config=PROD),
    bad(WS_CAPACITY, "500-connections-per-pod", prod({"workloads-app-config": {
        "data.MAX_CONNECTIONS_PER_POD": "500"}}), config=PROD),
    bad(WS_CAPACITY, "mesh-caps-at-1000", prod({"mesh-websocket-destination": {
        "spec.trafficPolicy.connectionPool.tcp.maxConnections": 1000.0}}), config=PROD),
    ok(WS_CAPACITY, "connections-per-pod-through-env-from", prod({"websocket-deployment": {
        CONTAINER + "env": websocket_env_without_connections(),
        CONTAINER + "envFrom": [{"configMapRef": {"name": "app-config"}}]}}), config=PROD),
    bad(WS_CAPACITY, "active-request-cap-of-100", prod({"mesh-websocket-destination": {
        "spec.trafficPolicy.connectionPool.http.http2MaxRequests": 100.0}}), config=PROD),
    bad(WS_CAPACITY, "port-level-pool-caps-8080-at-100", prod({"mesh-websocket-destination": {
        "spec.trafficPolicy.portLevelSettings": [{"port": {"number": 8080.0}, "connectionPool": {
            "tcp": {"maxConnections": 100.0, "idleTimeout": "7200s"},
            "http": {"h2UpgradePolicy": "DO_NOT_UPGRADE", "idleTimeout": "7200s"}}}]}}),
        # Port-level settings replace every part: this port also loses its outlier detection.
        also=(WS_PATH,), config=PROD),
    bad(WS_CAPACITY, "a-subset-capped-at-100", prod({
        "mesh-websocket-destination": {"spec.subsets": [{"name": "v2", "labels": {"version": "2.4.1"},
                                                         "trafficPolicy": {"connectionPool": {
                                                             "tcp": {"maxConnections": 100.0, "idleTimeout": "7200s"},
                                                             "http": {"idleTimeout": "7200s"}}}}]},
        "mesh-product-routes": {"spec.http.0.route.0.destination.subset": "v2"}}), config=PROD),
    bad(WS_CAPACITY, "target-above-the-ceiling", prod(), config=with_target(
        WS_CAPACITY, "targetConcurrentConnections", 20_000)),
    # Staging's level is advisory: the violation is reported as a warning.
    bad(WS_CAPACITY, "staging-warns-under-its-target", rendered_wires("staging", {"workloads-app-config": {
        "data.MAX_CONNECTIONS_PER_POD": "100"}}), stack="staging", config=STAGING),

    ok(KC_CAPACITY, "prod-covers-10000-per-minute-with-one-down", prod(), config=PROD),
    ok(KC_CAPACITY, "staging-covers-its-2000", rendered_wires("staging"), stack="staging", config=STAGING),
    bad(KC_CAPACITY, "cpu-limit-3", prod({"keycloak-deployment": {CONTAINER + "resources.limits.cpu": "3"}}),
        config=PROD),
    bad(KC_CAPACITY, "two-replicas", prod({"keycloak-deployment": {"spec.replicas": 2.0}}),
        also=(KC_REPLICAS, PDB), config=PROD),
    bad(KC_CAPACITY, "all-password-logins", prod(), config=with_target(KC_CAPACITY, "passwordLoginPercent", 100)),

    ok(REDIS_CAPACITY, "prod-holds-16gi", prod(), config=PROD),
    ok(REDIS_CAPACITY, "staging-holds-its-512mi", rendered_wires("staging"), stack="staging", config=STAGING),
    # (`data` whole: the key `redis.conf` has a dot, which an edit path would split.)
    bad(REDIS_CAPACITY, "maxmemory-4gi", prod({"redis-cluster-config": {"data": {**conf_data(), "redis.conf": conf(
        ).replace(f"maxmemory {8 * 2**30}\n", f"maxmemory {4 * 2**30}\n")}}}), config=PROD),
    bad(REDIS_CAPACITY, "target-32gi", prod(),
        config=with_target(REDIS_CAPACITY, "targetSessionDataBytes", 32 * 2**30)),

    # ---------------------------------------------------------------- protection (prod only)
    ok(STATEFUL, "prod-as-rendered", prod(), config=PROD),
    ok(STATEFUL, "staging-is-not-judged", rendered_wires("staging", protect={
        r["name"]: False for r in rendered_document("staging")["resources"]}), stack="staging", config=STAGING),
    bad(STATEFUL, "redis-statefulset-unprotected", prod(protect={"redis-cluster-statefulset-b": False}), config=PROD),
    bad(STATEFUL, "redis-namespace-unprotected", prod(protect={"redis-cluster-namespace": False}), config=PROD),
    bad(STATEFUL, "static-ip-unprotected", prod(protect={"load-balancer-address": False}), config=PROD),
    bad(STATEFUL, "keycloak-database-unprotected", prod(protect={"keycloak-sql-database": False}), config=PROD),

    # ---------------------------------------------------------------- mesh coverage of namespaces
    ok(STRICT_NAMESPACES, "prod-as-rendered", prod(), config=PROD),
    ok(STRICT_NAMESPACES, "one-mesh-wide-strict-policy-covers-all", prod(
        drop=PEER_AUTHENTICATIONS, add=[mesh_wide_strict()]), config=PROD),
    ok(STRICT_NAMESPACES, "staging-is-not-judged", rendered_wires("staging", drop=(
        "mesh-app-peer-authentication",)), stack="staging", config=STAGING),
    bad(STRICT_NAMESPACES, "app-namespace-policy-deleted", prod(drop=("mesh-app-peer-authentication",)), config=PROD),
    bad(STRICT_NAMESPACES, "mesh-wide-policy-outside-the-root-namespace", prod(
        drop=PEER_AUTHENTICATIONS, add=[mesh_wide_strict("aiwfe")]), config=PROD),

    ok(AUTHZ_PER_NAMESPACE, "prod-as-rendered", prod(), config=PROD),
    ok(AUTHZ_PER_NAMESPACE, "staging-as-rendered", rendered_wires("staging"), stack="staging", config=STAGING),
    bad(AUTHZ_PER_NAMESPACE, "redis-namespace-without-policies", prod(drop=(
        "mesh-redis-allow-nothing", "mesh-redis-authorization")), config=PROD),

    ok(INJECTION, "prod-as-rendered", prod(), config=PROD),
    bad(INJECTION, "namespace-injection-disabled", prod({"app-namespace": {
        "metadata.labels.istio-injection": "disabled"}}), config=PROD),
    bad(INJECTION, "websocket-pods-opt-out", prod({"websocket-deployment": {"spec.template.metadata.annotations": {
        **websocket_pod_annotations(), "sidecar.istio.io/inject": "false"}}}), config=PROD),
]


def test_the_maxmemory_edit_applies() -> None:
    """The redis.conf case above changes the file (its line must exist for the edit to bite)."""
    assert f"maxmemory {8 * 2**30}\n" in conf()


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_each_stack_config_sets_the_levels_its_settings_ask_for(stack: str) -> None:
    config = stack_pack_config(stack)
    levels = {name: entry.get("enforcementLevel") for name, entry in config.items() if isinstance(entry, dict)}
    if stack == "prod":
        assert config["all"] == MANDATORY and ADVISORY not in levels.values()
    else:
        assert {n for n, level in levels.items() if level == ADVISORY} == {WS_CAPACITY, KC_CAPACITY, REDIS_CAPACITY}


def test_advisory_violation_does_not_fail_the_stack() -> None:
    case = next(c for c in CASES if c.why == "staging-warns-under-its-target")
    report = run(case)
    assert report.violations and all(v.enforcement == ADVISORY for v in report.violations)
    assert report.mandatory_failures == []
    assert report.status(WS_CAPACITY) == "WARN"


def test_websocket_path_names_the_hop_and_both_resources() -> None:
    case = next(c for c in CASES if c.why == "hop4-service-port-is-opaque-tcp")
    (violation,) = [v for v in run(case).violations if v.policy == WS_PATH]
    assert "hop 4 DestinationRule aiwfe/websocket -> Service aiwfe/websocket" in violation.message
    assert violation.urn.endswith("::websocket-service")
