"""The application namespace's workloads: WebSocket service, user and admin frontends, shared config."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import podspec
from components.frontend import Frontend, FrontendArgs, FrontendSettings
from components.mesh import MeshSettings
from components.websocket_service import WebSocketService, WebSocketServiceArgs, WebSocketSettings
from policies.aiwfe_policies.contract import CONNECTIONS_PER_POD_ENV, SHUTDOWN_DRAIN_ENV


@dataclass(frozen=True)
class SessionSettings:
    """Application facts the platform passes through as config (it does not implement them)."""

    session_ttl_seconds: int
    connection_ttl_seconds: int
    redis_health_timeout_seconds: int


# The applications' names (`app.kubernetes.io/name`, ServiceAccount, Service).
WEBSOCKET_APP = "websocket"
USER_FRONTEND_APP = "user-frontend"
ADMIN_FRONTEND_APP = "admin-frontend"
APP_CONFIG = "app-config"
APP_SECRETS = "app-secrets"
REDIS_PASSWORD_KEY = "REDIS_PASSWORD"  # noqa: S105 (a key name, not a value)


@dataclass(frozen=True)
class WorkloadsArgs:
    """Inputs of the application workloads. The Redis address and password are the Redis cluster
    component's outputs."""

    namespace: pulumi.Input[str]
    websocket: WebSocketSettings
    user_frontend: FrontendSettings
    admin_frontend: FrontendSettings
    sessions: SessionSettings
    mesh: MeshSettings
    monitoring_namespace: str
    scraper_labels: Mapping[str, str] | None
    redis_url: pulumi.Input[str]
    """REDIS_URL for cluster clients (seeds, no password)."""
    redis_namespace: pulumi.Input[str]
    redis_port: pulumi.Input[int]
    redis_password: pulumi.Input[str]
    """Must be a Pulumi secret; it only ever lands in the `app-secrets` Secret."""
    connections_metric: str | None = None
    """The custom metrics API's name for the WebSocket pods' open-connection gauge (see
    `WebSocketServiceArgs.connections_metric`)."""


def app_config_data(args: WorkloadsArgs) -> dict[str, pulumi.Input[str]]:
    """Non-secret runtime config of the WebSocket service (the `app-config` ConfigMap)."""
    return {
        "REDIS_URL": args.redis_url,
        "REDIS_HEALTH_TIMEOUT_MS": str(args.sessions.redis_health_timeout_seconds * 1000),
        "SESSION_KEY_PREFIX": "ws:session:",
        "SESSION_TTL_SECONDS": str(args.sessions.session_ttl_seconds),
        "CONNECTION_KEY_PREFIX": "connection:",
        "CONNECTION_TTL_SECONDS": str(args.sessions.connection_ttl_seconds),
        CONNECTIONS_PER_POD_ENV: str(args.websocket.connections_per_pod),
        SHUTDOWN_DRAIN_ENV: str(args.websocket.drain_seconds),
    }


def config_checksum(data: dict[str, pulumi.Input[str]]) -> pulumi.Output[str]:
    """Changes when any value changes (some, like REDIS_URL, are other components' outputs)."""
    return pulumi.Output.all(**data).apply(
        lambda values: hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16])


def secret_version(salt: str, secret_values: Mapping[str, str]) -> str:
    """A version of the Secret's content for the pod template: an HMAC keyed with a generated salt,
    so it changes with every rotation yet tells nothing about the values (no unsalted hash a
    password guess could be checked against)."""
    message = json.dumps(dict(secret_values), sort_keys=True).encode()
    return hmac.new(salt.encode(), message, hashlib.sha256).hexdigest()[:16]


def app_peers(args: WorkloadsArgs) -> podspec.AppPeers:
    return podspec.AppPeers(
        ingress_gateway_namespace=args.mesh.ingress_gateway_namespace,
        ingress_gateway_labels=args.mesh.ingress_gateway_labels,
        monitoring_namespace=args.monitoring_namespace,
        istiod_namespace=args.mesh.istiod_namespace,
        scraper_labels=args.scraper_labels,
    )


