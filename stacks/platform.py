"""Wires the components of one stack together: namespaces first, then components, each given
only the settings and the other components' outputs it needs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components import podspec
from components.keycloak import Keycloak, KeycloakArgs
from components.workloads import Workloads, WorkloadsArgs
from stacks.settings import Settings, load_settings


@dataclass(frozen=True)
class Platform:
    """The components of one stack (what `main` exports from)."""

    gcp_provider: gcp.Provider
    app_namespace: k8s.core.v1.Namespace
    workloads: Workloads
    keycloak: Keycloak


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
    keycloak = Keycloak("keycloak", keycloak_args(settings),
                        opts=pulumi.ResourceOptions(providers={"gcp": gcp_provider}))
    return Platform(gcp_provider=gcp_provider, app_namespace=app_namespace, workloads=workloads, keycloak=keycloak)


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
    # Keycloak: the mesh's JWT rules take issuer and jwks_uri (wired there by the mesh issue).
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
