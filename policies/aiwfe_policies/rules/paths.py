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
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..contract import HEALTH_PORT, MIN_WEBSOCKET_TIMEOUT_SECONDS, PROTECTED_HEADERS, TOKEN_HEADERS, WEBSOCKET_PORT
from ..engine import Context, Resource, stack_rule
from ..model import authz, urlmap
from ..model import destination as policy_model
from ..model.index import index_of
from ..model.urlmap import UPGRADE_HEADERS
from . import gcp, istio, keycloak
from .kubernetes import DEPLOYMENT, SERVICE, dig, items, number, pod_spec, pod_template_labels

ENVOY_FILTER = "EnvoyFilter"
# Where a DestinationRule applies to every client (Istio's default root namespace).
ROOT_NAMESPACE = "istio-system"


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
    """A broken link between two resources on the path (the second may be missing: then `wanted`
    says what was looked for)."""

    number: int
    source: Resource
    target: Resource | None
    problem: str
    wanted: str = ""

    @property
    def reported_on(self) -> Resource:
        return self.target or self.source

    def message(self, path: str) -> str:
        target = label(self.target) if self.target is not None else f"{self.wanted} (not declared)"
        return f"{path}: hop {self.number} {label(self.source)} -> {target}: {self.problem}"


@dataclass
class WebSocketPath:
    """What a WebSocket upgrade to one path of the product host reaches, hop by hop."""

    path: str
    url_map: Resource
    host: str = ""
    backend: Resource | None = None
    gateway: Resource | None = None
    """The Gateway that admitted the VirtualService for the host."""
    virtual_service: Resource | None = None
    route: Mapping[str, Any] | None = None
    destination_rule: Resource | None = None
    traffic_policy: Mapping[str, Any] | None = None
    """The DestinationRule's policy for the route's port and subset."""
    service: Resource | None = None
    deployments: tuple[Resource, ...] = ()
    broken: Hop | None = None


# ---------------------------------------------------------------- matching a request like Envoy

@dataclass(frozen=True)
class Upgrade:
    """A browser's WebSocket handshake as the gateway sees it (after the LB terminated TLS)."""

    host: str
    path: str
    gateway: str = ""
    """`namespace/name` of the gateway it arrives through."""
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType(UPGRADE_HEADERS))


def _string_match(matcher: Any, value: str | None, *, ignore_case: bool = False) -> bool:
    """Istio's StringMatch; an empty matcher asks only that the value exists."""
    if not isinstance(matcher, Mapping) or value is None:
        return False
    if "exact" in matcher:
        expected = str(matcher["exact"])
        return value.lower() == expected.lower() if ignore_case else value == expected
    if "prefix" in matcher:
        expected = str(matcher["prefix"])
        return value.lower().startswith(expected.lower()) if ignore_case else value.startswith(expected)
    if "regex" in matcher:  # RE2 in Envoy; Python's re agrees on the patterns routes use
        try:
            return re.fullmatch(str(matcher["regex"]), value) is not None
        except re.error:
            return False
    return not matcher


def _request_matches(match: Mapping[str, Any], request: Upgrade, namespace: str = "") -> bool:
    """One HTTPMatchRequest against the upgrade request. Criteria it cannot know (the port, the
    source, query parameters) count as met: the route may catch the upgrade, so it is judged."""
    uri = match.get("uri")
    if uri is not None and not _string_match(uri, request.path, ignore_case=bool(match.get("ignoreUriCase"))):
        return False
    headers = {k.lower(): v for k, v in request.headers.items()}
    for name, matcher in (match.get("headers") or {}).items():
        if not _string_match(matcher, headers.get(str(name).lower())):
            return False
    for name, matcher in (match.get("withoutHeaders") or {}).items():
        if _string_match(matcher, headers.get(str(name).lower())):
            return False
    if "method" in match and not _string_match(match["method"], request.method):
        return False
    if "authority" in match and not _string_match(match["authority"], request.host):
        return False
    if "scheme" in match and not _string_match(match["scheme"], "http"):
        return False  # the load balancer speaks HTTP to the gateway
    gateways = {str(g) if "/" in str(g) else f"{namespace}/{g}" for g in items(match.get("gateways"))}
    return not (gateways and request.gateway and request.gateway not in gateways)


