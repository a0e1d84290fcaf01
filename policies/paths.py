"""Cross-layer rules: a request followed from the load balancer to the pod.

Single-resource rules cannot see the failures that took the product down before: a 30 s timeout on
one hop of four, an auth header rewritten on one hop. These rules follow a WebSocket upgrade from
the URL map's `/ws` and `/websocket` path rules through the backend service, the Istio gateway's
VirtualService route, the destination's DestinationRule and Service, to the Deployment's container,
and the token's path from Keycloak's realm to the mesh's JWT rules. A broken hop is reported once,
naming the resources on both sides of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from policies import gcp, istio, keycloak
from policies.engine import Context, Resource, stack_rule
from policies.kubernetes import DEPLOYMENT, SERVICE, dig, items, number, pod_spec, pod_template_labels
from stacks.settings import HEALTH_PORT, MIN_WEBSOCKET_TIMEOUT_SECONDS, PROTECTED_HEADERS, WEBSOCKET_PORT

ENVOY_FILTER = "EnvoyFilter"
# The request a browser's WebSocket handshake makes, as the mesh matches it.
UPGRADE_HEADERS = {"upgrade": "websocket", "connection": "Upgrade"}
WEBSOCKET_PATHS = ("/ws", "/websocket")


def label(resource: Resource) -> str:
    """`Kind namespace/name` (Kubernetes) or `Type name` (GCP): how a hop names a resource."""
    kind = resource.type.rsplit(":", 1)[-1]
    name = dig(resource.props, "metadata", "name")
    if name is not None:
        namespace = dig(resource.props, "metadata", "namespace")
        return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
    return f"{kind} {resource.props.get('name') or resource.name}"


@dataclass(frozen=True)
class Hop:
    """A broken link between two resources on the path."""

    number: int
    source: Resource
    target: Resource
    problem: str

    def message(self, path: str) -> str:
        return f"{path}: hop {self.number} {label(self.source)} -> {label(self.target)}: {self.problem}"


@dataclass
class WebSocketPath:
    """What a WebSocket upgrade to one path of the product host reaches, hop by hop."""

    path: str
    url_map: Resource
    backend: Resource | None = None
    virtual_service: Resource | None = None
    route: Mapping[str, Any] | None = None
    destination_rule: Resource | None = None
    service: Resource | None = None
    deployments: tuple[Resource, ...] = ()
    broken: Hop | None = None


# ---------------------------------------------------------------- matching a request like Envoy

def _string_match(matcher: Any, value: str | None) -> bool:
    if not isinstance(matcher, Mapping):
        return False
    if value is None:
        return False
    if "exact" in matcher:
        return value == str(matcher["exact"])
    if "prefix" in matcher:
        return value.startswith(str(matcher["prefix"]))
    if "regex" in matcher:
        try:
            return re.fullmatch(str(matcher["regex"]), value) is not None
        except re.error:
            return False
    return False


def _request_matches(match: Mapping[str, Any], path: str, headers: Mapping[str, str]) -> bool:
    """One HTTPMatchRequest against a request (uri and headers; other criteria never match it)."""
    if set(match) - {"uri", "headers", "name", "ignoreUriCase"}:
        return False
    uri = match.get("uri")
    if uri is not None:
        target = path.lower() if match.get("ignoreUriCase") else path
        matcher = {k: str(v).lower() if match.get("ignoreUriCase") else v for k, v in uri.items()}
        if not _string_match(matcher, target):
            return False
    for name, matcher in (match.get("headers") or {}).items():
        if not _string_match(matcher, headers.get(str(name).lower())):
            return False
    return True


def first_route(service: Resource, path: str, headers: Mapping[str, str]) -> Mapping[str, Any] | None:
    """The route Envoy picks for the request: the first whose matches (any of them) hold."""
    for route in istio.http_routes(service):
        matches = items(route.get("match"))
        if not matches or any(_request_matches(m, path, headers) for m in matches):
            return route
    return None


def _host_matches(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower(), host.lower()
    return pattern == "*" or pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:]))


# ---------------------------------------------------------------- following the WebSocket path

def _url_map_targets(url_map: Resource, path: str) -> Iterator[tuple[str, str | None]]:
    """(host, backend service name) for every host whose path matcher routes `path` by a path rule
    or route rule of its own (a default service is not a WebSocket route)."""
    matchers = {m.get("name"): m for m in items(url_map.props.get("pathMatchers"))}
    for host_rule in items(url_map.props.get("hostRules")):
        matcher = matchers.get(host_rule.get("pathMatcher"))
        found = _matcher_route(matcher, path) if matcher is not None else None
        if found is not None:
            for host in items(host_rule.get("hosts")):
                yield str(host), found[0] if found else None


def _matcher_route(matcher: Mapping[str, Any], path: str) -> list[str] | None:
    """The backend services of the rule that routes `path`, or None when no rule names it."""
    for rule in items(matcher.get("routeRules")):
        for match in items(rule.get("matchRules")):
            full, prefix = match.get("fullPathMatch"), match.get("prefixMatch")
            if full == path or (prefix is not None and path.startswith(str(prefix)) and prefix != "/"):
                return sorted(gcp._rule_services(rule))
    for rule in items(matcher.get("pathRules")):
        for pattern in map(str, items(rule.get("paths"))):
            if pattern == path or (pattern.endswith("/*") and (path + "/").startswith(pattern[:-1])):
                return sorted(gcp._rule_services(rule))
    return None


def _resolve_port(container_ports: list[Mapping[str, Any]], port: Any) -> float | None:
    """A numeric or named port of a container -> its number."""
    if number(port) is not None:
        return number(port)
    for declared in container_ports:
        if declared.get("name") == port:
            return number(declared.get("containerPort"))
    return None


def _probe_port(probe: Any) -> Any:
    for handler in ("httpGet", "tcpSocket", "grpc"):
        port = dig(probe, handler, "port")
        if port is not None:
            return port
    return None


def _declares_http(port: Mapping[str, Any]) -> bool:
    """Istio's protocol selection: appProtocol first, else the port name `http` or `http-*`."""
    app_protocol = port.get("appProtocol")
    if app_protocol is not None:
        return str(app_protocol).lower() == "http"
    name = str(port.get("name") or "").lower()
    return name == "http" or name.startswith("http-")


