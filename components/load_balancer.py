"""The GCP external HTTPS load balancer in front of the Istio ingress gateway.

Global address, Google-managed certificate, SSL policy (TLS >= 1.2), HTTPS proxy on 443 and an
HTTP->HTTPS redirect on 80; two backend services on the gateway's standalone NEGs, one per timeout
class (`websocket`: the WebSocket session length, `web`: ordinary requests); a health check on the
gateway's readiness port; a firewall rule for Google's ranges; a Cloud Armor policy on both backends.

Headers: the URL map and the backend services never add, replace or remove `Authorization`,
`Sec-WebSocket-Protocol`, `Upgrade` or `Connection`. Leaving them alone is how they reach the
gateway unchanged (GCP has no way to copy a request header; `$http_*` is nginx syntax and would be
sent literally). Custom request headers carry only `{variable}`s GCP expands (checked in settings).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp.compute as compute

from policies.aiwfe_policies.contract import GOOGLE_LB_SOURCE_RANGES


@dataclass(frozen=True)
class RateLimitRule:
    """One Cloud Armor rate limit, per client IP, on one of the LB's hosts."""

    host: str
    """`auth` or `product`."""
    requests: int
    interval_seconds: int
    action: str
    """`throttle` (429 above the rate) or `rate_based_ban` (429 for `ban_seconds` once exceeded)."""
    ban_seconds: int


@dataclass(frozen=True)
class CloudArmorSettings:
    """The security policy on both backends: rate limits, blocked ranges, then default allow."""

    rate_limits: tuple[RateLimitRule, ...]
    blocked_source_ranges: tuple[str, ...]


@dataclass(frozen=True)
class LoadBalancerSettings:
    """The GCP HTTPS load balancer in front of the Istio ingress gateway."""

    websocket_timeout_seconds: int
    """Backend service timeout of `websocket`: the longest a WebSocket can live."""
    web_timeout_seconds: int
    draining_timeout_seconds: int
    session_affinity: str
    log_sample_rate: float
    neg_name: str
    """The gateway's standalone NEG, one per zone of `gcp.zones` (GKE names them alike)."""
    gateway_http_port: int
    """The gateway pods' HTTP port, the targetPort of the gateway Service's port 80 (what the NEG
    endpoints point at): 80 with Istio's Helm `gateway` chart, 8080 with the legacy
    `istio-ingressgateway` install. The firewall opens it (README "Load balancer")."""
    gateway_health_port: int
    max_rate_per_endpoint: int
    ssl_profile: str
    node_tags: tuple[str, ...]
    """Network tags of the GKE nodes; empty applies the firewall rule to the whole VPC."""
    custom_request_headers: Mapping[str, str]
    cloud_armor: CloudArmorSettings


DEFAULT_NAME_PREFIX = "aiwfe"
"""The LB's GCP resources are named `<prefix>-<what>` (`aiwfe-websocket`, `aiwfe-https`, ...)."""

# The WebSocket paths of the product host; everything else of it, and the auth host, is `web`.
WEBSOCKET_PATHS = ("/ws", "/ws/*", "/websocket", "/websocket/*")
FRONTEND_PATHS = ("/user", "/user/*", "/admin", "/admin/*")
# The gateway's readiness endpoint (istio-proxy's status port): with STRICT mTLS a plaintext probe to
# a meshed app pod fails, while this one answers as soon as the gateway can route.
GATEWAY_READINESS_PATH = "/healthz/ready"
DEFAULT_RULE_PRIORITY = 2147483647  # Cloud Armor's default rule: evaluated last


def neg_url(project: str, zone: str, name: str) -> str:
    """The self link of a zonal NEG, built from its name.

    The gateway's NEGs are created by GKE (the `cloud.google.com/neg` annotation on the gateway
    Service), outside this program. Looking them up with `compute.get_network_endpoint_group` would
    make `pulumi preview` fail until they exist and returns nothing under the mock engine (so no test
    could see the backends); the self link is fully determined by project, zone and name."""
    return f"https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}/networkEndpointGroups/{name}"


