"""Istio rules: mTLS, WebSocket routes and destinations, circuit breakers, JWT coverage of public
routes, auth headers left alone, no deprecated fields, no wildcard hosts.

Istio objects are pulumi-kubernetes CustomResources; their type token names the API group, version
and kind (`kubernetes:networking.istio.io/v1:VirtualService`), so every rule also judges objects
declared at older API versions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..contract import MIN_WEBSOCKET_TIMEOUT_SECONDS, TOKEN_HEADERS, WEBSOCKET_PATHS
from ..engine import Context, Option, Resource, resource_rule, stack_rule
from ..model.authz import TokenlessDenies, any_pattern_matches, jwt_header_names, operation_matches
from ..model.destination import (
    duration_seconds,
    effective_policy,
    long_lived_problems,
    service_fqdn,
    traffic_policies,
)
from ..model.props import namespace_name as namespace_of
from . import gcp
from .kubernetes import dig, items, number

_TYPE = re.compile(r"^kubernetes:(?P<group>[a-z.]+\.istio\.io)/(?P<version>[a-z0-9]+):(?P<kind>\w+)$")
# The first Istio API version of each group that is no longer alpha/beta (Istio 1.22+ serves them).
STABLE_VERSION = {"networking.istio.io": "v1", "security.istio.io": "v1", "telemetry.istio.io": "v1"}
# A WebSocket must be able to stay open at least this long (REQUIREMENTS: LB timeout >= 3600 s).
WEBSOCKET_PATH = re.compile("^(" + "|".join(map(re.escape, WEBSOCKET_PATHS)) + ")(/|$)")


def istio_kind(*kinds: str):
    def applies(resource_type: str) -> bool:
        match = _TYPE.match(resource_type)
        return bool(match) and match["kind"] in kinds
    return applies


def kind_of(resource: Resource) -> str | None:
    match = _TYPE.match(resource.type)
    return match["kind"] if match else None


def of_kind(resources: Iterable[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if kind_of(r) == kind]


def http_routes(resource: Resource) -> list[Mapping[str, Any]]:
    return [r for r in items(dig(resource.props, "spec", "http")) if isinstance(r, Mapping)]


def _header_mentions_websocket(matcher: Any) -> bool:
    if not isinstance(matcher, Mapping):
        return False
    return any("websocket" in str(matcher.get(k, "")).lower() for k in ("exact", "prefix", "regex"))


def is_websocket_route(route: Mapping[str, Any]) -> bool:
    """A forwarding route that matches an `Upgrade: websocket` header or a /ws, /websocket path."""
    if "route" not in route:
        return False
    for match in items(route.get("match")):
        headers = match.get("headers") or {}
        if any(str(name).lower() == "upgrade" and _header_mentions_websocket(m) for name, m in headers.items()):
            return True
        uri = match.get("uri") or {}
        if any(WEBSOCKET_PATH.match(str(uri.get(k, ""))) for k in ("exact", "prefix")):
            return True
    return False


# ---------------------------------------------------------------- mTLS

@resource_rule("istio-security-v1-peerauthentication-require-strict-mtls", types=istio_kind("PeerAuthentication"),
               severity="critical",
               description="Prod accepts only mutual TLS between workloads: a PERMISSIVE or DISABLE mode lets "
                           "any pod (or a compromised node) talk plaintext to the services.", prod_only=True)
def require_strict_mtls(resource: Resource, context: Context) -> Iterable[str]:
    """On prod stacks, for each PeerAuthentication (any API version): spec.mtls.mode is STRICT, except that unset or
    UNSET passes on a policy with a selector (it inherits the namespace's or mesh's mode); and every
    spec.portLevelMtls entry's mode is STRICT, UNSET or unset."""
    spec = resource.props.get("spec") or {}
    mode = dig(spec, "mtls", "mode")
    # A namespace-wide policy without a mode inherits the mesh default, which may be PERMISSIVE.
    if mode != "STRICT" and not (mode in (None, "UNSET") and spec.get("selector")):
        yield f"spec.mtls.mode is {mode!r}; prod requires STRICT"
    for port, setting in (spec.get("portLevelMtls") or {}).items():
        port_mode = setting.get("mode") if isinstance(setting, Mapping) else None
        if port_mode not in ("STRICT", "UNSET", None):
            yield f"spec.portLevelMtls[{port}].mode is {port_mode!r}; prod requires STRICT"


