"""The Mesh component under the mock engine, for both stacks: what each Istio object tells the
proxies (props in wire form: numbers as floats)."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import types
from typing import Any

import pulumi
import pytest

from components.mesh import (
    HTTP_RETRIES,
    JWT_FROM_HEADERS,
    Mesh,
    extract_header_token,
    istio_api_versions,
)
from policies.aiwfe_policies import offline
from policies.aiwfe_policies.model.authz import authz_pattern_matches
from stacks import platform
from stacks.settings import Settings, parse_settings
from tests.conftest import one, resources_of
from tools import render as render_tool

NETWORKING = "kubernetes:networking.istio.io/v1:"
SECURITY = "kubernetes:security.istio.io/v1:"
VS, DR, GATEWAY = NETWORKING + "VirtualService", NETWORKING + "DestinationRule", NETWORKING + "Gateway"
PA, RA, AP = SECURITY + "PeerAuthentication", SECURITY + "RequestAuthentication", SECURITY + "AuthorizationPolicy"
TELEMETRY = "kubernetes:telemetry.istio.io/v1:Telemetry"
def keycloak_peer(s: Settings) -> types.SimpleNamespace:
    """What a Keycloak component hands the mesh, for the mesh alone (the platform passes the real outputs)."""
    issuer = f"https://{s.auth_host}/realms/{s.keycloak.realm}"
    in_cluster = s.keycloak.database.mode == "in-cluster"
    return types.SimpleNamespace(
        issuer=issuer, jwks_uri=f"{issuer}/protocol/openid-connect/certs", realm=s.keycloak.realm,
        namespace=s.keycloak.namespace, service_host=f"keycloak.{s.keycloak.namespace}.svc.cluster.local",
        service_port=8080, container_port=8080, service_account="keycloak",
        reconcile_service_account="keycloak-realm-reconcile",
        database_service_account="keycloak-postgres" if in_cluster else None,
        database_port=5432 if in_cluster else None)


# What a RedisCluster hands the mesh (the platform passes the component's outputs).
REDIS_PEER = types.SimpleNamespace(namespace="aiwfe-redis", service_account="redis-cluster",
                                   bootstrap_service_account="redis-cluster-bootstrap", client_port=6379)
# A syntactically real JWT (header.payload.signature, base64url): the extractor only slices strings.
TOKEN = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEiLCJpc3MiOiJ4In0.c2lnbmF0dXJlLV8"


def settings_for(stack: str):
    config = render_tool.load_stack_config(stack)
    return parse_settings(config.values, stack=stack, secret_keys=config.secret_keys)


def spec(result, rtype: str, name: str) -> dict[str, Any]:
    return one(result, rtype, name)["props"]["spec"]


def route_named(virtual_service: dict, name: str) -> dict:
    found = [r for r in virtual_service["http"] if r.get("name") == name]
    assert len(found) == 1, name
    return found[0]


def first_route(virtual_service: dict, path: str, headers: dict[str, str] | None = None,
                method: str = "GET") -> dict | None:
    """The first http route whose match accepts the request, as Envoy picks it (exact/prefix/regex)."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    for route in virtual_service["http"]:
        for match in route.get("match") or [{}]:
            uri = match.get("uri") or {}
            if ("exact" in uri and path != uri["exact"]) or ("prefix" in uri and not path.startswith(uri["prefix"])):
                continue
            wanted = match.get("method") or {}
            if ("exact" in wanted and method != wanted["exact"]) or \
                    ("regex" in wanted and not re.fullmatch(wanted["regex"], method)):
                continue
            if all(name in headers and re.fullmatch(m["regex"], headers[name])
                   for name, m in (match.get("headers") or {}).items()):
                return route
    return None


# ---------------------------------------------------------------- versions

