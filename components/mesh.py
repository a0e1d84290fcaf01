"""The Istio mesh rules of the platform: mTLS, the public Gateway, routes, circuit breakers, JWT at
the edge, service-to-service authorization and telemetry.

Istio itself (istiod, the ingress gateway) is installed outside this program; this component only
declares Istio custom resources, at the API versions the configured Istio release serves.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import podspec
from policies.aiwfe_policies.contract import FRONTEND_CONTAINER_PORT, FRONTEND_SERVICE_PORT, WEBSOCKET_PORT


@dataclass(frozen=True)
class MeshSettings:
    """How the application namespaces join the Istio mesh, and where its ingress gateway runs."""

    istio_revision: str | None
    """A revision label (`istio.io/rev`) for canary control planes; None uses `istio-injection`."""
    cni: bool
    """Istio CNI plugin installed: pods need no NET_ADMIN init container (decides Pod Security)."""
    istiod_namespace: str
    ingress_gateway_namespace: str
    ingress_gateway_labels: Mapping[str, str]
    # Istio resources (the Mesh component): versions, mTLS, gateway identity, telemetry.
    istio_version: str = "1.30.3"
    """The Istio release installed on the cluster; decides the API versions the program declares."""
    mtls_mode: str = "STRICT"
    """PeerAuthentication mode of the meshed namespaces: STRICT (prod always), PERMISSIVE in staging only."""
    ingress_gateway_service_account: str = "istio-ingressgateway"
    """The ingress gateway's ServiceAccount: its SPIFFE principal is the only caller the apps admit."""
    trust_domain: str = "cluster.local"
    tracing_sampling_percent: float = 1.0
    access_logging: bool = True

    @property
    def istio_minor(self) -> int:
        return int(self.istio_version.split(".")[1])

    def principal(self, namespace: str, service_account: str) -> str:
        """The SPIFFE identity (without `spiffe://`) AuthorizationPolicies match a workload by."""
        return f"{self.trust_domain}/ns/{namespace}/sa/{service_account}"

    @property
    def ingress_gateway_principal(self) -> str:
        return self.principal(self.ingress_gateway_namespace, self.ingress_gateway_service_account)


# ---------------------------------------------------------------- facts the rules are built from

# REQUIREMENTS: ordinary HTTP routes retry 3 times, 30 s per try, on these conditions.
HTTP_RETRIES: dict[str, Any] = {"attempts": 3, "perTryTimeout": "30s",
                                "retryOn": "5xx,reset,connect-failure,refused-stream"}
# Without a retry policy the mesh retries twice: a replayed upgrade would open a second socket.
NO_RETRIES: dict[str, Any] = {"attempts": 0}
# Keycloak's POSTs are not idempotent: a replayed code exchange is refused as code reuse (and Keycloak
# then revokes the session), a replayed login form counts twice against brute-force protection. On
# routes that carry them, retry only what never reached Keycloak (a connection that was never made,
# a stream the server refused unprocessed); a per-try timeout is then final (Envoy retries it only
# under 5xx/gateway-error).
NEVER_REACHED_RETRY_ON = "connect-failure,refused-stream"
# Keycloak's reads (discovery, JWKS, login pages, assets) may be retried on any failure.
KEYCLOAK_READ_RETRY_ON = "5xx,reset,connect-failure,refused-stream"
KEYCLOAK_READ_ATTEMPTS = 2
KEYCLOAK_READ_METHODS = ("GET", "HEAD")
# The mesh answers (504) before the load balancer gives up on the backend (502, and a logged
# backend timeout): the route's whole budget ends this much earlier.
LB_MARGIN_SECONDS = 5


