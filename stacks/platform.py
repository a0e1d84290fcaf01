"""Wires the components of one stack together: namespaces first, then components, each given
only the settings and the other components' outputs it needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components import podspec
from components.alert_rules import RedisLayoutCounts
from components.keycloak import Keycloak, KeycloakArgs
from components.load_balancer import LoadBalancer, LoadBalancerArgs
from components.mesh import Mesh, MeshArgs
from components.observability import Observability, ObservabilityArgs, ScrapeTarget, custom_metric_name
from components.redis_cluster import RedisCluster, RedisClusterArgs
from components.workloads import Workloads, WorkloadsArgs
from policies.aiwfe_policies.contract import WEBSOCKET_CONNECTIONS_METRIC
from stacks import flows
from stacks.deployed import REDIS_LAYOUT_OUTPUT, last_deployed_layout, refuse_layout_change
from stacks.settings import Settings, load_settings


@dataclass(frozen=True)
class Platform:
    """The components of one stack (what `main` exports from)."""

    gcp_provider: gcp.Provider
    app_namespace: k8s.core.v1.Namespace
    redis: RedisCluster
    workloads: Workloads
    keycloak: Keycloak
    load_balancer: LoadBalancer
    mesh: Mesh
    observability: Observability


def mesh_namespace_labels(settings: Settings) -> dict[str, str]:
    """Sidecar injection by revision label when a revision is pinned, else the default injector."""
    if settings.mesh.istio_revision:
        return {"istio.io/rev": settings.mesh.istio_revision}
    return {"istio-injection": "enabled"}


def pod_security_labels(settings: Settings) -> dict[str, str]:
    """Pod Security Admission for a meshed namespace.

    With the Istio CNI plugin the injected containers need no NET_ADMIN/NET_RAW, and `baseline` is
    enforced (Istio's documented PSA setup). Without it every pod gets an istio-init container with
    those capabilities, which `baseline` forbids: only `privileged` admits it. Either way the app
    pods are held to `restricted` by warn/audit, so drift shows up.
    """
    version = f"v{settings.kubernetes_version}"
    level = "baseline" if settings.mesh.cni else "privileged"
    return {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": version,
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": version,
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": version,
    }


def redis_cluster_args(settings: Settings) -> RedisClusterArgs:
    """The Redis cluster: its settings, and the WebSocket pods as its only clients."""
    return RedisClusterArgs(
        settings=settings.redis,
        zones=settings.gcp.zones,
        namespace_labels={**mesh_namespace_labels(settings), **pod_security_labels(settings)},
        client_namespace=settings.app_namespace,
        client_pod_labels=podspec.selector_labels("websocket"),
        monitoring_namespace=settings.monitoring.namespace,
        scraper_labels=settings.monitoring.scraper_labels,
        istiod_namespace=settings.mesh.istiod_namespace,
        protect=settings.is_prod,
        require_zone_spread=settings.is_prod,
    )


class RedisClientPeer(Protocol):
    """What the workloads need of the Redis cluster (a `RedisCluster`'s outputs)."""

    namespace: pulumi.Input[str]
    client_url: pulumi.Input[str]
    client_port: pulumi.Input[int]
    password: pulumi.Input[str]


def workloads_args(settings: Settings, namespace: pulumi.Input[str], redis: RedisClientPeer) -> WorkloadsArgs:
    """What the workloads get: their settings, the mesh peers, and the Redis cluster's namespace,
    address, port and password (its outputs)."""
    return WorkloadsArgs(
        namespace=namespace,
        websocket=settings.websocket,
        user_frontend=settings.user_frontend,
        admin_frontend=settings.admin_frontend,
        sessions=settings.sessions,
        mesh=settings.mesh,
        monitoring_namespace=settings.monitoring.namespace,
        scraper_labels=settings.monitoring.scraper_labels,
        redis_url=redis.client_url,
        redis_namespace=redis.namespace,
        redis_port=redis.client_port,
        redis_password=redis.password,
        # The adapter serves the service's own gauge under a name its provider decides.
        connections_metric=custom_metric_name(settings.monitoring.provider, WEBSOCKET_CONNECTIONS_METRIC),
    )


class KeycloakPeer(Protocol):
    """What the mesh and the scrapers need of Keycloak (a `Keycloak`'s outputs)."""

    issuer: pulumi.Input[str]
    jwks_uri: pulumi.Input[str]
    realm: pulumi.Input[str]
    namespace: pulumi.Input[str]
    service_host: pulumi.Input[str]
    service_port: pulumi.Input[int]
    container_port: pulumi.Input[int]
    service_account: pulumi.Input[str]
    database_service_account: pulumi.Input[str] | None
    database_port: int | None
    reconcile_service_account: pulumi.Input[str]


class RedisPeer(Protocol):
    """What the mesh and the alerts need of the Redis cluster (a `RedisCluster`'s outputs)."""

    namespace: pulumi.Input[str]
    service_account: pulumi.Input[str]
    bootstrap_service_account: pulumi.Input[str]
    client_port: pulumi.Input[int]
    node_count: int
    master_count: int
    replicas_per_master: int


def mesh_args(settings: Settings, app_namespace: pulumi.Input[str], *, lb_websocket_timeout_seconds: int,
              lb_web_timeout_seconds: int,
              redis: RedisPeer, keycloak: KeycloakPeer) -> MeshArgs:
    """What the mesh gets: its settings, the hosts, the WebSocket capacity, and the Keycloak, Redis
    and load-balancer outputs (JWT issuer and JWKS are Keycloak's realm's, never rebuilt here)."""
    return MeshArgs(
        settings=settings.mesh,
        product_host=settings.product_host,
        auth_host=settings.auth_host,
        app_namespace=app_namespace,
        websocket_max_connections=settings.websocket.connections_per_pod * settings.websocket.max_replicas,
        lb_websocket_timeout_seconds=lb_websocket_timeout_seconds,
        lb_web_timeout_seconds=lb_web_timeout_seconds,
        jwt_issuer=keycloak.issuer,
        jwks_uri=keycloak.jwks_uri,
        keycloak_realm=keycloak.realm,
        keycloak_namespace=keycloak.namespace,
        keycloak_service_host=keycloak.service_host,
        keycloak_service_port=keycloak.service_port,
        keycloak_container_port=keycloak.container_port,
        keycloak_service_account=keycloak.service_account,
        keycloak_database_service_account=keycloak.database_service_account,
        keycloak_database_port=keycloak.database_port,
        keycloak_internal_service_accounts=[keycloak.reconcile_service_account],
        redis_namespace=redis.namespace,
        redis_service_account=redis.service_account,
        redis_bootstrap_service_account=redis.bootstrap_service_account,
        redis_client_port=redis.client_port,
    )


def observability_args(settings: Settings, app_namespace: pulumi.Input[str], *, redis: RedisPeer,
                       keycloak: KeycloakPeer) -> ObservabilityArgs:
    """Scrape targets by the shared contract's names, labels and ports, in the components' namespaces."""
    keycloak_namespace = keycloak.namespace
    redis_namespace = redis.namespace
    return ObservabilityArgs(
        monitoring=settings.monitoring,
        targets=[
            # Keycloak's management port 9000 (`http-management`): /metrics next to /health.
            ScrapeTarget("keycloak", keycloak_namespace, {"app.kubernetes.io/name": "keycloak"}, "http-management"),
            # redis_exporter sidecar on 9121 (`http-metrics`), outside the Istio sidecar.
            ScrapeTarget("redis", redis_namespace, {"app.kubernetes.io/name": "redis-cluster"}, "http-metrics"),
            # The WebSocket service's own metrics on its health port (docs/observability.md lists them).
            ScrapeTarget("websocket", app_namespace, {"app.kubernetes.io/name": "websocket"}, "http-health"),
        ],
        # The ingress gateway's proxy too: it applies the DestinationRules to the apps it routes to.
        meshed_namespaces=[app_namespace, keycloak_namespace, redis_namespace,
                           settings.mesh.ingress_gateway_namespace],
        sidecar_metrics_port=podspec.SIDECAR_METRICS_PORT,
        app_namespace=settings.app_namespace,
        # Dashboards and alert expressions are plain text: the names as configured.
        keycloak_namespace=settings.keycloak.namespace,
        redis_namespace=settings.redis.namespace,
        redis_health_timeout_seconds=settings.sessions.redis_health_timeout_seconds,
        redis_layout=RedisLayoutCounts(redis.node_count, redis.master_count, redis.replicas_per_master),
        keycloak_realm=settings.keycloak.realm,
        gateway_namespace=settings.mesh.ingress_gateway_namespace,
    )


def build(settings: Settings) -> Platform:
    """Declare every resource of the stack."""
    # Explicit, so the project and region come from validated settings and never from ambient
    # `gcloud` defaults on the machine running `pulumi up`.
    gcp_provider = gcp.Provider("gcp", project=settings.gcp.project, region=settings.gcp.region)
    app_namespace = k8s.core.v1.Namespace(
        "app-namespace",
        metadata={
            "name": settings.app_namespace,
            "labels": {
                **podspec.labels(settings.app_namespace, "namespace"),
                **mesh_namespace_labels(settings),
                **pod_security_labels(settings),
            },
        },
    )
    redis = RedisCluster("redis-cluster", redis_cluster_args(settings))
    keycloak = Keycloak("keycloak", keycloak_args(settings),
                        opts=pulumi.ResourceOptions(providers={"gcp": gcp_provider}))
    workloads = Workloads("workloads", workloads_args(settings, app_namespace.metadata["name"], redis))
    load_balancer = LoadBalancer(
        "load-balancer",
        LoadBalancerArgs(
            settings=settings.load_balancer,
            product_host=settings.product_host,
            auth_host=settings.auth_host,
            project=settings.gcp.project,
            zones=settings.gcp.zones,
            network=settings.gcp.network,
            protect=settings.is_prod,
        ),
        pulumi.ResourceOptions(providers={"gcp": gcp_provider}),
    )
    mesh = Mesh("mesh", mesh_args(settings, app_namespace.metadata["name"],
                                  lb_websocket_timeout_seconds=load_balancer.websocket_timeout_seconds,
                                  lb_web_timeout_seconds=load_balancer.web_timeout_seconds,
                                  redis=redis, keycloak=keycloak),
                opts=pulumi.ResourceOptions(depends_on=[app_namespace]))
    observability = Observability("observability",
                                  observability_args(settings, app_namespace.metadata["name"], redis=redis,
                                                     keycloak=keycloak))
    return Platform(gcp_provider=gcp_provider, app_namespace=app_namespace, keycloak=keycloak, redis=redis,
                    workloads=workloads, load_balancer=load_balancer, mesh=mesh, observability=observability)


def keycloak_args(settings: Settings) -> KeycloakArgs:
    """Keycloak gets its settings, its host, its namespace's mesh labels and where its peers run."""
    return KeycloakArgs(
        settings=settings.keycloak,
        stack=settings.stack,
        public_host=settings.auth_host,
        namespace_labels={**mesh_namespace_labels(settings), **pod_security_labels(settings)},
        mesh=settings.mesh,
        app_namespace=settings.app_namespace,
        monitoring_namespace=settings.monitoring.namespace,
        scraper_labels=settings.monitoring.scraper_labels,
        gcp_project=settings.gcp.project,
        gcp_region=settings.gcp.region,
        gcp_network=settings.gcp.network,
        protect=settings.is_prod,
    )


def flow_ends(platform: Platform) -> pulumi.Output[dict[str, Any]]:
    """Every workload of the stack as its component declared it, by `app.kubernetes.io/name`."""
    return pulumi.Output.all(platform.workloads.flow_ends, platform.redis.flow_ends,
                             platform.keycloak.flow_ends).apply(
        lambda parts: flows.merge_ends(*parts))


def main() -> None:
    """The program: validate config (before any resource), build, export."""
    settings = load_settings()
    # Before any resource: a layout change the cluster cannot take stops here, not half-applied.
    refuse_layout_change(settings, last_deployed_layout())
    platform = build(settings)
    pulumi.export("environment", settings.environment)
    pulumi.export("app_namespace", platform.app_namespace.metadata["name"])
    pulumi.export("websocket_service_host", platform.workloads.websocket_service_host)
    pulumi.export("websocket_port", platform.workloads.websocket_port)
    pulumi.export("user_frontend_host", platform.workloads.user_frontend_host)
    pulumi.export("admin_frontend_host", platform.workloads.admin_frontend_host)
    pulumi.export("ip_address", platform.load_balancer.ip_address)
    pulumi.export("urls", platform.load_balancer.urls)
    pulumi.export("websocket_timeout_seconds", platform.load_balancer.websocket_timeout_seconds)
    pulumi.export("mesh_gateway", platform.mesh.gateway)
    pulumi.export("mesh_jwt_issuer", platform.mesh.jwt_issuer)
    pulumi.export("mesh_mtls_mode", platform.mesh.mtls_mode)
    pulumi.export("redis_namespace", platform.redis.namespace)
    pulumi.export(REDIS_LAYOUT_OUTPUT, platform.redis.layout)
    # What the policy pack's reachability rules check (stacks.policy_config reads these).
    ends = flow_ends(platform)
    pulumi.export(flows.FLOWS_OUTPUT, ends.apply(lambda e: flows.intended_flows(settings, e)))
    pulumi.export(flows.DATA_STORES_OUTPUT, ends.apply(flows.data_stores))
    pulumi.export("redis_client_url", platform.redis.client_url)
    pulumi.export("redis_password_secret_name", platform.redis.password_secret_name)
    pulumi.export("redis_password", platform.redis.password)  # a Pulumi secret: encrypted in state
    pulumi.export("monitoring_provider", platform.observability.provider)
    pulumi.export("grafana_dashboards", platform.observability.dashboards)
    pulumi.export("alert_rules", platform.observability.alerts)
    kc = platform.keycloak
    pulumi.export("keycloak_issuer", kc.issuer)
    pulumi.export("keycloak_jwks_uri", kc.jwks_uri)
    pulumi.export("keycloak_realm", kc.realm)
    pulumi.export("keycloak_namespace", kc.namespace)
    pulumi.export("keycloak_service_host", kc.service_host)
    pulumi.export("keycloak_service_port", kc.service_port)
    pulumi.export("keycloak_public_host", kc.public_host)
    pulumi.export("keycloak_admin_password", kc.admin_password)
    pulumi.export("keycloak_services_client_secret", kc.services_client_secret)