NAMESPACE = "kubernetes:core/v1:Namespace"
INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
INJECT_TOGGLE = "sidecar.istio.io/inject"


def injected_namespaces(resources: Iterable[Resource]) -> list[Resource]:
    """Declared Namespaces whose pods get a sidecar (`istio-injection: enabled` or a revision label)."""
    return [r for r in resources if r.type == NAMESPACE
            and ((dig(r.props, "metadata", "labels") or {}).get(INJECTION_LABEL) == "enabled"
                 or REVISION_LABEL in (dig(r.props, "metadata", "labels") or {}))]


def _name(resource: Resource) -> str:
    return str(dig(resource.props, "metadata", "name") or "")


@stack_rule("istio-security-v1-peerauthentication-require-strict-namespaces", severity="critical", prod_only=True,
            description="Without a STRICT PeerAuthentication a namespace takes the mesh default, PERMISSIVE: "
                        "deleting one policy would quietly let plaintext in.",
            options={"meshRootNamespace": Option(
                "string", "istio-system", "Istio's root namespace, where a policy without a selector is "
                                          "mesh-wide (settings: mesh.istiodNamespace).")})
def require_strict_namespaces(resources: list[Resource], context: Context) -> Iterable[tuple[Resource, str]]:
    """On prod stacks, every declared Namespace with sidecar injection (label istio-injection=enabled
    or istio.io/rev) has a PeerAuthentication without a selector and with spec.mtls.mode STRICT in
    it, unless such a mesh-wide one sits in meshRootNamespace (option)."""
    def strict_namespaces() -> set[str]:
        return {namespace_of(p) for p in of_kind(resources, "PeerAuthentication")
                if not dig(p.props, "spec", "selector") and dig(p.props, "spec", "mtls", "mode") == "STRICT"}
    covered = strict_namespaces()
    if str(context.options["meshRootNamespace"]) in covered:
        return
    for namespace in injected_namespaces(resources):
        if _name(namespace) not in covered:
            yield namespace, (f"namespace {_name(namespace)} has sidecars but no namespace-wide STRICT "
                              "PeerAuthentication (it falls back to the mesh default, PERMISSIVE)")


@stack_rule("istio-security-v1-authorizationpolicy-require-per-namespace", severity="high",
            description="A meshed namespace without any AuthorizationPolicy allows every request from every "
                        "workload in the mesh: each one starts from a deny-by-default policy.")
