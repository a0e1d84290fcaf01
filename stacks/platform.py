"""Wires the components of one stack together: namespaces first, then components, each given
only the settings and the other components' outputs it needs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components import podspec
from components.redis_cluster import RedisCluster, RedisClusterArgs
from components.workloads import Workloads, WorkloadsArgs
from stacks.settings import Settings, load_settings


@dataclass(frozen=True)
class Platform:
    """The components of one stack (what `main` exports from)."""

    gcp_provider: gcp.Provider
    app_namespace: k8s.core.v1.Namespace
    redis: RedisCluster
    workloads: Workloads


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
        namespace_labels={**mesh_namespace_labels(settings), **pod_security_labels(settings)},
        client_namespace=settings.app_namespace,
        client_pod_labels=podspec.selector_labels("websocket"),
        monitoring_namespace=settings.monitoring.namespace,
        scraper_labels=settings.monitoring.scraper_labels,
        istiod_namespace=settings.mesh.istiod_namespace,
        protect=settings.is_prod,
        require_zone_spread=settings.is_prod,
    )


def workloads_args(settings: Settings, namespace: pulumi.Input[str], redis_url: pulumi.Input[str],
                   redis_password: pulumi.Input[str]) -> WorkloadsArgs:
    """What the workloads get: their settings, the mesh peers, and the Redis cluster's address and
    password (its outputs)."""
    return WorkloadsArgs(
        namespace=namespace,
        websocket=settings.websocket,
        user_frontend=settings.user_frontend,
        admin_frontend=settings.admin_frontend,
        sessions=settings.sessions,
        mesh=settings.mesh,
        monitoring_namespace=settings.monitoring.namespace,
        scraper_labels=settings.monitoring.scraper_labels,
        redis_url=redis_url,
        redis_namespace=settings.redis.namespace,
        redis_port=settings.redis.port,
        redis_password=redis_password,
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
    workloads = Workloads("workloads", workloads_args(settings, app_namespace.metadata["name"],
                                                      redis.client_url, redis.password))
    return Platform(gcp_provider=gcp_provider, app_namespace=app_namespace, redis=redis, workloads=workloads)


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
    pulumi.export("redis_namespace", platform.redis.namespace)
    pulumi.export("redis_client_url", platform.redis.client_url)
    pulumi.export("redis_password_secret_name", platform.redis.password_secret_name)
    pulumi.export("redis_password", platform.redis.password)  # a Pulumi secret: encrypted in state
