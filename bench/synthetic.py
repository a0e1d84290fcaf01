"""Synthetic stacks: the real prod program plus N extra WebSocket-like workloads.

Each extra workload is a `WebSocketService` named `synthetic-<i>` (component and app name), built
from the running stack's own settings objects, so it costs what the real WebSocket service costs.
Spread over namespaces (the policy pack's scale series), each service also gets its own public host
`synthetic-<i>.<product host>`, routed the way the real product host is, through the mesh's own
builders: a VirtualService with the WebSocket routes, a DestinationRule, a RequestAuthentication and
an ALLOW policy; each namespace gets a Gateway admitting its hosts, the gateway's DENY-without-token
policy for them and a URL map sending their WebSocket paths to the WebSocket backend.
Imports happen inside the program, as in `tools.render.platform_program`, so that a measuring child
charges them to the program run, not to its start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pulumi

    from components.mesh import IstioApis
    from stacks.settings import Settings

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
    from components.redis_cluster import REDIS_PORT, client_url
    from components.websocket_service import WebSocketService
    from components.workloads import (
        APP_CONFIG,
        APP_SECRETS,
        REDIS_PASSWORD_KEY,
        app_config_data,
        websocket_service_args,
    )
    from stacks.platform import mesh_namespace_labels, pod_security_labels, workloads_args
    from stacks.settings import load_settings

    settings = load_settings()
    apis = istio_api_versions(settings.mesh.istio_version)
    password = pulumi.Output.secret("synthetic-stand-in-password")
    # What the services need of a RedisCluster's outputs, without declaring one per namespace.
    redis = SimpleNamespace(namespace=pulumi.Output.from_input(settings.redis.namespace),
                            client_url=pulumi.Output.from_input(client_url(settings.redis, settings.gcp.zones)),
                            client_port=pulumi.Output.from_input(REDIS_PORT), password=password)
    namespaces: dict[str, pulumi.Output[str]] = {}
    configured: set[str] = set()
    routed: dict[str, list[str]] = {}  # namespace -> its services' names, in order
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
        args_of_workloads = workloads_args(settings, namespaces[ns], redis)
        if ns not in configured and ns != settings.app_namespace:
            # The app namespace's ConfigMap and Secret, which its services read their settings from.
            configured.add(ns)
            shared = podspec.labels("aiwfe-app", "config")
            k8s.core.v1.ConfigMap(f"{ns}-app-config", metadata=podspec.metadata(APP_CONFIG, namespaces[ns], shared),
                                  data=app_config_data(args_of_workloads))
            k8s.core.v1.Secret(f"{ns}-app-secrets", metadata=podspec.metadata(APP_SECRETS, namespaces[ns], shared),
                               type="Opaque", string_data={REDIS_PASSWORD_KEY: password})
        name = synthetic_name(index)
        args = websocket_service_args(args_of_workloads, pulumi.Output.from_input(APP_CONFIG),
                                      pulumi.Output.from_input(APP_SECRETS), "synthetic", name=name)
        WebSocketService(name, args)
        if per_namespace is not None:
            add_route(settings, apis, ns, namespaces[ns], name)
            routed.setdefault(ns, []).append(name)
    for ns, names in routed.items():
        add_namespace_edge(settings, apis, ns, names)


def synthetic_host(name: str, product_host: str) -> str:
    return f"{name}.{product_host}"


def _issuer(settings: Settings) -> str:
    return f"https://{settings.auth_host}/realms/{settings.keycloak.realm}"


def add_route(settings: Settings, apis: IstioApis, ns: str, namespace: pulumi.Input[str], name: str) -> None:
    """One service's host in the mesh, as the real WebSocket service's is declared."""
    import pulumi_kubernetes as k8s

    from components import mesh, podspec
    from policies.aiwfe_policies.contract import WEBSOCKET_PORT

    issuer = _issuer(settings)
    host = mesh.cluster_host(name, namespace)
    labels = podspec.labels(name, "mesh")
    gateway = f"{settings.mesh.ingress_gateway_namespace}/{ns}"
    idle = f"{settings.load_balancer.websocket_timeout_seconds}s"
    connections = settings.websocket.connections_per_pod * settings.websocket.max_replicas
    app = {"app.kubernetes.io/name": name}
    for kind, api, spec in (
        ("VirtualService", apis.networking, {"hosts": [synthetic_host(name, settings.product_host)],
                                             "gateways": [gateway], "http": mesh.websocket_routes(host)}),
        ("DestinationRule", apis.networking, mesh.websocket_destination(host, connections, idle)),
        ("RequestAuthentication", apis.security, {"selector": {"matchLabels": app}, "jwtRules": mesh.jwt_rules(
            issuer, f"{issuer}/protocol/openid-connect/certs")}),
        ("AuthorizationPolicy", apis.security, mesh.allow_policy(
            app, [settings.mesh.ingress_gateway_principal], [WEBSOCKET_PORT],
            request_principals=mesh.issuer_principals(issuer))),
    ):
        k8s.apiextensions.CustomResource(f"{name}-{kind.lower()}", api_version=api, kind=kind,
                                         metadata=podspec.metadata(name, namespace, labels), spec=spec)


def add_namespace_edge(settings: Settings, apis: IstioApis, ns: str, names: list[str]) -> None:
    """A namespace's hosts at the edge: its Gateway, its DENY-without-token policy and its URL map."""
    import pulumi_gcp as gcp
    import pulumi_kubernetes as k8s

    from components import load_balancer, mesh, podspec

    gateway_ns = settings.mesh.ingress_gateway_namespace
    hosts = [synthetic_host(name, settings.product_host) for name in names]
    labels = podspec.labels(ns, "mesh")
    k8s.apiextensions.CustomResource(
        f"{ns}-gateway", api_version=apis.networking, kind="Gateway",
        metadata=podspec.metadata(ns, gateway_ns, labels),
        spec={"selector": dict(settings.mesh.ingress_gateway_labels),
              "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                           "hosts": [f"{ns}/{host}" for host in hosts]}]})
    k8s.apiextensions.CustomResource(
        f"{ns}-edge-require-jwt", api_version=apis.security, kind="AuthorizationPolicy",
        metadata=podspec.metadata(f"{ns}-require-jwt", gateway_ns, labels),
        spec=mesh.edge_require_jwt(settings.mesh.ingress_gateway_labels, _issuer(settings),
                                   [(host, mesh.authz_paths("/public")) for host in hosts]))

    def backend(kind: str) -> str:
        return load_balancer.global_link(settings.gcp.project, "backendServices",
                                         f"{load_balancer.DEFAULT_NAME_PREFIX}-{kind}")
    gcp.compute.URLMap(
        f"{ns}-url-map", name=f"{ns}-https", default_service=backend("web"),
        host_rules=[gcp.compute.URLMapHostRuleArgs(hosts=hosts, path_matcher="synthetic")],
        path_matchers=[gcp.compute.URLMapPathMatcherArgs(
            name="synthetic", default_service=backend("web"),
            path_rules=[gcp.compute.URLMapPathMatcherPathRuleArgs(paths=list(load_balancer.WEBSOCKET_PATHS),
                                                                  service=backend("websocket"))])])
