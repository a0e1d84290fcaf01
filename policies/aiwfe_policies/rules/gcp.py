"""GCP load balancer rules: what checkov, tfsec and KICS check on HTTPS load balancers (TLS >= 1.2,
HTTPS only, logging, Cloud Armor, health checks), plus the WebSocket and auth path across the LB that
none of them checks: a WebSocket backend timeout long enough to be the session, and no header rule
that touches the auth or upgrade headers or sends an unexpanded placeholder.

Props are pulumi-gcp's wire form (camelCase, list fields pluralised: `pathMatchers`, `pathRules`,
`routeRules`, `requestHeadersToAdds`, `requestHeadersToRemoves`, `weightedBackendServices`).
References between resources are self links; a reference is matched to a declared resource by its
last path segment (the GCP name).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..contract import GCP_HEADER_VARIABLES, MIN_WEBSOCKET_TIMEOUT_SECONDS, PROTECTED_HEADERS
from ..engine import Context, Resource, resource_rule, stack_rule
from ..model import urlmap
from ..model.urlmap import gcp_name
from .kubernetes import items

BACKEND_SERVICE = "gcp:compute/backendService:BackendService"
URL_MAP = "gcp:compute/uRLMap:URLMap"
SSL_POLICY = "gcp:compute/sSLPolicy:SSLPolicy"
SECURITY_POLICY = "gcp:compute/securityPolicy:SecurityPolicy"
TARGET_HTTPS_PROXY = "gcp:compute/targetHttpsProxy:TargetHttpsProxy"
TARGET_HTTP_PROXY = "gcp:compute/targetHttpProxy:TargetHttpProxy"
GLOBAL_FORWARDING_RULE = "gcp:compute/globalForwardingRule:GlobalForwardingRule"

# A path rule or route rule naming one of these sends WebSocket upgrades to its service.
GCP_DEFAULT_BACKEND_TIMEOUT = 30
TLS_1_2_OR_LATER = ("TLS_1_2", "TLS_1_3")
EXTERNAL_SCHEMES = ("EXTERNAL", "EXTERNAL_MANAGED")
_DOLLAR_PLACEHOLDER = re.compile(r"\$(\{|[A-Za-z_])")
_BRACE_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


# ---------------------------------------------------------------- helpers over props

def declared(resources: Iterable[Resource], type_: str) -> dict[str, Resource]:
    """Declared resources of a type by GCP name (the `name` prop, else the Pulumi name)."""
    return {str(r.props.get("name") or r.name): r for r in resources if r.type == type_}


def _walk(value: Any) -> Iterator[Mapping[str, Any]]:
    """Every mapping inside a props tree, depth first."""
    if isinstance(value, Mapping):
        yield value
        for child in value.values():
            yield from _walk(child)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for child in value:
            yield from _walk(child)


def header_actions(props: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every `headerAction` anywhere in a URL map or security policy: on the map, its default route
    action's weighted backends, each path matcher, route rule, path rule route action and weighted
    backend service."""
    for node in _walk(props):
        action = node.get("headerAction")
        if isinstance(action, Mapping):
            yield action


def header_changes(resource: Resource) -> Iterator[tuple[str, str, str | None]]:
    """(what, header name, value or None for a removal) for every header the resource sets or removes."""
    for action in header_actions(resource.props):
        for kind in ("requestHeadersToAdds", "responseHeadersToAdds"):
            for header in items(action.get(kind)):
                yield kind, str(header.get("headerName") or ""), str(header.get("headerValue") or "")
        for kind in ("requestHeadersToRemoves", "responseHeadersToRemoves"):
            for name in items(action.get(kind)):
                yield kind, str(name), None
    if resource.type == BACKEND_SERVICE:
        for kind in ("customRequestHeaders", "customResponseHeaders"):
            for header in items(resource.props.get(kind)):
                name, _, value = str(header).partition(":")
                yield kind, name.strip(), value.strip()


def websocket_services(url_map: Resource) -> set[str]:
    """GCP names of the backend services the URL map sends WebSocket upgrades to."""
    return urlmap.websocket_services(url_map.props)


def port_range(rule: Resource) -> str:
    return str(rule.props.get("portRange") or "")


# ---------------------------------------------------------------- the WebSocket path across the LB