def _serving_url_maps(resources: list[Resource]) -> list[Resource]:
    """URL maps that route by host (not the port-80 map that only redirects)."""
    return [r for r in resources if r.type == gcp.URL_MAP and items(r.props.get("hostRules"))]


def trace_websocket_paths(resources: list[Resource]) -> list[WebSocketPath]:
    """Every WebSocket path of every serving URL map, followed until it ends or breaks."""
    backends = gcp.declared(resources, gcp.BACKEND_SERVICE)
    services = [r for r in resources if r.type == SERVICE]
    deployments = [r for r in resources if r.type == DEPLOYMENT]
    rules: dict[str, list[Resource]] = {}
    for rule in istio.of_kind(resources, "DestinationRule"):
        host = dig(rule.props, "spec", "host")
        if host:
            rules.setdefault(istio.service_fqdn(host, istio.namespace_of(rule)), []).append(rule)
    gateways = istio.of_kind(resources, "Gateway")
    virtual_services = [v for v in istio.of_kind(resources, "VirtualService")
                        if any(g != "mesh" for g in items(dig(v.props, "spec", "gateways")))]
    traces: list[WebSocketPath] = []
    for url_map in _serving_url_maps(resources):
        for path in WEBSOCKET_PATHS:
            for host, backend_name in _url_map_targets(url_map, path):
                trace = WebSocketPath(path=path, url_map=url_map)
                traces.append(trace)
                _follow(trace, host, backend_name, backends, virtual_services, gateways, rules, services,
                        deployments)
    return traces


