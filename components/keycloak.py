"""Keycloak: HA identity in its own namespace, with its PostgreSQL, realm, clients and identity providers.

Start mode: the official image, built once per pod by an init container (`kc.sh build` with the
build options, on a copy of the distribution in an emptyDir) and started with `start --optimized`.
Keycloak recommends an optimized start in production; building in the pod keeps the official,
signed image (no image of our own to build, scan and pin) and a read-only root filesystem
(`start` without `--optimized` would re-augment into the image's own `lib/` at every start).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import keycloak_reconcile as reconcile
from components import podspec
from components.keycloak_realm import (
    GITHUB_SECRET_ENV,
    GOOGLE_SECRET_ENV,
    IMPORT_DIR,
    SERVICES_SECRET_ENV,
    RealmSpec,
    realm_file_name,
    realm_json,
)
from components.mesh import MeshSettings
from components.postgres import APP as POSTGRES_APP
from components.postgres import (
    POSTGRES_PORT,
    KeycloakDatabaseSettings,
    KeycloakPostgres,
    KeycloakPostgresArgs,
    jdbc_url,
)
from components.values import ContainerResources, SecretStr


@dataclass(frozen=True)
class KeycloakSizing:
    """The mix of Keycloak's authentication load (its HA sizing guide prices each kind); the rate is
    `targets.authenticationsPerMinute`."""

    password_login_percent: int
    client_credentials_percent: int
    refresh_percent: int


@dataclass(frozen=True)
class KeycloakSettings:
    """The identity service: version, size, realm facts, database."""

    namespace: str
    version: str
    replicas: int
    resources: ContainerResources
    realm: str
    access_token_lifespan_seconds: int
    sso_session_idle_seconds: int
    sso_session_max_seconds: int
    client_session_idle_seconds: int
    webapp_redirect_uris: tuple[str, ...]
    webapp_web_origins: tuple[str, ...]
    google_client_id: str
    github_client_id: str
    google_client_secret: SecretStr
    github_client_secret: SecretStr
    trusted_proxy_addresses: tuple[str, ...]
    database: KeycloakDatabaseSettings
    sizing: KeycloakSizing

    @property
    def image(self) -> str:
        """The official image of the pinned release."""
        return f"quay.io/keycloak/keycloak:{self.version}"


APP = "keycloak"
HTTP_PORT = 8080
MANAGEMENT_PORT = 9000
JGROUPS_PORT = 7800
JGROUPS_FD_PORT = 57800
CLOUD_SQL_PORT = 3307
PROXY_HEALTH_PORT = 9801
KEYCLOAK_UID = 10100
# The build init container copies the image's distribution here; the server runs from it.
HOME = "/opt/kc"
DATABASE = "keycloak"
DB_USER = "keycloak"
POOL_SIZE = 25
ADMIN_USER = "aiwfe-admin"

ADMIN_SECRET = "keycloak-admin"  # noqa: S105 (object names and keys, not values)
DB_SECRET = "keycloak-db"  # noqa: S105
CLIENT_SECRETS = "keycloak-client-secrets"
REALM_CONFIG_MAP = "keycloak-realm"
RECONCILE = "keycloak-realm-reconcile"
RECONCILE_DIR = "/opt/reconcile"
RECONCILE_DEADLINE_SECONDS = 900
JOB_AWAIT = "20m"
DB_PASSWORD_KEY = "password"  # noqa: S105 (a key name)

def realm_spec(settings: KeycloakSettings) -> RealmSpec:
    return RealmSpec(
        name=settings.realm,
        access_token_lifespan=settings.access_token_lifespan_seconds,
        sso_session_idle=settings.sso_session_idle_seconds,
        sso_session_max=settings.sso_session_max_seconds,
        client_session_idle=settings.client_session_idle_seconds,
        redirect_uris=settings.webapp_redirect_uris,
        web_origins=settings.webapp_web_origins,
        google_client_id=settings.google_client_id,
        github_client_id=settings.github_client_id,
    )


def build_env(settings: KeycloakSettings) -> list[dict[str, Any]]:
    """Build options, given to `kc.sh build` only (`start --optimized` must not see other values)."""
    return [{"name": k, "value": v} for k, v in (
        ("KC_DB", "postgres"),
        ("KC_HEALTH_ENABLED", "true"),
        ("KC_METRICS_ENABLED", "true"),
        # What the auth-failure alert and the auth dashboard query: keycloak_user_events_total (off by
        # default; a build option). Its histogram twin is a run-time option (runtime_env).
        ("KC_EVENT_METRICS_USER_ENABLED", "true"),
    )]


def runtime_env(settings: KeycloakSettings, public_host: str) -> list[dict[str, Any]]:
    """Runtime options of the server, and the realm's secrets for the import's `${ENV}` placeholders."""
    def secret(name: str, secret_name: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}

    plain = [{"name": k, "value": v} for k, v in (
        ("KC_HOSTNAME", f"https://{public_host}"),
        ("KC_HOSTNAME_STRICT", "true"),
        # TLS ends at the load balancer; the gateway and sidecar speak HTTP to the pod.
        ("KC_HTTP_ENABLED", "true"),
        ("KC_HTTP_PORT", str(HTTP_PORT)),
        ("KC_HTTP_MANAGEMENT_PORT", str(MANAGEMENT_PORT)),
        ("KC_PROXY_HEADERS", "xforwarded"),
        ("KC_PROXY_TRUSTED_ADDRESSES", ",".join(settings.trusted_proxy_addresses)),
        ("KC_DB_POOL_INITIAL_SIZE", str(POOL_SIZE)),
        ("KC_DB_POOL_MIN_SIZE", str(POOL_SIZE)),
        ("KC_DB_POOL_MAX_SIZE", str(POOL_SIZE)),
        # The auth dashboard's latency panels: http_server_requests_seconds_bucket (off by default).
        ("KC_HTTP_METRICS_HISTOGRAMS_ENABLED", "true"),
        ("KC_CACHE", "ispn"),
        # Discovery through the database (the default since 26.1): no headless Service, no DNS ping.
        ("KC_CACHE_STACK", "jdbc-ping"),
        # JGroups bypasses the sidecar (see the pod annotations): Keycloak's own TLS protects it.
        ("KC_CACHE_EMBEDDED_MTLS_ENABLED", "true"),
        ("KC_LOG_CONSOLE_OUTPUT", "json"),
    )]
    return [
        *plain,
        secret("KC_DB_URL", DB_SECRET, "url"),
        secret("KC_DB_USERNAME", DB_SECRET, "username"),
        secret("KC_DB_PASSWORD", DB_SECRET, DB_PASSWORD_KEY),
        secret("KC_BOOTSTRAP_ADMIN_USERNAME", ADMIN_SECRET, "username"),
        secret("KC_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_SECRET, "password"),
        secret(SERVICES_SECRET_ENV, CLIENT_SECRETS, "aiwfe-services"),
        secret(GOOGLE_SECRET_ENV, CLIENT_SECRETS, "google"),
        secret(GITHUB_SECRET_ENV, CLIENT_SECRETS, "github"),
    ]


def database_url(settings: KeycloakSettings) -> str:
    """The JDBC URL Keycloak connects with: the in-cluster Service, or the Auth Proxy on loopback."""
    host = f"{POSTGRES_APP}.{settings.namespace}.svc.cluster.local" if settings.database.in_cluster \
        else "127.0.0.1"
    return jdbc_url(host, POSTGRES_PORT, DATABASE)


def network_self_link(project: str, network: str) -> str:
    return network if network.startswith("projects/") else f"projects/{project}/global/networks/{network}"


@dataclass(frozen=True)
class KeycloakArgs:
    """What Keycloak needs from the stack."""

    settings: KeycloakSettings
    stack: str
    public_host: str
    namespace_labels: Mapping[str, str]
    mesh: MeshSettings
    app_namespace: str
    monitoring_namespace: str
    scraper_labels: Mapping[str, str] | None
    gcp_project: str
    gcp_region: str
    gcp_network: str
    protect: bool
    """Protect stateful resources (prod)."""


class Keycloak(pulumi.ComponentResource):
    """Keycloak in namespace `settings.namespace` with its database and imported realm.

    Outputs: `issuer`, `jwks_uri`, `realm`, `namespace`, `service_host`, `service_port`,
    `container_port`, `service_account`, `database_service_account` and `database_port` (None with
    Cloud SQL), `reconcile_service_account` (the realm Job's, which calls Keycloak's admin API inside
    the mesh), `public_host`, `admin_password` and `services_client_secret` (Pulumi secrets), and
    `flow_ends` (its workloads as the platform's flows name them; `podspec.flow_end`).
    """

    def __init__(self, name: str, args: KeycloakArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiwfe:platform:Keycloak", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        keep = pulumi.ResourceOptions(parent=self, protect=args.protect)
        cloudsql = not s.database.in_cluster
        match = podspec.selector_labels(APP)
        object_labels = podspec.labels(APP, "identity")
        pod_labels = podspec.labels(APP, "identity", s.version)

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": s.namespace,
                      "labels": {**podspec.labels(s.namespace, "namespace"), **args.namespace_labels}},
            opts=keep,
        )
        ns = namespace.metadata["name"]
        podspec.default_deny(f"{name}-default-deny", ns, object_labels, child)

        # ---- generated secrets
        def password(resource: str, length: int) -> pulumi.Output[str]:
            generated = random.RandomPassword(resource, length=length, special=False, opts=child)
            return pulumi.Output.secret(generated.result)

        admin_password = password(f"{name}-admin-password", 32)
        services_secret = password(f"{name}-services-client-secret", 48)
        db_password = password(f"{name}-db-password", 32)

        # ---- database
        database_service_account: pulumi.Output[str] | None = None
        database_end: pulumi.Output[dict[str, Any]] | None = None
        database_port: int | None = None
        workload_identity: pulumi.Output[str] | None = None
        instance_connection: pulumi.Output[str] | None = None
        if cloudsql:
            instance_connection, workload_identity = self._cloud_sql(name, args, db_password)
        else:
            postgres = KeycloakPostgres(
                f"{name}-postgres",
                KeycloakPostgresArgs(
                    namespace=ns, settings=s.database, database=DATABASE, user=DB_USER,
                    keycloak_replicas=s.replicas, keycloak_pool_size=POOL_SIZE, keycloak_labels=match,
                    db_secret_name=DB_SECRET, db_password_key=DB_PASSWORD_KEY,
                    superuser_password=password(f"{name}-postgres-superuser-password", 32),
                    istiod_namespace=args.mesh.istiod_namespace, protect=args.protect),
                opts=child,
            )
            database_service_account = postgres.service_account
            database_end = postgres.flow_end
            database_port = postgres.port
        self.jdbc_url = database_url(s)

        account_annotations = {"iam.gke.io/gcp-service-account": workload_identity} if workload_identity else {}
        account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=podspec.metadata(APP, ns, object_labels, annotations=account_annotations),
            automount_service_account_token=False,
            opts=child,
        )
        k8s.core.v1.Secret(
            f"{name}-admin-secret",
            metadata=podspec.metadata(ADMIN_SECRET, ns, object_labels),
            type="Opaque",
            string_data={"username": ADMIN_USER, "password": admin_password},
            opts=child,
        )
        k8s.core.v1.Secret(
            f"{name}-db-secret",
            metadata=podspec.metadata(DB_SECRET, ns, object_labels),
            type="Opaque",
            string_data={"url": self.jdbc_url, "username": DB_USER, DB_PASSWORD_KEY: db_password},
            opts=child,
        )
        client_secrets = k8s.core.v1.Secret(
            f"{name}-client-secrets",
            metadata=podspec.metadata(CLIENT_SECRETS, ns, object_labels),
            type="Opaque",
            string_data={
                "aiwfe-services": services_secret,
                "google": pulumi.Output.secret(s.google_client_secret.reveal()),
                "github": pulumi.Output.secret(s.github_client_secret.reveal()),
            },
            opts=child,
        )
        realm_text = realm_json(realm_spec(s))
        realm_map = k8s.core.v1.ConfigMap(
            f"{name}-realm",
            metadata=podspec.metadata(REALM_CONFIG_MAP, ns, object_labels),
            data={realm_file_name(s.realm): realm_text},
            opts=child,
        )

        # ---- workload
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=podspec.metadata(APP, ns, object_labels),
            spec={
                "replicas": s.replicas,
                "selector": {"matchLabels": match},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "revisionHistoryLimit": 5,
                "progressDeadlineSeconds": 600,
                "template": {
                    "metadata": {"labels": pod_labels,
                                 "annotations": self._pod_annotations(cloudsql, realm_text)},
                    "spec": self._pod_spec(args, account.metadata["name"], realm_map.metadata["name"],
                                           instance_connection),
                },
            },
            opts=child,
        )
        service, service_host = podspec.cluster_service(
            f"{name}-service", APP, ns, object_labels, match, [podspec.http_port("http", HTTP_PORT, "http")], child)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-disruption-budget",
            metadata=podspec.metadata(APP, ns, object_labels),
            # Prod (3 replicas): two always serve; a drain takes one at a time.
            spec={"minAvailable": max(s.replicas - 1, 1), "selector": {"matchLabels": match}},
            opts=child,
        )
        self._network_policy(name, args, ns, object_labels, match, child)
        reconcile_account = self._realm_reconcile(name, args, ns, deployment, client_secrets, service_host)

        issuer = f"https://{args.public_host}/realms/{s.realm}"
        self.issuer = pulumi.Output.from_input(issuer)
        self.jwks_uri = pulumi.Output.from_input(f"{issuer}/protocol/openid-connect/certs")
        self.realm = pulumi.Output.from_input(s.realm)
        self.namespace = ns
        self.service_host = service_host
        self.service_port = pulumi.Output.from_input(HTTP_PORT)
        # The Service maps its port to the container's by name; the mesh's policies see the pod's.
        self.container_port = pulumi.Output.from_input(HTTP_PORT)
        self.database_port = database_port
        self.service_account = account.metadata["name"]
        self.database_service_account = database_service_account
        self.public_host = pulumi.Output.from_input(args.public_host)
        self.admin_password = admin_password
        self.services_client_secret = services_secret
        self.reconcile_service_account = reconcile_account
        self.deployment_name = deployment.metadata["name"]
        self.service_name = service.metadata["name"]
        ports = {"http": HTTP_PORT, "jgroups": JGROUPS_PORT, "jgroups-fd": JGROUPS_FD_PORT,
                 "management": MANAGEMENT_PORT}
        ends = {APP: podspec.flow_end(ns, APP, ports, scraped=("management",)),
                RECONCILE: podspec.flow_end(ns, RECONCILE)}
        if database_end is not None:
            ends[POSTGRES_APP] = database_end
        self.flow_ends = pulumi.Output.all(**ends)
        self.register_outputs({
            "issuer": self.issuer, "jwks_uri": self.jwks_uri, "realm": self.realm, "namespace": self.namespace,
            "service_host": self.service_host, "service_port": self.service_port,
            "container_port": self.container_port, "database_port": self.database_port,
            "service_account": self.service_account, "database_service_account": self.database_service_account,
            "reconcile_service_account": self.reconcile_service_account, "public_host": self.public_host,
            "admin_password": self.admin_password, "services_client_secret": self.services_client_secret,
            "flow_ends": self.flow_ends,
        })

    # ------------------------------------------------------------ pieces

    @staticmethod
    def _pod_annotations(cloudsql: bool, realm_text: str) -> dict[str, str]:
        inbound = [JGROUPS_PORT, JGROUPS_FD_PORT, MANAGEMENT_PORT] + ([PROXY_HEALTH_PORT] if cloudsql else [])
        outbound = [JGROUPS_PORT, JGROUPS_FD_PORT] + ([CLOUD_SQL_PORT] if cloudsql else [])
        return {
            # JGroups carries its own TLS and needs the peers' real addresses; kubelet and the
            # scraper reach the management port directly. The Cloud SQL proxy speaks TLS itself.
            "traffic.sidecar.istio.io/excludeInboundPorts": ",".join(map(str, inbound)),
            "traffic.sidecar.istio.io/excludeOutboundPorts": ",".join(map(str, outbound)),
            # Its DestinationRule ejects: the sidecar keeps the outlier stats the alerts read.
            "proxy.istio.io/config": podspec.proxy_config(outlier_stats=True),
            # The Cloud SQL proxy is a native sidecar (init container, restartPolicy Always) that needs
            # the mesh's sidecar up first: pin Istio's native-sidecar mode rather than rely on its default.
            "sidecar.istio.io/nativeSidecar": "true",
            # Not a trigger for re-import (an existing realm is skipped; the reconcile Job applies
            # changes): it records what a new database would import.
            "aiwfe.io/realm-sha256": hashlib.sha256(realm_text.encode()).hexdigest()[:16],
        }

    @staticmethod
    def _pod_spec(args: KeycloakArgs, account: Any, realm_map: Any, instance_connection: Any) -> dict[str, Any]:
        s = args.settings
        management_probe = podspec.http_probe
        build = {
            "name": "keycloak-build",
            "image": s.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/bash", "-ec", f"cp -R /opt/keycloak/. {HOME}/ && exec {HOME}/bin/kc.sh build"],
            "env": build_env(s),
            "resources": s.resources.as_k8s(),
            "volumeMounts": [{"name": "distribution", "mountPath": HOME}, podspec.tmp_mount()],
        }
        server = {
            "name": APP,
            "image": s.image,
            "imagePullPolicy": "IfNotPresent",
            "command": [f"{HOME}/bin/kc.sh"],
            "args": ["start", "--optimized", "--import-realm"],
            "ports": [
                {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
                {"name": "http-management", "containerPort": MANAGEMENT_PORT, "protocol": "TCP"},
                {"name": "tcp-jgroups", "containerPort": JGROUPS_PORT, "protocol": "TCP"},
                {"name": "tcp-jgroups-fd", "containerPort": JGROUPS_FD_PORT, "protocol": "TCP"},
            ],
            "env": runtime_env(s, args.public_host),
            "resources": s.resources.as_k8s(),
            # Schema migration on first start can take minutes: liveness waits for `started`.
            "startupProbe": management_probe("/health/started", "http-management", period=5, timeout=3,
                                             failures=120),
            "readinessProbe": management_probe("/health/ready", "http-management", period=10, timeout=3,
                                               failures=3),
            "livenessProbe": management_probe("/health/live", "http-management", period=10, timeout=3,
                                              failures=6),
            "volumeMounts": [
                {"name": "distribution", "mountPath": HOME},
                {"name": "realm", "mountPath": f"{HOME}/{IMPORT_DIR}", "readOnly": True},
                podspec.tmp_mount(),
            ],
        }
        init_containers = [build]
        if instance_connection is not None:
            assert s.database.proxy_image
            init_containers.append({
                "name": "cloud-sql-proxy",
                "image": s.database.proxy_image,
                "imagePullPolicy": "IfNotPresent",
                # A native sidecar: starts before Keycloak, stops after it, never blocks Job-like completion.
                "restartPolicy": "Always",
                "args": ["--private-ip", "--address=127.0.0.1", "--port=5432", "--health-check",
                         "--http-address=0.0.0.0", f"--http-port={PROXY_HEALTH_PORT}", "--structured-logs",
                         "--exit-zero-on-sigterm", "--max-sigterm-delay=30s", instance_connection],
                "ports": [{"name": "http-proxy", "containerPort": PROXY_HEALTH_PORT, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"cpu": "1", "memory": "512Mi"}},
                "startupProbe": podspec.http_probe("/startup", PROXY_HEALTH_PORT, period=2, timeout=2, failures=60),
                "livenessProbe": podspec.http_probe("/liveness", PROXY_HEALTH_PORT, period=10, timeout=3,
                                                    failures=3),
                "readinessProbe": podspec.http_probe("/readiness", PROXY_HEALTH_PORT, period=10, timeout=3,
                                                     failures=3),
            })
        spec = podspec.hardened_pod_spec(
            containers=[server],
            service_account=account,
            uid=KEYCLOAK_UID,
            match_labels=podspec.selector_labels(APP),
            termination_grace_seconds=60,
            volumes=[
                {"name": "distribution", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "realm", "configMap": {"name": realm_map, "defaultMode": 0o444}},
                podspec.tmp_volume("256Mi"),
            ],
        )
        spec["initContainers"] = [{**c, "securityContext": podspec.container_security_context()}
                                  for c in init_containers]
        return spec

    def _realm_reconcile(self, name: str, args: KeycloakArgs, ns: Any, deployment: k8s.apps.v1.Deployment,
                         client_secrets: k8s.core.v1.Secret, service_host: Any) -> pulumi.Output[str]:
        """A Job that applies the declared realm to the running Keycloak (components/keycloak_reconcile).

        It is replaced, and so runs again, whenever the realm's files change or the client-secrets
        Secret does (its resourceVersion, never its content, is in the pod template)."""
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        files = reconcile.reconcile_files(realm_spec(s))
        labels = podspec.labels(RECONCILE, "identity")
        match = podspec.selector_labels(RECONCILE)
        account = k8s.core.v1.ServiceAccount(
            f"{name}-realm-reconcile-service-account",
            metadata=podspec.metadata(RECONCILE, ns, labels),
            automount_service_account_token=False,
            opts=child,
        )
        config = k8s.core.v1.ConfigMap(
            f"{name}-realm-reconcile-files",
            metadata=podspec.metadata(RECONCILE, ns, labels),
            data={**files, reconcile.SCRIPT_NAME: reconcile.SCRIPT},
            opts=child,
        )

        def secret(env: str, secret_name: str, key: str) -> dict[str, Any]:
            return {"name": env, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}

        container = {
            "name": "reconcile",
            "image": s.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/bash", f"{RECONCILE_DIR}/{reconcile.SCRIPT_NAME}"],
            "env": [
                {"name": reconcile.URL_ENV,
                 "value": pulumi.Output.concat("http://", service_host, ":", str(HTTP_PORT))},
                {"name": reconcile.REALM_ENV, "value": s.realm},
                {"name": reconcile.FILES_ENV, "value": RECONCILE_DIR},
                {"name": reconcile.KCADM_ENV, "value": reconcile.KCADM},
                {"name": "HOME", "value": podspec.tmp_mount()["mountPath"]},
                secret(reconcile.ADMIN_USER_ENV, ADMIN_SECRET, "username"),
                secret(reconcile.ADMIN_PASSWORD_ENV, ADMIN_SECRET, "password"),
                secret(SERVICES_SECRET_ENV, CLIENT_SECRETS, "aiwfe-services"),
                secret(GOOGLE_SECRET_ENV, CLIENT_SECRETS, "google"),
                secret(GITHUB_SECRET_ENV, CLIENT_SECRETS, "github"),
            ],
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                          "limits": {"cpu": "1", "memory": "512Mi"}},
            "volumeMounts": [{"name": "files", "mountPath": RECONCILE_DIR, "readOnly": True}, podspec.tmp_mount()],
        }
        pod = podspec.hardened_pod_spec(
            containers=[container], service_account=account.metadata["name"], uid=KEYCLOAK_UID,
            match_labels=match,
            volumes=[{"name": "files", "configMap": {"name": config.metadata["name"], "defaultMode": 0o444}},
                     podspec.tmp_volume("64Mi")],
        )
        pod["restartPolicy"] = "Never"
        annotations = {
            "aiwfe.io/realm-sha256": reconcile.files_digest(files),
            "aiwfe.io/client-secrets-version": client_secrets.metadata.resource_version.apply(lambda v: v or ""),
            # The sidecar must not keep the Job running after the script exits.
            "sidecar.istio.io/nativeSidecar": "true",
            "proxy.istio.io/config": podspec.proxy_config(outlier_stats=False),
        }
        k8s.batch.v1.Job(
            f"{name}-realm-reconcile",
            # A failed run is replaced by the next `pulumi up`, not awaited forever.
            metadata=podspec.metadata(RECONCILE, ns, labels, annotations={"pulumi.com/replaceUnready": "true"}),
            spec={
                "backoffLimit": 4,
                "activeDeadlineSeconds": RECONCILE_DEADLINE_SECONDS,
                "template": {"metadata": {"labels": {**labels, **match}, "annotations": annotations}, "spec": pod},
            },
            # Same name, new template: the old Job must go first (a Job's template is immutable).
            # Pulumi waits for the Job longer than the Job may run (its deadline), never less.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[deployment], delete_before_replace=True,
                custom_timeouts=pulumi.CustomTimeouts(create=JOB_AWAIT, update=JOB_AWAIT)),
        )
        podspec.workload_network_policy(
            f"{name}-realm-reconcile-network-policy", RECONCILE, ns, labels, match,
            istiod_namespace=args.mesh.istiod_namespace,
            egress=[{"to": [{"podSelector": {"matchLabels": podspec.selector_labels(APP)}}],
                     "ports": podspec.tcp_ports(HTTP_PORT)}],
            opts=child,
        )
        return account.metadata["name"]

    def _cloud_sql(self, name: str, args: KeycloakArgs,
                   db_password: pulumi.Output[str]) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """Cloud SQL for PostgreSQL 15 (regional, private IP, backups + PITR, insights), its database
        and user, and the Workload Identity the Auth Proxy connects with."""
        from pulumi_gcp import projects, serviceaccount, sql

        s = args.settings
        db = s.database
        keep = pulumi.ResourceOptions(parent=self, protect=args.protect)
        child = pulumi.ResourceOptions(parent=self)
        instance = sql.DatabaseInstance(
            f"{name}-sql-instance",
            name=f"aiwfe-keycloak-{args.stack}",
            database_version="POSTGRES_15",
            region=args.gcp_region,
            deletion_protection=True,
            settings={
                "tier": db.tier,
                "edition": "ENTERPRISE",
                "availability_type": "REGIONAL",
                "disk_type": "PD_SSD",
                "disk_size": db.disk_size_gb,
                "disk_autoresize": True,
                "deletion_protection_enabled": True,
                "ip_configuration": {
                    "ipv4_enabled": False,
                    "private_network": network_self_link(args.gcp_project, args.gcp_network),
                    "ssl_mode": "ENCRYPTED_ONLY",
                },
                "backup_configuration": {
                    "enabled": True,
                    "start_time": db.backup_start_time,
                    "point_in_time_recovery_enabled": True,
                    "transaction_log_retention_days": db.log_retention_days,
                    "backup_retention_settings": {"retained_backups": db.retained_backups,
                                                  "retention_unit": "COUNT"},
                },
                "insights_config": {"query_insights_enabled": True, "query_string_length": 1024,
                                    "record_application_tags": True, "record_client_address": False},
                "maintenance_window": {"day": 7, "hour": 3, "update_track": "stable"},
                "database_flags": [{"name": "max_connections",
                                    "value": str((s.replicas + 1) * POOL_SIZE + 10)}],
                "user_labels": {"app": "keycloak", "environment": args.stack},
            },
            opts=keep,
        )
        sql.Database(f"{name}-sql-database", name=DATABASE, instance=instance.name, opts=keep)
        sql.User(f"{name}-sql-user", name=DB_USER, instance=instance.name, password=db_password, opts=child)
        account = serviceaccount.Account(
            f"{name}-sql-client",
            account_id=f"keycloak-sql-{args.stack}",
            display_name="Keycloak's Cloud SQL Auth Proxy",
            opts=child,
        )
        projects.IAMMember(
            f"{name}-sql-client-role",
            project=args.gcp_project,
            role="roles/cloudsql.client",
            member=account.email.apply(lambda email: f"serviceAccount:{email}"),
            opts=child,
        )
        serviceaccount.IAMMember(
            f"{name}-workload-identity",
            service_account_id=account.name,
            role="roles/iam.workloadIdentityUser",
            member=f"serviceAccount:{args.gcp_project}.svc.id.goog[{s.namespace}/{APP}]",
            opts=child,
        )
        return instance.connection_name, account.email

    def _network_policy(self, name: str, args: KeycloakArgs, ns: Any, object_labels: Mapping[str, str],
                        match: Mapping[str, str], opts: pulumi.ResourceOptions) -> None:
        s = args.settings
        keycloak_pods = [{"podSelector": {"matchLabels": dict(match)}}]
        if s.database.in_cluster:
            database_egress = {"to": [{"podSelector": {"matchLabels": podspec.selector_labels(POSTGRES_APP)}}],
                               "ports": podspec.tcp_ports(POSTGRES_PORT)}
            google = []
        else:
            database_egress = {"to": [{"ipBlock": {"cidr": s.database.private_services_range}}],
                               "ports": podspec.tcp_ports(CLOUD_SQL_PORT)}
            # Workload Identity tokens from the GKE metadata server.
            google = [{"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}, {"ipBlock": {"cidr": "169.254.169.252/32"}}],
                       "ports": podspec.tcp_ports(80, 988)}]
        podspec.workload_network_policy(
            f"{name}-network-policy", APP, ns, object_labels, match,
            istiod_namespace=args.mesh.istiod_namespace,
            ingress=[
                # Only the gateway and the realm reconcile Job (the admin API, in-cluster) reach the
                # HTTP port: every other client (the apps' client credentials, istiod's JWKS fetch)
                # uses the public host; the mesh's AuthorizationPolicy admits the same two principals.
                {"from": [podspec.namespace_peer(args.mesh.ingress_gateway_namespace,
                                                 args.mesh.ingress_gateway_labels),
                          {"podSelector": {"matchLabels": podspec.selector_labels(RECONCILE)}}],
                 "ports": podspec.tcp_ports(HTTP_PORT)},
                {"from": [podspec.namespace_peer(args.monitoring_namespace, args.scraper_labels)],
                 "ports": podspec.tcp_ports(MANAGEMENT_PORT, podspec.SIDECAR_METRICS_PORT)},
                {"from": keycloak_pods, "ports": podspec.tcp_ports(JGROUPS_PORT, JGROUPS_FD_PORT)},
            ],
            egress=[
                database_egress,
                {"to": keycloak_pods, "ports": podspec.tcp_ports(JGROUPS_PORT, JGROUPS_FD_PORT)},
                # Token exchange with Google and GitHub (and Google's APIs): the internet on 443.
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0",
                                     "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}}],
                 "ports": podspec.tcp_ports(443)},
                *google,
            ],
            opts=opts,
        )
