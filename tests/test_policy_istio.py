"""Istio policy rules judged on a known-good edge (the shape the Mesh component renders) and on
one-change mutations of it. Every case runs the whole pack (see tests/policy_cases.py)."""

from __future__ import annotations

from typing import Any

import pytest

from policies.aiwfe_policies.model.authz import authz_pattern_matches
from policies.aiwfe_policies.model.destination import duration_seconds
from policies.aiwfe_policies.rules.istio import service_fqdn
from tests.policy_cases import bad, ok
from tests.policy_fixtures import DELETE, Wire, change, gcp_backend

WS_PATH = "platform-websocket-path-require-long-lived-end-to-end"
AUTH_PATH = "platform-auth-path-require-keycloak-jwt-and-untouched-headers"
STRICT = "istio-security-v1-peerauthentication-require-strict-mtls"
WS_ROUTE = "istio-networking-v1-virtualservice-require-websocket-route-without-timeout-and-retries"
WS_DESTINATION = "istio-networking-v1-destinationrule-require-websocket-long-lived-connections"
OUTLIER = "istio-networking-v1-destinationrule-require-outlier-detection"
DEPRECATED = "istio-resource-disallow-deprecated-fields"
WILDCARD = "istio-networking-v1-disallow-wildcard-hosts"
JWT = "istio-security-v1-authorizationpolicy-require-jwt-on-public-routes"
AUTH_HEADERS = "istio-resource-disallow-auth-header-changes"

NETWORKING = "kubernetes:networking.istio.io/v1:"
SECURITY = "kubernetes:security.istio.io/v1:"
GATEWAY, VS, DR = NETWORKING + "Gateway", NETWORKING + "VirtualService", NETWORKING + "DestinationRule"
PA, RA, AP = SECURITY + "PeerAuthentication", SECURITY + "RequestAuthentication", SECURITY + "AuthorizationPolicy"
BACKEND_SERVICE = "gcp:compute/backendService:BackendService"

HOST = "aiwfe.example.com"
ISSUER = "https://auth.aiwfe.example.com/realms/aiwfe-production"
GATEWAY_LABELS = {"istio": "ingressgateway"}
RETRIES = {"attempts": 3.0, "perTryTimeout": "30s", "retryOn": "5xx,reset,connect-failure,refused-stream"}


def meta(name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace}


def gateway() -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": meta("aiwfe-gateway", "istio-ingress"),
            "spec": {"selector": dict(GATEWAY_LABELS),
                     "servers": [{"port": {"number": 80.0, "name": "http", "protocol": "HTTP"},
                                  "hosts": [f"aiwfe/{HOST}"]}]}}


def ws_match(uri: dict[str, str]) -> dict[str, Any]:
    return {"uri": uri, "headers": {"upgrade": {"regex": "(?i)websocket"}}}


def virtual_service() -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": meta("aiwfe-product", "aiwfe"),
            "spec": {"hosts": [HOST], "gateways": ["istio-ingress/aiwfe-gateway"], "http": [
                {"name": "websocket", "match": [ws_match({"exact": "/ws"}), ws_match({"prefix": "/ws/"})],
                 "route": [{"destination": {"host": "websocket.aiwfe.svc.cluster.local", "port": {"number": 8080.0}}}],
                 "retries": {"attempts": 0.0}},
                {"name": "websocket-upgrade-required", "match": [{"uri": {"prefix": "/ws"}}],
                 "directResponse": {"status": 426.0}},
                {"name": "user-frontend", "match": [{"uri": {"exact": "/user"}}, {"uri": {"prefix": "/user/"}}],
                 "route": [{"destination": {"host": "user-frontend", "port": {"number": 80.0}}}],
                 "retries": dict(RETRIES)},
            ]}}


def websocket_rule() -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": meta("websocket", "aiwfe"),
            "spec": {"host": "websocket.aiwfe.svc.cluster.local", "trafficPolicy": {
                "connectionPool": {"tcp": {"maxConnections": 10000.0, "idleTimeout": "3600s"},
                                   "http": {"idleTimeout": "1h", "h2UpgradePolicy": "DO_NOT_UPGRADE"}},
                "outlierDetection": {"consecutive5xxErrors": 5.0, "interval": "30s", "baseEjectionTime": "30s",
                                     "maxEjectionPercent": 50.0}}}}