def _follow(trace: WebSocketPath, host: str, backend_name: str | None, backends: Mapping[str, Resource],
            virtual_services: list[Resource], gateways: list[Resource], rules: Mapping[str, list[Resource]],
            services: list[Resource], deployments: list[Resource]) -> None:
    def broken(number_: int, source: Resource, target: Resource, problem: str) -> None:
        trace.broken = Hop(number_, source, target, problem)

    url_map = trace.url_map
    backend = backends.get(backend_name or "")
    if backend is None:
        broken(1, url_map, url_map, f"{host}{trace.path} goes to backend service {backend_name!r}, which the stack "
                                    "does not declare")
        return
    trace.backend = backend
    timeout = number(backend.props.get("timeoutSec"))
    seconds = gcp.GCP_DEFAULT_BACKEND_TIMEOUT if timeout is None else timeout
    protocol = backend.props.get("protocol") or "HTTP"
    iap = backend.props.get("iap")
    if seconds < MIN_WEBSOCKET_TIMEOUT_SECONDS:
        broken(1, url_map, backend, f"timeoutSec {seconds:g} caps every WebSocket at {seconds:g} s "
                                    f"(needs >= {MIN_WEBSOCKET_TIMEOUT_SECONDS})")
        return
    if protocol not in ("HTTP", "HTTPS"):
        broken(1, url_map, backend, f"protocol {protocol} breaks the upgrade (HTTP or HTTPS)")
        return
    if isinstance(iap, Mapping) and iap.get("enabled", True):
        broken(1, url_map, backend, "IAP consumes the Authorization header")
        return

    if not virtual_services:
        return  # the stack declares no mesh routing: nothing further to follow here
    candidates = [v for v in virtual_services
                  if any(_host_matches(str(h), host) for h in items(dig(v.props, "spec", "hosts")))]
    if not gateways or not candidates:
        broken(2, backend, backend, f"no VirtualService bound to a gateway serves host {host}")
        return
    service = candidates[0]
    trace.virtual_service = service
    route = first_route(service, trace.path, UPGRADE_HEADERS)
    if route is None or "route" not in route:
        what = "no route" if route is None else f"route {route.get('name')!r}, which does not forward"
        broken(2, backend, service, f"a WebSocket upgrade to {trace.path} meets {what}")
        return
    trace.route = route
    name = route.get("name", "?")
    timeout_value = route.get("timeout")
    if timeout_value is not None and istio.duration_seconds(timeout_value) != 0:
        broken(2, backend, service, f"route {name!r} has timeout {timeout_value!r}: a WebSocket route needs '0s'")
        return
    attempts = number(dig(route, "retries", "attempts"))
    if attempts != 0:
        shown = "the mesh default (2)" if attempts is None else f"{attempts:g}"
        broken(2, backend, service, f"route {name!r} retries the upgrade {shown} times: set retries.attempts 0")
        return

    destinations = items(route.get("route"))
    destination = dig(destinations[0], "destination") if destinations else None
    if len(destinations) != 1 or not isinstance(destination, Mapping):
        broken(3, service, service, f"route {name!r} must send WebSockets to exactly one destination")
        return
    fqdn = istio.service_fqdn(destination.get("host"), istio.namespace_of(service))
    destination_rules = rules.get(fqdn, [])
    if not destination_rules:
        broken(3, service, service, f"destination {fqdn} has no DestinationRule")
        return
    rule = destination_rules[0]
    trace.destination_rule = rule
    problems = list(istio._long_lived_problems(rule, max(seconds, istio.MIN_WEBSOCKET_IDLE_SECONDS)))
    problems += list(istio.require_outlier_detection(rule, Context(stack="")))
    if problems:
        broken(3, service, rule, problems[0])
        return

    svc_name, _, rest = fqdn.partition(".")
    svc_namespace = rest.partition(".")[0]
    if not services:
        return  # the workloads are declared by another stack
    target = next((s for s in services if dig(s.props, "metadata", "name") == svc_name
                   and dig(s.props, "metadata", "namespace") == svc_namespace), None)
    if target is None:
        broken(4, rule, rule, f"no Service {svc_namespace}/{svc_name} is declared for {fqdn}")
        return
    trace.service = target
    ports = items(dig(target.props, "spec", "ports"))
    wanted = number(dig(destination, "port", "number"))
    port = next((p for p in ports if number(p.get("port")) == wanted), None) if wanted is not None \
        else (ports[0] if len(ports) == 1 else None)
    if port is None:
        broken(4, rule, target, f"the Service has no port {wanted if wanted is None else f'{wanted:g}'}")
        return
    if not _declares_http(port):
        broken(4, rule, target, f"port {port.get('name') or port.get('port')} does not declare HTTP for Istio "
                                "(appProtocol: http, or a name http/http-*): the mesh treats it as opaque TCP")
        return

    selector = dig(target.props, "spec", "selector") or {}
    selected = [d for d in deployments if selector and istio.namespace_of(d) == svc_namespace
                and all(pod_template_labels(d).get(k) == v for k, v in selector.items())]
    if not selected:
        broken(5, target, target, "selects no Deployment's pods")
        return
    trace.deployments = tuple(selected)
    target_port = port.get("targetPort", port.get("port"))
    for deployment in selected:
        problem = _container_problem(deployment, target_port)
        if problem:
            broken(5, target, deployment, problem)
            return