def test_api_versions_follow_the_istio_release() -> None:
    apis = istio_api_versions("1.30.3")
    assert (apis.networking, apis.security, apis.telemetry) == (
        "networking.istio.io/v1", "security.istio.io/v1", "telemetry.istio.io/v1")
    with pytest.raises(ValueError, match="predates the v1 APIs"):
        istio_api_versions("1.20.1")
    with pytest.raises(ValueError, match="not an Istio"):
        istio_api_versions("2.0")


def test_every_istio_object_uses_the_v1_apis(rendered: dict, stack: str) -> None:
    istio = [r for r in rendered[stack].document["resources"] if ".istio.io/" in r["type"]]
    assert len(istio) >= 20
    namespace_urn = one(rendered[stack], "kubernetes:core/v1:Namespace", "app-namespace")["urn"]
    for resource in istio:
        assert resource["props"]["apiVersion"].endswith("/v1"), resource["name"]
        assert resource["parent"].endswith("aiwfe:platform:Mesh::mesh")
        if resource["props"]["metadata"]["namespace"] == "aiwfe":
            assert namespace_urn in resource["dependencies"], f"{resource['name']} must wait for its namespace"


# ---------------------------------------------------------------- mTLS

def test_every_meshed_namespace_is_strict(rendered: dict, stack: str) -> None:
    modes = {r["props"]["metadata"]["namespace"]: r["props"]["spec"]["mtls"]["mode"]
             for r in resources_of(rendered[stack], PA)}
    assert modes == {"aiwfe": "STRICT", "keycloak": "STRICT", "aiwfe-redis": "STRICT"}
    # Sidecar-bypassed ports (Redis bus, JGroups) need no port-level exception.
    assert all("portLevelMtls" not in r["props"]["spec"] for r in resources_of(rendered[stack], PA))


# ---------------------------------------------------------------- gateway and routes

def test_gateway_serves_both_hosts_over_http_on_port_80(rendered: dict, stack: str) -> None:
    s = settings_for(stack)
    gateway = one(rendered[stack], GATEWAY, "mesh-gateway")["props"]
    assert gateway["metadata"]["namespace"] == s.mesh.ingress_gateway_namespace
    assert gateway["spec"]["selector"] == dict(s.mesh.ingress_gateway_labels)
    [server] = gateway["spec"]["servers"]
    assert server["port"] == {"number": 80.0, "name": "http", "protocol": "HTTP"}
    assert server["hosts"] == [f"aiwfe/{s.product_host}", f"keycloak/{s.auth_host}"]


def test_websocket_route_has_no_timeout_and_no_retries(rendered: dict, stack: str) -> None:
    product = spec(rendered[stack], VS, "mesh-product-routes")
    websocket = route_named(product, "websocket")
    # No timeout: unset is Istio's "none"; '0s' would be refused by the CRD's 1ms minimum.
    assert "timeout" not in websocket
    assert websocket["retries"] == {"attempts": 0.0}
    assert websocket["route"] == [{"destination": {"host": "websocket.aiwfe.svc.cluster.local",
                                                   "port": {"number": 8080.0}}}]
    upgrade = {"Upgrade": "websocket"}
    for path in ("/ws", "/ws/room/1", "/websocket", "/websocket/x"):
        assert first_route(product, path, upgrade) is websocket
        assert first_route(product, path, {"Upgrade": "WebSocket"}) is websocket, "header values vary in case"
        # Without the upgrade header the paths answer 426 and forward nothing.
        assert first_route(product, path)["directResponse"]["status"] == 426.0
    assert first_route(product, "/wsx", upgrade) is None
    assert first_route(product, "/ws", {"Upgrade": "h2c"})["name"] == "websocket-upgrade-required"