def frontend_rule(host: str = "user-frontend") -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": meta("user-frontend", "aiwfe"),
            "spec": {"host": host, "trafficPolicy": {
                "outlierDetection": {"consecutive5xxErrors": 5.0, "interval": "5s", "baseEjectionTime": "30s",
                                     "maxEjectionPercent": 50.0, "minHealthPercent": 50.0}}}}


def request_authentication() -> dict[str, Any]:
    return {"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
            "metadata": meta("aiwfe-edge-jwt", "istio-ingress"),
            "spec": {"selector": {"matchLabels": dict(GATEWAY_LABELS)}, "jwtRules": [{
                "issuer": ISSUER, "jwksUri": f"{ISSUER}/protocol/openid-connect/certs",
                "fromHeaders": [{"name": "Authorization", "prefix": "Bearer "},
                                {"name": "Sec-WebSocket-Protocol", "prefix": "jwt-auth, jwt."}],
                "forwardOriginalToken": True}]}}


def deny_without_token() -> dict[str, Any]:
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": meta("aiwfe-edge-require-jwt", "istio-ingress"),
            "spec": {"selector": {"matchLabels": dict(GATEWAY_LABELS)}, "action": "DENY", "rules": [{
                "from": [{"source": {"notRequestPrincipals": [f"{ISSUER}/*"]}}],
                "to": [{"operation": {"hosts": [HOST, f"{HOST}:*"], "notPaths": ["/user", "/user/*"]}}]}]}}


def peer_authentication(mode: str = "STRICT") -> dict[str, Any]:
    return {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication", "metadata": meta("default", "aiwfe"),
            "spec": {"mtls": {"mode": mode}}}


def edge(*, gw: dict | None = None, vs: dict | None = None, ws_dr: dict | None = None, fe_dr: dict | None = None,
         ra: dict | None = None, ap: dict | None = None, without: tuple[str, ...] = (),
         extra: tuple[Wire, ...] = ()) -> list[Wire]:
    """The known-good edge with dotted-path edits per object; `without` drops objects by Pulumi name."""
    parts = [
        Wire(GATEWAY, "mesh-gateway", change(gateway(), gw or {})),
        Wire(VS, "mesh-product-routes", change(virtual_service(), vs or {})),
        Wire(DR, "mesh-websocket-destination", change(websocket_rule(), ws_dr or {})),
        Wire(DR, "mesh-user-frontend-destination", change(frontend_rule(), fe_dr or {})),
        Wire(RA, "mesh-edge-jwt", change(request_authentication(), ra or {})),
        Wire(AP, "mesh-edge-require-jwt", change(deny_without_token(), ap or {})),
    ]
    return [w for w in parts if w.name not in without] + list(extra)


def backend_service(timeout: float) -> Wire:
    return Wire(BACKEND_SERVICE, "lb-websocket-backend", gcp_backend("aiwfe-websocket", timeout))


def url_map_to_websocket_backend() -> Wire:
    """The URL map that makes `aiwfe-websocket` the WebSocket backend (its timeout then counts)."""
    backends = "https://www.googleapis.com/compute/v1/projects/aiwfe-prod/global/backendServices/"
    return Wire("gcp:compute/uRLMap:URLMap", "lb-url-map", {
        "name": "aiwfe-https", "defaultService": backends + "aiwfe-websocket",
        "hostRules": [{"hosts": ["aiwfe.example.com"], "pathMatcher": "product"}],
        "pathMatchers": [{"name": "product", "defaultService": backends + "aiwfe-websocket", "pathRules": [
            {"paths": ["/ws", "/ws/*", "/websocket", "/websocket/*"], "service": backends + "aiwfe-websocket"}]}]})


WS = "spec.http.0."
TP = "spec.trafficPolicy."

