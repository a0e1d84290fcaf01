"""A static frontend served by unprivileged nginx under a path prefix (`/user`, `/admin`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import podspec
from stacks.settings import FRONTEND_CONTAINER_PORT, FRONTEND_SERVICE_PORT, FrontendSettings, image_tag

# nginx-unprivileged images let any uid in group 0/101 write their /tmp paths.
FRONTEND_UID = 10101
FRONTEND_GID = 101
HEALTH_PATH = "/healthz"
CONF_DIR = "/etc/nginx/conf.d"
STATIC_ROOT = "/usr/share/nginx/html"
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)


def render_nginx_server_conf(path_prefix: str, listen_port: int = FRONTEND_CONTAINER_PORT,
                             root: str = STATIC_ROOT) -> str:
    """The nginx `server` block: the app under `path_prefix`, a health endpoint, nothing else.

    Files are served from `root` with the prefix stripped; a missing file is 404, and every other
    path under the prefix gets the app's index.html (client-side routing), never cached so a deploy
    is seen at once. Paths outside the prefix are 404.
    """
    if not path_prefix.startswith("/") or path_prefix.endswith("/") or " " in path_prefix:
        raise ValueError(f"path prefix {path_prefix!r} must start with '/' and not end with '/'")
    # nginx drops inherited add_header lines in a location that sets its own: repeat them there.
    server_headers = _add_headers(SECURITY_HEADERS, indent=4)
    index_headers = _add_headers((*SECURITY_HEADERS, ("Cache-Control", "no-cache")), indent=8)
    return f"""\
server {{
    listen {listen_port};
    server_name _;
    server_tokens off;
    absolute_redirect off;
    root {root};

{server_headers}
    location = {HEALTH_PATH} {{
        access_log off;
        default_type text/plain;
        return 200 "ok\\n";
    }}

    location = {path_prefix} {{
        return 301 {path_prefix}/;
    }}

    location ^~ {path_prefix}/ {{
        # A missing file (a path with an extension) is a 404, not the app's HTML.
        location ~ "^{path_prefix}/.*\\.[A-Za-z0-9]+$" {{
            rewrite ^{path_prefix}(/.*)$ $1 break;
            try_files $uri =404;
        }}
        rewrite ^{path_prefix}(/.*)$ $1 break;
        try_files $uri @app;
    }}

    location @app {{
{index_headers}        rewrite ^ /index.html break;
    }}

    location / {{
        return 404;
    }}
}}
"""


def _add_headers(headers: tuple[tuple[str, str], ...], indent: int) -> str:
    return "".join(f'{" " * indent}add_header {name} "{value}" always;\n' for name, value in headers)


@dataclass(frozen=True)
class FrontendArgs:
    """One frontend: which app, under which path, and who may reach it."""

    namespace: pulumi.Input[str]
    app: str
    """Workload name, e.g. `user-frontend`."""
    path_prefix: str
    settings: FrontendSettings
    peers: podspec.AppPeers


class Frontend(pulumi.ComponentResource):
    """nginx serving the app's static files on a high port, Service port 80.

    Outputs: `service_name`, `service_host`, `service_port`, `path_prefix`.
    """

    service_name: pulumi.Output[str]
    service_host: pulumi.Output[str]
    service_port: pulumi.Output[int]
    path_prefix: pulumi.Output[str]

    def __init__(self, name: str, args: FrontendArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiwfe:platform:Frontend", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        s = args.settings
        app = args.app
        match = podspec.selector_labels(app)
        object_labels = podspec.labels(app, "frontend")
        server_conf = render_nginx_server_conf(args.path_prefix)

        config = k8s.core.v1.ConfigMap(
            f"{name}-nginx-config",
            metadata=podspec.metadata(f"{app}-nginx", args.namespace, object_labels),
            data={"default.conf": server_conf},
            opts=child,
        )
        account = podspec.service_account(f"{name}-service-account", app, args.namespace, object_labels, child)
        container = {
            "name": "nginx",
            "image": s.image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "http", "containerPort": FRONTEND_CONTAINER_PORT, "protocol": "TCP"}],
            "resources": s.resources.as_k8s(),
            "livenessProbe": podspec.http_probe(HEALTH_PATH, "http", period=10, timeout=2, failures=3),
            "readinessProbe": podspec.http_probe(HEALTH_PATH, "http", period=5, timeout=2, failures=2),
            # nginx finishes in-flight requests on SIGQUIT; a short pause lets endpoints update first.
            "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
            "volumeMounts": [
                podspec.tmp_mount(),
                {"name": "nginx-config", "mountPath": CONF_DIR, "readOnly": True},
            ],
        }
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=podspec.metadata(app, args.namespace, object_labels),
            spec={
                "replicas": s.replicas,
                "selector": {"matchLabels": match},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "revisionHistoryLimit": 5,
                "template": {
                    "metadata": {
                        "labels": podspec.labels(app, "frontend", image_tag(s.image)),
                        "annotations": {
                            "checksum/nginx-config": hashlib.sha256(server_conf.encode()).hexdigest()[:16],
                            # Its DestinationRule ejects: the sidecar keeps the outlier stats.
                            "proxy.istio.io/config": podspec.proxy_config(outlier_stats=True),
                        },
                    },
                    "spec": podspec.hardened_pod_spec(
                        containers=[container],
                        service_account=account.metadata["name"],
                        uid=FRONTEND_UID,
                        gid=FRONTEND_GID,
                        match_labels=match,
                        termination_grace_seconds=30,
                        volumes=[
                            podspec.tmp_volume(),
                            {"name": "nginx-config", "configMap": {"name": config.metadata["name"]}},
                        ],
                    ),
                },
            },
            opts=child,
        )
        service, service_host = podspec.cluster_service(
            f"{name}-service", app, args.namespace, object_labels, match,
            [podspec.http_port("http", FRONTEND_SERVICE_PORT, "http")], child)
        if s.replicas > 1:
            podspec.disruption_budget(f"{name}-disruption-budget", app, args.namespace, object_labels, match,
                                      opts=child)
        podspec.app_network_policy(f"{name}-network-policy", app, args.namespace, object_labels, match, args.peers,
                                   app_ports=[FRONTEND_CONTAINER_PORT], opts=child)

        self.service_name = service.metadata["name"]
        self.service_host = service_host
        self.service_port = pulumi.Output.from_input(FRONTEND_SERVICE_PORT)
        self.path_prefix = pulumi.Output.from_input(args.path_prefix)
        self.register_outputs({
            "service_name": self.service_name,
            "service_host": self.service_host,
            "service_port": self.service_port,
            "path_prefix": self.path_prefix,
        })