@stack_rule(
    "gcp-compute-websocket-backend-require-long-timeout",
    severity="high",
    description=f"The backend service timeout caps every WebSocket's lifetime (GCP default 30 s): a backend "
                f"the URL map sends /ws or /websocket to needs timeoutSec >= {MIN_WEBSOCKET_TIMEOUT_SECONDS}.",
)
def websocket_backend_long_timeout(resources: list[Resource], context: Context) -> Iterator[tuple[Resource, str]]:
    """For every URL map, the backend services a WebSocket upgrade to /ws, /ws/..., /websocket or /websocket/...
    reaches on each host whose path matcher routes WebSocket paths (GCP's matching: model/urlmap.py, the router the
    cross-layer tracer uses too), directly or weighted: each is declared in the stack (else the URL map is reported)
    and has timeoutSec >= 3600 (unset means GCP's 30)."""
    backends = declared(resources, BACKEND_SERVICE)
    for url_map in (r for r in resources if r.type == URL_MAP):
        for name in sorted(websocket_services(url_map)):
            backend = backends.get(name)
            if backend is None:
                yield url_map, f"WebSocket paths go to backend service {name!r}, which this stack does not declare"
                continue
            timeout = backend.props.get("timeoutSec")
            seconds = GCP_DEFAULT_BACKEND_TIMEOUT if timeout is None else float(timeout)
            if seconds < MIN_WEBSOCKET_TIMEOUT_SECONDS:
                yield backend, (f"backend service {name!r} carries WebSockets but timeoutSec is {seconds:g} "
                                f"(must be >= {MIN_WEBSOCKET_TIMEOUT_SECONDS}): every socket would be cut then")


@stack_rule(
    "gcp-compute-websocket-backend-disallow-iap-and-http2",
    severity="critical",
    description="IAP consumes the Authorization header and an HTTP2 backend protocol breaks the upgrade: "
                "neither on a backend that carries WebSockets.",
)
def websocket_backend_protocol(resources: list[Resource], context: Context) -> Iterator[tuple[Resource, str]]:
    """For each declared backend service a URL map's /ws or /websocket path or route rules send to: protocol is HTTP
    or HTTPS (unset means HTTP), and no iap block is enabled (one without `enabled` counts as enabled). Backends not
    declared in the stack are left to the timeout rule."""
    backends = declared(resources, BACKEND_SERVICE)
    names = {name for url_map in resources if url_map.type == URL_MAP for name in websocket_services(url_map)}
    for name in sorted(names & set(backends)):
        backend = backends[name]
        protocol = backend.props.get("protocol") or "HTTP"
        if protocol not in ("HTTP", "HTTPS"):
            yield backend, f"backend service {name!r} carries WebSockets over protocol {protocol}: use HTTP or HTTPS"
        iap = backend.props.get("iap")
        if isinstance(iap, Mapping) and iap.get("enabled", True):
            yield backend, f"backend service {name!r} carries WebSockets behind IAP, which consumes Authorization"


# ---------------------------------------------------------------- headers

@resource_rule(
    "gcp-compute-disallow-auth-header-rewrite",
    types=(URL_MAP, BACKEND_SERVICE, SECURITY_POLICY),
    severity="critical",
    description="Authorization, Sec-WebSocket-* , Upgrade and Connection reach the backend only if no "
                "header action or custom header adds, replaces or removes them.",
)
def auth_header_rewrite(resource: Resource, context: Context) -> Iterator[str]:
    """On URL maps, backend services and security policies: no request or response header that a headerAction
    anywhere in the props adds or removes, nor any backend customRequestHeaders or customResponseHeaders entry, is
    Authorization, Sec-WebSocket-Protocol/-Key/-Version/-Extensions, Upgrade or Connection (any case)."""
    for kind, name, _ in header_changes(resource):
        if name.lower() in PROTECTED_HEADERS:
            yield f"{kind} touches {name}: it must pass through untouched (auth token / WebSocket handshake)"


@resource_rule(
    "gcp-compute-disallow-unexpanded-header-placeholders",
    types=(URL_MAP, BACKEND_SERVICE, SECURITY_POLICY),
    severity="critical",
    description="GCP expands only its own {variables} in header values; `$http_*` (nginx) or an unknown "
                "{name} is sent as literal text.",
)
def unexpanded_header_placeholders(resource: Resource, context: Context) -> Iterator[str]:
    """On URL maps, backend services and security policies: every header value a headerAction adds or a backend's
    custom request/response header sets holds no `$name` or `${` placeholder, and every `{name}` in it is one GCP
    expands (contract.GCP_HEADER_VARIABLES: client_region, tls_version, ...). Removals carry no value and are
    skipped."""
    for kind, name, value in header_changes(resource):
        if value is None:
            continue
        if _DOLLAR_PLACEHOLDER.search(value):
            yield f"{kind} {name}: {value!r} holds a `$` placeholder, which GCP sends literally"
        unknown = sorted(set(_BRACE_PLACEHOLDER.findall(value)) - GCP_HEADER_VARIABLES)
        if unknown:
            yield f"{kind} {name}: {value!r} uses {{{unknown[0]}}}, not a variable GCP expands"


# ---------------------------------------------------------------- TLS, redirect, logging, armor, health