CASES = [
    # mTLS
    ok(STRICT, "namespace-wide STRICT", [Wire(PA, "pa", peer_authentication())]),
    ok(STRICT, "staging may run PERMISSIVE", [Wire(PA, "pa", peer_authentication("PERMISSIVE"))], stack="staging"),
    ok(STRICT, "workload policy inheriting the namespace",
       [Wire(PA, "pa", change(peer_authentication(), {"spec.mtls": DELETE,
                                                     "spec.selector": {"matchLabels": {"app": "web"}}}))]),
    bad(STRICT, "PERMISSIVE in prod", [Wire(PA, "pa", peer_authentication("PERMISSIVE"))]),
    bad(STRICT, "namespace-wide without a mode inherits the mesh default",
        [Wire(PA, "pa", change(peer_authentication(), {"spec.mtls": DELETE}))]),
    bad(STRICT, "a port opened to plaintext",
        [Wire(PA, "pa", change(peer_authentication(), {"spec.portLevelMtls": {"8081": {"mode": "DISABLE"}}}))]),
    # WebSocket route
    ok(WS_ROUTE, "no timeout (Istio's default is none) and attempts 0", edge()),
    bad(WS_ROUTE, "timeout 0s: the same to Envoy, refused by Istio's CRD (under 1ms)", edge(vs={WS + "timeout": "0s"})),
    bad(WS_ROUTE, "a 30 s route timeout", edge(vs={WS + "timeout": "30s"})),
    bad(WS_ROUTE, "mesh-default retries", edge(vs={WS + "retries": DELETE})),
    bad(WS_ROUTE, "retried upgrades", edge(vs={WS + "retries": dict(RETRIES)})),
    bad(WS_ROUTE, "matched by the Upgrade header alone",
        edge(vs={WS + "match": [{"headers": {"upgrade": {"exact": "websocket"}}}], WS + "timeout": "60s"})),
    # WebSocket destination
    ok(WS_DESTINATION, "long idle timeouts, no h2 upgrade, no request cap", edge()),
    ok(WS_DESTINATION, "as long as the load balancer's timeout", edge(extra=(backend_service(3600.0),))),
    bad(WS_DESTINATION, "h2UpgradePolicy UPGRADE",
        edge(ws_dr={TP + "connectionPool.http.h2UpgradePolicy": "UPGRADE"})),
    bad(WS_DESTINATION, "maxRequestsPerConnection 2",
        edge(ws_dr={TP + "connectionPool.http.maxRequestsPerConnection": 2.0})),
    bad(WS_DESTINATION, "a 5 minute idle timeout", edge(ws_dr={TP + "connectionPool.tcp.idleTimeout": "300s"})),
    bad(WS_DESTINATION, "shorter than the load balancer's 2 h WebSocket timeout",
        edge(extra=(backend_service(7200.0), url_map_to_websocket_backend())), also=(WS_PATH,)),
    ok(WS_DESTINATION, "a 2 h backend the URL map does not send WebSockets to",
        edge(extra=(backend_service(7200.0),))),
    bad(WS_DESTINATION, "no DestinationRule for the WebSocket service",
        edge(without=("mesh-websocket-destination",))),
    # circuit breakers
    ok(OUTLIER, "5 consecutive 5xx", edge()),
    ok(OUTLIER, "an external host is not an app service",
       [Wire(DR, "external", change(frontend_rule("api.stripe.com"), {TP + "outlierDetection": DELETE}))]),
    bad(OUTLIER, "no outlier detection", edge(fe_dr={TP + "outlierDetection": DELETE})),
    bad(OUTLIER, "threshold 0 disables it", edge(fe_dr={TP + "outlierDetection.consecutive5xxErrors": 0.0})),
    # deprecated fields
    ok(DEPRECATED, "v1 APIs, consecutive5xxErrors", edge()),
    bad(DEPRECATED, "consecutiveErrors", edge(fe_dr={TP + "outlierDetection.consecutiveErrors": 5.0})),
    bad(DEPRECATED, "websocketUpgrade", edge(vs={WS + "websocketUpgrade": True})),
    bad(DEPRECATED, "a v1alpha3 API", [Wire(NETWORKING.replace("/v1:", "/v1alpha3:") + "DestinationRule", "old",
                                            frontend_rule())]),
    # wildcard hosts
    ok(WILDCARD, "named hosts", edge()),
    bad(WILDCARD, "a wildcard Gateway server", edge(gw={"spec.servers.0.hosts": ["*/*"]})),
    bad(WILDCARD, "a wildcard VirtualService host", edge(vs={"spec.hosts": ["*.example.com"]}), also=(JWT,)),
    # JWT on public routes
    ok(JWT, "token required except the anonymous frontend", edge()),
    ok(JWT, "a direct response forwards nothing",
       edge(vs={"spec.http": [*virtual_service()["spec"]["http"], {
           "name": "gone", "match": [{"uri": {"prefix": "/old/"}}], "directResponse": {"status": 410.0}}]})),
    bad(JWT, "no DENY policy: RequestAuthentication alone admits token-less requests",
        edge(without=("mesh-edge-require-jwt",))),
    bad(JWT, "Host with a port bypasses a bare host", edge(ap={"spec.rules.0.to.0.operation.hosts": [HOST]})),
    bad(JWT, "a new route outside the policy's path list",
        edge(ap={"spec.rules.0.to.0.operation.notPaths": DELETE,
                 "spec.rules.0.to.0.operation.paths": ["/ws", "/ws/*"]})),
    bad(JWT, "the policy selects other pods than the gateway's",
        edge(ap={"spec.selector.matchLabels": {"istio": "eastwestgateway"}})),
    bad(JWT, "the policy denies only some methods",
        edge(ap={"spec.rules.0.to.0.operation.methods": ["POST"]})),
    bad(JWT, "bound to a gateway the stack does not declare", edge(vs={"spec.gateways": ["istio-ingress/other"]})),
    bad(JWT, "a DENY policy of another API group than Istio's denies nothing",
        edge(without=("mesh-edge-require-jwt",), extra=(Wire("kubernetes:security.example.com/v1:AuthorizationPolicy",
                                                              "mesh-edge-require-jwt", deny_without_token()),))),
    # auth headers
    ok(AUTH_HEADERS, "other headers may be set",
       edge(vs={"spec.http.2.headers": {"request": {"set": {"x-request-source": "edge"}}}})),
    bad(AUTH_HEADERS, "a route replacing Authorization",
        edge(vs={"spec.http.2.headers": {"request": {"set": {"Authorization": "$http_authorization"}}}}),
        also=(AUTH_PATH,)),
    bad(AUTH_HEADERS, "a destination removing Sec-WebSocket-Protocol",
        edge(vs={WS + "route.0.headers": {"request": {"remove": ["sec-websocket-protocol"]}}}), also=(AUTH_PATH,)),
    bad(AUTH_HEADERS, "the JWT filter strips the token header",
        edge(ra={"spec.jwtRules.0.forwardOriginalToken": False}), also=(AUTH_PATH,)),
    bad(AUTH_HEADERS, "default locations (Authorization) without forwarding",
        edge(ra={"spec.jwtRules.0.fromHeaders": DELETE, "spec.jwtRules.0.forwardOriginalToken": DELETE}),
        also=(AUTH_PATH,)),
    bad(AUTH_HEADERS, "a claim written over Authorization",
        edge(ra={"spec.jwtRules.0.outputClaimToHeaders": [{"header": "authorization", "claim": "sub"}]}),
        also=(AUTH_PATH,)),
]