def test_frontend_routes_retry_per_requirements(rendered: dict, stack: str) -> None:
    product = spec(rendered[stack], VS, "mesh-product-routes")
    for app, path in (("user-frontend", "/user/index.html"), ("admin-frontend", "/admin")):
        route = first_route(product, path)
        assert route["name"] == app
        assert route["retries"] == {"attempts": 3.0, "perTryTimeout": "30s",
                                    "retryOn": "5xx,reset,connect-failure,refused-stream"}
        assert route["route"][0]["destination"] == {"host": f"{app}.aiwfe.svc.cluster.local", "port": {"number": 80.0}}
    assert HTTP_RETRIES["attempts"] == 3
    assert first_route(product, "/") is None, "nothing else of the product host is routed"


def seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


def test_keycloak_never_replays_what_it_saw(rendered: dict, stack: str) -> None:
    """Token exchanges and the login, registration and reset-password form POSTs are retried only
    when they never reached Keycloak; reads may be retried on any failure."""
    realm = settings_for(stack).keycloak.realm
    keycloak = spec(rendered[stack], VS, "mesh-keycloak-routes")
    never_reached = {"connect-failure", "refused-stream"}
    for path in (f"/realms/{realm}/protocol/openid-connect/token",
                 f"/realms/{realm}/login-actions/authenticate?session_code=x",
                 f"/realms/{realm}/login-actions/registration", f"/realms/{realm}/login-actions/reset-credentials",
                 f"/realms/{realm}/protocol/openid-connect/logout"):
        for method in ("POST", "PUT", "DELETE"):
            route = first_route(keycloak, path, method=method)
            assert set(route["retries"]["retryOn"].split(",")) <= never_reached, (path, method)
    for path in (f"/realms/{realm}/protocol/openid-connect/certs", f"/realms/{realm}/.well-known/openid-configuration",
                 f"/realms/{realm}/protocol/openid-connect/auth", "/resources/x/login/style.css"):
        route = first_route(keycloak, path, method="GET")
        assert route["name"] == "keycloak-reads" and "5xx" in route["retries"]["retryOn"], path


def test_keycloak_routes_end_inside_the_load_balancer_timeout(rendered: dict, stack: str) -> None:
    lb_timeout = settings_for(stack).load_balancer.web_timeout_seconds
    keycloak = spec(rendered[stack], VS, "mesh-keycloak-routes")
    routed = [r for r in keycloak["http"] if "route" in r]
    assert routed
    for route in routed:
        total, retries = seconds(route["timeout"]), route["retries"]
        assert total < lb_timeout, route["name"]
        assert seconds(retries["perTryTimeout"]) <= total, route["name"]
        if {"5xx", "gateway-error", "reset"} & set(retries["retryOn"].split(",")):
            # Retried on timeouts too: every try must fit.
            assert seconds(retries["perTryTimeout"]) * (retries["attempts"] + 1) <= total, route["name"]


def test_keycloak_route_budget_follows_the_load_balancer() -> None:
    from components.mesh import keycloak_route_budget
    assert keycloak_route_budget(30) == {"total": 25, "read_try": 8}
    assert keycloak_route_budget(60) == {"total": 55, "read_try": 18}
    with pytest.raises(ValueError, match="no time"):
        keycloak_route_budget(8)


def test_keycloak_admin_and_internal_paths_never_reach_keycloak(rendered: dict, stack: str) -> None:
    realm = settings_for(stack).keycloak.realm
    keycloak = spec(rendered[stack], VS, "mesh-keycloak-routes")
    for path in ("/admin", "/admin/master/console/", "/admin/realms/x/users", "/realms/master",
                 "/realms/master/protocol/openid-connect/token", "/metrics", "/health/ready"):
        assert first_route(keycloak, path)["directResponse"] == {"status": 404.0}, path
    public = route_named(keycloak, "keycloak-reads")
    for path in (f"/realms/{realm}/.well-known/openid-configuration", f"/realms/{realm}/protocol/openid-connect/certs",
                 f"/realms/{realm}/protocol/openid-connect/auth", "/resources/abc/login/style.css", "/js/keycloak.js"):
        assert first_route(keycloak, path) is public, path
    assert public["route"][0]["destination"] == {"host": "keycloak.keycloak.svc.cluster.local",
                                                 "port": {"number": 8080.0}}
    assert first_route(keycloak, "/realms/other-realm/account") is None
    assert first_route(keycloak, "/") is None


