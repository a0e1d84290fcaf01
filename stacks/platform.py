"""Wires the components of one stack together: namespaces first, then components, each given
only the settings and the other components' outputs it needs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components import podspec
from components.observability import Observability, ObservabilityArgs, ScrapeTarget
from components.workloads import Workloads, WorkloadsArgs
from stacks.settings import Settings, load_settings


@dataclass(frozen=True)
class Platform:
    """The components of one stack (what `main` exports from)."""

    gcp_provider: gcp.Provider
    app_namespace: k8s.core.v1.Namespace
    workloads: Workloads
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


def workloads_args(settings: Settings, namespace: pulumi.Input[str]) -> WorkloadsArgs:
    """What the workloads get: their settings, the mesh peers, and Redis (from config until the
    Redis component lands)."""
    return WorkloadsArgs(
        namespace=namespace,
        websocket=settings.websocket,
        user_frontend=settings.user_frontend,
        admin_frontend=settings.admin_frontend,
        sessions=settings.sessions,
        mesh=settings.mesh,
        monitoring_namespace=settings.monitoring.namespace,
        scraper_labels=settings.monitoring.scraper_labels,
        redis_url=settings.redis.url,
        redis_namespace=settings.redis.namespace,
        redis_port=settings.redis.port,
        redis_password=pulumi.Output.secret(settings.redis.password.reveal()),
    )


# INTEGRATION: keycloak.namespace (setting) / Keycloak.namespace (output) once the Keycloak component lands.
KEYCLOAK_NAMESPACE_STAND_IN = "keycloak"


def observability_args(settings: Settings, app_namespace: pulumi.Input[str]) -> ObservabilityArgs:
    """Scrape targets by the shared contract's names, labels and ports."""
    keycloak_namespace = KEYCLOAK_NAMESPACE_STAND_IN
    # INTEGRATION: RedisCluster.namespace (output); the setting holds the same name today.
    redis_namespace: pulumi.Input[str] = settings.redis.namespace
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
        meshed_namespaces=[app_namespace, keycloak_namespace, redis_namespace],
        sidecar_metrics_port=podspec.SIDECAR_METRICS_PORT,
        app_namespace=settings.app_namespace,
        keycloak_namespace=keycloak_namespace,
        redis_namespace=settings.redis.namespace,
        redis_health_timeout_seconds=settings.sessions.redis_health_timeout_seconds,
        # INTEGRATION: Keycloak.realm (output) to filter the auth dashboard by realm; None shows all realms.
        keycloak_realm=None,
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
    workloads = Workloads("workloads", workloads_args(settings, app_namespace.metadata["name"]))
    observability = Observability("observability", observability_args(settings, app_namespace.metadata["name"]))
    return Platform(gcp_provider=gcp_provider, app_namespace=app_namespace, workloads=workloads,
                    observability=observability)


def main() -> None:
    """The program: validate config (before any resource), build, export."""
    settings = load_settings()
    platform = build(settings)
    pulumi.export("environment", settings.environment)
    pulumi.export("app_namespace", platform.app_namespace.metadata["name"])
    pulumi.export("websocket_service_host", platform.workloads.websocket_service_host)
    pulumi.export("websocket_port", platform.workloads.websocket_port)
    pulumi.export("user_frontend_host", platform.workloads.user_frontend_host)
    pulumi.export("admin_frontend_host", platform.workloads.admin_frontend_host)
    pulumi.export("monitoring_provider", platform.observability.provider)
    pulumi.export("grafana_dashboards", platform.observability.dashboards)
    pulumi.export("alert_rules", platform.observability.alerts)