@pytest.mark.parametrize(("text", "seconds"), [("0s", 0), ("30s", 30), ("1.5s", 1.5), ("100ms", 0.1),
                                               ("1h30m", 5400), ("3600s", 3600)])
def test_duration_seconds(text: str, seconds: float) -> None:
    assert duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "30", "1d", "s", "5 s", 30])
def test_duration_seconds_rejects(text: Any) -> None:
    assert duration_seconds(text) is None


@pytest.mark.parametrize(("pattern", "value", "expected"), [
    ("/user/*", "/user/app.js", True), ("/user/*", "/user", False), ("/user", "/user", True),
    ("*", "/anything", True), ("*.js", "/a/b.js", True), ("/ws", "/wsx", False),
])
def test_authz_pattern_semantics(pattern: str, value: str, expected: bool) -> None:
    assert authz_pattern_matches(pattern, value) is expected


def test_host_patterns_are_case_insensitive() -> None:
    assert authz_pattern_matches("AIWFE.example.com:*", "aiwfe.example.com:80", case_insensitive=True)


def test_short_hosts_resolve_in_their_namespace() -> None:
    assert service_fqdn("websocket", "aiwfe") == "websocket.aiwfe.svc.cluster.local"
    assert service_fqdn("websocket.aiwfe", "other") == "websocket.aiwfe.svc.cluster.local"
    assert service_fqdn("keycloak.keycloak.svc.cluster.local", "x") == "keycloak.keycloak.svc.cluster.local"