def first_route(service: Resource, request: Upgrade) -> Mapping[str, Any] | None:
    """The route Envoy picks for the request: the first whose matches (any of them) hold."""
    for route in istio.http_routes(service):
        matches = items(route.get("match"))
        namespace = istio.namespace_of(service)
        if not matches or any(_request_matches(m, request, namespace) for m in matches if isinstance(m, Mapping)):
            return route
    return None


def _host_matches(pattern: str, host: str) -> bool:
    """Istio's host matching (VirtualService, Gateway and DestinationRule hosts); URL map hosts go by
    GCP's (`urlmap.host_matches`)."""
    pattern, host = pattern.lower(), host.lower()
    return pattern == "*" or pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:]))


# ---------------------------------------------------------------- following the WebSocket path

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


def exact_hosts(url_map: Resource) -> set[str]:
    """Hosts a URL map's host rules name without a wildcard."""
    return {str(h) for rule in items(url_map.props.get("hostRules")) for h in items(rule.get("hosts"))
            if "*" not in str(h)}


def _serving_url_maps(resources: list[Resource]) -> list[Resource]:
    """URL maps that route by host (not the port-80 map that only redirects)."""
    return [r for r in resources if r.type == gcp.URL_MAP and items(r.props.get("hostRules"))]


def trace_websocket_paths(resources: list[Resource]) -> tuple[WebSocketPath, ...]:
    """Every WebSocket path (and a path below it) of every host that serves them, followed until
    it ends or breaks. Traced once per evaluation and shared by the rules that ask: read-only."""
    return index_of(resources).memo("websocket-paths", lambda: tuple(_trace(resources)))


def _trace(resources: list[Resource]) -> list[WebSocketPath]:
    url_maps = _serving_url_maps(resources)
    if not url_maps:
        return []
    layers = _Layers(resources)
    traces: list[WebSocketPath] = []
    for url_map in url_maps:
        for pattern, path, found in urlmap.websocket_routes(url_map.props):
            backend_name = found.services[0] if found.services else None
            for host in layers.concrete_hosts(pattern, exact_hosts(url_map)):
                trace = WebSocketPath(path=path, url_map=url_map, host=host)
                traces.append(trace)
                _follow(trace, host, backend_name, layers)
    return traces