def require_authorization_per_namespace(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """Every declared Namespace with sidecar injection (istio-injection=enabled or istio.io/rev) holds
    at least one AuthorizationPolicy (the components declare an `allow-nothing` one per namespace)."""
    with_policy = {namespace_of(p) for p in of_kind(resources, "AuthorizationPolicy")}
    for namespace in injected_namespaces(resources):
        if _name(namespace) not in with_policy:
            yield namespace, f"namespace {_name(namespace)} has sidecars but no AuthorizationPolicy"


@resource_rule("istio-workload-disallow-sidecar-injection-disabled",
               types=("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", NAMESPACE),
               severity="high",
               description="A pod without its sidecar escapes mTLS, the AuthorizationPolicies and the mesh's "
                           "telemetry; turning injection off must not be a one-line change.")
def no_injection_disabled(resource: Resource, _: Context) -> Iterable[str]:
    """A Namespace is not labelled istio-injection=disabled; a Deployment's or StatefulSet's pod
    template has no sidecar.istio.io/inject "false" label or annotation."""
    if resource.type == NAMESPACE:
        if (dig(resource.props, "metadata", "labels") or {}).get(INJECTION_LABEL) == "disabled":
            yield f"namespace {_name(resource)} is labelled {INJECTION_LABEL}=disabled"
        return
    for where in ("labels", "annotations"):
        value = (dig(resource.props, "spec", "template", "metadata", where) or {}).get(INJECT_TOGGLE)
        if str(value).lower() == "false":
            yield f"spec.template.metadata.{where} sets {INJECT_TOGGLE}: false"


# ---------------------------------------------------------------- WebSocket routes and destinations

@resource_rule("istio-networking-v1-virtualservice-require-websocket-route-without-timeout-and-retries",
               types=istio_kind("VirtualService"), severity="high",
               description="A WebSocket route has no timeout (it would cut every long-lived connection) and "
                           "retries disabled (the mesh retries twice by default; a replayed upgrade opens a "
                           "second socket).")
def websocket_route(resource: Resource, _: Context) -> Iterable[str]:
    """For each VirtualService http route that forwards (has `route`) and matches an `Upgrade` header mentioning
    websocket or a uri exact/prefix of /ws or /websocket (or below): timeout is unset (Istio's default: none;
    '0s' means the same to Envoy but Istio 1.30's CRD refuses any duration under 1ms, so the API server
    rejects the object), and retries.attempts is exactly 0 (unset fails)."""
    for index, route in enumerate(http_routes(resource)):
        if not is_websocket_route(route):
            continue
        where = f"spec.http[{route.get('name', index)}]"
        timeout = route.get("timeout")
        if timeout is not None and duration_seconds(timeout) == 0:
            yield f"{where}.timeout is {timeout!r}, which Istio's CRD refuses (at least 1ms); leave it unset " \
                  "(no timeout)"
        elif timeout is not None:
            yield f"{where}.timeout is {timeout!r}; a WebSocket route needs none (leave it unset)"
        attempts = number(dig(route, "retries", "attempts"))
        if attempts != 0:
            yield f"{where}.retries.attempts is {attempts}; set retries: {{attempts: 0}} on WebSocket routes"


def _lb_websocket_timeout(resources: list[Resource]) -> float:
    """The longest timeout of the backend services the URL maps send /ws and /websocket to (the
    same ones the GCP rules judge), and at least the REQUIREMENTS floor."""
    backends = gcp.declared(resources, gcp.BACKEND_SERVICE)
    names = {name for url_map in resources if url_map.type == gcp.URL_MAP for name in gcp.websocket_services(url_map)}
    timeouts = [number(backends[name].props.get("timeoutSec")) or 0 for name in names if name in backends]
    return max([MIN_WEBSOCKET_TIMEOUT_SECONDS, *timeouts])


@stack_rule("istio-networking-v1-destinationrule-require-websocket-long-lived-connections", severity="high",
            description="The destination of a WebSocket route has a DestinationRule that never upgrades to "
                        "HTTP/2, never caps requests per connection, and whose idle timeouts are at least the "
                        "load balancer's WebSocket timeout (3600 s or more).")
def websocket_destination(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """For each host a WebSocket route forwards to (resolved in its VirtualService's namespace): a DestinationRule
    exists, and the policy Istio applies to the route's port and subset (model/destination.py: the subset's parts
    over the rule's, port-level settings replacing them; without a port on the route, each port-level setting is
    judged too) defines the subset, never sets h2UpgradePolicy UPGRADE or a non-zero maxRequestsPerConnection, and
    has connectionPool tcp and http idleTimeout (unset = 1h, 0s = off) >= the longest timeoutSec of the backend
    services the URL maps send WebSocket upgrades to, and never under 3600 s."""
    rules: dict[str, list[Resource]] = {}
    for rule in of_kind(resources, "DestinationRule"):
        host = dig(rule.props, "spec", "host")
        if host:
            rules.setdefault(service_fqdn(host, namespace_of(rule)), []).append(rule)
    minimum = _lb_websocket_timeout(resources)
    seen: set[str] = set()
    for service in of_kind(resources, "VirtualService"):
        for route in http_routes(service):
            if not is_websocket_route(route):
                continue
            for destination in items(route.get("route")):
                host = dig(destination, "destination", "host")
                fqdn = service_fqdn(host, namespace_of(service))
                if fqdn in seen:
                    continue
                seen.add(fqdn)
                if fqdn not in rules:
                    yield service, (f"WebSocket destination {host} has no DestinationRule (connection pool, idle "
                                    "timeouts, outlier detection)")
                port = number(dig(destination, "destination", "port", "number"))
                subset = dig(destination, "destination", "subset")
                where = f"{host}" + (f":{port:g}" if port is not None else "") + (f" subset {subset}" if subset else "")
                for rule in rules.get(fqdn, []):
                    spec = rule.props.get("spec") or {}
                    # Without a port on the route, any port-level setting may be the one that applies.
                    ports = [port] if port is not None else [None, *_setting_ports(spec, subset)]
                    for candidate in ports:
                        policy = effective_policy(spec, candidate, subset)
                        if policy is None:
                            yield rule, f"the WebSocket route sends {where}, a subset this rule does not define"
                            break
                        shown = where if candidate == port else f"{where} (port {candidate:g} if it is that one)"
                        yield from ((rule, f"the policy for {shown}: {problem}")
                                    for problem in long_lived_problems(policy, minimum, outlier_detection=False))


def _setting_ports(spec: Mapping[str, Any], subset: str | None) -> list[float]:
    """Ports that have port-level settings (the rule's, and the subset's)."""
    policies = [spec.get("trafficPolicy")]
    policies += [s.get("trafficPolicy") for s in items(spec.get("subsets")) if s.get("name") == subset]
    return sorted({n for p in policies if isinstance(p, Mapping) for s in items(p.get("portLevelSettings"))
                   if (n := number(dig(s, "port", "number"))) is not None})


# ---------------------------------------------------------------- circuit breakers

def _in_cluster(host: Any) -> bool:
    text = str(host)
    return "." not in text or text.count(".") == 1 or text.endswith(".svc.cluster.local")


@resource_rule("istio-networking-v1-destinationrule-require-outlier-detection", types=istio_kind("DestinationRule"),
               severity="high",
               description="Every DestinationRule for an in-cluster service ejects failing endpoints "
                           "(consecutive5xxErrors or consecutiveGatewayErrors), so one bad pod cannot keep "
                           "failing requests.")
def require_outlier_detection(resource: Resource, _: Context) -> Iterable[str]:
    """For each DestinationRule whose host is in-cluster (a short name, `name.namespace` or `*.svc.cluster.local`):
    trafficPolicy.outlierDetection exists with consecutive5xxErrors or consecutiveGatewayErrors above 0. External
    hosts are skipped; subset and port-level policies do not count."""
    spec = resource.props.get("spec") or {}
    if not _in_cluster(spec.get("host")):
        return
    detection = dig(spec, "trafficPolicy", "outlierDetection")
    if not isinstance(detection, Mapping):
        yield f"host {spec.get('host')}: trafficPolicy.outlierDetection is missing"
        return
    thresholds = [number(detection.get(k)) for k in ("consecutive5xxErrors", "consecutiveGatewayErrors")]
    if not any(t and t > 0 for t in thresholds):
        yield (f"host {spec.get('host')}: outlierDetection needs consecutive5xxErrors (or consecutiveGatewayErrors) "
               "above 0")


@resource_rule("istio-resource-disallow-deprecated-fields",
               types=istio_kind("DestinationRule", "VirtualService", "Gateway", "PeerAuthentication",
                                "RequestAuthentication", "AuthorizationPolicy", "Telemetry"),
               severity="medium",
               description="No deprecated Istio fields or API versions: `consecutiveErrors` counts only gateway "
                           "errors (and is ignored), `websocketUpgrade` no longer exists, and alpha/beta APIs give "
                           "way to v1.")
def no_deprecated_fields(resource: Resource, _: Context) -> Iterable[str]:
    """Istio DestinationRules, VirtualServices, Gateways, PeerAuthentications, RequestAuthentications,
    AuthorizationPolicies and Telemetry use the v1 API of their group; no DestinationRule policy (top level,
    port-level or subset) sets outlierDetection.consecutiveErrors; no VirtualService http route sets
    websocketUpgrade, mirrorPercent or mirror_percent."""
    match = _TYPE.match(resource.type)
    assert match
    stable = STABLE_VERSION.get(match["group"])
    if stable and match["version"] != stable:
        yield f"{match['group']}/{match['version']} is deprecated; use {match['group']}/{stable}"
    spec = resource.props.get("spec") or {}
    if match["kind"] == "DestinationRule":
        for where, policy in traffic_policies(spec):
            if "consecutiveErrors" in (policy.get("outlierDetection") or {}):
                yield (f"{where}.outlierDetection.consecutiveErrors is deprecated (counts only 502/503/504); "
                       "use consecutive5xxErrors")
    if match["kind"] == "VirtualService":
        for index, route in enumerate(http_routes(resource)):
            for field in ("websocketUpgrade", "mirrorPercent", "mirror_percent"):
                if field in route:
                    yield f"spec.http[{route.get('name', index)}].{field} is deprecated or removed"


@resource_rule("istio-networking-v1-disallow-wildcard-hosts", types=istio_kind("VirtualService", "Gateway"),
               severity="high",
               description="VirtualServices and Gateway servers name their hosts: a wildcard captures traffic for "
                           "hosts nobody reviewed (and other teams' hosts on a shared gateway).")
def no_wildcard_hosts(resource: Resource, _: Context) -> Iterable[str]:
    """Every host in a VirtualService's spec.hosts and in each Gateway server's hosts has no `*` after its optional
    `namespace/` prefix: `*/app.example.com` passes, `*` and `*.example.com` fail."""
    spec = resource.props.get("spec") or {}
    hosts = list(items(spec.get("hosts")))
    for server in items(spec.get("servers")):
        hosts.extend(items(server.get("hosts")))
    for host in hosts:
        if "*" in str(host).rsplit("/", 1)[-1]:
            yield f"host {host!r} is a wildcard"


# ---------------------------------------------------------------- JWT on public routes

def _sample_paths(route: Mapping[str, Any]) -> list[str] | None:
    """Paths that stand for what a route matches (None when a regex makes that unknowable)."""
    paths: list[str] = []
    for match in items(route.get("match")) or [{}]:
        uri = match.get("uri") or {}
        if "regex" in uri:
            return None
        if "exact" in uri:
            paths.append(str(uri["exact"]))
        elif "prefix" in uri:
            paths.extend([str(uri["prefix"]), f"{uri['prefix']}x"])
        else:
            paths.extend(["/", "/any/path"])
    return paths


@stack_rule("istio-security-v1-authorizationpolicy-require-jwt-on-public-routes", severity="critical",
            description="Every route a Gateway exposes needs a valid token (a DENY rule for requests without "
                        "a request principal on that gateway) unless that rule lists it as anonymous; "
                        "RequestAuthentication alone admits token-less requests.")
def require_jwt_on_public_routes(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """For each VirtualService bound to a gateway other than `mesh` (which must be declared): each
    host (also host:80) x sample path of every forwarding http route's exact/prefix matches (a regex
    match is reported) meets a DENY rule, in a policy selecting that gateway from its namespace,
    without `when` conditions and whose `from` is empty or only notRequestPrincipals: its operation
    (without methods or ports) matches the request, or its notPaths lists the path (anonymous)."""
    gateways = {(namespace_of(g), str(dig(g.props, "metadata", "name"))): g for g in of_kind(resources, "Gateway")}
    denies = TokenlessDenies.of(resources, lambda: of_kind(resources, "AuthorizationPolicy"))
    for service in of_kind(resources, "VirtualService"):
        refs = [str(g) for g in items(dig(service.props, "spec", "gateways")) if g != "mesh"]
        for ref in refs:
            namespace, _, name = ref.rpartition("/")
            gateway = gateways.get((namespace or namespace_of(service), name))
            if gateway is None:
                yield service, f"binds to gateway {ref}, which the stack does not declare: JWT coverage unknown"
                continue
            for route in http_routes(service):
                if "route" not in route:
                    continue  # direct responses and redirects forward nothing
                paths = _sample_paths(route)
                if paths is None:
                    yield service, f"route {route.get('name')} matches a regex path: use exact/prefix so JWT " \
                                   "coverage can be checked"
                    continue
                for host in items(dig(service.props, "spec", "hosts")):
                    # Envoy also routes `Host: <host>:<port>`; a rule naming only the bare host misses it.
                    for request_host in (str(host), f"{host}:80"):
                        operations = denies.operations(gateway, request_host)
                        for path in paths:
                            if not _covered(operations, request_host, path):
                                yield service, (f"route {route.get('name')} ({request_host}{path}) on gateway {ref} "
                                                "is neither denied without a token nor listed as anonymous")


def _covered(operations: list[Mapping[str, Any]], host: str, path: str) -> bool:
    for operation in operations:
        if operation_matches(operation, host, path):
            return True  # denied without a token
        anonymous = {k: v for k, v in operation.items() if k != "notPaths"}
        if operation.get("notPaths") and operation_matches(anonymous, host, path) \
                and any_pattern_matches(operation["notPaths"], path):
            return True  # explicitly anonymous
    return False


# ---------------------------------------------------------------- auth headers untouched

def _header_operations(headers: Any) -> Iterator[tuple[str, str]]:
    """(where.operation, header) for request and response header rules (the handshake's response
    must echo Sec-WebSocket-Protocol too)."""
    for side in ("request", "response"):
        rules = dig(headers, side) or {}
        for operation in ("set", "add"):
            for name in (rules.get(operation) or {}):
                yield f"{side}.{operation}", str(name)
        for name in items(rules.get("remove")):
            yield f"{side}.remove", str(name)


@resource_rule("istio-resource-disallow-auth-header-changes", types=istio_kind("VirtualService",
                                                                                "RequestAuthentication"),
               severity="critical",
               description="Nothing sets, adds or removes `Authorization` or `Sec-WebSocket-Protocol`: a changed "
                           "header breaks every login, and a JWT rule without forwardOriginalToken strips the "
                           "token header (the browser's WebSocket handshake then fails).")
def no_auth_header_changes(resource: Resource, _: Context) -> Iterable[str]:
    """VirtualServices: no http route's or destination's headers.request or headers.response
    set/add/remove names Authorization or Sec-WebSocket-Protocol. RequestAuthentications: a jwtRule
    reading one of them (Authorization when no fromHeaders, fromParams or fromCookies) has
    forwardOriginalToken true, and no outputClaimToHeaders or outputPayloadToHeader writes to them."""
    if kind_of(resource) == "VirtualService":
        for index, route in enumerate(http_routes(resource)):
            where = f"spec.http[{route.get('name', index)}]"
            blocks = [(where, route.get("headers"))]
            blocks += [(f"{where}.route[{i}]", d.get("headers")) for i, d in enumerate(items(route.get("route")))]
            for place, headers in blocks:
                for operation, name in _header_operations(headers):
                    if name.lower() in TOKEN_HEADERS:
                        yield f"{place}.headers.{operation} touches {name}"
        return
    for index, rule in enumerate(items(dig(resource.props, "spec", "jwtRules"))):
        protected = [n for n in jwt_header_names(rule) if n.lower() in TOKEN_HEADERS]
        if protected and rule.get("forwardOriginalToken") is not True:
            yield (f"spec.jwtRules[{index}] reads {', '.join(protected)} without forwardOriginalToken: true, "
                   "so the header is removed after validation")
        for output in items(rule.get("outputClaimToHeaders")):
            if str(output.get("header", "")).lower() in TOKEN_HEADERS:
                yield f"spec.jwtRules[{index}].outputClaimToHeaders overwrites {output.get('header')}"
        if str(rule.get("outputPayloadToHeader", "")).lower() in TOKEN_HEADERS:
            yield f"spec.jwtRules[{index}].outputPayloadToHeader overwrites {rule.get('outputPayloadToHeader')}"
