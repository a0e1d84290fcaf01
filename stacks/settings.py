"""Reading and validating a stack's config.

Every value that differs between stacks is read here, once, from the stack's Pulumi config, into
the typed settings each component declares beside itself (`components/*`); facts shared with the
policy pack come from `policies/aiwfe_policies/contract.py`. `parse_settings` is a pure function over the raw
config map (key -> string, structured values as JSON, the way Pulumi hands them to a program), so
it can be tested without an engine. Any bad value raises one `SettingsError` naming the key, the
value and what is allowed, before a single resource is declared. Components never read
`pulumi.Config`: they get these objects.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NoReturn

from components.frontend import FrontendSettings
from components.keycloak import KeycloakSettings, KeycloakSizing
from components.load_balancer import CloudArmorSettings, LoadBalancerSettings, RateLimitRule
from components.mesh import MeshSettings
from components.observability import DASHBOARD_LABELS, MonitoringSettings
from components.postgres import KeycloakDatabaseSettings
from components.redis_cluster import RedisSettings
from components.values import ContainerResources, SecretStr
from components.websocket_service import WebSocketSettings
from components.workloads import SessionSettings
from policies.aiwfe_policies.contract import (
    DEFAULT_TARGET_AUTHENTICATIONS_PER_MINUTE,
    DEFAULT_TARGET_CONCURRENT_CONNECTIONS,
    DEFAULT_TARGET_SESSION_DATA,
    GCP_HEADER_VARIABLES,
    IMAGE_REFERENCE,
    KEYCLOAK_TOKEN_BOUNDS,
    MIN_WEBSOCKET_TIMEOUT_SECONDS,
    PROTECTED_HEADERS,
    REDIS_MEMORY_HEADROOM,
    SHUTDOWN_EXIT_SECONDS,
    parse_cpu_millis,
    parse_duration_seconds,
    parse_memory_bytes,
)

PROJECT = "aiwfe-platform"

# Config keys (in the project namespace) whose values must be stack secrets.
SECRET_KEYS: tuple[str, ...] = ("keycloakGoogleClientSecret", "keycloakGithubClientSecret")

ENVIRONMENTS = ("staging", "prod")
# kubernetes-validate bundles schemas up to 1.37; native preStop `sleep` needs 1.30+.
KUBERNETES_VERSIONS = tuple(f"1.{minor}" for minor in range(30, 38))

# Istio minor releases the program supports (all serve networking/security/telemetry .../v1, new in
# 1.22); older ones are out of support. Extend when a release is tested against its CRD schemas.
SUPPORTED_ISTIO_MINORS = (28, 29, 30)
MTLS_MODES = ("STRICT", "PERMISSIVE")
# REQUIREMENTS: a Redis health check must time out in 3 s at most.
MAX_REDIS_HEALTH_TIMEOUT_SECONDS = 3
# Upper bounds of one container (typos like `1Ti` for `1Gi` must not reach a cluster as a request).
MAX_CONTAINER_MEMORY_BYTES = 256 * 2**30
MAX_CONTAINER_CPU_MILLIS = 64_000
# The volume holds the AOF, its rewrite and the RDB snapshot: at least this many times maxmemory.
REDIS_STORAGE_FACTOR = 3


class SettingsError(ValueError):
    """A stack config value is missing, malformed or out of range.

    The message names the full config key, the offending value (masked for secrets) and what is
    allowed, so `pulumi preview` stops with one actionable line.
    """

    def __init__(self, key: str, value: Any, allowed: str, *, secret: bool = False) -> None:
        self.key = key
        self.value = "[secret]" if secret else value
        self.allowed = allowed
        shown = "[secret]" if secret else _show(value)
        super().__init__(f"config {key} = {shown}: {allowed}")


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(not set)"
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


_MISSING: Any = object()


# ---------------------------------------------------------------- value parsers

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_GCP_PROJECT = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
_GCP_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_GCP_NETWORK = re.compile(r"^([a-z]([-a-z0-9]{0,61}[a-z0-9])?|projects/[a-z][-a-z0-9]{4,28}[a-z0-9]/global/networks/"
                          r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?)$")
_ISTIO_VERSION = re.compile(r"^1\.(?P<minor>\d+)\.(?P<patch>\d+)$")
_TRUST_DOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


# ---------------------------------------------------------------- typed settings


@dataclass(frozen=True)
class GcpSettings:
    """Where the stack's Google Cloud resources live (the GKE cluster's project, region and zones)."""

    project: str
    region: str
    zones: tuple[str, ...]
    """The cluster's zones: one ingress-gateway NEG per zone, and the spread for zonal workloads."""
    network: str
    """The VPC the cluster runs in (private IP services attach to it)."""


MONITORING_PROVIDERS = ("prometheus-operator", "managed-prometheus")
# Google Managed Prometheus runs its collectors in this namespace (managed collection).
GMP_NAMESPACE = "gmp-system"
_URL_PREFIX = re.compile(r"^https://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:\d{1,5})?(/[-A-Za-z0-9._~%/]*)?/$")


# ---------------------------------------------------------------- Keycloak

KEYCLOAK_DATABASE_MODES = ("in-cluster", "cloudsql")
# Istio's sidecar hands inbound connections to the app from this address: the only direct peer
# Keycloak ever sees, so it is the proxy whose X-Forwarded-* headers may be trusted.
ISTIO_INBOUND_PASSTHROUGH = "127.0.0.6/32"


@dataclass(frozen=True)
class CapacityTargets:
    """The load the stack must carry. The policy pack's capacity rules check the declared sizes
    (WebSocket replicas and connection limits, Keycloak CPU, Redis memory) against these."""

    concurrent_connections: int
    authentications_per_minute: int
    session_data_bytes: int


@dataclass(frozen=True)
class PolicySettings:
    """How the policy pack judges this stack: the rules that only warn here (none in prod)."""

    advisory: tuple[str, ...]


