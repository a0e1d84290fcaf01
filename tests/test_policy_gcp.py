"""GCP load balancer rules judged on a known-good HTTPS LB (wire form) and one-change mutations of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.aiwfe_policies.contract import MIN_WEBSOCKET_TIMEOUT_SECONDS
from policies.aiwfe_policies.rules.gcp import (
    BACKEND_SERVICE,
    GLOBAL_FORWARDING_RULE,
    SECURITY_POLICY,
    SSL_POLICY,
    TARGET_HTTP_PROXY,
    TARGET_HTTPS_PROXY,
    URL_MAP,
)
from tests.policy_cases import Case, bad, ok
from tests.policy_fixtures import BASE, DELETE, Wire, change, gcp_backend

WS_PATH = "platform-websocket-path-require-long-lived-end-to-end"
AUTH_PATH = "platform-auth-path-require-keycloak-jwt-and-untouched-headers"
WS_TIMEOUT = "gcp-compute-websocket-backend-require-long-timeout"
WS_PROTOCOL = "gcp-compute-websocket-backend-disallow-iap-and-http2"
AUTH_HEADERS = "gcp-compute-disallow-auth-header-rewrite"
PLACEHOLDERS = "gcp-compute-disallow-unexpanded-header-placeholders"
TLS = "gcp-compute-require-tls-1-2"
REDIRECT = "gcp-compute-require-https-redirect"
LOGGING = "gcp-compute-backendservice-require-logging"
ARMOR = "gcp-compute-backendservice-require-cloud-armor"
HEALTH = "gcp-compute-backendservice-require-health-check"

WS_LINK = BASE + "backendServices/aiwfe-websocket"
WEB_LINK = BASE + "backendServices/aiwfe-web"


def url_map() -> dict[str, Any]:
    return {
        "name": "aiwfe-https",
        "defaultService": WEB_LINK,
        "hostRules": [{"hosts": ["aiwfe.example.com"], "pathMatcher": "product"},
                      {"hosts": ["auth.aiwfe.example.com"], "pathMatcher": "auth"}],
        "pathMatchers": [
            {"name": "product", "defaultService": WEB_LINK, "pathRules": [
                {"paths": ["/ws", "/ws/*", "/websocket", "/websocket/*"], "service": WS_LINK},
                {"paths": ["/user", "/user/*", "/admin", "/admin/*"], "service": WEB_LINK}]},
            {"name": "auth", "defaultService": WEB_LINK},
        ],
    }


def lb(edits: Mapping[str, Mapping[str, Any]] | None = None, without: tuple[str, ...] = ()) -> list[Wire]:
    """The known-good LB; `edits` maps a Pulumi name to dotted-path edits, `without` drops names."""
    parts = [
        Wire(BACKEND_SERVICE, "websocket-backend",
             gcp_backend("aiwfe-websocket", float(MIN_WEBSOCKET_TIMEOUT_SECONDS))),
        Wire(BACKEND_SERVICE, "web-backend", gcp_backend("aiwfe-web", 30.0)),
        Wire(URL_MAP, "url-map", url_map()),
        Wire(SECURITY_POLICY, "security-policy", {"name": "aiwfe-edge-policy", "type": "CLOUD_ARMOR", "rules": [
            {"priority": 2147483647.0, "action": "allow",
             "match": {"versionedExpr": "SRC_IPS_V1", "config": {"srcIpRanges": ["*"]}}}]}),
        Wire(SSL_POLICY, "ssl-policy", {"name": "aiwfe-tls12", "minTlsVersion": "TLS_1_2", "profile": "MODERN"}),
        Wire(TARGET_HTTPS_PROXY, "https-proxy", {
            "name": "aiwfe-https", "urlMap": BASE + "urlMaps/aiwfe-https",
            "sslPolicy": BASE + "sslPolicies/aiwfe-tls12",
            "sslCertificates": [BASE + "sslCertificates/aiwfe-edge-cert"]}),
        Wire(URL_MAP, "http-redirect", {"name": "aiwfe-http-redirect", "defaultUrlRedirect": {
            "httpsRedirect": True, "stripQuery": False}}),
        Wire(TARGET_HTTP_PROXY, "http-proxy", {"name": "aiwfe-http-redirect",
                                               "urlMap": BASE + "urlMaps/aiwfe-http-redirect"}),
        Wire(GLOBAL_FORWARDING_RULE, "https-rule", {"name": "aiwfe-https", "portRange": "443",
                                                    "loadBalancingScheme": "EXTERNAL_MANAGED",
                                                    "target": BASE + "targetHttpsProxies/aiwfe-https"}),
        Wire(GLOBAL_FORWARDING_RULE, "http-rule", {"name": "aiwfe-http-redirect", "portRange": "80",
                                                   "loadBalancingScheme": "EXTERNAL_MANAGED",
                                                   "target": BASE + "targetHttpProxies/aiwfe-http-redirect"}),
    ]
    edits = edits or {}
    return [Wire(w.type, w.name, change(w.props, edits.get(w.name, {}))) for w in parts if w.name not in without]


def header_action(**action: Any) -> dict[str, Any]:
    return {"headerAction": action}


def add(name: str, value: str) -> list[dict[str, Any]]:
    return [{"headerName": name, "headerValue": value, "replace": True}]


WS = "websocket-backend"
PRODUCT = "pathMatchers.0."

CASES: list[Case] = [
    ok(WS_TIMEOUT, "at-the-minimum", lb()),
    ok(WS_TIMEOUT, "web-backend-may-be-short", lb({"web-backend": {"timeoutSec": 10.0}})),
    bad(WS_TIMEOUT, "default-30s", lb({WS: {"timeoutSec": DELETE}}), also=(WS_PATH,)),
    bad(WS_TIMEOUT, "one-second-below", lb({WS: {"timeoutSec": float(MIN_WEBSOCKET_TIMEOUT_SECONDS - 1)}}),
        also=(WS_PATH,)),
    bad(WS_TIMEOUT, "ws-routed-to-short-web-backend", lb({"url-map": {PRODUCT + "pathRules.0.service": WEB_LINK}}),
        also=(WS_PATH,)),
    bad(WS_TIMEOUT, "route-rule-prefix-ws-to-short-backend", lb({"url-map": {PRODUCT + "pathRules": DELETE,
        PRODUCT + "routeRules": [{"priority": 1.0, "service": WEB_LINK, "matchRules": [{"prefixMatch": "/ws"}]}]}}),
        also=(WS_PATH,)),
    bad(WS_TIMEOUT, "ws-routed-to-undeclared-backend",
        lb({"url-map": {PRODUCT + "pathRules.0.service": BASE + "backendServices/elsewhere"}}), also=(WS_PATH,)),

    ok(WS_PROTOCOL, "http", lb()),
    ok(WS_PROTOCOL, "iap-on-web-only", lb({"web-backend": {"iap": {"enabled": True}}})),
    bad(WS_PROTOCOL, "http2", lb({WS: {"protocol": "HTTP2"}}), also=(WS_PATH,)),
    bad(WS_PROTOCOL, "iap", lb({WS: {"iap": {"enabled": True, "oauth2ClientId": "x"}}}), also=(WS_PATH,)),

    ok(AUTH_HEADERS, "only-geo-headers", lb()),
    ok(AUTH_HEADERS, "response-header-on-path-matcher",
       lb({"url-map": {PRODUCT + "headerAction": {"responseHeadersToAdds": add("X-Frame-Options", "DENY")}}})),
    bad(AUTH_HEADERS, "url-map-adds-authorization",
        lb({"url-map": {"headerAction": {"requestHeadersToAdds": add("Authorization", "{tls_version}")}}}),
        also=(AUTH_PATH,)),
    bad(AUTH_HEADERS, "path-matcher-removes-sec-websocket-protocol",
        lb({"url-map": {PRODUCT + "headerAction": {"requestHeadersToRemoves": ["Sec-WebSocket-Protocol"]}}}),
        also=(AUTH_PATH,)),
    bad(AUTH_HEADERS, "route-rule-replaces-upgrade", lb({"url-map": {PRODUCT + "routeRules": [
        {"priority": 1.0, "service": WEB_LINK, "matchRules": [{"prefixMatch": "/api"}],
         **header_action(requestHeadersToAdds=add("upgrade", "h2c"))}]}}), also=(AUTH_PATH,)),
    bad(AUTH_HEADERS, "weighted-backend-removes-connection", lb({"url-map": {"defaultService": DELETE,
        "defaultRouteAction": {"weightedBackendServices": [
            {"backendService": WEB_LINK, "weight": 100.0,
             **header_action(requestHeadersToRemoves=["Connection"])}]}}}), also=(AUTH_PATH,)),
    bad(AUTH_HEADERS, "backend-custom-authorization",
        lb({"web-backend": {"customRequestHeaders": ["Authorization:Bearer {client_region}"]}}), also=(AUTH_PATH,)),
    bad(AUTH_HEADERS, "armor-rule-adds-authorization", lb({"security-policy": {"rules.0.headerAction": {
        "requestHeadersToAdds": [{"headerName": "Authorization", "headerValue": "x"}]}}})),

    ok(PLACEHOLDERS, "known-variables", lb({WS: {"customRequestHeaders": [
        "X-Client-Geo:{client_region},{client_city}", "X-TLS:{tls_version}"]}})),
    bad(PLACEHOLDERS, "nginx-http-variable", lb({"url-map": {PRODUCT + "headerAction": {
        "requestHeadersToAdds": add("X-Original-Auth", "$http_authorization")}}})),
    bad(PLACEHOLDERS, "dollar-brace-in-backend-header",
        lb({"web-backend": {"customRequestHeaders": ["X-Real-IP:${remote_addr}"]}})),
    bad(PLACEHOLDERS, "unknown-brace-variable",
        lb({WS: {"customRequestHeaders": ["X-Client-IP:{client_ip}"]}})),

    ok(TLS, "tls-1-2-modern", lb()),
    ok(TLS, "tls-1-3-restricted", lb({"ssl-policy": {"minTlsVersion": "TLS_1_3", "profile": "RESTRICTED"}})),
    bad(TLS, "tls-1-0", lb({"ssl-policy": {"minTlsVersion": "TLS_1_0"}})),
    bad(TLS, "min-unset", lb({"ssl-policy": {"minTlsVersion": DELETE}})),
    bad(TLS, "compatible-profile", lb({"ssl-policy": {"profile": "COMPATIBLE"}})),
    bad(TLS, "proxy-without-ssl-policy", lb({"https-proxy": {"sslPolicy": DELETE}})),

    ok(REDIRECT, "port-80-redirects", lb()),
    bad(REDIRECT, "no-port-80-rule", lb(without=("http-rule",))),
    bad(REDIRECT, "http-proxy-serves-the-app", lb({"http-proxy": {"urlMap": BASE + "urlMaps/aiwfe-https"}})),
    bad(REDIRECT, "redirect-without-https", lb({"http-redirect": {"defaultUrlRedirect.httpsRedirect": False}})),

    ok(LOGGING, "enabled", lb()),
    ok(LOGGING, "sample-rate-unset-defaults-to-all", lb({WS: {"logConfig.sampleRate": DELETE}})),
    bad(LOGGING, "disabled", lb({WS: {"logConfig.enable": False}})),
    bad(LOGGING, "no-log-config", lb({"web-backend": {"logConfig": DELETE}})),
    bad(LOGGING, "sample-rate-zero", lb({"web-backend": {"logConfig.sampleRate": 0.0}})),

    ok(ARMOR, "attached", lb()),
    ok(ARMOR, "internal-backend-needs-none",
       lb({"web-backend": {"securityPolicy": DELETE, "loadBalancingScheme": "INTERNAL_MANAGED"}})),
    bad(ARMOR, "missing-on-websocket-backend", lb({WS: {"securityPolicy": DELETE}})),
    bad(ARMOR, "missing-with-default-scheme",
        lb({"web-backend": {"securityPolicy": DELETE, "loadBalancingScheme": DELETE}})),

    ok(HEALTH, "gateway-readiness", lb()),
    bad(HEALTH, "missing", lb({"web-backend": {"healthChecks": DELETE}})),
    bad(HEALTH, "empty", lb({WS: {"healthChecks": ""}})),
]