class _Layers:
    """The stack's resources by the role they play on the path."""

    def __init__(self, resources: list[Resource]) -> None:
        self.backends = gcp.declared(resources, gcp.BACKEND_SERVICE)
        self.services = [r for r in resources if r.type == SERVICE]
        self.deployments = [r for r in resources if r.type == DEPLOYMENT]
        self._by_label: dict[tuple[str, str, Any], list[Resource]] | None = None
        self.destination_rules = istio.of_kind(resources, "DestinationRule")
        self.gateways = istio.of_kind(resources, "Gateway")
        self.virtual_services = istio.of_kind(resources, "VirtualService")
        # Lookups by host, reference and name, so each traced path costs the same however many
        # hosts, routes and services the stack has. Built from the fields the scans they replace
        # read, and, where a scan read a field only for some resources, on first use.
        self._services_by_name: dict[Any, list[Resource]] | None = None
        self._gateways_by_ref: dict[str, list[Resource]] = {}
        for gateway in self.gateways:
            self._gateways_by_ref.setdefault(istio_gateway_ref(gateway), []).append(gateway)
        self._routes_by_host: dict[str, list[Resource]] = {}
        self._routes_by_wildcard: list[Resource] = []
        for service in self.virtual_services:
            hosts = [str(h).lower() for h in items(dig(service.props, "spec", "hosts"))]
            if any("*" in h for h in hosts):
                self._routes_by_wildcard.append(service)
            for host in {h for h in hosts if "*" not in h}:
                self._routes_by_host.setdefault(host, []).append(service)
        self._order = {id(r): i for i, r in enumerate(
            [*self.virtual_services, *self.gateways, *self.destination_rules])}
        self._rules_in: dict[str, list[Resource]] = {}
        for rule in self.destination_rules:
            self._rules_in.setdefault(istio.namespace_of(rule), []).append(rule)
        self._rule_hosts: dict[str, tuple[dict[str, list[Resource]], list[Resource]]] = {}

    def service(self, namespace: str, name: str) -> Resource | None:
        """The first Service declared with this name in this namespace."""
        if self._services_by_name is None:
            by_name: dict[Any, list[Resource]] = {}
            for service in self.services:
                by_name.setdefault(dig(service.props, "metadata", "name"), []).append(service)
            self._services_by_name = by_name
        return next((s for s in self._services_by_name.get(name, [])
                     if dig(s.props, "metadata", "namespace") == namespace), None)

    def _rules_by_host(self, namespace: str) -> tuple[dict[str, list[Resource]], list[Resource]]:
        """A namespace's DestinationRules by exact host, and those with a wildcard host."""
        if namespace not in self._rule_hosts:
            exact: dict[str, list[Resource]] = {}
            wildcard: list[Resource] = []
            for rule in self._rules_in.get(namespace, []):
                host = _rule_host(rule)
                if "*" in host:
                    wildcard.append(rule)
                else:
                    exact.setdefault(host.lower(), []).append(rule)
            self._rule_hosts[namespace] = (exact, wildcard)
        return self._rule_hosts[namespace]

    def routes_for(self, host: str) -> list[Resource]:
        """VirtualServices that may list `host` (by exact name or a wildcard), in declaration order."""
        candidates = {id(v): v for v in self._routes_by_host.get(host.lower(), []) + self._routes_by_wildcard}
        return sorted(candidates.values(), key=lambda v: self._order[id(v)])

    def deployments_with(self, namespace: str, selector: Mapping[str, Any]) -> list[Resource]:
        """Deployments of `namespace` carrying one of the selector's labels (candidates; an empty
        selector selects nothing here)."""
        if not selector:
            return []
        if self._by_label is None:
            by_label: dict[tuple[str, str, Any], list[Resource]] = {}
            for deployment in self.deployments:
                for key, value in pod_template_labels(deployment).items():
                    by_label.setdefault((istio.namespace_of(deployment), str(key), value), []).append(deployment)
            self._by_label = by_label
        # Every pair must match: the smallest bucket holds all candidates.
        return min((self._by_label.get((namespace, str(key), value), []) for key, value in selector.items()),
                   key=len)

    def concrete_hosts(self, pattern: str, taken: set[str]) -> list[str]:
        """A URL map host rule's host, or for a wildcard (`*`, `*.example.com`) the gateway
        VirtualService hosts it covers that no other host rule names exactly (those go by theirs)."""
        if "*" not in pattern:
            return [pattern]
        hosts = sorted({str(h) for v in self.virtual_services for h in items(dig(v.props, "spec", "hosts"))
                        if "*" not in str(h) and urlmap.host_matches(pattern, str(h)) and _gateway_refs(v)} - taken)
        return hosts or [pattern]

    def serving(self, host: str) -> list[tuple[Resource, Resource]]:
        """(VirtualService, Gateway) pairs that take requests for `host` at a gateway: the
        VirtualService lists the host and is bound to a Gateway whose servers admit its namespace
        for that host (`ns/host`, `./host`, `*/host` or a bare host)."""
        pairs = []
        for service in self.routes_for(host):
            if not any(_host_matches(str(h), host) for h in items(dig(service.props, "spec", "hosts"))):
                continue
            bound = [g for ref in _gateway_refs(service) for g in self._gateways_by_ref.get(ref, [])]
            for gateway in sorted(bound, key=lambda g: self._order[id(g)]):
                if _admits(gateway, service, host):
                    pairs.append((service, gateway))
        return pairs

    def destination_rule(self, fqdn: str, client_namespace: str) -> Resource | None:
        """Istio's pick for a destination: a rule in the client's namespace, else in the service's,
        else in the root namespace (rules elsewhere do not apply); an exact host before a wildcard.
        `exportTo` is not modelled."""
        service_namespace = fqdn.split(".")[1] if fqdn.count(".") >= 1 else ""
        order = [client_namespace, service_namespace, ROOT_NAMESPACE]
        matching = []
        for namespace in dict.fromkeys(order):
            exact, wildcard = self._rules_by_host(namespace)
            matching += exact.get(fqdn.lower(), [])
            matching += [r for r in wildcard if _host_matches(_rule_host(r), fqdn)]
        matching.sort(key=lambda r: self._order[id(r)])  # min() keeps the first of equals, as a scan does
        return min(matching, key=lambda r: (order.index(istio.namespace_of(r)), _rule_host(r) != fqdn),
                   default=None)