def _container_problem(deployment: Resource, target_port: Any) -> str | None:
    spec = pod_spec(deployment) or {}
    for container in items(spec.get("containers")):
        container_ports = items(container.get("ports"))
        if _resolve_port(container_ports, target_port) != WEBSOCKET_PORT:
            continue
        readiness = container.get("readinessProbe")
        if not isinstance(readiness, Mapping):
            return f"container {container.get('name')} has no readiness probe (needs one on {HEALTH_PORT})"
        probe_port = _resolve_port(container_ports, _probe_port(readiness))
        if probe_port != HEALTH_PORT:
            shown = "none" if probe_port is None else f"{probe_port:g}"
            return f"container {container.get('name')} is probed for readiness on port {shown}, not {HEALTH_PORT}"
        return None
    return f"targetPort {target_port!r} is not container port {WEBSOCKET_PORT} of any container"


@stack_rule("platform-websocket-path-require-long-lived-end-to-end", severity="critical",
            description="A WebSocket lives only as long as the shortest hop allows: the load balancer, the "
                        "mesh route, the destination's connection pool, the Service's protocol and the pod "
                        "must all let an upgraded connection through and keep it open.")
def websocket_path(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """From the URL map's `/ws` and `/websocket` path rules, a WebSocket upgrade is followed hop by
    hop. Hop 1, URL map -> backend service: declared, timeoutSec >= 3600, protocol HTTP(S), no IAP.
    Hop 2, backend -> the gateway VirtualService serving the host: the first route matching the
    upgrade (path and `Upgrade: websocket`, as Envoy matches) forwards, with timeout 0s and
    retries.attempts 0. Hop 3, route -> DestinationRule of its one destination: no h2 upgrade, no
    maxRequestsPerConnection, idle timeouts >= the backend timeout, outlier detection. Hop 4 ->
    the Service: the destination port exists and declares HTTP for Istio. Hop 5 -> the Deployments
    the Service selects: targetPort is container port 8080, readiness probed on 8081. The first
    broken hop of each path is reported, naming the resources on both sides."""
    traces = trace_websocket_paths(resources)
    for url_map in _serving_url_maps(resources):
        routed = {t.path for t in traces if t.url_map is url_map}
        for path in WEBSOCKET_PATHS:
            if path not in routed:
                yield url_map, f"{path}: no host's path matcher routes it (a path rule or route rule naming it)"
    seen: set[tuple[str, str]] = set()
    for trace in traces:
        hop = trace.broken
        if hop is not None and (hop.target.urn, hop.problem) not in seen:
            seen.add((hop.target.urn, hop.problem))
            yield hop.target, hop.message(trace.path)


# ---------------------------------------------------------------- the auth path

def expected_issuers(resources: list[Resource]) -> set[str]:
    """`<KC_HOSTNAME>/realms/<realm>` for every declared Keycloak and realm ConfigMap."""
    hostnames = set()
    for workload in resources:
        if workload.type != DEPLOYMENT or not keycloak.is_keycloak(workload):
            continue
        for container in items((pod_spec(workload) or {}).get("containers")):
            for env in items(container.get("env")):
                if env.get("name") == "KC_HOSTNAME" and isinstance(env.get("value"), str):
                    hostnames.add(env["value"].rstrip("/"))
    realm_names = {str(realm.get("realm")) for r in resources if r.type == keycloak.CONFIG_MAP
                   for _, realm in keycloak.realms(r) if isinstance(realm, Mapping) and realm.get("realm")}
    return {f"{host}/realms/{realm}" for host in hostnames for realm in realm_names}


def _strings(value: Any) -> Iterator[str]:
    """Every key and string value in a props tree."""
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield str(key)
            yield from _strings(child)
    elif isinstance(value, str):
        yield value
    else:
        for child in items(value):
            yield from _strings(child)


def _envoy_filter_problems(resource: Resource) -> Iterator[str]:
    text = "\n".join(_strings(dig(resource.props, "spec", "configPatches"))).lower()
    for header in istio.PROTECTED_HEADERS:
        if header in text:
            yield f"a config patch names {header}"
    if "lua" in text:
        yield "a Lua filter can rewrite any header, including Authorization"


def _gateway_of(service: Resource, gateways: list[Resource]) -> Resource | None:
    for ref in items(dig(service.props, "spec", "gateways")):
        if ref == "mesh":
            continue
        namespace, _, name = str(ref).rpartition("/")
        for gateway in gateways:
            if dig(gateway.props, "metadata", "name") == name \
                    and istio.namespace_of(gateway) == (namespace or istio.namespace_of(service)):
                return gateway
    return None


@stack_rule("platform-auth-path-require-keycloak-jwt-and-untouched-headers", severity="critical",
            description="A token from Keycloak must arrive at the WebSocket service as the browser sent it, "
                        "and be checked on the way: a wrong issuer or JWKS rejects every login, a rewritten "
                        "Authorization or Sec-WebSocket-Protocol header breaks every handshake, and a route "
                        "without a token check lets anyone in.")
def auth_path(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """Issuer: when the stack declares Keycloak, every RequestAuthentication jwtRule's issuer is
    `<KC_HOSTNAME>/realms/<realm>` of a declared realm, and its jwksUri is that issuer's
    `/protocol/openid-connect/certs`; the gateway in front of the WebSocket route has such a rule that
    reads the token from Authorization and Sec-WebSocket-Protocol (browsers cannot set Authorization
    on a WebSocket). Headers: no hop on the path touches Authorization or Sec-WebSocket-Protocol:
    URL map header actions, backend custom headers, VirtualService header rules, JWT rules without
    forwardOriginalToken (they strip the header) or claim-to-header outputs, and EnvoyFilter patches
    (any that names those headers or runs Lua). Token required: a DENY rule for requests without a
    request principal on that gateway covers every WebSocket path."""
    issuers = expected_issuers(resources)
    authentications = istio.of_kind(resources, "RequestAuthentication")
    if issuers:
        for authentication in authentications:
            for index, rule in enumerate(items(dig(authentication.props, "spec", "jwtRules"))):
                issuer = str(rule.get("issuer") or "")
                if issuer not in issuers:
                    yield authentication, (f"jwtRules[{index}].issuer {issuer!r} is not Keycloak's realm issuer "
                                           f"({', '.join(sorted(issuers))})")
                elif rule.get("jwksUri") != f"{issuer}/protocol/openid-connect/certs":
                    yield authentication, (f"jwtRules[{index}].jwksUri {rule.get('jwksUri')!r} is not the realm's "
                                           f"JWKS {issuer}/protocol/openid-connect/certs")

    for resource in resources:
        if resource.type in (gcp.URL_MAP, gcp.BACKEND_SERVICE):
            for kind, name, _value in gcp.header_changes(resource):
                if name.lower() in PROTECTED_HEADERS and kind.startswith(("request", "customRequest")):
                    yield resource, f"{label(resource)} {kind} touches {name}"
        elif istio.kind_of(resource) in ("VirtualService", "RequestAuthentication"):
            for message in istio.no_auth_header_changes(resource, Context(stack="")):
                yield resource, f"{label(resource)}: {message}"
        elif istio.kind_of(resource) == ENVOY_FILTER:
            for message in _envoy_filter_problems(resource):
                yield resource, f"{label(resource)}: {message}"

    gateways = istio.of_kind(resources, "Gateway")
    deny_rules = [(p, rule) for p in istio.of_kind(resources, "AuthorizationPolicy")
                  if dig(p.props, "spec", "action") == "DENY"
                  for rule in items(dig(p.props, "spec", "rules")) if istio._denies_tokenless(rule)]
    for trace in trace_websocket_paths(resources):
        if trace.virtual_service is None or trace.route is None:
            continue
        gateway = _gateway_of(trace.virtual_service, gateways)
        if gateway is None:
            continue
        if issuers and not any(_reads_browser_token(a, gateway) for a in authentications):
            yield gateway, (f"{label(gateway)} carries {trace.path} but no RequestAuthentication on it reads the "
                            "token from both Authorization and Sec-WebSocket-Protocol")
        rules = [rule for policy, rule in deny_rules if istio._selects(policy, gateway)]
        for host in items(dig(trace.virtual_service.props, "spec", "hosts")):
            if not _token_required(rules, str(host), trace.path):
                yield trace.virtual_service, (f"{host}{trace.path} on {label(gateway)} is reached without a valid "
                                              "token: no DENY rule for requests without a request principal")


def _token_required(rules: list[Mapping[str, Any]], host: str, path: str) -> bool:
    """A DENY-without-token rule matches the request itself (listing it as anonymous does not count)."""
    return any(istio._operation_matches(o.get("operation") or {}, host, path)
               for rule in rules for o in (items(rule.get("to")) or [{}]))


def _reads_browser_token(authentication: Resource, gateway: Resource) -> bool:
    if not istio._selects(authentication, gateway):
        return False
    for rule in items(dig(authentication.props, "spec", "jwtRules")):
        names = {n.lower() for n in istio._jwt_header_names(rule)}
        if set(istio.PROTECTED_HEADERS) <= names:
            return True
    return False
