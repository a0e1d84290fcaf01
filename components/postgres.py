"""Keycloak's in-cluster PostgreSQL 15 (staging): StatefulSet with a PVC, hardened pod, and what
PostgreSQL reads (postgresql.conf, pg_hba.conf, init SQL), rendered by pure functions that the
tests apply to a real PostgreSQL 15."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import podspec
from components.values import ContainerResources
from policies.aiwfe_policies.contract import image_tag, parse_memory_bytes


@dataclass(frozen=True)
class KeycloakDatabaseSettings:
    """Where Keycloak keeps its data: an in-cluster PostgreSQL 15 (staging) or Cloud SQL (prod)."""

    mode: str
    """`in-cluster` or `cloudsql`."""
    # in-cluster
    postgres_image: str | None = None
    storage_size: str | None = None
    storage_class: str | None = None
    postgres_resources: ContainerResources | None = None
    # cloudsql
    tier: str | None = None
    disk_size_gb: int = 0
    backup_start_time: str | None = None
    retained_backups: int = 0
    log_retention_days: int = 0
    private_services_range: str | None = None
    """CIDR of the VPC's private services access range (Cloud SQL's private IPs): NetworkPolicy egress."""
    proxy_image: str | None = None

    @property
    def in_cluster(self) -> bool:
        return self.mode == "in-cluster"


APP = "keycloak-postgres"
POSTGRES_PORT = 5432
# The official image runs as uid 999; any uid works (its entrypoint uses nss_wrapper for initdb).
POSTGRES_UID = 10999
SUPERUSER = "postgres"
CONFIG_DIR = "/etc/postgresql"
SOCKET_DIR = "/var/run/postgresql"
DATA_MOUNT = "/var/lib/postgresql/data"
# A subdirectory: the volume's root holds lost+found, and initdb wants an empty directory.
PGDATA = f"{DATA_MOUNT}/pgdata"
INIT_SCRIPT = "10-keycloak.sh"
SUPERUSER_PASSWORD_KEY = "superuser-password"  # noqa: S105 (a key name)
# Passwords arrive as files (the image's `*_FILE` convention), never in the environment, where every
# child process and /proc/<pid>/environ would see them.
SECRETS_DIR = "/run/secrets/postgres"
KEYCLOAK_PASSWORD_FILE = "keycloak-password"  # noqa: S105 (a file name)


def max_connections(keycloak_replicas: int, pool_size: int) -> int:
    """Every Keycloak pod's full pool, one extra pod during a rolling update, and 10 for admins."""
    return (keycloak_replicas + 1) * pool_size + 10


def postgresql_conf(*, connections: int, memory_limit: str) -> str:
    """postgresql.conf: listen on the pod, scram passwords, memory from the container limit."""
    memory_mib = parse_memory_bytes(memory_limit) // 2**20
    return "\n".join([
        "# Rendered by the Keycloak component (components/postgres.py).",
        "listen_addresses = '*'",
        f"port = {POSTGRES_PORT}",
        f"unix_socket_directories = '{SOCKET_DIR}'",
        f"max_connections = {connections}",
        "password_encryption = 'scram-sha-256'",
        # In the mesh: the sidecars encrypt (mTLS STRICT); Postgres' own TLS would stop Istio seeing the protocol.
        "ssl = off",
        f"shared_buffers = {max(memory_mib // 4, 32)}MB",
        f"effective_cache_size = {max(memory_mib // 2, 64)}MB",
        "work_mem = 4MB",
        "maintenance_work_mem = 64MB",
        "wal_level = replica",
        "max_wal_size = 1GB",
        "checkpoint_completion_target = 0.9",
        "idle_in_transaction_session_timeout = '10min'",
        "tcp_keepalives_idle = 60",
        "log_destination = 'stderr'",
        "logging_collector = off",
        "log_connections = on",
        "log_disconnections = on",
        "log_min_duration_statement = '1s'",
        "log_timezone = 'UTC'",
        "timezone = 'UTC'",
        "",
    ])


def pg_hba_conf(database: str, user: str) -> str:
    """Only Keycloak's user, only to its database, by password; the superuser only on the socket."""
    rows = [
        ("local", "all", "all", "", "scram-sha-256"),
        ("host", database, user, "0.0.0.0/0", "scram-sha-256"),
        ("host", database, user, "::/0", "scram-sha-256"),
        ("host", "all", "all", "0.0.0.0/0", "reject"),
        ("host", "all", "all", "::/0", "reject"),
    ]
    lines = ["# Rendered by the Keycloak component. TYPE DATABASE USER ADDRESS METHOD"]
    lines += ["  ".join(part for part in row if part) for row in rows]
    return "\n".join(lines) + "\n"