def _rule_host(rule: Resource) -> str:
    """A DestinationRule's host as a full name (a wildcard as written)."""
    host = str(dig(rule.props, "spec", "host") or "")
    return host if host.startswith("*") else policy_model.service_fqdn(host, istio.namespace_of(rule))


def istio_gateway_ref(gateway: Resource) -> str:
    return f"{istio.namespace_of(gateway)}/{dig(gateway.props, 'metadata', 'name')}"


def _gateway_refs(service: Resource) -> set[str]:
    """`namespace/name` of the gateways a VirtualService binds to (a bare name: its own namespace)."""
    refs = set()
    for ref in map(str, items(dig(service.props, "spec", "gateways"))):
        if ref != "mesh":
            refs.add(ref if "/" in ref else f"{istio.namespace_of(service)}/{ref}")
    return refs


def _admits(gateway: Resource, service: Resource, host: str) -> bool:
    own = istio.namespace_of(service)
    for server in items(dig(gateway.props, "spec", "servers")):
        for entry in map(str, items(server.get("hosts"))):
            namespace, _, name = entry.rpartition("/")
            allowed = namespace in ("", "*", own) or (namespace == "." and own == istio.namespace_of(gateway))
            if allowed and _host_matches(name, host):
                return True
    return False


def _follow(trace: WebSocketPath, host: str, backend_name: str | None, layers: _Layers) -> None:
    def broken(number_: int, source: Resource, target: Resource | None, problem: str, wanted: str = "") -> None:
        trace.broken = Hop(number_, source, target, problem, wanted)

    url_map = trace.url_map
    backend = layers.backends.get(backend_name or "")
    if backend is None:
        if backend_name is None:
            broken(1, url_map, None, f"{host}{trace.path} is redirected or has no backend", "a backend service")
        else:
            broken(1, url_map, None, f"{host}{trace.path} goes to it", f"BackendService {backend_name}")
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

    if not layers.gateways and not layers.virtual_services:
        return  # the stack declares no mesh routing: nothing further to follow here
    pairs = layers.serving(host)
    if not pairs:
        named = [v for v in layers.virtual_services
                 if any(_host_matches(str(h), host) for h in items(dig(v.props, "spec", "hosts")))]
        problem = (f"{', '.join(label(v) for v in named)} names the host, but no declared Gateway it binds to "
                   "admits it there") if named else "nothing routes the host at a gateway"
        broken(2, backend, None, problem, f"gateway VirtualService for {host}")
        return
    service, gateway = pairs[0]
    trace.virtual_service, trace.gateway = service, gateway
    route = first_route(service, Upgrade(host=host, path=trace.path, gateway=istio_gateway_ref(gateway)))
    if route is None or "route" not in route:
        what = "no route" if route is None else f"route {route.get('name')!r}, which does not forward"
        broken(2, backend, service, f"a WebSocket upgrade to {trace.path} meets {what}")
        return
    trace.route = route
    name = route.get("name", "?")
    timeout_value = route.get("timeout")
    if timeout_value is not None and policy_model.duration_seconds(timeout_value) != 0:
        broken(2, backend, service, f"route {name!r} has timeout {timeout_value!r}: a WebSocket route needs none")
        return
    attempts = number(dig(route, "retries", "attempts"))
    if attempts != 0:
        shown = "the mesh default (2)" if attempts is None else f"{attempts:g}"
        broken(2, backend, service, f"route {name!r} retries the upgrade {shown} times: set retries.attempts 0")
        return

    destinations = items(route.get("route"))
    destination = dig(destinations[0], "destination") if destinations else None
    if len(destinations) != 1 or not isinstance(destination, Mapping):
        broken(3, service, None, f"route {name!r} must send WebSockets to exactly one destination",
               "one destination")
        return
    fqdn = policy_model.service_fqdn(destination.get("host"), istio.namespace_of(service))
    rule = layers.destination_rule(fqdn, istio.namespace_of(gateway))
    if rule is None:
        broken(3, service, None, f"nothing sets {fqdn}'s connection pool and outlier detection",
               f"DestinationRule for {fqdn}")
        return
    trace.destination_rule = rule
    svc_name, _, rest = fqdn.partition(".")
    svc_namespace = rest.partition(".")[0]
    target = layers.service(svc_namespace, svc_name)
    wanted_port = number(dig(destination, "port", "number"))
    ports = items(dig(target.props, "spec", "ports")) if target is not None else []
    # Without a port in the route, Istio applies the settings of the Service's single port.
    policy_port = wanted_port if wanted_port is not None else (number(ports[0].get("port")) if len(ports) == 1
                                                                else None)
    subset = destination.get("subset")
    trace.traffic_policy = policy_model.effective_policy(rule.props.get("spec") or {}, policy_port, subset)
    if trace.traffic_policy is None:
        broken(3, service, rule, f"route {name!r} sends to subset {subset!r}, which the rule does not define "
                                 "(Envoy answers 503)")
        return
    problems = list(policy_model.long_lived_problems(trace.traffic_policy, max(seconds, MIN_WEBSOCKET_TIMEOUT_SECONDS)))
    if problems:
        broken(3, service, rule, problems[0])
        return

    if not layers.services:
        return  # the workloads are declared by another stack
    if target is None:
        broken(4, rule, None, f"{fqdn} names it", f"Service {svc_namespace}/{svc_name}")
        return
    trace.service = target
    port = next((p for p in ports if number(p.get("port")) == wanted_port), None) if wanted_port is not None \
        else (ports[0] if len(ports) == 1 else None)
    if port is None:
        shown = f"port {wanted_port:g}" if wanted_port is not None else "a single port (the route names none)"
        broken(4, rule, target, f"the Service has no {shown}")
        return
    if not _declares_http(port):
        broken(4, rule, target, f"port {port.get('name') or port.get('port')} does not declare HTTP for Istio "
                                "(appProtocol: http, or a name http/http-*): the mesh treats it as opaque TCP")
        return

    selector = dig(target.props, "spec", "selector") or {}
    selected = [d for d in layers.deployments_with(svc_namespace, selector)
                if all(pod_template_labels(d).get(k) == v for k, v in selector.items())]
    if not selected:
        broken(5, target, None, "its selector matches no pod template", f"Deployment selected by {svc_name}")
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
    """For every host whose URL map path matcher names /ws or /websocket, an upgrade to /ws,
    /ws/session, /websocket and /websocket/session is followed as GCP and Envoy would route it.
    Hop 1, URL map -> backend service (route rules by priority, else the longest path rule, else the
    default): declared, timeoutSec >= 3600, protocol HTTP(S), no IAP. Hop 2 -> the VirtualService a
    Gateway admits for the host: the first route whose match holds for the upgrade (uri, headers,
    withoutHeaders, method, authority, gateways; criteria it cannot know count as met) forwards,
    with no timeout (unset, or '0s': the same to Envoy; the route rule reports the CRD refusing it) and
    retries.attempts 0. Hop 3 -> the DestinationRule Istio picks for its one
    destination (client namespace first; port-level and subset overrides applied): no h2 upgrade,
    no maxRequestsPerConnection, idle timeouts >= the backend timeout, outlier detection. Hop 4 ->
    the Service port, declaring HTTP for Istio. Hop 5 -> the selected Deployments: targetPort is
    container port 8080, readiness probed on 8081. The first broken hop is reported with both
    resources (or what was looked for)."""
    traces = trace_websocket_paths(resources)
    for url_map in _serving_url_maps(resources):
        if not any(t.url_map is url_map for t in traces):
            yield url_map, "no host's path matcher routes /ws or /websocket (a path rule or route rule naming them)"
    seen: set[tuple[str, str]] = set()
    for trace in traces:
        hop = trace.broken
        if hop is not None and (hop.reported_on.urn, hop.problem) not in seen:
            seen.add((hop.reported_on.urn, hop.problem))
            yield hop.reported_on, hop.message(trace.path)


