"""The GCP load balancer as rendered for each stack: routing, backends, health, firewall, edge policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.load_balancer import LoadBalancer
from policies.aiwfe_policies.contract import GOOGLE_LB_SOURCE_RANGES, MIN_WEBSOCKET_TIMEOUT_SECONDS, PROTECTED_HEADERS
from policies.aiwfe_policies.model import urlmap as router
from tests.conftest import one, resources_of
from tools import render as render_tool
from tools import urlmap

BACKEND = "gcp:compute/backendService:BackendService"
URL_MAP = "gcp:compute/uRLMap:URLMap"


def settings_of(stack: str) -> Any:
    from tests.test_settings import parse, stack_values

    return parse(stack_values(stack), stack)


def resolve(rendered: dict, stack: str, host: str, path: str) -> str:
    """GCP name of the backend service the rendered URL map sends host + path to (a declared one)."""
    backends = urlmap.backends_by_name(rendered[stack].document["resources"])
    url_map = one(rendered[stack], URL_MAP, "load-balancer-url-map")["props"]
    (service,) = router.route(url_map, router.Request(host, path)).services
    return str(backends[service]["props"]["name"])


ROUTES = [
    ("product", "/ws", "aiwfe-websocket"),
    ("product", "/ws/room/1", "aiwfe-websocket"),
    ("product", "/ws/", "aiwfe-websocket"),
    ("product", "/websocket", "aiwfe-websocket"),
    ("product", "/websocket/chat?token=x", "aiwfe-websocket"),
    ("product", "/wsx", "aiwfe-web"),            # a prefix rule is /ws/*, not /ws*
    ("product", "/user/", "aiwfe-web"),
    ("product", "/user", "aiwfe-web"),
    ("product", "/admin/x", "aiwfe-web"),
    ("product", "/", "aiwfe-web"),
    ("product", "/no/such/page", "aiwfe-web"),
    ("auth", "/ws", "aiwfe-web"),
    ("auth", "/ws/room/1", "aiwfe-web"),
    ("auth", "/websocket", "aiwfe-web"),
    ("auth", "/user/", "aiwfe-web"),
    ("auth", "/admin/x", "aiwfe-web"),
    ("auth", "/", "aiwfe-web"),
    ("auth", "/realms/aiwfe/protocol/openid-connect/token", "aiwfe-web"),
    ("unknown", "/ws", "aiwfe-web"),
]


@pytest.mark.parametrize(("host_kind", "path", "backend"), ROUTES, ids=[f"{h}{p}" for h, p, _ in ROUTES])
def test_every_path_routes_to_its_backend(rendered: dict, stack: str, host_kind: str, path: str,
                                          backend: str) -> None:
    s = settings_of(stack)
    host = {"product": s.product_host, "auth": s.auth_host, "unknown": "other.example.org"}[host_kind]
    assert resolve(rendered, stack, host, path) == backend


def test_websocket_backend_timeout_is_the_stack_setting(rendered: dict, stack: str) -> None:
    s = settings_of(stack).load_balancer
    websocket = one(rendered[stack], BACKEND, "load-balancer-websocket-backend")["props"]
    web = one(rendered[stack], BACKEND, "load-balancer-web-backend")["props"]
    assert websocket["timeoutSec"] == s.websocket_timeout_seconds >= MIN_WEBSOCKET_TIMEOUT_SECONDS
    assert web["timeoutSec"] == s.web_timeout_seconds
    assert websocket["sessionAffinity"] == s.session_affinity


def test_backends_are_the_gateway_negs_of_every_zone(rendered: dict, stack: str) -> None:
    s = settings_of(stack)
    for backend in resources_of(rendered[stack], BACKEND):
        props = backend["props"]
        assert props["loadBalancingScheme"] == "EXTERNAL_MANAGED"
        assert props["protocol"] == "HTTP"
        assert "iap" not in props
        assert props["connectionDrainingTimeoutSec"] == s.load_balancer.draining_timeout_seconds
        assert props["logConfig"] == {"enable": True, "sampleRate": s.load_balancer.log_sample_rate}
        groups = [b["group"] for b in props["backends"]]
        assert groups == [f"https://www.googleapis.com/compute/v1/projects/{s.gcp.project}/zones/{zone}/"
                          f"networkEndpointGroups/{s.load_balancer.neg_name}" for zone in s.gcp.zones]
        assert {b["balancingMode"] for b in props["backends"]} == {"RATE"}
        assert props["healthChecks"].endswith("/global/healthChecks/aiwfe-gateway-ready")
        assert props["securityPolicy"].endswith("/global/securityPolicies/aiwfe-edge-policy")


def test_no_header_rule_touches_auth_or_upgrade_headers(rendered: dict, stack: str) -> None:
    s = settings_of(stack).load_balancer
    for backend in resources_of(rendered[stack], BACKEND):
        headers = backend["props"].get("customRequestHeaders", [])
        assert headers == [f"{k}:{v}" for k, v in s.custom_request_headers.items()]
        assert not {h.split(":", 1)[0].lower() for h in headers} & PROTECTED_HEADERS
        assert not any("$" in h for h in headers)
    for url_map in resources_of(rendered[stack], URL_MAP):
        assert "headerAction" not in str(url_map["props"])


def test_health_check_probes_gateway_readiness(rendered: dict, stack: str) -> None:
    check = one(rendered[stack], "gcp:compute/healthCheck:HealthCheck", "load-balancer-gateway-health-check")
    assert check["props"]["httpHealthCheck"] == {
        "portSpecification": "USE_FIXED_PORT", "port": 15021.0, "requestPath": "/healthz/ready"}


def test_firewall_admits_only_google_ranges_to_gateway_ports(rendered: dict, stack: str) -> None:
    s = settings_of(stack)
    rule = one(rendered[stack], "gcp:compute/firewall:Firewall", "load-balancer-allow-google-lb")["props"]
    assert rule["sourceRanges"] == list(GOOGLE_LB_SOURCE_RANGES)
    assert rule["network"] == s.gcp.network and rule["direction"] == "INGRESS"
    assert rule["allows"] == [{"protocol": "tcp", "ports": [str(s.load_balancer.gateway_http_port), "15021"]}]
    assert rule["targetTags"] == list(s.load_balancer.node_tags)


def test_tls_redirect_and_certificate(rendered: dict, stack: str) -> None:
    s = settings_of(stack)
    result = rendered[stack]
    policy = one(result, "gcp:compute/sSLPolicy:SSLPolicy", "load-balancer-ssl-policy")["props"]
    assert policy["minTlsVersion"] == "TLS_1_2" and policy["profile"] == s.load_balancer.ssl_profile
    cert = one(result, "gcp:compute/managedSslCertificate:ManagedSslCertificate", "load-balancer-certificate")
    assert cert["props"]["managed"]["domains"] == [s.product_host, s.auth_host]
    redirect = one(result, URL_MAP, "load-balancer-http-redirect")["props"]
    assert redirect["defaultUrlRedirect"]["httpsRedirect"] is True
    rules = {r["props"]["portRange"]: r["props"] for r in resources_of(result,
                                                                       "gcp:compute/globalForwardingRule:GlobalForwardingRule")}
    assert set(rules) == {"80", "443"}
    assert {r["loadBalancingScheme"] for r in rules.values()} == {"EXTERNAL_MANAGED"}
    assert rules["80"]["target"].endswith("/targetHttpProxies/aiwfe-http-redirect")
    assert rules["443"]["target"].endswith("/targetHttpsProxies/aiwfe-https")


def test_cloud_armor_rate_limits_the_auth_host(rendered: dict, stack: str) -> None:
    s = settings_of(stack)
    rules = one(rendered[stack], "gcp:compute/securityPolicy:SecurityPolicy",
                "load-balancer-security-policy")["props"]["rules"]
    auth = [r for r in rules if s.auth_host.replace(".", "\\.") in r.get("match", {}).get("expr", {})
            .get("expression", "")]
    assert auth and auth[0]["action"] in ("throttle", "rate_based_ban")
    assert auth[0]["rateLimitOptions"]["exceedAction"] == "deny(429)"
    assert rules[-1]["priority"] == 2147483647 and rules[-1]["action"] == "allow"


def test_gcp_resources_use_the_explicit_provider(rendered: dict, stack: str) -> None:
    gcp = [r for r in rendered[stack].document["resources"] if r["type"].startswith("gcp:compute/")]
    assert len(gcp) == 14
    assert all("pulumi:providers:gcp::gcp" in r["provider"] for r in gcp)


def test_websocket_timeout_output_is_a_plain_int(stack: str) -> None:
    from stacks.platform import build
    from stacks.settings import load_settings

    seen: list[LoadBalancer] = []
    render_tool.run_program(lambda: seen.append(build(load_settings()).load_balancer),
                            render_tool.load_stack_config(stack))
    assert type(seen[0].websocket_timeout_seconds) is int
    assert seen[0].websocket_timeout_seconds == settings_of(stack).load_balancer.websocket_timeout_seconds
    assert seen[0].urls["websocket"] == f"wss://{settings_of(stack).product_host}/ws"


# ---------------------------------------------------------------- the resolver on the command line

def test_resolver_cli(rendered: dict, capsys: pytest.CaptureFixture[str]) -> None:
    out = rendered["prod"].manifests[0].parent.parent / "resources.json"
    assert urlmap.main([str(out), "aiwfe.example.com", "/ws", "/user/"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["aiwfe-https: aiwfe.example.com/ws -> aiwfe-websocket (timeout 7200s) via pathRules[/ws]",
                     "aiwfe-https: aiwfe.example.com/user/ -> aiwfe-web (timeout 30s) via pathRules[/user/*]"]
    with pytest.raises(SystemExit) as refused:
        urlmap.main([str(out), "aiwfe.example.com", "/", "--header", "nonsense"])
    assert refused.value.code == 2


def test_resolver_cli_refuses_a_file_that_is_not_a_render(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.json").write_text("[1, 2]")
    assert urlmap.main([str(tmp_path / "x.json"), "a.example.com", "/"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_policy_pack_judges_the_rendered_lb(rendered: dict) -> None:
    """The rules follow the real render's URL map to its WebSocket backend: shortening that backend's
    timeout, or adding an Authorization rewrite to the URL map, fails the render."""
    import copy

    from policies.aiwfe_policies import offline

    document = copy.deepcopy(rendered["prod"].document)
    assert offline.evaluate_document(document).violations == []
    by_name = {r["name"]: r for r in document["resources"]}
    by_name["load-balancer-websocket-backend"]["props"]["timeoutSec"] = 30.0
    by_name["load-balancer-url-map"]["props"]["pathMatchers"][0]["headerAction"] = {
        "requestHeadersToAdds": [{"headerName": "Authorization", "headerValue": "$http_authorization",
                                  "replace": True}]}
    failed = offline.evaluate_document(document).failed_policies()
    assert failed == {"gcp-compute-websocket-backend-require-long-timeout", "gcp-compute-disallow-auth-header-rewrite",
                      "gcp-compute-disallow-unexpanded-header-placeholders",
                      # the cross-layer rules see the same two breaks on the request's path
                      "platform-websocket-path-require-long-lived-end-to-end",
                      "platform-auth-path-require-keycloak-jwt-and-untouched-headers"}
