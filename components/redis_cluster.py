"""The sessions' Redis Cluster: namespace, one StatefulSet per zone, config, password, idempotent
bootstrap Job, Services, PDB and NetworkPolicies.

The official `redis` 7.x image runs with a config rendered here (`render_redis_conf`); the password
reaches the server through an `include` of a file mounted from the Secret, never through the
ConfigMap or the command line. `plan_layout` (components/redis_layout.py) decides how many pods run
in each zone and which master each replica follows, so that a replica is in another zone than its
master wherever the zones allow; the bootstrap Job (`render_bootstrap_script`) forms the cluster
with exactly that pairing, and every pod starts through `render_start_script`, which keeps a node
that lost its data from serving it and refreshes the peers' addresses so that even a restart of
every pod with new IPs finds the cluster again (the scripts: components/redis_scripts.py). The
integration and fault tests run these same scripts against real `redis-server` processes.

Mesh: the pods are in the Istio mesh. The client port 6379 (clients, replication, bootstrap) goes
through the sidecar (mTLS); the cluster bus 16379 and the exporter port 9121 bypass it (pod
annotations) and are guarded by NetworkPolicy: bus from Redis pods only, metrics from the scraper only.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import podspec
from components.redis_layout import ClusterLayout, NodeSlot, plan_layout
from components.redis_scripts import (
    AOF_DIR_NAME,
    DATA_DIR,
    render_bootstrap_script,
    render_liveness_script,
    render_readiness_script,
    render_start_script,
)
from policies.aiwfe_policies.contract import (
    REDIS_BUS_PORT,
    REDIS_EXPORTER_PORT,
    REDIS_MEMORY_HEADROOM,
    REDIS_PORT,
    image_tag,
    parse_memory_bytes,
)


@dataclass(frozen=True)
class RedisSettings:
    """The Redis Cluster for sessions: its namespace, size, images, memory and storage."""

    namespace: str
    masters: int
    replicas_per_master: int
    image: str
    """The official `redis` 7.x image, pinned."""
    exporter_image: str
    """The Prometheus exporter sidecar (oliver006/redis_exporter), pinned."""
    maxmemory: str
    """Data memory per node (Kubernetes quantity); the container limit adds the fork headroom."""
    cpu_request: str
    cpu_limit: str
    storage_class: str
    storage_size: str
    cluster_node_timeout_ms: int
    """How long a master may be unreachable before its replica is promoted."""
    layout_migrated: bool = False
    """The operator migrated the live cluster to this layout by hand (docs/upgrades.md, Redis step 4):
    the one deploy that records a changed layout."""

    @property
    def nodes(self) -> int:
        return self.masters * (1 + self.replicas_per_master)

    @property
    def maxmemory_bytes(self) -> int:
        return parse_memory_bytes(self.maxmemory)

    @property
    def memory_limit(self) -> str:
        """The container memory limit: maxmemory x REDIS_MEMORY_HEADROOM, in whole MiB."""
        return f"{-(-int(self.maxmemory_bytes * REDIS_MEMORY_HEADROOM) // 2**20)}Mi"


APP = "redis-cluster"
HEADLESS_SERVICE = "redis-cluster-headless"
BOOTSTRAP = "redis-cluster-bootstrap"
CONFIG_MAP = "redis-cluster-config"
AUTH_SECRET = "redis-cluster-auth"  # noqa: S105 (a Secret's name)
PASSWORD_KEY = "password"  # noqa: S105 (a key name)
AUTH_CONF_KEY = "auth.conf"

REDIS_UID = 10379
CONF_DIR = "/etc/redis"
CONF_FILE = "redis.conf"
AUTH_DIR = "/etc/redis-auth"
SCRIPTS = {"start": "start.sh", "readiness": "readiness.sh", "liveness": "liveness.sh",
           "bootstrap": "bootstrap.sh"}
# Pod label naming the zone a pod's StatefulSet is pinned to (part of that StatefulSet's selector).
ZONE_LABEL = "aiwfe.io/redis-zone"
# RDB snapshot points: (seconds, changes). Together with the AOF (fsync every second).
SAVE_RULES: tuple[tuple[int, int], ...] = ((3600, 1), (300, 100), (60, 10000))
MAXMEMORY_POLICY = "allkeys-lru"
# Facts for the policy pack (and for people): the intended cluster shape.
MASTERS_ANNOTATION = "aiwfe.io/redis-masters"
REPLICAS_ANNOTATION = "aiwfe.io/redis-replicas-per-master"
# An 8 GB RDB written on SIGTERM needs time; Redis saves on shutdown when save points exist.
TERMINATION_GRACE_SECONDS = 120
PROBE_TIMEOUT_SECONDS = 3
_PASSWORD = re.compile(r"^[A-Za-z0-9]{16,}$")


# ---------------------------------------------------------------- rendered files (pure functions)

@dataclass(frozen=True)
class RedisConfParams:
    """What `redis.conf` is made of; `conf_params(settings)` gives a stack's values."""

    maxmemory_bytes: int
    cluster_node_timeout_ms: int
    port: int = REDIS_PORT
    bus_port: int = REDIS_BUS_PORT
    data_dir: str = DATA_DIR
    auth_include: str = f"{AUTH_DIR}/{AUTH_CONF_KEY}"
    bind: str = "* -::*"
    maxmemory_policy: str = MAXMEMORY_POLICY
    save_rules: tuple[tuple[int, int], ...] = SAVE_RULES