@stack_rule(
    "gcp-compute-require-tls-1-2",
    severity="high",
    description="Every HTTPS proxy has an SSL policy with minimum TLS 1.2 and a MODERN, RESTRICTED or CUSTOM "
                "profile (GCP's default policy still accepts TLS 1.0).",
)
def tls_1_2(resources: list[Resource], context: Context) -> Iterator[tuple[Resource, str]]:
    """Every declared SSL policy has minTlsVersion TLS_1_2 or TLS_1_3 (unset means TLS_1_0) and a profile other than
    COMPATIBLE (unset means COMPATIBLE). Every target HTTPS proxy names an sslPolicy, and one declared in this stack
    (an undeclared one cannot be judged and is reported)."""
    policies = declared(resources, SSL_POLICY)
    for policy in policies.values():
        if policy.props.get("minTlsVersion") not in TLS_1_2_OR_LATER:
            yield policy, f"minTlsVersion is {policy.props.get('minTlsVersion') or 'unset (TLS_1_0)'}: use TLS_1_2"
        if (policy.props.get("profile") or "COMPATIBLE") == "COMPATIBLE":
            yield policy, "profile COMPATIBLE offers weak ciphers: use MODERN or RESTRICTED"
    for proxy in (r for r in resources if r.type == TARGET_HTTPS_PROXY):
        reference = proxy.props.get("sslPolicy")
        if not reference:
            yield proxy, "no sslPolicy: GCP's default policy accepts TLS 1.0"
        elif gcp_name(reference) not in policies:
            yield proxy, f"sslPolicy {gcp_name(reference)!r} is not declared in this stack, so it cannot be judged"


def _redirects_to_https(url_map: Resource | None) -> bool:
    redirect = url_map.props.get("defaultUrlRedirect") if url_map else None
    return bool(isinstance(redirect, Mapping) and redirect.get("httpsRedirect")
                and not url_map.props.get("hostRules") and not url_map.props.get("defaultService"))


@stack_rule(
    "gcp-compute-require-https-redirect",
    severity="high",
    description="Plain HTTP only redirects: every HTTP proxy's URL map redirects to HTTPS, and an HTTPS "
                "load balancer has a port-80 forwarding rule that does so.",
)
def https_redirect(resources: list[Resource], context: Context) -> Iterator[tuple[Resource, str]]:
    """Every target HTTP proxy's URL map is declared and only redirects: defaultUrlRedirect.httpsRedirect is true,
    with no hostRules and no defaultService. When the stack has a target HTTPS proxy, some global forwarding rule
    whose portRange starts at 80 targets such a redirecting HTTP proxy."""
    url_maps = declared(resources, URL_MAP)
    http_proxies = declared(resources, TARGET_HTTP_PROXY)
    redirecting = set()
    for name, proxy in http_proxies.items():
        if _redirects_to_https(url_maps.get(gcp_name(proxy.props.get("urlMap")))):
            redirecting.add(name)
        else:
            yield proxy, "this HTTP proxy serves content: its URL map must only redirect to HTTPS"
    if any(r.type == TARGET_HTTPS_PROXY for r in resources):
        rules = [r for r in resources if r.type == GLOBAL_FORWARDING_RULE]
        if not any(port_range(r).split("-")[0] == "80" and gcp_name(r.props.get("target")) in redirecting
                   for r in rules):
            https = next(r for r in resources if r.type == TARGET_HTTPS_PROXY)
            yield https, "no forwarding rule on port 80 redirects HTTP to HTTPS"


@resource_rule(
    "gcp-compute-backendservice-require-logging",
    types=(BACKEND_SERVICE,),
    severity="medium",
    description="Request logs are the record of who reached the backends (and of cut WebSockets).",
)
def backend_logging(resource: Resource, context: Context) -> Iterator[str]:
    """Every backend service has logConfig.enable true, and logConfig.sampleRate, when set, above 0."""
    log = resource.props.get("logConfig")
    if not isinstance(log, Mapping) or not log.get("enable"):
        yield "logConfig.enable is not true"
    elif log.get("sampleRate") is not None and float(log["sampleRate"]) <= 0:
        yield "logConfig.sampleRate is 0: nothing would be logged"


@resource_rule(
    "gcp-compute-backendservice-require-cloud-armor",
    types=(BACKEND_SERVICE,),
    severity="high",
    description="An internet-facing backend without a Cloud Armor policy has no rate limit or IP filtering.",
)
def backend_cloud_armor(resource: Resource, context: Context) -> Iterator[str]:
    """A backend service whose loadBalancingScheme is EXTERNAL or EXTERNAL_MANAGED (unset means EXTERNAL) names a
    securityPolicy; internal schemes are skipped. The policy's rules are not examined."""
    if (resource.props.get("loadBalancingScheme") or "EXTERNAL") in EXTERNAL_SCHEMES \
            and not resource.props.get("securityPolicy"):
        yield "no securityPolicy (Cloud Armor) on an external backend service"


@resource_rule(
    "gcp-compute-backendservice-require-health-check",
    types=(BACKEND_SERVICE,),
    severity="high",
    description="Without a health check the LB keeps sending traffic to endpoints that cannot serve it.",
)
def backend_health_check(resource: Resource, context: Context) -> Iterator[str]:
    """Every backend service, whatever its scheme, lists at least one health check in healthChecks; the health check
    itself is not examined."""
    if not resource.props.get("healthChecks"):
        yield "no healthChecks"