def init_sql() -> str:
    """Run once by psql with variables kc_database, kc_user, kc_password (no secret in the text)."""
    return "\n".join([
        "-- Rendered by the Keycloak component; psql variables: kc_database, kc_user, kc_password.",
        "CREATE ROLE :\"kc_user\" LOGIN PASSWORD :'kc_password';",
        "CREATE DATABASE :\"kc_database\" OWNER :\"kc_user\" ENCODING 'UTF8' TEMPLATE template0;",
        "REVOKE ALL ON DATABASE :\"kc_database\" FROM PUBLIC;",
        "GRANT CONNECT, TEMPORARY ON DATABASE :\"kc_database\" TO :\"kc_user\";",
        "\\connect :\"kc_database\"",
        "REVOKE ALL ON SCHEMA public FROM PUBLIC;",
        "ALTER SCHEMA public OWNER TO :\"kc_user\";",
        "",
    ])


def init_script(database: str, user: str) -> str:
    """The image's first-start hook (/docker-entrypoint-initdb.d): runs init.sql with Keycloak's
    password read from the file `$KEYCLOAK_DB_PASSWORD_FILE` names."""
    return "\n".join([
        "#!/bin/sh",
        "set -eu",
        'kc_password="$(cat "$KEYCLOAK_DB_PASSWORD_FILE")"',
        'psql -v ON_ERROR_STOP=1 --no-password --username "$POSTGRES_USER" --dbname postgres \\',
        f"  -v kc_database={database} -v kc_user={user} -v kc_password=\"$kc_password\" \\",
        f"  -f {CONFIG_DIR}/init.sql",
        "",
    ])


def jdbc_url(host: str, port: int, database: str) -> str:
    return f"jdbc:postgresql://{host}:{port}/{database}"


@dataclass(frozen=True)
class KeycloakPostgresArgs:
    namespace: pulumi.Input[str]
    settings: KeycloakDatabaseSettings
    database: str
    user: str
    keycloak_replicas: int
    keycloak_pool_size: int
    keycloak_labels: Mapping[str, str]
    """Pod labels of Keycloak: the only client the NetworkPolicy admits."""
    db_secret_name: pulumi.Input[str]
    db_password_key: str
    superuser_password: pulumi.Input[str]
    """A Pulumi secret (generated)."""
    istiod_namespace: str
    protect: bool