def websocket_service_args(args: WorkloadsArgs, config_map_name: pulumi.Input[str], secret_name: pulumi.Input[str],
                           secret_version: pulumi.Input[str], name: str = WEBSOCKET_APP) -> WebSocketServiceArgs:
    """The WebSocket service's wiring to the shared ConfigMap, Secret and peers."""
    config_data = app_config_data(args)
    return WebSocketServiceArgs(
        namespace=args.namespace,
        settings=args.websocket,
        config_map_name=config_map_name,
        config_keys=tuple(config_data),
        config_checksum=config_checksum(config_data),
        secret_name=secret_name,
        secret_version=secret_version,
        redis_password_key=REDIS_PASSWORD_KEY,
        redis_namespace=args.redis_namespace,
        redis_port=args.redis_port,
        peers=app_peers(args),
        connections_metric=args.connections_metric,
        name=name,
    )


class Workloads(pulumi.ComponentResource):
    """Everything that runs in the application namespace.

    Outputs: `websocket_service_host`, `websocket_port`, `health_port`, `user_frontend_host`,
    `admin_frontend_host`, `frontend_port`, `config_map_name`, `secret_name`, `flow_ends` (the three
    workloads as the platform's flows name them).
    """

    def __init__(self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiwfe:platform:Workloads", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        shared_labels = podspec.labels("aiwfe-app", "config")
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-app-config",
            metadata=podspec.metadata(APP_CONFIG, ns, shared_labels),
            data=app_config_data(args),
            opts=child,
        )
        secret = k8s.core.v1.Secret(
            f"{name}-app-secrets",
            metadata=podspec.metadata(APP_SECRETS, ns, shared_labels),
            type="Opaque",
            string_data={REDIS_PASSWORD_KEY: pulumi.Output.secret(args.redis_password)},
            opts=child,
        )
        podspec.default_deny(f"{name}-default-deny", ns, shared_labels, child)
        salt = random.RandomPassword(f"{name}-app-secrets-version-salt", length=32, special=False, opts=child)
        # Derived from secrets with a secret key, it reveals neither: plain, so the pod template stays plain.
        version = pulumi.Output.unsecret(pulumi.Output.all(salt.result, args.redis_password).apply(
            lambda values: secret_version(values[0], {REDIS_PASSWORD_KEY: values[1]})))

        websocket = WebSocketService(
            "websocket",
            websocket_service_args(args, config_map.metadata["name"], secret.metadata["name"], version),
            opts=child,
        )
        peers = app_peers(args)
        user = Frontend(
            "user-frontend",
            FrontendArgs(namespace=ns, app=USER_FRONTEND_APP, path_prefix="/user", settings=args.user_frontend,
                         peers=peers),
            opts=child,
        )
        admin = Frontend(
            "admin-frontend",
            FrontendArgs(namespace=ns, app=ADMIN_FRONTEND_APP, path_prefix="/admin", settings=args.admin_frontend,
                         peers=peers),
            opts=child,
        )

        self.websocket_service_host = websocket.service_host
        self.websocket_port = websocket.websocket_port
        self.health_port = websocket.health_port
        self.user_frontend_host = user.service_host
        self.admin_frontend_host = admin.service_host
        self.frontend_port = user.service_port
        self.config_map_name = config_map.metadata["name"]
        self.secret_name = secret.metadata["name"]
        self.flow_ends = pulumi.Output.all(websocket.flow_end, user.flow_end, admin.flow_end).apply(
            lambda ends: {WEBSOCKET_APP: ends[0], USER_FRONTEND_APP: ends[1], ADMIN_FRONTEND_APP: ends[2]})
        self.register_outputs({
            "websocket_service_host": self.websocket_service_host,
            "websocket_port": self.websocket_port,
            "health_port": self.health_port,
            "user_frontend_host": self.user_frontend_host,
            "admin_frontend_host": self.admin_frontend_host,
            "frontend_port": self.frontend_port,
            "config_map_name": self.config_map_name,
            "secret_name": self.secret_name,
            "flow_ends": self.flow_ends,
        })