def conf_params(settings: RedisSettings) -> RedisConfParams:
    return RedisConfParams(maxmemory_bytes=settings.maxmemory_bytes,
                           cluster_node_timeout_ms=settings.cluster_node_timeout_ms)


def render_redis_conf(p: RedisConfParams) -> str:
    """The `redis.conf` every node runs (no secret in it: the password comes from the include).

    Per-pod values are command-line arguments: `--cluster-announce-hostname` (the pod's stable name
    under the headless Service, so clients and redirects survive a new pod IP)."""
    saves = " ".join(f"{seconds} {changes}" for seconds, changes in p.save_rules)
    return f"""\
# Rendered by components/redis_cluster.py. No secret here: requirepass/masterauth come from the include.
bind {p.bind}
protected-mode yes
port {p.port}
tcp-keepalive 60
timeout 0
daemonize no
loglevel notice
logfile ""
dir {p.data_dir}

# Cluster: state on the persistent volume; redirects name hosts (the announced hostname), not pod IPs.
cluster-enabled yes
cluster-config-file {p.data_dir}/nodes.conf
cluster-port {p.bus_port}
cluster-node-timeout {p.cluster_node_timeout_ms}
cluster-preferred-endpoint-type hostname
# Sessions: the shards that are up keep serving when another shard has lost all its nodes.
cluster-require-full-coverage no
cluster-allow-reads-when-down no

# Persistence: AOF fsynced every second, and RDB snapshots for fast restarts and backups.
appendonly yes
appendfsync everysec
appenddirname "{AOF_DIR_NAME}"
# A cut-off AOF stops the server instead of being loaded short: start.sh decides what happens.
aof-load-truncated no
aof-use-rdb-preamble yes
auto-aof-rewrite-percentage 100
auto-aof-rewrite-min-size 64mb
save {saves}
dbfilename dump.rdb
stop-writes-on-bgsave-error yes

# Memory: the container limit leaves headroom above this for fork copy-on-write and buffers.
maxmemory {p.maxmemory_bytes}
maxmemory-policy {p.maxmemory_policy}

# Password for clients and for replication, from a file mounted from the Secret.
include {p.auth_include}
"""


def render_auth_conf(password: str) -> str:
    """The Secret-held include: the same password for clients (`requirepass`) and replicas (`masterauth`)."""
    if not _PASSWORD.fullmatch(password):
        raise ValueError("the Redis password must be at least 16 letters and digits")
    return f"requirepass {password}\nmasterauth {password}\n"


def layout(settings: RedisSettings, zones: Sequence[str]) -> ClusterLayout:
    """The stack's layout: its masters and replicas over the cluster's zones."""
    return plan_layout(tuple(zones), settings.masters, settings.replicas_per_master)


def statefulset_name(zone: str) -> str:
    return f"{APP}-{NodeSlot(zone, 0).zone_suffix}"


def pod_host(slot: NodeSlot, namespace: str) -> str:
    """A pod's stable DNS name under the headless Service (also its announced hostname)."""
    return f"{statefulset_name(slot.zone)}-{slot.ordinal}.{HEADLESS_SERVICE}.{namespace}.svc.cluster.local"