# ---------------------------------------------------------------- destinations

def _walk(value: Any):
    if isinstance(value, dict):
        for key, sub in value.items():
            yield key, sub
            yield from _walk(sub)
    elif isinstance(value, list):
        for sub in value:
            yield from _walk(sub)


def test_websocket_destination_is_sized_and_long_lived(rendered: dict, stack: str) -> None:
    s = settings_for(stack)
    rule = spec(rendered[stack], DR, "mesh-websocket-destination")
    assert rule["host"] == "websocket.aiwfe.svc.cluster.local"
    pool = rule["trafficPolicy"]["connectionPool"]
    assert pool["tcp"]["maxConnections"] == s.websocket.connections_per_pod * s.websocket.max_replicas
    assert pool["tcp"]["maxConnections"] >= 1000 * s.websocket.max_replicas
    expected = f"{s.load_balancer.websocket_timeout_seconds}s"  # the load balancer's WebSocket timeout, wired
    assert pool["tcp"]["idleTimeout"] == pool["http"]["idleTimeout"] == expected
    assert pool["http"].get("h2UpgradePolicy") != "UPGRADE"
    assert "maxRequestsPerConnection" not in pool["http"]
    assert rule["trafficPolicy"]["outlierDetection"] == {
        "consecutive5xxErrors": 5.0, "interval": "30s", "baseEjectionTime": "30s", "maxEjectionPercent": 50.0}


def test_backends_have_circuit_breakers(rendered: dict, stack: str) -> None:
    for name, host in (("mesh-user-frontend-destination", "user-frontend.aiwfe.svc.cluster.local"),
                       ("mesh-admin-frontend-destination", "admin-frontend.aiwfe.svc.cluster.local"),
                       ("mesh-keycloak-destination", "keycloak.keycloak.svc.cluster.local")):
        rule = spec(rendered[stack], DR, name)
        assert rule["host"] == host
        assert rule["trafficPolicy"]["outlierDetection"] == {
            "consecutive5xxErrors": 5.0, "interval": "5s", "baseEjectionTime": "30s", "maxEjectionPercent": 50.0,
            "minHealthPercent": 50.0}


def test_no_deprecated_outlier_field_anywhere(rendered: dict, stack: str) -> None:
    keys = {key for r in rendered[stack].document["resources"] for key, _ in _walk(r["props"])}
    assert "consecutive5xxErrors" in keys
    assert "consecutiveErrors" not in keys and "websocketUpgrade" not in keys


# ---------------------------------------------------------------- JWT

def test_jwt_rules_accept_bearer_and_the_websocket_subprotocol_form(rendered: dict, stack: str) -> None:
    for name in ("mesh-edge-jwt", "mesh-websocket-jwt"):
        [rule] = spec(rendered[stack], RA, name)["jwtRules"]
        assert rule["forwardOriginalToken"] is True
        locations = {h["name"].lower(): h["prefix"] for h in rule["fromHeaders"]}
        # What a browser sends for new WebSocket(url, ["jwt-auth", "jwt." + token]):
        assert extract_header_token(f"jwt-auth, jwt.{TOKEN}", locations["sec-websocket-protocol"]) == TOKEN
        assert extract_header_token(f"Bearer {TOKEN}", locations["authorization"]) == TOKEN
        # A plain subprotocol list carries no token; the reversed order would hand Envoy a bad one.
        assert extract_header_token("jwt-auth", locations["sec-websocket-protocol"]) is None
        assert extract_header_token(f"jwt.{TOKEN}, jwt-auth", locations["sec-websocket-protocol"]) != TOKEN


