"""Synthetic stacks: the real prod program plus N extra WebSocket-like workloads.

Each extra workload is a `WebSocketService` named `synthetic-<i>` (component and app name), built
from the running stack's own settings objects, so it costs what the real WebSocket service costs.
Imports happen inside the program, as in `tools.render.platform_program`, so that a measuring child
charges them to the program run, not to its start-up.
"""

from __future__ import annotations

from collections.abc import Callable

SYNTHETIC_PREFIX = "synthetic"
# The policy pack's scale series spreads the services over namespaces (the pack indexes by namespace);
# the render and preview benchmarks keep them in the app namespace, so each adds the same resources.
SERVICES_PER_NAMESPACE = 20


def synthetic_name(index: int) -> str:
    return f"{SYNTHETIC_PREFIX}-{index}"


def synthetic_program(extra: int, per_namespace: int | None = None) -> Callable[[], None]:
    """A Pulumi program: exactly `stacks.platform.main()`, then `extra` more WebSocket services, in
    the app namespace, or `per_namespace` to a namespace of their own."""
    if extra < 0:
        raise ValueError(f"extra must be >= 0, not {extra}")

    def program() -> None:
        from stacks.platform import main

        main()
        if extra:
            add_websocket_services(extra, per_namespace)

    return program


def synthetic_namespace(index: int, per_namespace: int) -> str:
    """Services 1..per_namespace share the first namespace, and so on."""
    return f"{SYNTHETIC_PREFIX}-ns-{(index - 1) // per_namespace + 1}"


def add_websocket_services(count: int, per_namespace: int | None = None) -> None:
    """Declare `count` WebSocket services wired exactly like the real one (same ConfigMap keys,
    Secret and peers, through the same builder), with distinct names: in the app namespace, or
    `per_namespace` to a namespace of their own that gets what the program gives the app namespace
    (its labels, a default-deny NetworkPolicy, the mesh's STRICT PeerAuthentication and
    allow-nothing)."""
    import pulumi
    import pulumi_kubernetes as k8s

    from components import podspec
    from components.mesh import istio_api_versions
    from components.redis_cluster import client_url
    from components.websocket_service import WebSocketService
    from components.workloads import APP_CONFIG, APP_SECRETS, websocket_service_args
    from stacks.platform import mesh_namespace_labels, pod_security_labels, workloads_args
    from stacks.settings import load_settings

    settings = load_settings()
    apis = istio_api_versions(settings.mesh.istio_version)
    redis_url = pulumi.Output.from_input(client_url(settings.redis, settings.gcp.zones))
    password = pulumi.Output.secret("synthetic-stand-in-password")
    namespaces: dict[str, pulumi.Output[str]] = {}
    for index in range(1, count + 1):
        if per_namespace is None:
            ns = settings.app_namespace
            namespaces.setdefault(ns, pulumi.Output.from_input(ns))  # as the real service gets it
        else:
            ns = synthetic_namespace(index, per_namespace)
        if ns not in namespaces:
            namespace = k8s.core.v1.Namespace(ns, metadata={"name": ns, "labels": {
                **podspec.labels(ns, "namespace"), **mesh_namespace_labels(settings), **pod_security_labels(settings)}})
            namespaces[ns] = namespace.metadata["name"]
            labels = podspec.labels(ns, "namespace")
            podspec.default_deny(f"{ns}-default-deny", namespaces[ns], labels)
            for kind, name, spec in (("PeerAuthentication", "default", {"mtls": {"mode": settings.mesh.mtls_mode}}),
                                     ("AuthorizationPolicy", "allow-nothing", {})):
                k8s.apiextensions.CustomResource(f"{ns}-{name}", api_version=apis.security, kind=kind,
                                                 metadata={"name": name, "namespace": namespaces[ns],
                                                           "labels": labels}, spec=spec)
        args_of_workloads = workloads_args(settings, namespaces[ns], redis_url, password)
        name = synthetic_name(index)
        args = websocket_service_args(args_of_workloads, pulumi.Output.from_input(APP_CONFIG),
                                      pulumi.Output.from_input(APP_SECRETS), "synthetic", name=name)
        WebSocketService(name, args)