class KeycloakPostgres(pulumi.ComponentResource):
    """PostgreSQL 15 for Keycloak in the cluster. Outputs: `host`, `port`, `service_account`,
    `flow_end`."""

    def __init__(self, name: str, args: KeycloakPostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aiwfe:platform:KeycloakPostgres", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        keep = pulumi.ResourceOptions(parent=self, protect=args.protect)
        s = args.settings
        assert s.in_cluster and s.postgres_image and s.storage_size and s.postgres_resources
        ns = args.namespace
        match = podspec.selector_labels(APP)
        object_labels = podspec.labels(APP, "database")
        pod_labels = podspec.labels(APP, "database", image_tag(s.postgres_image))

        account = podspec.service_account(f"{name}-service-account", APP, ns, object_labels, child)
        superuser = k8s.core.v1.Secret(
            f"{name}-superuser",
            metadata=podspec.metadata(APP, ns, object_labels),
            type="Opaque",
            string_data={SUPERUSER_PASSWORD_KEY: pulumi.Output.secret(args.superuser_password)},
            opts=child,
        )
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=podspec.metadata(f"{APP}-config", ns, object_labels),
            data={
                "postgresql.conf": postgresql_conf(
                    connections=max_connections(args.keycloak_replicas, args.keycloak_pool_size),
                    memory_limit=s.postgres_resources.memory_limit),
                "pg_hba.conf": pg_hba_conf(args.database, args.user),
                "init.sql": init_sql(),
                INIT_SCRIPT: init_script(args.database, args.user),
            },
            opts=child,
        )
        headless = k8s.core.v1.Service(
            f"{name}-service",
            metadata=podspec.metadata(APP, ns, object_labels),
            # No appProtocol: Istio reads it before the name and knows no `postgresql`, so the port
            # would be sniffed; the `tcp-` name declares it opaque TCP (istioctl analyze IST0118).
            # Headless: the StatefulSet's serviceName must name a headless Service (its pod's DNS
            # identity); one instance, so clients reach the same pod either way.
            spec={"type": "ClusterIP", "clusterIP": "None", "selector": match,
                  "ports": [{"name": "tcp-postgres", "port": POSTGRES_PORT, "targetPort": "tcp-postgres",
                             "protocol": "TCP"}]},
            opts=child,
        )
        probe = {"exec": {"command": ["pg_isready", "--host", SOCKET_DIR, "--port", str(POSTGRES_PORT),
                                      "--username", SUPERUSER, "--dbname", "postgres"]}}
        container = {
            "name": "postgres",
            "image": s.postgres_image,
            "imagePullPolicy": "IfNotPresent",
            "args": ["postgres", "-c", f"config_file={CONFIG_DIR}/postgresql.conf",
                     "-c", f"hba_file={CONFIG_DIR}/pg_hba.conf"],
            "ports": [{"name": "tcp-postgres", "containerPort": POSTGRES_PORT, "protocol": "TCP"}],
            "env": [
                {"name": "PGDATA", "value": PGDATA},
                {"name": "POSTGRES_USER", "value": SUPERUSER},
                {"name": "POSTGRES_PASSWORD_FILE", "value": f"{SECRETS_DIR}/{SUPERUSER_PASSWORD_KEY}"},
                {"name": "KEYCLOAK_DB_PASSWORD_FILE", "value": f"{SECRETS_DIR}/{KEYCLOAK_PASSWORD_FILE}"},
            ],
            "resources": s.postgres_resources.as_k8s(),
            "startupProbe": {**probe, "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 60},
            "readinessProbe": {**probe, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
            "livenessProbe": podspec.tcp_probe("tcp-postgres", period=20, timeout=5, failures=6),
            "volumeMounts": [
                {"name": "data", "mountPath": DATA_MOUNT},
                {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                {"name": "initdb", "mountPath": "/docker-entrypoint-initdb.d", "readOnly": True},
                {"name": "run", "mountPath": SOCKET_DIR},
                {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
                podspec.tmp_mount(),
            ],
        }
        pod_spec = podspec.hardened_pod_spec(
            containers=[container],
            service_account=account.metadata["name"],
            uid=POSTGRES_UID,
            match_labels=match,
            termination_grace_seconds=60,
            volumes=[
                {"name": "config", "configMap": {"name": config.metadata["name"], "defaultMode": 0o444,
                                                 "items": [{"key": k, "path": k} for k in
                                                           ("postgresql.conf", "pg_hba.conf", "init.sql")]}},
                {"name": "initdb", "configMap": {"name": config.metadata["name"], "defaultMode": 0o555,
                                                 "items": [{"key": INIT_SCRIPT, "path": INIT_SCRIPT}]}},
                {"name": "run", "emptyDir": {"sizeLimit": "16Mi"}},
                # Readable by the pod's group (fsGroup) only: postgres runs as a non-root uid.
                {"name": "secrets", "projected": {"defaultMode": 0o440, "sources": [
                    {"secret": {"name": superuser.metadata["name"],
                                "items": [{"key": SUPERUSER_PASSWORD_KEY, "path": SUPERUSER_PASSWORD_KEY}]}},
                    {"secret": {"name": args.db_secret_name,
                                "items": [{"key": args.db_password_key, "path": KEYCLOAK_PASSWORD_FILE}]}},
                ]}},
                podspec.tmp_volume(),
            ],
        )
        claim_spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": s.storage_size}}}
        if s.storage_class:
            claim_spec["storageClassName"] = s.storage_class
        self.stateful_set = k8s.apps.v1.StatefulSet(
            f"{name}-stateful-set",
            metadata=podspec.metadata(APP, ns, object_labels),
            spec={
                "serviceName": headless.metadata["name"],
                "replicas": 1,
                "selector": {"matchLabels": match},
                "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate"},
                # The claim outlives the StatefulSet: deleting or scaling it never deletes the data.
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
                "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": object_labels}, "spec": claim_spec}],
            },
            opts=keep,
        )
        podspec.workload_network_policy(
            f"{name}-network-policy", APP, ns, object_labels, match, istiod_namespace=args.istiod_namespace,
            ingress=[{"from": [{"podSelector": {"matchLabels": dict(args.keycloak_labels)}}],
                      "ports": podspec.tcp_ports(POSTGRES_PORT)}],
            opts=child,
        )
        self.host = pulumi.Output.concat(headless.metadata["name"], ".", headless.metadata["namespace"],
                                         ".svc.cluster.local")
        self.port = POSTGRES_PORT
        self.service_account = account.metadata["name"]
        self.flow_end = podspec.flow_end(ns, APP, {"postgres": POSTGRES_PORT}, holds_data=True)
        self.register_outputs({"host": self.host, "port": self.port, "service_account": self.service_account,
                               "flow_end": self.flow_end})