def global_link(project: str, collection: str, name: str) -> str:
    """The self link GCP gives a global resource, e.g. `backendServices`, `aiwfe-web`.

    References between the LB's resources use these instead of the `self_link` outputs: the names
    are ours, so the links are known at `pulumi preview` and the policy pack can follow the URL map
    to its backends before anything exists (an output link is unknown until created, and every
    cross-resource rule would be "not evaluated" on a first preview). `depends_on` keeps the order."""
    return f"https://www.googleapis.com/compute/v1/projects/{project}/global/{collection}/{name}"


def host_expression(host: str) -> str:
    """Cloud Armor (CEL) match for requests to `host` (with or without an explicit :443)."""
    return f"request.headers['host'].lower().matches('^{re.escape(host)}(:443)?$')"


@dataclass(frozen=True)
class LoadBalancerArgs:
    """What the load balancer needs: its settings, the hosts, and where the gateway's NEGs live."""

    settings: LoadBalancerSettings
    product_host: str
    auth_host: str
    project: str
    zones: Sequence[str]
    network: str
    name_prefix: str = DEFAULT_NAME_PREFIX
    """Prefix of every GCP resource name (names are per project)."""
    protect: bool = False
    """Prod: the static IP is protected (DNS points at it; a new one means a DNS change and downtime)."""