# ---------------------------------------------------------------- the auth path

def keycloak_hostnames(resources: list[Resource]) -> tuple[set[str], list[Resource]]:
    """(Keycloak's public base URLs from KC_HOSTNAME, Keycloak workloads whose KC_HOSTNAME is not
    a literal and so cannot be checked). A hostname without a scheme is served over https."""
    hostnames, unknown = set(), []
    for workload in resources:
        if workload.type != DEPLOYMENT or not keycloak.is_keycloak(workload):
            continue
        values = [env.get("value") for c in items((pod_spec(workload) or {}).get("containers"))
                  for env in items(c.get("env")) if env.get("name") == "KC_HOSTNAME"]
        literal = [v for v in values if isinstance(v, str) and v]
        if not literal:
            unknown.append(workload)
        for value in literal:
            hostnames.add((value if "://" in value else f"https://{value}").rstrip("/"))
    return hostnames, unknown


def expected_issuers(resources: list[Resource]) -> set[str]:
    """`<KC_HOSTNAME>/realms/<realm>` for every declared Keycloak and realm ConfigMap."""
    hostnames, _ = keycloak_hostnames(resources)
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


# Envoy's Lua filter (by name and by config type): its code can rewrite any header.
LUA_FILTER = ("envoy.filters.http.lua", "type.googleapis.com/envoy.extensions.filters.http.lua.v3.lua")