def test_extractor_follows_envoy_prefix_semantics() -> None:
    """The prefix is found anywhere in the value; the token runs from the next JWT character to the end."""
    assert extract_header_token(f"chat, jwt-auth, jwt.{TOKEN}", "jwt-auth, jwt.") == TOKEN
    assert extract_header_token(f"Bearer   {TOKEN}", "Bearer ") == TOKEN
    assert extract_header_token(f"Basic {TOKEN}", "Bearer ") is None
    assert extract_header_token("anything", "") == "anything"
    assert [h["name"] for h in JWT_FROM_HEADERS] == ["Authorization", "Sec-WebSocket-Protocol"]


def denied_without_token(policy: dict, host: str, path: str) -> bool:
    """Whether an edge DENY policy rejects a token-less request (Istio's host/path matching)."""
    for rule in policy["rules"]:
        for target in rule["to"]:
            op = target["operation"]
            if any(authz_pattern_matches(h, host, case_insensitive=True) for h in op["hosts"]) \
                    and not any(authz_pattern_matches(p, path) for p in op["notPaths"]):
                return True
    return False


def test_edge_requires_keycloak_tokens_except_on_anonymous_paths(rendered: dict, stack: str) -> None:
    s = settings_for(stack)
    realm = s.keycloak.realm
    policy = spec(rendered[stack], AP, "mesh-edge-require-jwt")
    assert policy["action"] == "DENY"
    assert policy["selector"] == {"matchLabels": dict(s.mesh.ingress_gateway_labels)}
    issuer = f"https://{s.auth_host}/realms/{realm}"
    for rule in policy["rules"]:
        assert rule["from"] == [{"source": {"notRequestPrincipals": [f"{issuer}/*"]}}]
    product, auth = s.product_host, s.auth_host
    for host in (product, f"{product}:80"):
        assert denied_without_token(policy, host, "/ws")
        assert denied_without_token(policy, host, "/websocket/x")
        assert denied_without_token(policy, host, "/api/things")
        assert not denied_without_token(policy, host, "/user/app.js")
        assert not denied_without_token(policy, host, "/admin")
    assert not denied_without_token(policy, auth, f"/realms/{realm}/.well-known/openid-configuration")
    assert not denied_without_token(policy, auth, f"/realms/{realm}/protocol/openid-connect/certs")
    assert not denied_without_token(policy, auth, "/resources/x/login.css")
    assert denied_without_token(policy, auth, "/admin/master/console/")
    assert denied_without_token(policy, auth, "/realms/master/protocol/openid-connect/token")


def test_issuer_is_keycloaks_realm_issuer_exactly(rendered: dict, stack: str) -> None:
    """Through the Args: what platform.py passes as Keycloak's issuer lands unchanged in every rule."""
    s = settings_for(stack)
    # What Keycloak will put in `iss`: its hostname (KC_HOSTNAME) + /realms/ + the imported realm's name.
    [deployment] = [r["props"] for r in resources_of(rendered[stack], "kubernetes:apps/v1:Deployment")
                    if r["props"]["metadata"]["name"] == "keycloak"]
    env = {e["name"]: e.get("value") for c in deployment["spec"]["template"]["spec"]["containers"]
           for e in c.get("env", [])}
    [realm_map] = [r["props"] for r in resources_of(rendered[stack], "kubernetes:core/v1:ConfigMap")
                   if r["props"]["metadata"]["name"] == "keycloak-realm"]
    [realm_json] = realm_map["data"].values()
    issuer = f"{env['KC_HOSTNAME']}/realms/{json.loads(realm_json)['realm']}"
    assert issuer == f"https://{s.auth_host}/realms/{s.keycloak.realm}"
    args = types.SimpleNamespace(jwt_issuer=issuer, jwks_uri=f"{issuer}/protocol/openid-connect/certs")
    for name in ("mesh-edge-jwt", "mesh-websocket-jwt"):
        [rule] = spec(rendered[stack], RA, name)["jwtRules"]
        assert (rule["issuer"], rule["jwksUri"]) == (args.jwt_issuer, args.jwks_uri)
    websocket = spec(rendered[stack], AP, "mesh-websocket-authorization")
    assert websocket["rules"][0]["from"][0]["source"]["requestPrincipals"] == [f"{issuer}/*"]