@dataclass(frozen=True)
class Settings:
    """Everything one stack declares, validated."""

    project: str
    stack: str
    environment: str
    kubernetes_version: str
    domain: str
    app_namespace: str
    gcp: GcpSettings
    mesh: MeshSettings
    monitoring: MonitoringSettings
    redis: RedisSettings
    sessions: SessionSettings
    websocket: WebSocketSettings
    user_frontend: FrontendSettings
    admin_frontend: FrontendSettings
    load_balancer: LoadBalancerSettings
    keycloak: KeycloakSettings
    targets: CapacityTargets
    policy: PolicySettings

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def product_host(self) -> str:
        """The public host of the product (WebSocket and frontends)."""
        return self.domain

    @property
    def auth_host(self) -> str:
        """Keycloak's public host: its own host, since the product's `/admin` is the admin frontend."""
        return f"auth.{self.domain}"


# ---------------------------------------------------------------- reading structured values

# REQUIREMENTS' limits; the requests are a pod's steady state under normal load (about 200m and
# 256Mi in the audit), not REQUIREMENTS' 100m/128Mi: the HPA scales on utilisation of the request,
# and a request half the steady state keeps every pod at 200 % and the HPA at its maximum.
WEBSOCKET_RESOURCES = ContainerResources("200m", "256Mi", "500m", "512Mi")
FRONTEND_RESOURCES = ContainerResources("50m", "64Mi", "100m", "128Mi")


class _Section:
    """A config object being read: tracks the keys used so leftovers are reported as typos."""

    def __init__(self, key: str, raw: Any, separator: str = ".", *, secret: bool = False,
                 secret_keys: frozenset[str] = frozenset()) -> None:
        if not isinstance(raw, Mapping):
            raise SettingsError(key, raw, "must be an object (a YAML mapping)", secret=secret)
        self.key = key
        self.separator = separator
        self.raw = raw
        # A section under a secret key masks every value it reports, however deep.
        self.secret = secret
        self.secret_keys = secret_keys
        self.known: list[str] = []

    def _get(self, name: str, default: Any) -> Any:
        self.known.append(name)
        value = self.raw.get(name, _MISSING)
        if value is _MISSING or value is None:
            if default is _MISSING:
                self.fail(name, _MISSING, "is required")
            return default
        return value

    def path(self, name: str) -> str:
        return f"{self.key}{self.separator}{name}"

    def is_secret(self, name: str) -> bool:
        return self.secret or self.path(name) in self.secret_keys

    def fail(self, name: str, value: Any, allowed: str) -> NoReturn:
        raise SettingsError(self.path(name), value, allowed, secret=self.is_secret(name))

    def string(self, name: str, pattern: re.Pattern[str], allowed: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str) or not pattern.fullmatch(value):
            self.fail(name, value, allowed)
        return value

    def integer(self, name: str, low: int, high: int, default: Any = _MISSING) -> int:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(name, value, f"must be a whole number from {low} to {high}")
        return value

    def boolean(self, name: str, default: Any = _MISSING) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            self.fail(name, value, "must be true or false")
        return value

    def duration(self, name: str, low: int, high: int, default: Any = _MISSING) -> int:
        value = self._get(name, default)
        try:
            seconds = parse_duration_seconds(value)
        except ValueError:
            seconds = -1
        if not low <= seconds <= high:
            self.fail(name, value, f"must be a duration like '90s', '5m' or '1h30m' from {low}s to {high}s")
        return seconds

    def image(self, name: str) -> str:
        value = self._get(name, _MISSING)
        match = IMAGE_REFERENCE.fullmatch(value) if isinstance(value, str) else None
        if not match or not (match["tag"] or match["digest"]) or match["tag"] == "latest":
            self.fail(name, value,
                      "must be an image reference pinned by a tag other than 'latest' or by an @sha256 digest")
        return value

    def labels(self, name: str, default: Any = _MISSING) -> Mapping[str, str] | None:
        """A label map; None only when the key is optional (default None) and unset."""
        value = self._get(name, default)
        if value is None and default is None:
            return None
        if (
            not isinstance(value, Mapping) or not value
            or not all(isinstance(k, str) and _LABEL_KEY.fullmatch(k) for k in value)
            or not all(isinstance(v, str) and _LABEL_VALUE.fullmatch(v) for v in value.values())
        ):
            self.fail(name, value, "must be a non-empty map of Kubernetes label keys to values")
        return MappingProxyType(dict(value))

    def section(self, name: str, default: Any = _MISSING) -> _Section:
        return _Section(self.path(name), self._get(name, default), secret=self.is_secret(name))

    def resources(self, name: str, default: ContainerResources) -> ContainerResources:
        section = self.section(name, {})
        requests = section.section("requests", {})
        limits = section.section("limits", {})
        cpu_req = _quantity(requests, "cpu", default.cpu_request, parse_cpu_millis)
        mem_req = _quantity(requests, "memory", default.memory_request, parse_memory_bytes)
        cpu_lim = _quantity(limits, "cpu", default.cpu_limit, parse_cpu_millis)
        mem_lim = _quantity(limits, "memory", default.memory_limit, parse_memory_bytes)
        for sub in (requests, limits, section):
            sub.done()
        if parse_cpu_millis(cpu_lim) < parse_cpu_millis(cpu_req):
            limits.fail("cpu", cpu_lim, f"must be at least the cpu request ({cpu_req})")
        if parse_memory_bytes(mem_lim) < parse_memory_bytes(mem_req):
            limits.fail("memory", mem_lim, f"must be at least the memory request ({mem_req})")
        if parse_memory_bytes(mem_lim) > MAX_CONTAINER_MEMORY_BYTES:
            limits.fail("memory", mem_lim, "must be at most 256Gi (no node of this platform holds more)")
        if parse_cpu_millis(cpu_lim) > MAX_CONTAINER_CPU_MILLIS:
            limits.fail("cpu", cpu_lim, "must be at most 64 (no node of this platform has more)")
        return ContainerResources(cpu_req, mem_req, cpu_lim, mem_lim)

    def done(self) -> None:
        unknown = sorted(set(map(str, self.raw)) - set(self.known))
        if unknown:
            self.fail(unknown[0], self.raw.get(unknown[0]),
                      f"unknown key; allowed keys here: {', '.join(sorted(set(self.known)))}")