def _envoy_filter_problems(resource: Resource) -> Iterator[str]:
    strings = [text.lower() for text in _strings(dig(resource.props, "spec", "configPatches"))]
    for header in TOKEN_HEADERS:
        if any(header in text for text in strings):
            yield f"a config patch names {header}"
    if any(text in LUA_FILTER for text in strings):
        yield "a Lua filter can rewrite any header, including Authorization"


@stack_rule("platform-auth-path-require-keycloak-jwt-and-untouched-headers", severity="critical",
            description="A token from Keycloak must arrive at the WebSocket service as the browser sent it, "
                        "and be checked on the way: a wrong issuer or JWKS rejects every login, a rewritten "
                        "Authorization or Sec-WebSocket-Protocol header breaks every handshake, and a route "
                        "without a token check lets anyone in.")
def auth_path(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """Issuer: when the stack declares Keycloak (whose KC_HOSTNAME must be a literal when JWT rules
    exist), every RequestAuthentication jwtRule's issuer is `<KC_HOSTNAME>/realms/<realm>` of a
    declared realm, and its jwksUri, when set, is that issuer's `/protocol/openid-connect/certs`;
    the gateway in front of the WebSocket route has such a rule that reads the token from
    Authorization and Sec-WebSocket-Protocol (browsers cannot set Authorization on a WebSocket).
    Headers: nothing touches Authorization or Sec-WebSocket-Protocol (nor, on the LB, the other
    upgrade headers): URL map header actions, backend custom headers, VirtualService request or
    response header rules, JWT rules without forwardOriginalToken (they strip the header) or with
    claim-to-header outputs, EnvoyFilter patches that name those headers or add Envoy's Lua filter.
    Token required: an unconditional DENY rule for requests without a request principal on that
    gateway matches every WebSocket path itself (listing it as anonymous does not count)."""
    issuers = expected_issuers(resources)
    authentications = istio.of_kind(resources, "RequestAuthentication")
    _, unreadable = keycloak_hostnames(resources)
    for workload in unreadable if authentications else []:
        yield workload, "KC_HOSTNAME is not a literal value: the issuer the mesh must trust cannot be checked"
    if issuers:
        for authentication in authentications:
            for index, rule in enumerate(items(dig(authentication.props, "spec", "jwtRules"))):
                issuer = str(rule.get("issuer") or "")
                jwks = rule.get("jwksUri")
                if issuer not in issuers:
                    yield authentication, (f"jwtRules[{index}].issuer {issuer!r} is not Keycloak's realm issuer "
                                           f"({', '.join(sorted(issuers))})")
                elif jwks is not None and jwks != f"{issuer}/protocol/openid-connect/certs":
                    # Without jwksUri istiod takes it from the issuer's discovery document: the realm's.
                    yield authentication, (f"jwtRules[{index}].jwksUri {jwks!r} is not the realm's "
                                           f"JWKS {issuer}/protocol/openid-connect/certs")

    for resource in resources:
        if resource.type in (gcp.URL_MAP, gcp.BACKEND_SERVICE):
            for kind, name, _value in gcp.header_changes(resource):
                if name.lower() in PROTECTED_HEADERS:
                    yield resource, f"{label(resource)} {kind} touches {name}"
        elif istio.kind_of(resource) in ("VirtualService", "RequestAuthentication"):
            for message in istio.no_auth_header_changes(resource, Context(stack="")):
                yield resource, f"{label(resource)}: {message}"
        elif istio.kind_of(resource) == ENVOY_FILTER:
            for message in _envoy_filter_problems(resource):
                yield resource, f"{label(resource)}: {message}"

    denies = authz.TokenlessDenies.of(resources, lambda: istio.of_kind(resources, "AuthorizationPolicy"))
    for trace in trace_websocket_paths(resources):
        gateway = trace.gateway
        if trace.virtual_service is None or trace.route is None or gateway is None:
            continue
        if issuers and not any(_reads_browser_token(a, gateway) for a in authentications):
            yield gateway, (f"{label(gateway)} carries {trace.path} but no RequestAuthentication on it reads the "
                            "token from both Authorization and Sec-WebSocket-Protocol")
        if not _token_required(denies.operations(gateway, trace.host), trace.host, trace.path):
            yield trace.virtual_service, (f"{trace.host}{trace.path} on {label(gateway)} is reached without a valid "
                                          "token: no DENY rule for requests without a request principal")


def _token_required(operations: list[Mapping[str, Any]], host: str, path: str) -> bool:
    """A DENY-without-token rule matches the request itself (listing it as anonymous does not count)."""
    return any(authz.operation_matches(operation, host, path) for operation in operations)


def _reads_browser_token(authentication: Resource, gateway: Resource) -> bool:
    if not authz.selects(authentication, gateway):
        return False
    for rule in items(dig(authentication.props, "spec", "jwtRules")):
        names = {n.lower() for n in authz.jwt_header_names(rule)}
        if set(TOKEN_HEADERS) <= names:
            return True
    return False