# ---------------------------------------------------------------- who may call whom

def test_service_to_service_policies_name_principals(rendered: dict, stack: str) -> None:
    gateway = "cluster.local/ns/istio-ingress/sa/istio-ingressgateway"

    def rule(name: str) -> tuple[str, list[str], list[str]]:
        body = spec(rendered[stack], AP, name)
        assert body["action"] == "ALLOW"
        [only] = body["rules"]
        return body["selector"]["matchLabels"], only["from"][0]["source"]["principals"], \
            only["to"][0]["operation"]["ports"]

    assert rule("mesh-redis-authorization") == (
        {"app.kubernetes.io/name": "redis-cluster"},
        ["cluster.local/ns/aiwfe/sa/websocket", "cluster.local/ns/aiwfe-redis/sa/redis-cluster",
         "cluster.local/ns/aiwfe-redis/sa/redis-cluster-bootstrap"], ["6379"])
    assert rule("mesh-websocket-authorization") == ({"app.kubernetes.io/name": "websocket"}, [gateway], ["8080"])
    assert rule("mesh-user-frontend-authorization")[1:] == ([gateway], ["8080"])
    # The gateway, and the realm reconcile Job calling the admin API in-cluster.
    assert rule("mesh-keycloak-authorization") == (
        {"app.kubernetes.io/name": "keycloak"},
        [gateway, "cluster.local/ns/keycloak/sa/keycloak-realm-reconcile"], ["8080"])
    database = [r for r in resources_of(rendered[stack], AP) if r["name"] == "mesh-keycloak-database-authorization"]
    if stack == "staging":  # in-cluster PostgreSQL
        assert rule("mesh-keycloak-database-authorization") == (
            {"app.kubernetes.io/name": "keycloak-postgres"}, ["cluster.local/ns/keycloak/sa/keycloak"], ["5432"])
    else:  # Cloud SQL: no in-cluster database to guard
        assert database == []
    allow_nothing = {r["props"]["metadata"]["namespace"] for r in resources_of(rendered[stack], AP)
                     if r["props"]["metadata"]["name"] == "allow-nothing" and r["props"]["spec"] == {}}
    assert allow_nothing == {"aiwfe", "keycloak", "aiwfe-redis"}


def test_telemetry_follows_settings(rendered: dict, stack: str) -> None:
    s = settings_for(stack)
    for telemetry in resources_of(rendered[stack], TELEMETRY):
        body = telemetry["props"]["spec"]
        assert body["tracing"] == [{"randomSamplingPercentage": s.mesh.tracing_sampling_percent}]
        assert body["accessLogging"] == [{"providers": [{"name": "envoy"}], "disabled": not s.mesh.access_logging}]
    assert len(resources_of(rendered[stack], TELEMETRY)) == 3


# ---------------------------------------------------------------- the component with other Args

def _render_mesh(stack: str, **changes: Any) -> list[render_tool.Registration]:
    settings = settings_for(stack)
    mesh_settings = dataclasses.replace(settings.mesh, **changes.pop("mesh", {}))
    settings = dataclasses.replace(settings, mesh=mesh_settings)

    def program() -> None:
        lb = settings.load_balancer
        args = dataclasses.replace(platform.mesh_args(settings, "aiwfe",
                                                      lb_websocket_timeout_seconds=lb.websocket_timeout_seconds,
                                                      lb_web_timeout_seconds=lb.web_timeout_seconds,
                                                      redis=REDIS_PEER, keycloak=keycloak_peer(settings)),
                                   **changes)
        Mesh("mesh", args)
        pulumi.export("ok", True)

    return render_tool.run_program(program, render_tool.load_stack_config(stack))