class LoadBalancer(pulumi.ComponentResource):
    """A global external Application Load Balancer (EXTERNAL_MANAGED) for the product and auth hosts.

    Outputs: `ip_address`, `urls` (product, websocket, auth), `websocket_timeout_seconds` (a plain
    int: the mesh's idle timeout for WebSockets must be at least this), `web_timeout_seconds` (the
    frontends' and Keycloak's backend: the mesh's route timeouts stay inside it), `websocket_backend`,
    `web_backend` (self links).
    """

    ip_address: pulumi.Output[str]
    urls: dict[str, str]
    websocket_timeout_seconds: int
    web_timeout_seconds: int
    websocket_backend: pulumi.Output[str]
    web_backend: pulumi.Output[str]

    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiwfe:platform:LoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        s = args.settings
        prefix = args.name_prefix

        def link(collection: str, resource_name: str) -> str:
            return global_link(args.project, collection, resource_name)

        def after(*resources: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=list(resources))

        health_check_name = f"{prefix}-gateway-ready"
        security_policy_name = f"{prefix}-edge-policy"
        address = compute.GlobalAddress(
            f"{name}-address", name=f"{prefix}-lb-ip", address_type="EXTERNAL", ip_version="IPV4",
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=args.protect)))

        health_check = compute.HealthCheck(
            f"{name}-gateway-health-check",
            name=health_check_name,
            description="Istio ingress gateway readiness (status port)",
            check_interval_sec=5,
            timeout_sec=5,
            healthy_threshold=2,
            unhealthy_threshold=2,
            http_health_check=compute.HealthCheckHttpHealthCheckArgs(
                port_specification="USE_FIXED_PORT",
                port=s.gateway_health_port,
                request_path=GATEWAY_READINESS_PATH,
            ),
            log_config=compute.HealthCheckLogConfigArgs(enable=True),
            opts=child,
        )

        # Google's probes and front ends reach the gateway pods (NEG endpoints are pod IP:port).
        compute.Firewall(
            f"{name}-allow-google-lb",
            name=f"{prefix}-allow-google-lb-to-gateway",
            description="Google health checks and load balancer front ends to the Istio ingress gateway pods",
            network=args.network,
            direction="INGRESS",
            priority=1000,
            source_ranges=list(GOOGLE_LB_SOURCE_RANGES),
            target_tags=list(s.node_tags) or None,
            allows=[compute.FirewallAllowArgs(
                protocol="tcp", ports=[str(s.gateway_http_port), str(s.gateway_health_port)])],
            log_config=compute.FirewallLogConfigArgs(metadata="INCLUDE_ALL_METADATA"),
            opts=child,
        )

        security_policy = compute.SecurityPolicy(
            f"{name}-security-policy",
            name=security_policy_name,
            description="Rate limits on the auth (and product) host, blocked ranges, default allow",
            type="CLOUD_ARMOR",
            rules=self._armor_rules(s, args),
            opts=child,
        )

        negs = [neg_url(args.project, zone, s.neg_name) for zone in args.zones]
        headers = [f"{header}:{value}" for header, value in s.custom_request_headers.items()]

        def backend_service(kind: str, timeout: int, affinity: str, description: str) -> compute.BackendService:
            return compute.BackendService(
                f"{name}-{kind}-backend",
                name=f"{prefix}-{kind}",
                description=description,
                load_balancing_scheme="EXTERNAL_MANAGED",
                # HTTP/1.1 to the gateway: an HTTP/2 backend protocol breaks the WebSocket upgrade.
                protocol="HTTP",
                timeout_sec=timeout,
                connection_draining_timeout_sec=s.draining_timeout_seconds,
                session_affinity=affinity,
                health_checks=link("healthChecks", health_check_name),
                security_policy=link("securityPolicies", security_policy_name),
                custom_request_headers=headers or None,
                log_config=compute.BackendServiceLogConfigArgs(enable=True, sample_rate=s.log_sample_rate),
                # Zonal GCE_VM_IP_PORT NEGs behind an Application LB take RATE (UTILIZATION is for
                # instance groups, CONNECTION for proxy Network LBs).
                backends=[compute.BackendServiceBackendArgs(
                    group=neg, balancing_mode="RATE", max_rate_per_endpoint=s.max_rate_per_endpoint,
                    capacity_scaler=1.0) for neg in negs],
                # No `iap` block: IAP would consume the Authorization header of every WebSocket.
                opts=after(health_check, security_policy),
            )

        websocket = backend_service(
            "websocket", s.websocket_timeout_seconds, s.session_affinity,
            "WebSocket upgrades: the timeout is the longest a WebSocket lives")
        web = backend_service("web", s.web_timeout_seconds, "NONE", "Frontends and Keycloak: ordinary requests")
        websocket_link = link("backendServices", f"{prefix}-websocket")
        web_link = link("backendServices", f"{prefix}-web")

        url_map = compute.URLMap(
            f"{name}-url-map",
            name=f"{prefix}-https",
            description="Product host: WebSocket paths to `websocket`, the rest to `web`; auth host to `web`",
            default_service=web_link,
            host_rules=[
                compute.URLMapHostRuleArgs(hosts=[args.product_host], path_matcher="product"),
                compute.URLMapHostRuleArgs(hosts=[args.auth_host], path_matcher="auth"),
            ],
            path_matchers=[
                compute.URLMapPathMatcherArgs(
                    name="product",
                    default_service=web_link,
                    path_rules=[
                        compute.URLMapPathMatcherPathRuleArgs(paths=list(WEBSOCKET_PATHS), service=websocket_link),
                        compute.URLMapPathMatcherPathRuleArgs(paths=list(FRONTEND_PATHS), service=web_link),
                    ],
                ),
                compute.URLMapPathMatcherArgs(name="auth", default_service=web_link),
            ],
            opts=after(websocket, web),
        )

        certificate = compute.ManagedSslCertificate(
            f"{name}-certificate",
            name=f"{prefix}-edge-cert",
            managed=compute.ManagedSslCertificateManagedArgs(domains=[args.product_host, args.auth_host]),
            opts=child,
        )
        ssl_policy = compute.SSLPolicy(
            f"{name}-ssl-policy", name=f"{prefix}-tls12", min_tls_version="TLS_1_2", profile=s.ssl_profile,
            opts=child)
        https_proxy = compute.TargetHttpsProxy(
            f"{name}-https-proxy",
            name=f"{prefix}-https",
            url_map=link("urlMaps", f"{prefix}-https"),
            ssl_certificates=[link("sslCertificates", f"{prefix}-edge-cert")],
            ssl_policy=link("sslPolicies", f"{prefix}-tls12"),
            opts=after(url_map, certificate, ssl_policy),
        )
        compute.GlobalForwardingRule(
            f"{name}-https-forwarding-rule",
            name=f"{prefix}-https",
            load_balancing_scheme="EXTERNAL_MANAGED",
            ip_protocol="TCP",
            ip_address=address.address,
            port_range="443",
            target=link("targetHttpsProxies", f"{prefix}-https"),
            opts=after(https_proxy),
        )

        redirect_map = compute.URLMap(
            f"{name}-http-redirect",
            name=f"{prefix}-http-redirect",
            description="Every plain-HTTP request to HTTPS",
            default_url_redirect=compute.URLMapDefaultUrlRedirectArgs(
                https_redirect=True, strip_query=False, redirect_response_code="MOVED_PERMANENTLY_DEFAULT"),
            opts=child,
        )
        http_proxy = compute.TargetHttpProxy(
            f"{name}-http-proxy", name=f"{prefix}-http-redirect",
            url_map=link("urlMaps", f"{prefix}-http-redirect"), opts=after(redirect_map))
        compute.GlobalForwardingRule(
            f"{name}-http-forwarding-rule",
            name=f"{prefix}-http-redirect",
            load_balancing_scheme="EXTERNAL_MANAGED",
            ip_protocol="TCP",
            ip_address=address.address,
            port_range="80",
            target=link("targetHttpProxies", f"{prefix}-http-redirect"),
            opts=after(http_proxy),
        )

        self.ip_address = address.address
        self.urls = {
            "product": f"https://{args.product_host}/",
            "websocket": f"wss://{args.product_host}/ws",
            "auth": f"https://{args.auth_host}/",
        }
        self.websocket_timeout_seconds = s.websocket_timeout_seconds
        self.web_timeout_seconds = s.web_timeout_seconds
        self.websocket_backend = pulumi.Output.from_input(websocket_link)
        self.web_backend = pulumi.Output.from_input(web_link)
        self.register_outputs({
            "ip_address": self.ip_address,
            "urls": self.urls,
            "websocket_timeout_seconds": self.websocket_timeout_seconds,
            "web_timeout_seconds": self.web_timeout_seconds,
            "websocket_backend": self.websocket_backend,
            "web_backend": self.web_backend,
        })

    @staticmethod
    def _armor_rules(s: LoadBalancerSettings, args: LoadBalancerArgs) -> list[compute.SecurityPolicyRuleArgs]:
        hosts: Mapping[str, str] = {"auth": args.auth_host, "product": args.product_host}
        rules = []
        if s.cloud_armor.blocked_source_ranges:
            rules.append(compute.SecurityPolicyRuleArgs(
                priority=100, action="deny(403)", description="blocked source ranges",
                match=compute.SecurityPolicyRuleMatchArgs(
                    versioned_expr="SRC_IPS_V1",
                    config=compute.SecurityPolicyRuleMatchConfigArgs(
                        src_ip_ranges=list(s.cloud_armor.blocked_source_ranges)))))
        for index, limit in enumerate(s.cloud_armor.rate_limits):
            rules.append(_rate_limit_rule(1000 + index, limit, hosts[limit.host]))
        rules.append(compute.SecurityPolicyRuleArgs(
            priority=DEFAULT_RULE_PRIORITY, action="allow", description="default allow",
            match=compute.SecurityPolicyRuleMatchArgs(
                versioned_expr="SRC_IPS_V1", config=compute.SecurityPolicyRuleMatchConfigArgs(src_ip_ranges=["*"]))))
        return rules


def _rate_limit_rule(priority: int, limit: RateLimitRule, host: str) -> compute.SecurityPolicyRuleArgs:
    """Per client IP: above `requests` per interval, 429 (throttle) or 429 for the ban duration."""
    ban = limit.action == "rate_based_ban"
    return compute.SecurityPolicyRuleArgs(
        priority=priority,
        action=limit.action,
        description=f"{limit.action} {host}: {limit.requests} requests per {limit.interval_seconds}s per IP",
        match=compute.SecurityPolicyRuleMatchArgs(
            expr=compute.SecurityPolicyRuleMatchExprArgs(expression=host_expression(host))),
        rate_limit_options=compute.SecurityPolicyRuleRateLimitOptionsArgs(
            conform_action="allow",
            exceed_action="deny(429)",
            enforce_on_key="IP",
            rate_limit_threshold=compute.SecurityPolicyRuleRateLimitOptionsRateLimitThresholdArgs(
                count=limit.requests, interval_sec=limit.interval_seconds),
            ban_duration_sec=limit.ban_seconds if ban else None,
        ),
    )