def node_address(slot: NodeSlot, namespace: str) -> str:
    return f"{pod_host(slot, namespace)}:{REDIS_PORT}"


REDIS_CLUSTER_TYPE = "aiwfe:platform:RedisCluster"


def layout_record(settings: RedisSettings, zones: Sequence[str]) -> dict[str, Any]:
    """What decides which pods exist, where, and which master each replica follows: the stack exports
    it, and the next deploy compares its settings with it (the program cannot reshard a live cluster,
    and a cluster in another namespace is a new, empty one)."""
    return {"masters": settings.masters, "replicas_per_master": settings.replicas_per_master,
            "zones": list(zones), "namespace": settings.namespace}


def seed_addresses(settings: RedisSettings, zones: Sequence[str]) -> list[str]:
    """Every node's stable address on the client port (cluster clients take several seeds)."""
    return [node_address(slot, settings.namespace) for slot in layout(settings, zones).nodes]


def client_url(settings: RedisSettings, zones: Sequence[str]) -> str:
    """REDIS_URL for cluster clients: `redis://seed1:6379,seed2:6379,...` (no password)."""
    return "redis://" + ",".join(seed_addresses(settings, zones))


def bootstrap_shards(settings: RedisSettings, zones: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The layout's shards as addresses, for `render_bootstrap_script`."""
    return [(node_address(shard.master, settings.namespace),
             [node_address(r, settings.namespace) for r in shard.replicas])
            for shard in layout(settings, zones).shards]


# ---------------------------------------------------------------- the component

@dataclass(frozen=True)
class RedisClusterArgs:
    """What the Redis cluster needs from the stack: its settings and who may connect."""

    settings: RedisSettings
    zones: tuple[str, ...]
    """The cluster's zones: one StatefulSet per zone, and replicas placed in another zone than their master."""
    namespace_labels: Mapping[str, str]
    """Mesh injection and Pod Security labels for the namespace this component creates."""
    client_namespace: str
    client_pod_labels: Mapping[str, str]
    """The only pods allowed to reach the client port from outside the namespace (the WebSocket service)."""
    monitoring_namespace: str
    scraper_labels: Mapping[str, str] | None
    istiod_namespace: str
    protect: bool
    """Prod: StatefulSets protected (a `pulumi up` can never delete session data by accident)."""
    require_zone_spread: bool
    """Prod: each StatefulSet is required to run in its zone; staging only prefers it."""
    extra_labels: Mapping[str, str] = field(default_factory=dict)


class RedisCluster(pulumi.ComponentResource):
    """A Redis Cluster (masters x (1 + replicas)) in its own namespace, one StatefulSet per zone,
    formed by an idempotent Job that gives every master a replica in another zone.

    Outputs: `namespace`, `client_url`, `seed_addresses`, `password` (secret), `password_secret_name`,
    `password_secret_key`, `service_account`, `client_port`, `bus_port`, and the layout's
    `node_count`, `master_count`, `replicas_per_master` (plain numbers, for alert expressions), and
    `flow_ends` (the nodes and the bootstrap Job as the platform's flows name them).
    """

    def __init__(self, name: str, args: RedisClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(REDIS_CLUSTER_TYPE, name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        object_labels = podspec.labels(APP, "session-store")
        match = podspec.selector_labels(APP)
        pod_labels = podspec.labels(APP, "session-store", image_tag(s.image))

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": s.namespace,
                      "labels": {**podspec.labels(s.namespace, "namespace"), **args.namespace_labels}},
            # Deleting the namespace would delete the PVCs with it: protected like the StatefulSet.
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        ns = namespace.metadata["name"]

        # Letters and digits only: safe in redis.conf, in URLs and in shell, and 32 of them is ~190 bits.
        generated = random.RandomPassword(
            f"{name}-password", length=32, special=False,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["result"]))
        password = pulumi.Output.secret(generated.result)
        secret = k8s.core.v1.Secret(
            f"{name}-auth",
            metadata=podspec.metadata(AUTH_SECRET, ns, object_labels),
            type="Opaque",
            string_data={PASSWORD_KEY: password,
                         AUTH_CONF_KEY: pulumi.Output.secret(password.apply(render_auth_conf))},
            opts=child,
        )

        conf = render_redis_conf(conf_params(s))
        scripts = {
            SCRIPTS["start"]: render_start_script(),
            SCRIPTS["readiness"]: render_readiness_script(),
            SCRIPTS["liveness"]: render_liveness_script(),
        }
        # The bootstrap too: an operator runs it from a Redis pod when a whole shard is lost
        # (docs/troubleshooting.md#redis-failover, REDIS_ADOPT_LOST_SHARDS=yes).
        scripts[SCRIPTS["bootstrap"]] = render_bootstrap_script(bootstrap_shards(s, args.zones))
        config_data = {CONF_FILE: conf, **scripts}
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=podspec.metadata(CONFIG_MAP, ns, object_labels), data=config_data,
            opts=child)
        checksum = hashlib.sha256(json.dumps(config_data, sort_keys=True).encode()).hexdigest()[:16]

        account = podspec.service_account(f"{name}-service-account", APP, ns, object_labels, child)
        bootstrap_account = podspec.service_account(
            f"{name}-bootstrap-service-account", BOOTSTRAP, ns, podspec.labels(BOOTSTRAP, "session-store"), child)

        headless = k8s.core.v1.Service(
            f"{name}-headless-service",
            metadata=podspec.metadata(HEADLESS_SERVICE, ns, object_labels),
            spec={
                "clusterIP": "None",
                # DNS names exist before readiness: the nodes and the bootstrap find each other early.
                "publishNotReadyAddresses": True,
                "selector": dict(match),
                "ports": [_tcp_port("tcp-redis", REDIS_PORT), _tcp_port("tcp-redis-bus", REDIS_BUS_PORT),
                          {**_tcp_port("http-metrics", REDIS_EXPORTER_PORT), "appProtocol": "http"}],
            },
            opts=child,
        )
        podspec.cluster_service(f"{name}-client-service", APP, ns, object_labels, match,
                                [_tcp_port("tcp-redis", REDIS_PORT)], child)

        plan = layout(s, args.zones)
        # One zone after another: a PDB does not limit rollouts, and zones rolling at once could
        # restart a master and its replica together. Pulumi waits for each StatefulSet to be ready
        # (the readiness script: cluster ok, replica synced) before it touches the next zone.
        statefulsets: list[k8s.apps.v1.StatefulSet] = []
        for zone, count in zip(plan.zones, plan.pods_per_zone, strict=True):
            if count:
                statefulsets.append(self._statefulset(
                    name, args, ns, zone, count, object_labels, match, pod_labels, account, secret, config_map,
                    [headless, *statefulsets[-1:]], checksum))
        # One budget over every zone's pods: at most one Redis node evicted at a time, cluster-wide.
        podspec.disruption_budget(f"{name}-disruption-budget", APP, ns, object_labels, match, opts=child)
        self._network_policies(name, args, ns, object_labels, match)
        self._bootstrap(name, args, ns, bootstrap_account, secret, statefulsets)

        self.namespace = ns
        self.client_url = pulumi.Output.from_input(client_url(s, args.zones))
        self.seed_addresses = pulumi.Output.from_input(seed_addresses(s, args.zones))
        self.password = password
        self.password_secret_name = secret.metadata["name"]
        self.password_secret_key = pulumi.Output.from_input(PASSWORD_KEY)
        self.service_account = account.metadata["name"]
        self.bootstrap_service_account = bootstrap_account.metadata["name"]
        self.client_port = pulumi.Output.from_input(REDIS_PORT)
        self.bus_port = pulumi.Output.from_input(REDIS_BUS_PORT)
        # Plain numbers (known at render time): alert expressions compare the cluster with them.
        self.node_count = len(plan.nodes)
        self.master_count = len(plan.shards)
        self.replicas_per_master = s.replicas_per_master
        self.layout = layout_record(s, args.zones)
        self.flow_ends = pulumi.Output.all(
            podspec.flow_end(ns, APP, {"client": REDIS_PORT, "bus": REDIS_BUS_PORT, "exporter": REDIS_EXPORTER_PORT},
                             scraped=("exporter",), holds_data=True),
            podspec.flow_end(ns, BOOTSTRAP),
        ).apply(lambda ends: {APP: ends[0], BOOTSTRAP: ends[1]})
        self.register_outputs({
            "namespace": self.namespace,
            "client_url": self.client_url,
            "seed_addresses": self.seed_addresses,
            "password": self.password,
            "password_secret_name": self.password_secret_name,
            "password_secret_key": self.password_secret_key,
            "service_account": self.service_account,
            "bootstrap_service_account": self.bootstrap_service_account,
            "client_port": self.client_port,
            "bus_port": self.bus_port,
            "node_count": self.node_count,
            "master_count": self.master_count,
            "replicas_per_master": self.replicas_per_master,
            "layout": self.layout,
            "flow_ends": self.flow_ends,
        })

    # ------------------------------------------------------------ pieces

    def _statefulset(self, name: str, args: RedisClusterArgs, ns: Any, zone: str, pods: int,
                     object_labels: dict[str, str], match: dict[str, str], pod_labels: dict[str, str],
                     account: Any, secret: Any, config_map: Any, after: list[pulumi.Resource],
                     checksum: str) -> k8s.apps.v1.StatefulSet:
        """The `pods` nodes of one zone; their pod names are what `plan_layout` paired."""
        s = args.settings
        suffix = NodeSlot(zone, 0).zone_suffix
        zone_match = {**match, ZONE_LABEL: suffix}
        auth_env = {"name": "REDISCLI_AUTH",
                    "valueFrom": {"secretKeyRef": {"name": secret.metadata["name"], "key": PASSWORD_KEY}}}
        redis = {
            "name": "redis",
            "image": s.image,
            "imagePullPolicy": "IfNotPresent",
            # start.sh refreshes the peers' addresses in nodes.conf, then execs redis-server with these args.
            "command": ["sh", f"{CONF_DIR}/{SCRIPTS['start']}"],
            "args": [f"{CONF_DIR}/{CONF_FILE}", "--cluster-announce-hostname",
                     f"$(POD_NAME).{HEADLESS_SERVICE}.$(POD_NAMESPACE).svc.cluster.local"],
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                # start.sh writes it into the node's own line of nodes.conf.
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                # start.sh asks these whether the cluster knows this node (a lost volume) and who
                # serves its shard now.
                {"name": "REDIS_PEERS", "value": " ".join(seed_addresses(s, args.zones))},
                auth_env,
            ],
            "ports": [{"name": "tcp-redis", "containerPort": REDIS_PORT, "protocol": "TCP"},
                      {"name": "tcp-redis-bus", "containerPort": REDIS_BUS_PORT, "protocol": "TCP"}],
            # Requests equal limits (Guaranteed QoS): a session store is the last thing to evict.
            "resources": {"requests": {"cpu": s.cpu_request, "memory": s.memory_limit},
                          "limits": {"cpu": s.cpu_limit, "memory": s.memory_limit}},
            # Loading a large AOF at start answers LOADING: allowed for up to 10 minutes.
            "startupProbe": _exec_probe(SCRIPTS["liveness"], period=5, failures=120),
            "livenessProbe": _exec_probe(SCRIPTS["liveness"], period=10, failures=3),
            "readinessProbe": _exec_probe(SCRIPTS["readiness"], period=5, failures=2),
            "volumeMounts": [
                {"name": "data", "mountPath": DATA_DIR},
                {"name": "config", "mountPath": CONF_DIR, "readOnly": True},
                {"name": "auth", "mountPath": AUTH_DIR, "readOnly": True},
                podspec.tmp_mount(),
            ],
        }
        exporter = {
            "name": "metrics",
            "image": s.exporter_image,
            "imagePullPolicy": "IfNotPresent",
            "env": [
                {"name": "REDIS_ADDR", "value": f"redis://127.0.0.1:{REDIS_PORT}"},
                {"name": "REDIS_PASSWORD",
                 "valueFrom": {"secretKeyRef": {"name": secret.metadata["name"], "key": PASSWORD_KEY}}},
                {"name": "REDIS_EXPORTER_WEB_LISTEN_ADDRESS", "value": f":{REDIS_EXPORTER_PORT}"},
            ],
            "ports": [{"name": "http-metrics", "containerPort": REDIS_EXPORTER_PORT, "protocol": "TCP"}],
            "resources": {"requests": {"cpu": "25m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
            "livenessProbe": podspec.tcp_probe("http-metrics", period=10, timeout=PROBE_TIMEOUT_SECONDS,
                                               failures=3),
            "readinessProbe": podspec.http_probe("/health", "http-metrics", period=10,
                                                 timeout=PROBE_TIMEOUT_SECONDS, failures=2),
        }
        pod = podspec.hardened_pod_spec(
            containers=[redis, exporter],
            service_account=account.metadata["name"],
            uid=REDIS_UID,
            match_labels=match,
            termination_grace_seconds=TERMINATION_GRACE_SECONDS,
            volumes=[
                {"name": "config", "configMap": {"name": config_map.metadata["name"], "defaultMode": 0o444}},
                # Group-readable for fsGroup: the server reads it as the pod's uid/gid.
                {"name": "auth", "secret": {"secretName": secret.metadata["name"], "defaultMode": 0o440,
                                            "items": [{"key": AUTH_CONF_KEY, "path": AUTH_CONF_KEY}]}},
                podspec.tmp_volume(),
            ],
        )
        pod["topologySpreadConstraints"] = _spread(match)
        pod["affinity"] = {
            # The zone the layout put these nodes in (their replicas or masters are in other zones).
            "nodeAffinity": _zone_affinity(zone, args.require_zone_spread),
            # One Redis pod per node, over all zones: a replica is never on its master's node.
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": dict(match)}}]},
        }
        annotations = {
            "checksum/config": checksum,
            # The cluster bus and the exporter bypass the sidecar; NetworkPolicy guards them.
            "traffic.sidecar.istio.io/excludeInboundPorts": f"{REDIS_BUS_PORT},{REDIS_EXPORTER_PORT}",
            "traffic.sidecar.istio.io/excludeOutboundPorts": f"{REDIS_BUS_PORT}",
            # Replication on 6379 goes through the sidecar: it must be up before Redis starts.
            "proxy.istio.io/config": json.dumps({"holdApplicationUntilProxyStarts": True}),
        }
        # Pulumi waits ~10 min for a rollout by default; each pod may load a large AOF (the startup
        # probe allows 10 min) and the zone's pods restart one after another.
        protect = pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=after,
                                         custom_timeouts=pulumi.CustomTimeouts(create="60m", update="60m"))
        return k8s.apps.v1.StatefulSet(
            f"{name}-statefulset-{suffix}",
            metadata=podspec.metadata(statefulset_name(zone), ns, object_labels, annotations={
                MASTERS_ANNOTATION: str(s.masters), REPLICAS_ANNOTATION: str(s.replicas_per_master)}),
            spec={
                "serviceName": HEADLESS_SERVICE,
                # Fixed by the layout: the bootstrap paired these pod names across zones.
                "replicas": pods,
                # Nodes start together; the bootstrap Job forms the cluster, not the start order.
                "podManagementPolicy": "Parallel",
                "updateStrategy": {"type": "RollingUpdate"},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "selector": {"matchLabels": zone_match},
                "template": {"metadata": {"labels": {**pod_labels, ZONE_LABEL: suffix}, "annotations": annotations},
                             "spec": pod},
                "volumeClaimTemplates": [{
                    "metadata": {"name": "data", "labels": zone_match},
                    "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": s.storage_class,
                             "resources": {"requests": {"storage": s.storage_size}}},
                }],
            },
            opts=protect,
        )

    def _network_policies(self, name: str, args: RedisClusterArgs, ns: Any, object_labels: dict[str, str],
                          match: dict[str, str]) -> None:
        child = pulumi.ResourceOptions(parent=self)
        redis_pods = {"podSelector": {"matchLabels": dict(match)}}
        bootstrap_pods = {"podSelector": {"matchLabels": podspec.selector_labels(BOOTSTRAP)}}
        podspec.default_deny(f"{name}-default-deny", ns, object_labels, child)
        podspec.workload_network_policy(
            f"{name}-network-policy", APP, ns, object_labels, match, istiod_namespace=args.istiod_namespace,
            ingress=[
                {"from": [podspec.namespace_peer(args.client_namespace, args.client_pod_labels)],
                 "ports": podspec.tcp_ports(REDIS_PORT)},
                {"from": [redis_pods], "ports": podspec.tcp_ports(REDIS_PORT, REDIS_BUS_PORT)},
                {"from": [bootstrap_pods], "ports": podspec.tcp_ports(REDIS_PORT)},
                {"from": [podspec.namespace_peer(args.monitoring_namespace, args.scraper_labels)],
                 "ports": podspec.tcp_ports(REDIS_EXPORTER_PORT, podspec.SIDECAR_METRICS_PORT)},
            ],
            egress=[{"to": [redis_pods], "ports": podspec.tcp_ports(REDIS_PORT, REDIS_BUS_PORT)}],
            opts=child,
        )
        podspec.workload_network_policy(
            f"{name}-bootstrap-network-policy", BOOTSTRAP, ns, podspec.labels(BOOTSTRAP, "session-store"),
            podspec.selector_labels(BOOTSTRAP), istiod_namespace=args.istiod_namespace,
            egress=[{"to": [redis_pods], "ports": podspec.tcp_ports(REDIS_PORT)}],
            opts=child,
        )

    def _bootstrap(self, name: str, args: RedisClusterArgs, ns: Any, account: Any, secret: Any,
                   statefulsets: list[k8s.apps.v1.StatefulSet]) -> None:
        s = args.settings
        labels = podspec.labels(BOOTSTRAP, "session-store", image_tag(s.image))
        script = render_bootstrap_script(bootstrap_shards(s, args.zones))
        scripts = k8s.core.v1.ConfigMap(
            f"{name}-bootstrap-script", metadata=podspec.metadata(BOOTSTRAP, ns, labels),
            data={SCRIPTS["bootstrap"]: script}, opts=pulumi.ResourceOptions(parent=self))
        container = {
            "name": "bootstrap",
            "image": s.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", f"/scripts/{SCRIPTS['bootstrap']}"],
            "env": [{"name": "REDISCLI_AUTH",
                     "valueFrom": {"secretKeyRef": {"name": secret.metadata["name"], "key": PASSWORD_KEY}}}],
            "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}},
            "volumeMounts": [{"name": "scripts", "mountPath": "/scripts", "readOnly": True}, podspec.tmp_mount()],
        }
        pod = podspec.hardened_pod_spec(
            containers=[container], service_account=account.metadata["name"], uid=REDIS_UID,
            match_labels=podspec.selector_labels(BOOTSTRAP), termination_grace_seconds=10,
            volumes=[{"name": "scripts", "configMap": {"name": scripts.metadata["name"], "defaultMode": 0o444}},
                     podspec.tmp_volume()])
        pod.pop("topologySpreadConstraints")
        pod["restartPolicy"] = "Never"
        k8s.batch.v1.Job(
            f"{name}-bootstrap",
            metadata=podspec.metadata(BOOTSTRAP, ns, labels),
            spec={
                "backoffLimit": 4,
                "activeDeadlineSeconds": 1200,
                "template": {
                    "metadata": {"labels": labels, "annotations": {
                        # A native sidecar ends with the Job's container, so the Job completes.
                        "sidecar.istio.io/nativeSidecar": "true",
                        "checksum/script": hashlib.sha256(script.encode()).hexdigest()[:16]}},
                    "spec": pod,
                },
            },
            # Every StatefulSet is ready (every node answers) before the Job runs.
            opts=pulumi.ResourceOptions(parent=self, depends_on=statefulsets),
        )


def _tcp_port(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "port": port, "targetPort": port, "protocol": "TCP"}


def _exec_probe(script: str, *, period: int, failures: int) -> dict[str, Any]:
    return {"exec": {"command": ["sh", f"{CONF_DIR}/{script}"]}, "periodSeconds": period,
            "timeoutSeconds": PROBE_TIMEOUT_SECONDS, "failureThreshold": failures}


def _spread(match: Mapping[str, str]) -> list[dict[str, Any]]:
    """Even over nodes, counted over every zone's pods. The zone is fixed by node affinity per
    StatefulSet (the layout balances zones), so no zone constraint that could fight it."""
    return [{"maxSkew": 1, "labelSelector": {"matchLabels": dict(match)}, "nodeTaintsPolicy": "Honor",
             "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"}]


def _zone_affinity(zone: str, required: bool) -> dict[str, Any]:
    term = {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]}]}
    if required:
        return {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
    return {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": term}]}