def _props(registrations: list, name: str) -> dict:
    [found] = [r.props for r in registrations if r.name == name]
    return found


def test_args_flow_through_unchanged() -> None:
    issuer = "https://id.example.org/realms/other"
    registrations = _render_mesh("prod", jwt_issuer=issuer, jwks_uri=f"{issuer}/certs",
                                 lb_websocket_timeout_seconds=pulumi.Output.from_input(7200),
                                 keycloak_database_service_account="db", keycloak_database_port=6543)
    [rule] = _props(registrations, "mesh-edge-jwt")["spec"]["jwtRules"]
    assert (rule["issuer"], rule["jwksUri"]) == (issuer, f"{issuer}/certs")
    pool = _props(registrations, "mesh-websocket-destination")["spec"]["trafficPolicy"]["connectionPool"]
    assert pool["tcp"]["idleTimeout"] == pool["http"]["idleTimeout"] == "7200s"
    database = _props(registrations, "mesh-keycloak-database-authorization")["spec"]
    assert database["action"] == "ALLOW"
    assert database["rules"][0]["to"] == [{"operation": {"ports": ["6543"]}}]


@pytest.mark.parametrize("given", [{"keycloak_database_service_account": "db", "keycloak_database_port": None},
                                   {"keycloak_database_service_account": None, "keycloak_database_port": 5432}])
def test_database_account_and_port_go_together(given: dict[str, Any]) -> None:
    settings = settings_for("staging")
    lb = settings.load_balancer
    args = platform.mesh_args(settings, "aiwfe", lb_websocket_timeout_seconds=lb.websocket_timeout_seconds,
                              lb_web_timeout_seconds=lb.web_timeout_seconds, redis=REDIS_PEER,
                              keycloak=keycloak_peer(settings))
    with pytest.raises(ValueError, match="go together"):
        dataclasses.replace(args, **given)


def test_staging_may_relax_mtls_only_through_the_setting() -> None:
    registrations = _render_mesh("staging", mesh={"mtls_mode": "PERMISSIVE"})
    modes = {r.props["spec"]["mtls"]["mode"] for r in registrations if r.type == PA}
    assert modes == {"PERMISSIVE"}


def test_a_bad_load_balancer_timeout_fails_the_program() -> None:
    with pytest.raises(Exception, match="positive whole number"):
        _render_mesh("prod", lb_websocket_timeout_seconds=0)


# ---------------------------------------------------------------- the pack on the real render

@pytest.mark.parametrize(("edit", "policy"), [
    (lambda p: route_named(p["spec"], "websocket").update(timeout="60s"),
     "istio-networking-v1-virtualservice-require-websocket-route-without-timeout-and-retries"),
    (lambda p: route_named(p["spec"], "user-frontend").update(
        headers={"request": {"remove": ["Authorization"]}}), "istio-resource-disallow-auth-header-changes"),
    (lambda p: p["spec"]["http"].append({"name": "api", "match": [{"uri": {"prefix": "/api/"}}],
                                         "route": [{"destination": {"host": "websocket"}}]}), None),
])
def test_policies_catch_mutations_of_the_rendered_routes(rendered: dict, edit, policy: str | None) -> None:
    document = copy.deepcopy(rendered["prod"].document)
    product = next(r for r in document["resources"] if r["name"] == "mesh-product-routes")
    edit(product["props"])
    report = offline.evaluate_document(document)
    if policy:
        assert report.status(policy) == "FAIL", report.as_text()
    else:
        # A new API route is covered by the edge's token requirement as it stands: nothing fails.
        assert report.violations == [], report.as_text()


def test_mesh_module_has_no_wildcard_or_header_rewrite(rendered: dict, stack: str) -> None:
    keys = {key for r in rendered[stack].document["resources"] if ".istio.io/" in r["type"]
            for key, _ in _walk(r["props"])}
    assert "headers" in keys  # the upgrade match
    assert not {"set", "add", "remove"} & keys