def keycloak_route_budget(lb_timeout_seconds: int) -> dict[str, int]:
    """Timeouts of Keycloak's routes inside the load balancer's backend timeout: the route's total,
    and each read try's so that every try of a read fits in the total."""
    total = lb_timeout_seconds - LB_MARGIN_SECONDS
    if total < 2 * (KEYCLOAK_READ_ATTEMPTS + 1):
        raise ValueError(f"a {lb_timeout_seconds} s load-balancer timeout leaves Keycloak's routes no time")
    return {"total": total, "read_try": total // (KEYCLOAK_READ_ATTEMPTS + 1)}
# Istio matches header values case-sensitively; browsers send `websocket`, some clients `WebSocket`.
UPGRADE_WEBSOCKET = {"regex": "(?i)websocket"}
WEBSOCKET_PATHS = ("/ws", "/websocket")

# REQUIREMENTS circuit breakers. Never `consecutiveErrors` (deprecated; counted only 502/503/504).
BACKEND_OUTLIER_DETECTION: dict[str, Any] = {"consecutive5xxErrors": 5, "interval": "5s", "baseEjectionTime": "30s",
                                             "maxEjectionPercent": 50, "minHealthPercent": 50}
WEBSOCKET_OUTLIER_DETECTION: dict[str, Any] = {"consecutive5xxErrors": 5, "interval": "30s",
                                               "baseEjectionTime": "30s", "maxEjectionPercent": 50}


# JWT locations. Browsers cannot set Authorization on a WebSocket; they offer the subprotocols
# ["jwt-auth", "jwt.<token>"], sent as `Sec-WebSocket-Protocol: jwt-auth, jwt.<token>`. Envoy finds
# the prefix in the header value and takes the token from the JWT characters after it to the end.
BEARER_PREFIX = "Bearer "
WEBSOCKET_PROTOCOL_HEADER = "Sec-WebSocket-Protocol"
WEBSOCKET_TOKEN_PREFIX = "jwt-auth, jwt."  # noqa: S105 (a header prefix, not a secret)
JWT_FROM_HEADERS: list[dict[str, str]] = [
    {"name": "Authorization", "prefix": BEARER_PREFIX},
    {"name": WEBSOCKET_PROTOCOL_HEADER, "prefix": WEBSOCKET_TOKEN_PREFIX},
]

# Keycloak paths never routed publicly (admin console and API, master realm, management endpoints).
KEYCLOAK_BLOCKED_PREFIXES = ("/admin", "/realms/master", "/metrics", "/health")
# Static assets Keycloak's login pages load, outside the realm path.
KEYCLOAK_ASSET_PREFIXES = ("/resources/", "/js/")

GATEWAY_NAME = "aiwfe-gateway"
EDGE_JWT_NAME = "aiwfe-edge-jwt"
EDGE_REQUIRE_JWT_NAME = "aiwfe-edge-require-jwt"
ACCESS_LOG_PROVIDER = "envoy"  # Istio's built-in stdout access log provider

_JWT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def extract_header_token(value: str, prefix: str) -> str | None:
    """The token Envoy's JWT filter extracts from one header value for a `fromHeaders` prefix.

    Mirrors Envoy's documented behaviour (jwt_authn `from_headers.value_prefix`): the prefix is
    searched anywhere in the value (absent: this location yields no token); the token starts at the
    first base64url-or-dot character after it and runs to the end of the value."""
    if not prefix:
        return value
    position = value.find(prefix)
    if position < 0:
        return None
    rest = value[position + len(prefix):]
    for index, char in enumerate(rest):
        if char in _JWT_CHARS:
            return rest[index:]
    return value


@dataclass(frozen=True)
class IstioApis:
    """The apiVersion of each Istio API group the program declares resources in."""

    networking: str
    security: str
    telemetry: str


def istio_api_versions(istio_version: str) -> IstioApis:
    """API versions for an Istio release: the `v1` groups exist from 1.22 (networking, security
    and telemetry alike); older releases are out of support and refused."""
    match = re.fullmatch(r"1\.(\d+)\.\d+", istio_version)
    if not match:
        raise ValueError(f"not an Istio 1.x.y release: {istio_version!r}")
    if int(match.group(1)) < 22:
        raise ValueError(f"Istio {istio_version} predates the v1 APIs (1.22); upgrade Istio")
    return IstioApis("networking.istio.io/v1", "security.istio.io/v1", "telemetry.istio.io/v1")


def cluster_host(service: pulumi.Input[str], namespace: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.concat(service, ".", namespace, ".svc.cluster.local")


def uri_matches(prefix: str) -> list[dict[str, Any]]:
    """`/ws` itself and everything below `/ws/` (never `/wsx`)."""
    return [{"uri": {"exact": prefix}}, {"uri": {"prefix": f"{prefix}/"}}]


def authz_paths(prefix: str) -> list[str]:
    """AuthorizationPolicy path patterns for the same set as `uri_matches`."""
    return [prefix, f"{prefix}/*"]


def host_patterns(host: pulumi.Input[str]) -> list[pulumi.Input[str]]:
    """A host as AuthorizationPolicy `hosts` must name it: Envoy also routes `Host: <host>:<port>`,
    which a bare host pattern does not match (a DENY rule would be bypassed)."""
    return [host, pulumi.Output.concat(host, ":*")]


def jwt_rules(issuer: pulumi.Input[str], jwks_uri: pulumi.Input[str]) -> list[dict[str, Any]]:
    """RequestAuthentication rules for Keycloak's tokens, from either header the clients send."""
    return [{
        "issuer": issuer,
        # istiod fetches this JWKS and pushes it to the proxies: istiod needs egress to it.
        "jwksUri": jwks_uri,
        "fromHeaders": [dict(h) for h in JWT_FROM_HEADERS],
        # Keep the token header: the app needs Authorization, and the browser's handshake fails
        # unless the server can answer the `jwt-auth` subprotocol it was offered.
        "forwardOriginalToken": True,
    }]


def issuer_principals(issuer: pulumi.Input[str]) -> list[pulumi.Output[str]]:
    """Request principals of one issuer's tokens (`<iss>/<sub>`), never any issuer's."""
    return [pulumi.Output.concat(issuer, "/*")]


def websocket_routes(service_host: pulumi.Input[str]) -> list[dict[str, Any]]:
    """The WebSocket paths of a host: upgrades to the service, anything else answered 426."""
    ws_matches = [m for prefix in WEBSOCKET_PATHS for m in uri_matches(prefix)]
    return [
        {
            "name": "websocket",
            "match": [{**m, "headers": {"upgrade": dict(UPGRADE_WEBSOCKET)}} for m in ws_matches],
            "route": [{"destination": {"host": service_host, "port": {"number": WEBSOCKET_PORT}}}],
            # A WebSocket lives as long as its client: no route timeout (unset: Istio's CRD refuses
            # '0s', anything under 1 ms), and no retried upgrade.
            "retries": dict(NO_RETRIES),
        },
        {
            # The WebSocket paths accept nothing but upgrades.
            "name": "websocket-upgrade-required",
            "match": ws_matches,
            "directResponse": {"status": 426, "body": {"string": "WebSocket upgrade required\n"}},
        },
    ]


def websocket_destination(host: pulumi.Input[str], max_connections: int,
                          idle_timeout: pulumi.Input[str]) -> dict[str, Any]:
    """A WebSocket service's DestinationRule: a pool that never caps below capacity, sockets that
    outlive the load balancer's timeout, no HTTP/2 upgrade."""
    return {
        "host": host,
        "trafficPolicy": {
            # No `tls`: auto mTLS picks ISTIO_MUTUAL for sidecar-injected endpoints.
            "connectionPool": {
                "tcp": {"maxConnections": max_connections,
                        "connectTimeout": "5s",
                        # An idle socket outlives the load balancer's limit.
                        "idleTimeout": idle_timeout,
                        "tcpKeepalive": {"time": "300s", "interval": "75s"}},
                # No maxRequestsPerConnection (unlimited) and never UPGRADE to
                # HTTP/2: both break or churn upgraded connections.
                "http": {"idleTimeout": idle_timeout, "h2UpgradePolicy": "DO_NOT_UPGRADE",
                         "http1MaxPendingRequests": max_connections},
            },
            "outlierDetection": dict(WEBSOCKET_OUTLIER_DETECTION),
        },
    }


def allow_policy(match_labels: Mapping[str, str], principals: Sequence[pulumi.Input[str]], ports: Sequence[Any],
                 *, request_principals: Sequence[pulumi.Input[str]] = (),
                 methods: Sequence[str] = ()) -> dict[str, Any]:
    """An ALLOW AuthorizationPolicy: these workload principals (and, if given, token principals)
    on these ports, nothing else."""
    source: dict[str, Any] = {"principals": list(principals)}
    if request_principals:
        source["requestPrincipals"] = list(request_principals)
    operation: dict[str, Any] = {"ports": [pulumi.Output.from_input(p).apply(str) for p in ports]}
    if methods:
        operation["methods"] = list(methods)
    return {
        "selector": {"matchLabels": dict(match_labels)},
        "action": "ALLOW",
        "rules": [{"from": [{"source": source}], "to": [{"operation": operation}]}],
    }


def edge_require_jwt(gateway_labels: Mapping[str, str], issuer: pulumi.Input[str],
                     anonymous: Sequence[tuple[pulumi.Input[str], Sequence[pulumi.Input[str]]]]) -> dict[str, Any]:
    """The gateway's DENY policy: on each (host, anonymous paths), a request without one of the
    issuer's tokens is refused unless its path is anonymous.

    DENY (not ALLOW) because the gateway may serve other hosts: this only concerns ours."""
    not_issuer = {"source": {"notRequestPrincipals": issuer_principals(issuer)}}
    return {
        "selector": {"matchLabels": dict(gateway_labels)},
        "action": "DENY",
        "rules": [{"from": [not_issuer], "to": [{"operation": {"hosts": host_patterns(host), "notPaths": list(paths)}}]}
                  for host, paths in anonymous],
    }


@dataclass(frozen=True)
class FrontendRoute:
    """A static frontend served at a path prefix of the product host."""

    service: str
    path_prefix: str
    service_account: str


@dataclass(frozen=True)
class MeshArgs:
    """Inputs of the mesh rules. Keycloak, Redis and load-balancer values are the other components'
    outputs (the contract's names); the app names are the Workloads component's."""

    settings: MeshSettings
    product_host: str
    auth_host: str
    app_namespace: pulumi.Input[str]
    websocket_max_connections: int
    """connections per pod x max replicas: the WebSocket connection pool never caps below capacity."""
    lb_websocket_timeout_seconds: pulumi.Input[int]
    """The load balancer's WebSocket backend timeout; the mesh's idle timeouts are never shorter."""
    lb_web_timeout_seconds: int
    """The load balancer's timeout for the frontends and Keycloak; Keycloak's routes end inside it."""
    jwt_issuer: pulumi.Input[str]
    """Keycloak's realm issuer, exactly as its tokens carry it in `iss`."""
    jwks_uri: pulumi.Input[str]
    keycloak_realm: pulumi.Input[str]
    keycloak_namespace: pulumi.Input[str]
    keycloak_service_host: pulumi.Input[str]
    redis_namespace: pulumi.Input[str]
    # Keycloak's and Redis's own facts: no defaults here, so nothing can silently disagree with them.
    keycloak_service_port: pulumi.Input[int]
    keycloak_container_port: pulumi.Input[int]
    keycloak_service_account: pulumi.Input[str]
    redis_service_account: pulumi.Input[str]
    redis_bootstrap_service_account: pulumi.Input[str]
    redis_client_port: pulumi.Input[int]
    keycloak_labels: Mapping[str, str] = field(default_factory=lambda: {"app.kubernetes.io/name": "keycloak"})
    keycloak_database_service_account: pulumi.Input[str] | None = None
    """The in-cluster PostgreSQL's ServiceAccount; None with Cloud SQL (no policy then)."""
    keycloak_database_labels: Mapping[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "keycloak-postgres"})
    keycloak_database_port: int | None = None
    """The in-cluster PostgreSQL's port (given with its ServiceAccount)."""
    keycloak_internal_service_accounts: Sequence[pulumi.Input[str]] = ()
    """ServiceAccounts in Keycloak's namespace that may call it on its HTTP port besides the gateway
    (the realm reconcile Job's)."""
    redis_labels: Mapping[str, str] = field(default_factory=lambda: {"app.kubernetes.io/name": "redis-cluster"})
    websocket_service: str = "websocket"
    websocket_service_account: str = "websocket"
    frontends: Sequence[FrontendRoute] = (
        FrontendRoute("user-frontend", "/user", "user-frontend"),
        FrontendRoute("admin-frontend", "/admin", "admin-frontend"),
    )

    def __post_init__(self) -> None:
        # Checked before any child exists: a Mesh is never half-created.
        if (self.keycloak_database_service_account is None) != (self.keycloak_database_port is None):
            raise ValueError("MeshArgs: keycloak_database_service_account and keycloak_database_port go together "
                             "(both for the in-cluster PostgreSQL, neither with Cloud SQL)")


class Mesh(pulumi.ComponentResource):
    """Istio resources for the platform's namespaces and its public hosts.

    Outputs: `gateway` (`<namespace>/<name>`, what VirtualServices bind to), `jwt_issuer`,
    `mtls_mode`, `websocket_idle_timeout`, `websocket_max_connections`, `api_versions`.
    """

    def __init__(self, name: str, args: MeshArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiwfe:platform:Mesh", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        self._args = args
        mesh = args.settings
        self.apis = istio_api_versions(mesh.istio_version)
        self._labels = podspec.labels("aiwfe-mesh", "mesh")
        gateway_ns = mesh.ingress_gateway_namespace
        self.gateway = f"{gateway_ns}/{GATEWAY_NAME}"
        app_ns = args.app_namespace
        meshed = {"app": app_ns, "keycloak": args.keycloak_namespace, "redis": args.redis_namespace}

        # mTLS and a deny-by-default authorization baseline in every meshed namespace. Ports that
        # bypass the sidecar (Redis bus 16379 and exporter 9121, Keycloak JGroups 7800/57800 and
        # management 9000) never reach Envoy, so PeerAuthentication does not apply to them.
        for key, namespace in meshed.items():
            self._resource(f"{key}-peer-authentication", self.apis.security, "PeerAuthentication", "default",
                           namespace, {"mtls": {"mode": mesh.mtls_mode}})
            self._resource(f"{key}-allow-nothing", self.apis.security, "AuthorizationPolicy", "allow-nothing",
                           namespace, {})
            self._resource(f"{key}-telemetry", self.apis.telemetry, "Telemetry", "aiwfe-telemetry",
                           namespace, self._telemetry_spec())

        self._gateway(args, app_ns)
        self._product_routes(args, app_ns)
        self._keycloak_routes(args)
        websocket_idle = self._destination_rules(args, app_ns)
        self._edge_jwt(args)
        self._workload_policies(args, app_ns)

        self.jwt_issuer = pulumi.Output.from_input(args.jwt_issuer)
        self.mtls_mode = mesh.mtls_mode
        self.websocket_idle_timeout = websocket_idle
        self.websocket_max_connections = args.websocket_max_connections
        self.register_outputs({
            "gateway": self.gateway,
            "jwt_issuer": self.jwt_issuer,
            "mtls_mode": self.mtls_mode,
            "websocket_idle_timeout": self.websocket_idle_timeout,
            "websocket_max_connections": self.websocket_max_connections,
            "api_versions": {"networking": self.apis.networking, "security": self.apis.security,
                             "telemetry": self.apis.telemetry},
        })

    # ------------------------------------------------------------ helpers

    def _resource(self, resource_name: str, api_version: str, kind: str, object_name: str,
                  namespace: pulumi.Input[str], spec: Mapping[str, Any]) -> k8s.apiextensions.CustomResource:
        return k8s.apiextensions.CustomResource(
            f"{self._name}-{resource_name}",
            api_version=api_version,
            kind=kind,
            metadata=podspec.metadata(object_name, namespace, self._labels),
            spec=dict(spec),
            opts=self._child,
        )

    def _principal(self, namespace: pulumi.Input[str], service_account: pulumi.Input[str]) -> pulumi.Output[str]:
        return pulumi.Output.concat(self._args.settings.trust_domain, "/ns/", namespace, "/sa/", service_account)

    def _telemetry_spec(self) -> dict[str, Any]:
        mesh = self._args.settings
        return {
            # The default tracing provider of the mesh config, at the stack's sampling rate.
            "tracing": [{"randomSamplingPercentage": mesh.tracing_sampling_percent}],
            "accessLogging": [{"providers": [{"name": ACCESS_LOG_PROVIDER}], "disabled": not mesh.access_logging}],
        }

    def _jwt_rules(self) -> list[dict[str, Any]]:
        return jwt_rules(self._args.jwt_issuer, self._args.jwks_uri)

    # ------------------------------------------------------------ edge

    def _gateway(self, args: MeshArgs, app_ns: pulumi.Input[str]) -> None:
        mesh = args.settings
        # TLS ends at the Google load balancer, which reaches the gateway over HTTP on port 80.
        # `<namespace>/<host>`: only the owning namespace may bind routes for a host.
        self._resource("gateway", self.apis.networking, "Gateway", GATEWAY_NAME, mesh.ingress_gateway_namespace, {
            "selector": dict(mesh.ingress_gateway_labels),
            "servers": [{
                "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                "hosts": [pulumi.Output.concat(app_ns, "/", args.product_host),
                          pulumi.Output.concat(args.keycloak_namespace, "/", args.auth_host)],
            }],
        })

    def _product_routes(self, args: MeshArgs, app_ns: pulumi.Input[str]) -> None:
        routes = websocket_routes(cluster_host(args.websocket_service, app_ns))
        for frontend in args.frontends:
            routes.append({
                "name": frontend.service,
                "match": uri_matches(frontend.path_prefix),
                "route": [{"destination": {"host": cluster_host(frontend.service, app_ns),
                                           "port": {"number": FRONTEND_SERVICE_PORT}}}],
                "retries": dict(HTTP_RETRIES),
            })
        self._resource("product-routes", self.apis.networking, "VirtualService", "aiwfe-product", app_ns, {
            "hosts": [args.product_host],
            "gateways": [self.gateway],
            "http": routes,
        })

    def _keycloak_routes(self, args: MeshArgs) -> None:
        realm_prefix = pulumi.Output.concat("/realms/", args.keycloak_realm, "/")
        budget = keycloak_route_budget(args.lb_web_timeout_seconds)
        destination = [{"destination": {"host": args.keycloak_service_host,
                                        "port": {"number": args.keycloak_service_port}}}]
        public = [{"uri": {"prefix": realm_prefix}}, *({"uri": {"prefix": p}} for p in KEYCLOAK_ASSET_PREFIXES)]
        self._resource("keycloak-routes", self.apis.networking, "VirtualService", "keycloak",
                       args.keycloak_namespace, {
                           "hosts": [args.auth_host],
                           "gateways": [self.gateway],
                           "http": [
                               {
                                   # Admin console and API, the master realm, metrics and health
                                   # never leave the cluster.
                                   "name": "keycloak-internal",
                                   "match": [m for p in KEYCLOAK_BLOCKED_PREFIXES for m in uri_matches(p)],
                                   "directResponse": {"status": 404},
                               },
                               {
                                   # Discovery, JWKS, login pages and assets: safe to replay.
                                   "name": "keycloak-reads",
                                   "match": [{**m, "method": {"regex": "|".join(KEYCLOAK_READ_METHODS)}}
                                             for m in public],
                                   "route": destination,
                                   "timeout": f"{budget['total']}s",
                                   "retries": {"attempts": KEYCLOAK_READ_ATTEMPTS,
                                               "perTryTimeout": f"{budget['read_try']}s",
                                               "retryOn": KEYCLOAK_READ_RETRY_ON},
                               },
                               {
                                   # Everything else: the token endpoint, login/registration/reset
                                   # form POSTs, logout. Never replayed once Keycloak saw it.
                                   "name": "keycloak-forms",
                                   "match": public,
                                   "route": destination,
                                   "timeout": f"{budget['total']}s",
                                   "retries": {"attempts": KEYCLOAK_READ_ATTEMPTS,
                                               "perTryTimeout": f"{budget['total']}s",
                                               "retryOn": NEVER_REACHED_RETRY_ON},
                               },
                           ],
                       })

    def _edge_jwt(self, args: MeshArgs) -> None:
        mesh = args.settings
        gateway_ns = mesh.ingress_gateway_namespace
        selector = {"matchLabels": dict(mesh.ingress_gateway_labels)}
        self._resource("edge-jwt", self.apis.security, "RequestAuthentication", EDGE_JWT_NAME, gateway_ns,
                       {"selector": selector, "jwtRules": self._jwt_rules()})
        # RequestAuthentication alone admits token-less requests: everything on our hosts needs a
        # Keycloak token except the paths listed as anonymous.
        product_anonymous = [p for f in args.frontends for p in authz_paths(f.path_prefix)]
        auth_anonymous: list[pulumi.Input[str]] = [pulumi.Output.concat("/realms/", args.keycloak_realm, "/*"),
                                                   *(f"{p}*" for p in KEYCLOAK_ASSET_PREFIXES)]
        self._resource("edge-require-jwt", self.apis.security, "AuthorizationPolicy", EDGE_REQUIRE_JWT_NAME,
                       gateway_ns, edge_require_jwt(mesh.ingress_gateway_labels, args.jwt_issuer,
                                                    [(args.product_host, product_anonymous),
                                                     (args.auth_host, auth_anonymous)]))

    # ------------------------------------------------------------ destinations

    def _destination_rules(self, args: MeshArgs, app_ns: pulumi.Input[str]) -> pulumi.Output[str]:
        def idle(seconds: int) -> str:
            if not isinstance(seconds, int) or seconds < 1:
                raise ValueError(f"load balancer WebSocket timeout must be a positive whole number, not {seconds!r}")
            return f"{seconds}s"

        websocket_idle = pulumi.Output.from_input(args.lb_websocket_timeout_seconds).apply(idle)
        self._resource("websocket-destination", self.apis.networking, "DestinationRule", args.websocket_service,
                       app_ns, websocket_destination(cluster_host(args.websocket_service, app_ns),
                                                     args.websocket_max_connections, websocket_idle))
        for frontend in args.frontends:
            self._backend_rule(f"{frontend.service}-destination", frontend.service, app_ns,
                               cluster_host(frontend.service, app_ns))
        self._backend_rule("keycloak-destination", "keycloak", args.keycloak_namespace, args.keycloak_service_host)
        return websocket_idle

    def _backend_rule(self, resource_name: str, object_name: str, namespace: pulumi.Input[str],
                      host: pulumi.Input[str]) -> None:
        self._resource(resource_name, self.apis.networking, "DestinationRule", object_name, namespace, {
            "host": host,
            "trafficPolicy": {
                "connectionPool": {"tcp": {"maxConnections": 1024, "connectTimeout": "5s"},
                                   "http": {"http1MaxPendingRequests": 1024}},
                "outlierDetection": dict(BACKEND_OUTLIER_DETECTION),
            },
        })

    # ------------------------------------------------------------ who may call whom

    def _allow(self, resource_name: str, object_name: str, namespace: pulumi.Input[str],
               match_labels: Mapping[str, str], principals: Sequence[pulumi.Input[str]], ports: Sequence[Any],
               *, request_principals: Sequence[pulumi.Input[str]] = (),
               methods: Sequence[str] = ()) -> None:
        self._resource(resource_name, self.apis.security, "AuthorizationPolicy", object_name, namespace,
                       allow_policy(match_labels, principals, ports, request_principals=request_principals,
                                    methods=methods))

    def _workload_policies(self, args: MeshArgs, app_ns: pulumi.Input[str]) -> None:
        gateway = args.settings.ingress_gateway_principal
        websocket_labels = {"app.kubernetes.io/name": args.websocket_service}
        # The token is checked again at the WebSocket pod: nothing in the mesh reaches it without one.
        self._resource("websocket-jwt", self.apis.security, "RequestAuthentication", "websocket-jwt", app_ns,
                       {"selector": {"matchLabels": websocket_labels}, "jwtRules": self._jwt_rules()})
        self._allow("websocket-authorization", args.websocket_service, app_ns, websocket_labels, [gateway],
                    [WEBSOCKET_PORT], request_principals=issuer_principals(args.jwt_issuer))
        for frontend in args.frontends:
            self._allow(f"{frontend.service}-authorization", frontend.service, app_ns,
                        {"app.kubernetes.io/name": frontend.service}, [gateway], [FRONTEND_CONTAINER_PORT],
                        methods=["GET", "HEAD"])
        self._allow("keycloak-authorization", "keycloak", args.keycloak_namespace, args.keycloak_labels,
                    [gateway, *(self._principal(args.keycloak_namespace, account)
                                for account in args.keycloak_internal_service_accounts)],
                    [args.keycloak_container_port])
        keycloak = self._principal(args.keycloak_namespace, args.keycloak_service_account)
        if args.keycloak_database_service_account is not None:
            # In-cluster PostgreSQL: only Keycloak may open a connection.
            self._allow("keycloak-database-authorization", "keycloak-postgres", args.keycloak_namespace,
                        args.keycloak_database_labels, [keycloak], [args.keycloak_database_port])
        # Redis clients on 6379 (replication uses it too); the bus port bypasses the sidecar.
        self._allow("redis-authorization", "redis-cluster", args.redis_namespace, args.redis_labels,
                    [self._principal(app_ns, args.websocket_service_account),
                     self._principal(args.redis_namespace, args.redis_service_account),
                     self._principal(args.redis_namespace, args.redis_bootstrap_service_account)],
                    [args.redis_client_port])