def _quantity(section: _Section, name: str, default: Any, parse: Callable[[str], int]) -> str:
    value = section._get(name, default)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    try:
        ok = parse(value) > 0
    except (ValueError, TypeError):
        ok = False
    if not ok:
        kind = "cpu like '100m' or '0.5'" if parse is parse_cpu_millis else "memory like '128Mi' or '1Gi'"
        section.fail(name, value, f"must be a positive Kubernetes {kind}")
    return value


def _mesh_istio_settings(mesh_s: _Section, environment: str) -> dict[str, Any]:
    """The `mesh.*` keys the Mesh component uses (Istio version, mTLS, gateway identity, telemetry)."""
    minors = ", ".join(f"1.{m}" for m in SUPPORTED_ISTIO_MINORS)
    version = mesh_s.string("istioVersion", _ISTIO_VERSION, f"must be an Istio release like '1.30.3' of {minors}")
    if int(version.split(".")[1]) not in SUPPORTED_ISTIO_MINORS:
        mesh_s.fail("istioVersion", version, f"must be a supported Istio release, one of {minors} (1.x.y)")
    mtls = mesh_s._get("mtlsMode", "STRICT")
    if mtls not in MTLS_MODES:
        mesh_s.fail("mtlsMode", mtls, f"must be one of {', '.join(MTLS_MODES)}")
    if environment == "prod" and mtls != "STRICT":
        mesh_s.fail("mtlsMode", mtls, "must be STRICT in prod (PERMISSIVE is for staging migrations only)")
    sampling = mesh_s._get("tracingSamplingPercent", 1.0)
    if isinstance(sampling, bool) or not isinstance(sampling, (int, float)) or not 0 <= sampling <= 100:
        mesh_s.fail("tracingSamplingPercent", sampling, "must be a number from 0 to 100 (percent of requests traced)")
    access_logging = mesh_s._get("accessLogging", True)
    if not isinstance(access_logging, bool):
        mesh_s.fail("accessLogging", access_logging, "must be true or false")
    return {
        "istio_version": version,
        "mtls_mode": mtls,
        "ingress_gateway_service_account": mesh_s.string(
            "ingressGatewayServiceAccount", _DNS_LABEL, "must be a ServiceAccount name (DNS label)"),
        "trust_domain": mesh_s.string("trustDomain", _TRUST_DOMAIN, "must be a trust domain like 'cluster.local'",
                                      "cluster.local"),
        "tracing_sampling_percent": float(sampling),
        "access_logging": access_logging,
    }


def _decode(key: str, raw: str, expect_object: bool, secret: bool) -> Any:
    """Pulumi hands structured config to programs as JSON text; plain strings stay strings."""
    if not expect_object:
        return raw
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        raise SettingsError(key, raw, "must be an object (a YAML mapping)", secret=secret) from None


# ---------------------------------------------------------------- load balancer (issue 6)

MAX_BACKEND_TIMEOUT_SECONDS = 7 * 86400
# GCP refuses these names in custom headers (hop-by-hop, or reserved by Google).
GCP_REJECTED_HEADERS = frozenset({"connection", "upgrade", "keep-alive", "te", "trailer", "transfer-encoding",
                                  "proxy-authorization", "proxy-authenticate", "x-user-ip", "cdn-loop", "host",
                                  "authority"})
# Per backend service, GCP takes at most this many custom request headers.
GCP_MAX_CUSTOM_REQUEST_HEADERS = 16
GCP_REJECTED_HEADER_PREFIXES = ("x-google", "x-goog-", "x-gfe", "x-amz-")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 7230 token
_HEADER_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
SESSION_AFFINITIES = ("NONE", "CLIENT_IP", "GENERATED_COOKIE")
SSL_PROFILES = ("MODERN", "RESTRICTED")
# Cloud Armor accepts only these rate-limit intervals (seconds).
RATE_LIMIT_INTERVALS = (10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600)
RATE_LIMIT_ACTIONS = ("throttle", "rate_based_ban")


def header_problem(name: str, value: str) -> str | None:
    """Why GCP would refuse, or mangle, a custom request header; None when it is fine.

    Shared by settings (before anything is declared) and the policy pack (on what is declared)."""
    lowered = name.lower()
    if not _HEADER_NAME.fullmatch(name):
        return "the name must be an HTTP header name (RFC 7230 token)"
    if lowered in PROTECTED_HEADERS:
        return f"{name} must pass through untouched (auth and WebSocket handshake headers are never set by the LB)"
    if lowered in GCP_REJECTED_HEADERS or lowered.startswith(GCP_REJECTED_HEADER_PREFIXES):
        return f"GCP does not allow {name} as a custom header (hop-by-hop or reserved by Google)"
    if "$" in value:
        return "GCP does not expand `$...` (nginx syntax): the literal text would be sent"
    for variable in _HEADER_PLACEHOLDER.findall(value):
        if variable not in GCP_HEADER_VARIABLES:
            return f"{{{variable}}} is not a variable GCP expands; known: {', '.join(sorted(GCP_HEADER_VARIABLES))}"
    if "{" in _HEADER_PLACEHOLDER.sub("", value) or "}" in _HEADER_PLACEHOLDER.sub("", value):
        return "unbalanced braces: variables are written {name}"
    if any(not 32 <= ord(c) < 127 for c in value):
        return "only printable ASCII is allowed in header values (no control or non-ASCII characters)"
    return None


def _float(section: _Section, name: str, low: float, high: float, default: float) -> float:
    value = section._get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        section.fail(name, value, f"must be a number from {low} to {high}")
    return float(value)


def _parse_load_balancer(top: _Section) -> LoadBalancerSettings:
    lb = top.section("loadBalancer")
    websocket_timeout = lb.duration("websocketTimeout", 1, MAX_BACKEND_TIMEOUT_SECONDS, "1h")
    if websocket_timeout < MIN_WEBSOCKET_TIMEOUT_SECONDS:
        lb.fail("websocketTimeout", lb.raw.get("websocketTimeout"),
                f"must be at least {MIN_WEBSOCKET_TIMEOUT_SECONDS}s: the backend service timeout is the longest "
                "a WebSocket can live behind the GCP load balancer")
    affinity = lb._get("sessionAffinity", "NONE")
    if affinity not in SESSION_AFFINITIES:
        lb.fail("sessionAffinity", affinity, f"must be one of {', '.join(SESSION_AFFINITIES)}")
    profile = lb._get("sslPolicyProfile", "MODERN")
    if profile not in SSL_PROFILES:
        lb.fail("sslPolicyProfile", profile, f"must be one of {', '.join(SSL_PROFILES)} (both keep TLS >= 1.2)")
    tags = lb._get("nodeTags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and _DNS_LABEL.fullmatch(t) for t in tags):
        lb.fail("nodeTags", tags, "must be a list of GCE network tags (lower-case, digits, '-')")
    headers = lb._get("customRequestHeaders", {})
    if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
        lb.fail("customRequestHeaders", headers, "must be a map of header name to string value")
    if len({str(k).lower() for k in headers}) != len(headers):
        lb.fail("customRequestHeaders", headers, "must not name a header twice")
    if len(headers) > GCP_MAX_CUSTOM_REQUEST_HEADERS:
        lb.fail("customRequestHeaders", headers, f"GCP takes at most {GCP_MAX_CUSTOM_REQUEST_HEADERS} custom "
                f"request headers per backend service, not {len(headers)}")
    for header, value in headers.items():
        problem = header_problem(str(header), value)
        if problem:
            raise SettingsError(lb.path(f"customRequestHeaders.{header}"), value, problem)

    armor_s = lb.section("cloudArmor")
    raw_limits = armor_s._get("rateLimits", _MISSING)
    if not isinstance(raw_limits, list) or not raw_limits:
        armor_s.fail("rateLimits", raw_limits, "must be a non-empty list of rate limits (one on host 'auth' at least)")
    limits = []
    for index, raw in enumerate(raw_limits):
        one = _Section(armor_s.path(f"rateLimits[{index}]"), raw)
        host = one._get("host", _MISSING)
        if host not in ("auth", "product"):
            one.fail("host", host, "must be 'auth' (Keycloak's host) or 'product'")
        interval = one.duration("interval", 10, 3600, "60s")
        if interval not in RATE_LIMIT_INTERVALS:
            one.fail("interval", one.raw.get("interval", "60s"),
                     f"Cloud Armor accepts only these intervals (s): {', '.join(map(str, RATE_LIMIT_INTERVALS))}")
        action = one._get("action", "throttle")
        if action not in RATE_LIMIT_ACTIONS:
            one.fail("action", action, f"must be one of {', '.join(RATE_LIMIT_ACTIONS)}")
        # Cloud Armor counts up to 1,000,000 requests for a throttle, 10,000 for a rate-based ban.
        most = 10_000 if action == "rate_based_ban" else 1_000_000
        limits.append(RateLimitRule(host=host, requests=one.integer("requests", 1, most),
                                    interval_seconds=interval, action=action,
                                    ban_seconds=one.duration("banDuration", 60, 86400, "10m")))
        one.done()
    if not any(limit.host == "auth" for limit in limits):
        armor_s.fail("rateLimits", raw_limits, "must include a rate limit on host 'auth' (login endpoints)")
    blocked = armor_s._get("blockedSourceRanges", [])
    if not isinstance(blocked, list) or not all(_strict_network(r, version=4) for r in blocked):
        armor_s.fail("blockedSourceRanges", blocked,
                     "must be a list of IPv4 CIDR ranges like 198.51.100.0/24 (host bits zero, no leading zeros)")
    armor_s.done()

    settings = LoadBalancerSettings(
        websocket_timeout_seconds=websocket_timeout,
        web_timeout_seconds=lb.duration("webTimeout", 5, 600, "30s"),
        draining_timeout_seconds=lb.duration("drainingTimeout", 0, 3600, "60s"),
        session_affinity=affinity,
        log_sample_rate=_float(lb, "logSampleRate", 0.01, 1.0, 1.0),
        neg_name=lb.string("negName", _DNS_LABEL, "must be the NEG name given in the gateway Service's "
                                                   "cloud.google.com/neg annotation (a DNS label)"),
        # No default: it depends on how the gateway was installed (README "Load balancer").
        gateway_http_port=lb.integer("gatewayHttpPort", 1, 65535),
        gateway_health_port=lb.integer("gatewayHealthPort", 1, 65535, 15021),
        max_rate_per_endpoint=lb.integer("maxRatePerEndpoint", 1, 1_000_000, 1000),
        ssl_profile=profile,
        node_tags=tuple(tags),
        custom_request_headers=MappingProxyType({str(k): v for k, v in headers.items()}),
        cloud_armor=CloudArmorSettings(rate_limits=tuple(limits), blocked_source_ranges=tuple(blocked)),
    )
    lb.done()
    return settings


# ---------------------------------------------------------------- the parser

_TOP_LEVEL_OBJECTS = ("gcp", "mesh", "monitoring", "redis", "sessions", "websocket", "frontends",
                      "loadBalancer", "keycloak", "targets", "policy")
_TOP_LEVEL_SCALARS = ("environment", "kubernetesVersion", "domain", "appNamespace", *SECRET_KEYS)
TOP_LEVEL_OBJECTS = _TOP_LEVEL_OBJECTS
"""Top-level keys whose values are objects (Pulumi hands them to the program as JSON text)."""
ALLOWED_KEYS: tuple[str, ...] = tuple(sorted(_TOP_LEVEL_OBJECTS + _TOP_LEVEL_SCALARS))


def parse_settings(
    raw_config: Mapping[str, str],
    *,
    stack: str,
    secret_keys: Iterable[str] = (),
    project: str = PROJECT,
) -> Settings:
    """Validate a stack's raw config map (`project:key` -> string) into `Settings`."""
    prefix = f"{project}:"
    secrets = set(secret_keys)
    values: dict[str, Any] = {}
    for full_key, raw in raw_config.items():
        if not isinstance(full_key, str) or not full_key.startswith(prefix):
            continue  # provider config (kubernetes:, gcp:) is not ours to judge
        name = full_key[len(prefix):]
        if name not in ALLOWED_KEYS:
            raise SettingsError(full_key, raw, f"unknown key; allowed keys: {', '.join(ALLOWED_KEYS)}",
                                secret=full_key in secrets)
        values[name] = _decode(full_key, raw, name in _TOP_LEVEL_OBJECTS, full_key in secrets)

    top = _Section(project, values, separator=":", secret_keys=frozenset(secrets))

    environment = top._get("environment", _MISSING)
    if environment not in ENVIRONMENTS:
        top.fail("environment", environment, f"must be one of {', '.join(ENVIRONMENTS)}")
    if environment != stack:
        # The policy pack decides which rules are prod-only from the stack name in each URN.
        top.fail("environment", environment,
                 f"must equal the stack name ({stack!r}); stacks are {', '.join(ENVIRONMENTS)}")
    kubernetes_version = top._get("kubernetesVersion", _MISSING)
    if kubernetes_version not in KUBERNETES_VERSIONS:
        top.fail("kubernetesVersion", kubernetes_version,
                 f"must be a quoted minor version, one of {', '.join(KUBERNETES_VERSIONS)}")
    domain = top.string("domain", _HOSTNAME, "must be a lower-case DNS name such as 'app.example.com'")
    if len(f"auth.{domain}") > 253:
        top.fail("domain", domain, "must leave room for Keycloak's host auth.<domain> within DNS's 253 characters")
    app_namespace = top.string("appNamespace", _DNS_LABEL, "must be a DNS label (lower-case, digits, '-')")
    if app_namespace in KUBERNETES_SYSTEM_NAMESPACES:
        top.fail("appNamespace", app_namespace, "must not be a Kubernetes system namespace")

    gcp_s = top.section("gcp")
    region = gcp_s.string("region", _GCP_REGION, "must be a GCP region such as 'europe-west1'")
    zones = gcp_s._get("zones", _MISSING)
    if (not isinstance(zones, list) or not zones or len(set(map(str, zones))) != len(zones)
            or not all(isinstance(z, str) and re.fullmatch(rf"{re.escape(region)}-[a-z]", z) for z in zones)):
        gcp_s.fail("zones", zones, f"must be a non-empty list of distinct zones of {region}, like {region}-b")
    if environment == "prod" and len(zones) < 2:
        gcp_s.fail("zones", zones, "must list at least 2 zones in prod: Redis pairs every master with a replica "
                                   "in another zone, and a single zone's outage would take every shard")
    gcp = GcpSettings(
        project=gcp_s.string("project", _GCP_PROJECT, "must be a GCP project id (6-30 of a-z, 0-9, '-')"),
        region=region,
        zones=tuple(zones),
        network=gcp_s.string("network", _GCP_NETWORK,
                             "must be a VPC network name or projects/<project>/global/networks/<name>"),
    )
    gcp_s.done()

    mesh_s = top.section("mesh")
    cni = mesh_s._get("cni", _MISSING)
    if not isinstance(cni, bool):
        mesh_s.fail("cni", cni, "must be true (Istio CNI plugin installed) or false (istio-init containers)")
    mesh = MeshSettings(
        cni=cni,
        istio_revision=mesh_s.string("istioRevision", _DNS_LABEL, "must be an Istio revision name (DNS label)", None),
        istiod_namespace=mesh_s.string("istiodNamespace", _DNS_LABEL, "must be a namespace name", "istio-system"),
        ingress_gateway_namespace=mesh_s.string("ingressGatewayNamespace", _DNS_LABEL, "must be a namespace name"),
        ingress_gateway_labels=mesh_s.labels("ingressGatewayLabels"),
        **_mesh_istio_settings(mesh_s, environment),
    )
    mesh_s.done()

    mon_s = top.section("monitoring")
    mon_namespace = mon_s.string("namespace", _DNS_LABEL, "must be a namespace name")
    provider = mon_s._get("provider", "prometheus-operator")
    if provider not in MONITORING_PROVIDERS:
        mon_s.fail("provider", provider, f"must be one of {', '.join(MONITORING_PROVIDERS)}")
    if provider == "managed-prometheus" and mon_namespace != GMP_NAMESPACE:
        # The NetworkPolicies admit the scraper by this namespace: GMP's collectors run in gmp-system.
        mon_s.fail("namespace", mon_namespace,
                   f"must be {GMP_NAMESPACE!r} with provider managed-prometheus (where GMP's collectors run)")
    monitoring = MonitoringSettings(
        namespace=mon_namespace,
        scraper_labels=mon_s.labels("scraperLabels", None),
        provider=provider,
        resource_labels=mon_s.labels("resourceLabels", None),
        dashboard_namespace=mon_s.string("dashboardNamespace", _DNS_LABEL, "must be a namespace name", mon_namespace),
        dashboard_labels=mon_s.labels("dashboardLabels", MappingProxyType(dict(DASHBOARD_LABELS))),
        runbook_base_url=mon_s.string("runbookBaseUrl", _URL_PREFIX,
                                      "must be an https:// URL ending in '/' (runbook paths are appended)", None),
        scrape_interval_seconds=mon_s.duration("scrapeInterval", 10, 300, "30s"),
    )
    mon_s.done()

    redis_s = top.section("redis")
    masters = redis_s.integer("masters", 3, 100)
    replicas_per_master = redis_s.integer("replicasPerMaster", 0, 5)
    if environment == "prod" and replicas_per_master < 1:
        redis_s.fail("replicasPerMaster", replicas_per_master,
                     "must be at least 1 in prod (a master without a replica loses its slots with its node)")
    maxmemory = _quantity(redis_s, "maxmemory", _MISSING, parse_memory_bytes)
    if parse_memory_bytes(maxmemory) < 64 * 2**20:
        redis_s.fail("maxmemory", maxmemory, "must be at least 64Mi")
    if parse_memory_bytes(maxmemory) * REDIS_MEMORY_HEADROOM > MAX_CONTAINER_MEMORY_BYTES:
        redis_s.fail("maxmemory", maxmemory, f"must be at most {MAX_CONTAINER_MEMORY_BYTES // 2**30 * 2 // 3}Gi "
                                             f"(its container limit is {REDIS_MEMORY_HEADROOM}x, at most 256Gi)")
    storage_size = _quantity(redis_s, "storageSize", _MISSING, parse_memory_bytes)
    if parse_memory_bytes(storage_size) < REDIS_STORAGE_FACTOR * parse_memory_bytes(maxmemory):
        redis_s.fail("storageSize", storage_size,
                     f"must be at least {REDIS_STORAGE_FACTOR}x redis.maxmemory ({maxmemory}): "
                     "the volume holds the AOF, its rewrite and the RDB snapshot")
    cpu = redis_s.section("cpu")
    cpu_request = _quantity(cpu, "request", _MISSING, parse_cpu_millis)
    cpu_limit = _quantity(cpu, "limit", _MISSING, parse_cpu_millis)
    if parse_cpu_millis(cpu_limit) < parse_cpu_millis(cpu_request):
        cpu.fail("limit", cpu_limit, f"must be at least the cpu request ({cpu_request})")
    cpu.done()
    node_timeout = redis_s.duration("clusterNodeTimeout", 1, 60, "5s")
    redis = RedisSettings(
        namespace=redis_s.string("namespace", _DNS_LABEL, "must be a namespace name"),
        masters=masters,
        replicas_per_master=replicas_per_master,
        image=redis_s.image("image"),
        exporter_image=redis_s.image("exporterImage"),
        maxmemory=maxmemory,
        cpu_request=cpu_request,
        cpu_limit=cpu_limit,
        storage_class=redis_s.string("storageClass", _DNS_LABEL, "must be a StorageClass name"),
        storage_size=storage_size,
        cluster_node_timeout_ms=node_timeout * 1000,
        layout_migrated=redis_s.boolean("layoutMigrated", False),
    )
    if not re.match(r"^(docker\.io/)?(library/)?redis:7\.", redis.image):
        redis_s.fail("image", redis.image, "must be the official redis image at a 7.x tag, like redis:7.4.2")
    redis_s.done()

    sess_s = top.section("sessions", {})
    sessions = SessionSettings(
        session_ttl_seconds=sess_s.duration("sessionTtl", 60, 7 * 86400, "3600s"),
        connection_ttl_seconds=sess_s.duration("connectionTtl", 60, 30 * 86400, "24h"),
        redis_health_timeout_seconds=sess_s.duration(
            "redisHealthTimeout", 1, MAX_REDIS_HEALTH_TIMEOUT_SECONDS, "3s"),
    )
    sess_s.done()

    ws_s = top.section("websocket")
    min_replicas = ws_s.integer("minReplicas", 1, 100)
    max_replicas = ws_s.integer("maxReplicas", 1, 500)
    if max_replicas <= min_replicas:
        ws_s.fail("maxReplicas", max_replicas,
                  f"must be greater than minReplicas ({min_replicas})")
    if environment == "prod" and min_replicas < 2:
        ws_s.fail("minReplicas", min_replicas,
                  "must be at least 2 in prod (one pod can be disrupted)")
    grace = ws_s.duration("terminationGracePeriod", 10, 3600)
    # Kubernetes before 1.33 rejects a preStop sleep of 0 s.
    drain = ws_s.duration("drainDelay", 1, 120, "10s")
    if grace < 2 * drain + SHUTDOWN_EXIT_SECONDS:
        # The grace period covers the preStop pause, then the app's own drain after SIGTERM
        # (SHUTDOWN_DRAIN_SECONDS, the same length), then its exit; past it comes SIGKILL.
        ws_s.fail("drainDelay", ws_s.raw.get("drainDelay", "10s"),
                  f"must leave room in terminationGracePeriod ({grace}s) for the preStop pause, the app's drain "
                  f"after SIGTERM (as long again) and {SHUTDOWN_EXIT_SECONDS}s to exit: at most "
                  f"{max((grace - SHUTDOWN_EXIT_SECONDS) // 2, 0)}s")
    websocket = WebSocketSettings(
        image=ws_s.image("image"),
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        cpu_target_percent=ws_s.integer("cpuTargetPercent", 10, 100, 70),
        memory_target_percent=ws_s.integer("memoryTargetPercent", 10, 100, 80),
        termination_grace_seconds=grace,
        drain_seconds=drain,
        connections_per_pod=ws_s.integer("connectionsPerPod", 1, 100_000, 1000),
        resources=ws_s.resources("resources", WEBSOCKET_RESOURCES),
        scale_on_connections=ws_s.boolean("scaleOnConnections", False),
        connections_target_percent=ws_s.integer("connectionsTargetPercent", 10, 100, 70),
    )
    ws_s.done()

    fe_s = top.section("frontends")
    frontends = {}
    for name in ("user", "admin"):
        one = fe_s.section(name)
        replicas = one.integer("replicas", 1, 50)
        if environment == "prod" and replicas < 2:
            one.fail("replicas", replicas, "must be at least 2 in prod")
        frontends[name] = FrontendSettings(
            image=one.image("image"),
            replicas=replicas,
            resources=one.resources("resources", FRONTEND_RESOURCES),
        )
        one.done()
    fe_s.done()
    load_balancer = _parse_load_balancer(top)
    keycloak = _keycloak_settings(top, environment, domain, secrets)
    targets = _targets(top)
    policy = _policy(top, environment)
    top.done()
    _check_owned_namespaces(project, app_namespace, redis, keycloak, mesh, monitoring)

    return Settings(
        project=project,
        stack=stack,
        environment=environment,
        kubernetes_version=kubernetes_version,
        domain=domain,
        app_namespace=app_namespace,
        gcp=gcp,
        mesh=mesh,
        monitoring=monitoring,
        redis=redis,
        sessions=sessions,
        websocket=websocket,
        user_frontend=frontends["user"],
        admin_frontend=frontends["admin"],
        load_balancer=load_balancer,
        keycloak=keycloak,
        targets=targets,
        policy=policy,
    )


KUBERNETES_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _check_owned_namespaces(project: str, app_namespace: str, redis: RedisSettings, keycloak: KeycloakSettings,
                            mesh: MeshSettings, monitoring: MonitoringSettings) -> None:
    """The namespaces this program creates (and deletes with the stack, and fences with default-deny
    policies) are its own: one per component, never Kubernetes', Istio's or the monitoring stack's."""
    owned = {f"{project}:appNamespace": app_namespace, f"{project}:redis.namespace": redis.namespace,
             f"{project}:keycloak.namespace": keycloak.namespace}
    others = {
        **{name: "a Kubernetes system namespace" for name in KUBERNETES_SYSTEM_NAMESPACES},
        mesh.istiod_namespace: "istiod's namespace (mesh.istiodNamespace)",
        mesh.ingress_gateway_namespace: "the ingress gateway's namespace (mesh.ingressGatewayNamespace)",
        monitoring.namespace: "the monitoring namespace (monitoring.namespace)",
        GMP_NAMESPACE: "Google Managed Prometheus' namespace",
    }
    seen: dict[str, str] = {}
    for key, namespace in owned.items():
        if namespace in others:
            raise SettingsError(key, namespace, f"must be a namespace of its own, not {others[namespace]}")
        if namespace in seen:
            raise SettingsError(key, namespace, f"must differ from {seen[namespace]} (each component owns its "
                                                "namespace)")
        seen[namespace] = key


def _targets(top: _Section) -> CapacityTargets:
    section = top.section("targets", {})
    targets = CapacityTargets(
        concurrent_connections=section.integer("concurrentConnections", 1, 10_000_000,
                                               DEFAULT_TARGET_CONCURRENT_CONNECTIONS),
        authentications_per_minute=section.integer("authenticationsPerMinute", 1, 10_000_000,
                                                   DEFAULT_TARGET_AUTHENTICATIONS_PER_MINUTE),
        session_data_bytes=parse_memory_bytes(_quantity(section, "sessionData", DEFAULT_TARGET_SESSION_DATA,
                                                        parse_memory_bytes)),
    )
    section.done()
    return targets


def _policy(top: _Section, environment: str) -> PolicySettings:
    # Imported here: the rule modules import this one for its constants.
    from policies.aiwfe_policies.catalog import all_rules

    section = top.section("policy", {})
    advisory = section._get("advisory", [])
    names = {rule.name for rule in all_rules()}
    if not isinstance(advisory, list) or not all(isinstance(n, str) for n in advisory):
        section.fail("advisory", advisory, "must be a list of policy names")
    unknown = sorted(set(advisory) - names)
    if unknown:
        section.fail("advisory", unknown, "names no policy of the pack (README \"Policy pack\" lists them)")
    if advisory and environment == "prod":
        section.fail("advisory", advisory, "must be empty in prod: every policy is mandatory there")
    section.done()
    return PolicySettings(advisory=tuple(advisory))


# ---------------------------------------------------------------- Keycloak section

_REALM = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_GCP_SQL_TIER = re.compile(r"^db-(custom-\d+-\d+|[a-z0-9-]+)$")
_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{3,200}$")


def _stack_secret(top: _Section, name: str, secrets: set[str]) -> SecretStr:
    key = top.path(name)
    value = top._get(name, _MISSING)
    if key not in secrets:
        raise SettingsError(key, value, f"must be a stack secret: pulumi config set --secret {name}", secret=True)
    if not isinstance(value, str) or len(value) < 8:
        raise SettingsError(key, value, "must be a string of at least 8 characters", secret=True)
    return SecretStr(value)


def _strict_network(value: Any, version: int | None = None) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The network a CIDR string names (host bits zero, no leading zeros), or None."""
    if not isinstance(value, str):
        return None
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        return None
    return network if version is None or network.version == version else None


def _internal(network: ipaddress.IPv4Network | ipaddress.IPv6Network | None) -> bool:
    """A private or loopback range of at most a /8: never the internet, never 'everything'."""
    return network is not None and (network.is_private or network.is_loopback) and \
        network.prefixlen >= 8


def _cidrs(section: _Section, name: str, default: Any = _MISSING) -> tuple[str, ...]:
    """Internal CIDRs: what Keycloak trusts X-Forwarded-* from. Anything wider lets any client spoof them."""
    value = section._get(name, default)
    if not isinstance(value, list) or not value or not all(_internal(_strict_network(v)) for v in value):
        section.fail(name, value, "must be a non-empty list of private or loopback CIDRs of /8 or narrower "
                                  "like 127.0.0.6/32 (host bits zero); a wider range lets clients spoof "
                                  "X-Forwarded-*")
    return tuple(value)


def _https_urls(section: _Section, name: str, host: str, *, origins: bool) -> tuple[str, ...]:
    """Exact https URLs on the product host: never a wildcard (an open redirect for tokens)."""
    value = section._get(name, _MISSING)
    shape = rf"^https://{re.escape(host)}$" if origins else rf"^https://{re.escape(host)}/[A-Za-z0-9._~/-]*$"
    if (not isinstance(value, list) or not value or len(set(map(str, value))) != len(value)
            or not all(isinstance(v, str) and "*" not in v and re.fullmatch(shape, v) for v in value)):
        what = f"https://{host}" if origins else f"https://{host}/<path>"
        section.fail(name, value, f"must be a non-empty list of distinct exact URLs like {what} "
                                  "(https, the product host, no '*')")
    return tuple(value)


def _keycloak_settings(top: _Section, environment: str, domain: str, secrets: set[str]) -> KeycloakSettings:
    from components.keycloak_options import SUPPORTED_LINES, release_line

    kc = top.section("keycloak")
    version = kc._get("version", _MISSING)
    if not isinstance(version, str) or not _VERSION.fullmatch(version) or release_line(version) not in SUPPORTED_LINES:
        kc.fail("version", version,
                f"must be a Keycloak release x.y.z of a supported line: {', '.join(SUPPORTED_LINES)}")
    replicas = kc.integer("replicas", 1, 20)
    if environment == "prod" and replicas < 3:
        kc.fail("replicas", replicas, "must be at least 3 in prod (HA with one replica down)")
    realm = kc.string("realm", _REALM, "must be a lower-case realm name (DNS label)")
    if realm == "master":
        kc.fail("realm", realm, "must not be 'master' (the admin realm is never the product's)")
    resources = kc.resources("resources", ContainerResources("500m", "1280Mi", "2", "2Gi"))
    if parse_memory_bytes(resources.memory_limit) < 2 * 2**30:
        raise SettingsError(kc.path("resources") + ".limits.memory", resources.memory_limit,
                            "must be at least 2Gi (Keycloak's sizing guide)")

    tokens = kc.section("tokens", {})
    lifespans = {}
    for key, default in (("accessTokenLifespan", "5m"), ("ssoSessionIdleTimeout", "30m"),
                         ("ssoSessionMaxLifespan", "10h"), ("clientSessionIdleTimeout", "30m")):
        low, high = KEYCLOAK_TOKEN_BOUNDS[key]
        lifespans[key] = tokens.duration(key, low, high, default)
    if lifespans["clientSessionIdleTimeout"] > lifespans["ssoSessionIdleTimeout"]:
        tokens.fail("clientSessionIdleTimeout", tokens.raw.get("clientSessionIdleTimeout", "30m"),
                    f"must not exceed ssoSessionIdleTimeout ({lifespans['ssoSessionIdleTimeout']}s)")
    if lifespans["ssoSessionMaxLifespan"] < lifespans["ssoSessionIdleTimeout"]:
        tokens.fail("ssoSessionMaxLifespan", tokens.raw.get("ssoSessionMaxLifespan", "10h"),
                    f"must be at least ssoSessionIdleTimeout ({lifespans['ssoSessionIdleTimeout']}s)")
    tokens.done()

    webapp = kc.section("webapp")
    redirect_uris = _https_urls(webapp, "redirectUris", domain, origins=False)
    web_origins = _https_urls(webapp, "webOrigins", domain, origins=True)
    webapp.done()

    idps = kc.section("identityProviders")
    client_ids = {}
    for alias in ("google", "github"):
        one = idps.section(alias)
        client_ids[alias] = one.string("clientId", _CLIENT_ID, "must be the OAuth client id the provider issued")
        one.done()
    idps.done()

    trusted = _cidrs(kc, "trustedProxyAddresses", [ISTIO_INBOUND_PASSTHROUGH])

    db_s = kc.section("database")
    mode = db_s._get("mode", _MISSING)
    if mode not in KEYCLOAK_DATABASE_MODES:
        db_s.fail("mode", mode, f"must be one of {', '.join(KEYCLOAK_DATABASE_MODES)}")
    if mode == "in-cluster":
        image = db_s.image("image")
        match = IMAGE_REFERENCE.fullmatch(image)
        if not match or match["repo"].rsplit("/", 1)[-1] != "postgres" or not (match["tag"] or "").startswith("15."):
            db_s.fail("image", image, "must be the official PostgreSQL 15 image pinned by tag, like postgres:15.15")
        database = KeycloakDatabaseSettings(
            mode=mode,
            postgres_image=image,
            storage_size=_quantity(db_s, "storageSize", "10Gi", parse_memory_bytes),
            storage_class=db_s.string("storageClass", _DNS_LABEL, "must be a StorageClass name", None),
            postgres_resources=db_s.resources("resources", ContainerResources("250m", "512Mi", "1", "1Gi")),
        )
    else:
        range_ = db_s._get("privateServicesRange", _MISSING)
        if not _internal(_strict_network(range_)):
            # It opens Keycloak's egress on 3307: a wide range would open it to the internet.
            db_s.fail("privateServicesRange", range_,
                      "must be one private CIDR of /8 or narrower like 10.64.0.0/20 (host bits zero)")
        start = db_s._get("backupStartTime", "02:00")
        if not isinstance(start, str) or not _HH_MM.fullmatch(start):
            db_s.fail("backupStartTime", start, "must be a UTC time HH:MM")
        database = KeycloakDatabaseSettings(
            mode=mode,
            tier=db_s.string("tier", _GCP_SQL_TIER, "must be a Cloud SQL tier such as db-custom-2-7680"),
            disk_size_gb=db_s.integer("diskSizeGb", 10, 65536, 20),
            backup_start_time=start,
            retained_backups=db_s.integer("retainedBackups", 7, 365, 14),
            log_retention_days=db_s.integer("logRetentionDays", 1, 7, 7),
            private_services_range=range_,
            proxy_image=db_s.image("proxyImage"),
        )
    db_s.done()

    sizing_s = kc.section("sizing", {})
    sizing = KeycloakSizing(
        password_login_percent=sizing_s.integer("passwordLoginPercent", 0, 100, 20),
        client_credentials_percent=sizing_s.integer("clientCredentialsPercent", 0, 100, 30),
        refresh_percent=sizing_s.integer("refreshPercent", 0, 100, 50),
    )
    total = sizing.password_login_percent + sizing.client_credentials_percent + sizing.refresh_percent
    if total != 100:
        sizing_s.fail("refreshPercent", sizing.refresh_percent,
                      f"the three percentages must add up to 100 (they add up to {total})")
    sizing_s.done()

    settings = KeycloakSettings(
        namespace=kc.string("namespace", _DNS_LABEL, "must be a namespace name", "keycloak"),
        version=version,
        replicas=replicas,
        resources=resources,
        realm=realm,
        access_token_lifespan_seconds=lifespans["accessTokenLifespan"],
        sso_session_idle_seconds=lifespans["ssoSessionIdleTimeout"],
        sso_session_max_seconds=lifespans["ssoSessionMaxLifespan"],
        client_session_idle_seconds=lifespans["clientSessionIdleTimeout"],
        webapp_redirect_uris=redirect_uris,
        webapp_web_origins=web_origins,
        google_client_id=client_ids["google"],
        github_client_id=client_ids["github"],
        google_client_secret=_stack_secret(top, "keycloakGoogleClientSecret", secrets),
        github_client_secret=_stack_secret(top, "keycloakGithubClientSecret", secrets),
        trusted_proxy_addresses=trusted,
        database=database,
        sizing=sizing,
    )
    kc.done()
    return settings


def load_settings() -> Settings:
    """Read and validate the running stack's config (call before declaring any resource)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    # The SDK has no public way to list every config key, and unknown keys must be reported:
    # merge what the language host passed (env) with what was set in-process (tests, render).
    raw: dict[str, str] = dict(runtime_config.get_config_env())
    raw.update(runtime_config.CONFIG.get())
    secret_keys = [key for key in raw if runtime_config.is_config_secret(key)]
    secret_keys += [key for key in runtime_config.get_config_secret_keys_env() if key in raw]
    return parse_settings(raw, stack=pulumi.get_stack(), secret_keys=secret_keys, project=pulumi.get_project())
