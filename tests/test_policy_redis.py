"""The Redis rules on a known-good Redis Cluster (the component's own rendered redis.conf in a
ConfigMap, a hardened StatefulSet mounting it, headless and client Services, PDB, NetworkPolicy) and
on one-change mutations of it. Every case runs the whole pack (tests/policy_cases.py)."""

from __future__ import annotations

from typing import Any

from components.redis_cluster import RedisConfParams, render_redis_conf
from policies.aiwfe_policies.rules.kubernetes import NETWORK_POLICY, PDB, SERVICE, STATEFUL_SET
from policies.aiwfe_policies.rules.redis import CONFIG_MAP
from tests.policy_cases import Case, bad, ok
from tests.policy_fixtures import DELETE, Wire, change, container, pdb, pod_spec, selector_labels

HA = "redis-cluster-require-ha-topology"
REPLICAS = "kubernetes-workload-require-replicas"
ZONES = "redis-cluster-require-zone-separation"
PERSISTENCE = "redis-config-require-persistence"
EVICTION = "redis-config-require-eviction-policy"
HEADROOM = "redis-workload-require-memory-headroom"
REDIS_CAPACITY = "platform-redis-capacity-require-target-session-data"
PROBES = "redis-workload-require-fast-probes"
EXPOSURE = "redis-service-disallow-external-exposure"
PASSWORD = "redis-config-require-password"
EXTERNAL_SERVICE = "kubernetes-core-v1-service-disallow-external-exposure"
K8S_PROBES = "kubernetes-workload-require-probes"

NAMESPACE = "aiwfe-redis"
APP = "redis-cluster"
GOOD_CONF = render_redis_conf(RedisConfParams(maxmemory_bytes=8 * 2**30, cluster_node_timeout_ms=5000))
CONF_WITHOUT_INCLUDE = GOOD_CONF.replace("include /etc/redis-auth/auth.conf\n", "")
STS = "spec.template.spec."
REDIS = STS + "containers.0."


def in_namespace(props: dict[str, Any]) -> dict[str, Any]:
    return change(props, {"metadata.namespace": NAMESPACE})


def redis_container() -> dict[str, Any]:
    probe = {"exec": {"command": ["sh", "/etc/redis/liveness.sh"]}, "periodSeconds": 10.0,
             "timeoutSeconds": 3.0, "failureThreshold": 3.0}
    return change(container("redis", "redis:7.4.2"), {
        "ports": [{"containerPort": 6379.0, "name": "tcp-redis", "protocol": "TCP"}],
        "env": [{"name": "REDISCLI_AUTH", "valueFrom": {"secretKeyRef": {"name": "redis-cluster-auth",
                                                                          "key": "password"}}}],
        "resources": {"requests": {"cpu": "1", "memory": "12288Mi"}, "limits": {"cpu": "2", "memory": "12288Mi"}},
        "readinessProbe": probe, "livenessProbe": probe,
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "config", "mountPath": "/etc/redis"},
                         {"name": "auth", "mountPath": "/etc/redis-auth"}, {"name": "tmp", "mountPath": "/tmp"}],
    })


def statefulset() -> dict[str, Any]:
    spec = change(pod_spec(APP), {
        "containers": [redis_container(), container("metrics", "oliver006/redis_exporter:v1.87.0")],
        "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "config", "configMap": {"name": "redis-cluster-config"}},
                    {"name": "auth", "secret": {"secretName": "redis-cluster-auth"}}],
    })
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": APP, "namespace": NAMESPACE, "labels": selector_labels(APP),
                     "annotations": {"aiwfe.io/redis-masters": "3", "aiwfe.io/redis-replicas-per-master": "1"}},
        "spec": {
            "replicas": 6.0,
            "serviceName": "redis-cluster-headless",
            "selector": {"matchLabels": selector_labels(APP)},
            "template": {"metadata": {"labels": selector_labels(APP)}, "spec": spec},
        },
    }


def config_map(conf: str = GOOD_CONF) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "redis-cluster-config", "namespace": NAMESPACE}, "data": {"redis.conf": conf}}


def service(name: str, headless: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "ClusterIP", "selector": selector_labels(APP),
                            "ports": [{"name": "tcp-redis", "port": 6379.0, "targetPort": 6379.0, "protocol": "TCP"}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


def network_policy() -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": APP, "namespace": NAMESPACE},
            "spec": {"podSelector": {"matchLabels": selector_labels(APP)}, "policyTypes": ["Ingress", "Egress"],
                     "ingress": [{"ports": [{"port": 6379.0, "protocol": "TCP"}]}]}}


def pinned(zone: str) -> dict[str, Any]:
    """Node affinity requiring one zone, as the component sets it in prod."""
    return {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [f"europe-west1-{zone}"]}]}]}}


def redis_stack(*, sts: dict[str, Any] | None = None, conf: str = GOOD_CONF, client: dict[str, Any] | None = None,
                pods: tuple[int, ...] = (2, 2, 2), per_zone: list[dict[str, Any]] | None = None) -> list[Wire]:
    """The known-good cluster as the component declares it: one StatefulSet per zone (b, c, d, e...),
    pinned there, sharing the redis.conf and the governing headless Service. `sts` edits every
    StatefulSet, `per_zone[i]` the i-th one only, `client` the client Service."""
    extra = list(per_zone or []) + [{}] * len(pods)
    statefulsets = [
        Wire(STATEFUL_SET, f"redis-cluster-statefulset-{zone}", change(statefulset(), {
            "metadata.name": f"{APP}-{zone}", "spec.replicas": float(count),
            STS + "affinity.nodeAffinity": pinned(zone), **(sts or {}), **extra[i]}), protect=True)
        for i, (zone, count) in enumerate(zip("bcde", pods, strict=False))]
    return [
        Wire(CONFIG_MAP, "redis-cluster-config", config_map(conf)),
        *statefulsets,
        Wire(SERVICE, "redis-cluster-headless-service", service("redis-cluster-headless", True)),
        Wire(SERVICE, "redis-cluster-client-service", change(service(APP, False), client or {})),
        Wire(PDB, "redis-cluster-disruption-budget", in_namespace(pdb(APP))),
        Wire(NETWORK_POLICY, "redis-cluster-network-policy", network_policy()),
    ]


def zonal_stack(pods: tuple[int, ...], shapes: tuple[dict[str, str], ...] | None = None,
                services: tuple[str, ...] | None = None) -> list[Wire]:
    """`pods` per zone, with a shape or governing Service per StatefulSet where given."""
    per_zone = [{**({"metadata.annotations": shapes[i]} if shapes else {}),
                 **({"spec.serviceName": services[i]} if services else {})} for i in range(len(pods))]
    return redis_stack(pods=pods, per_zone=per_zone)


def shape(masters: int, replicas: int) -> dict[str, str]:
    return {"aiwfe.io/redis-masters": str(masters), "aiwfe.io/redis-replicas-per-master": str(replicas)}


def conf_with(old: str, new: str) -> str:
    assert old in GOOD_CONF, old
    return GOOD_CONF.replace(old, new)


CASES: list[Case] = [
    ok(HA, "three-masters-one-replica-each", redis_stack()),
    ok(HA, "one-master-allowed-in-staging", redis_stack(sts={
        "metadata.annotations": shape(1, 0),
        "spec.replicas": 1.0, STS + "topologySpreadConstraints": DELETE}), stack="staging",
       config={REDIS_CAPACITY: {"targetSessionDataBytes": 512 * 2**20}}),
    bad(HA, "two-masters", redis_stack(sts={"metadata.annotations": shape(2, 1), "spec.replicas": 4.0})),
    bad(HA, "no-replicas", redis_stack(sts={"metadata.annotations": shape(3, 0), "spec.replicas": 3.0})),
    bad(HA, "pods-do-not-match-the-shape", redis_stack(sts={"spec.replicas": 4.0})),
    bad(HA, "shape-not-stated", redis_stack(sts={"metadata.annotations": DELETE}), also=(REDIS_CAPACITY,)),
    ok(HA, "one-statefulset-per-zone-adding-up", zonal_stack((2, 2, 2))),
    bad(HA, "one-statefulset-per-zone-one-pod-short", zonal_stack((3, 2, 0))),
    bad(HA, "statefulsets-disagree-on-the-shape", zonal_stack((2, 2, 2), (shape(3, 1), shape(3, 1), shape(2, 2)))),
    # Four zones: two of them get a single pod, and the cluster's StatefulSets count together.
    ok(REPLICAS, "one-pod-statefulsets-of-one-cluster-count-together", zonal_stack((2, 2, 1, 1))),
    bad(REPLICAS, "one-pod-statefulset-under-its-own-service", zonal_stack(
        (2, 2, 1, 1), services=("redis-cluster-headless",) * 3 + ("elsewhere",))),
    ok(ZONES, "one-statefulset-pinned-in-each-of-three-zones", redis_stack()),
    ok(ZONES, "one-zone-allowed-in-staging", redis_stack(pods=(6,)), stack="staging"),
    bad(ZONES, "one-zone-in-prod", redis_stack(pods=(6,))),
    bad(ZONES, "not-pinned", redis_stack(sts={STS + "affinity.nodeAffinity": DELETE})),
    bad(ZONES, "zone-only-preferred", redis_stack(sts={STS + "affinity.nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": pinned("b")[
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]}]}})),
    bad(ZONES, "two-statefulsets-in-one-zone",
        redis_stack(per_zone=[{}, {STS + "affinity.nodeAffinity": pinned("b")}])),
    bad(HA, "cluster-mode-off", redis_stack(conf=conf_with("cluster-enabled yes", "cluster-enabled no"))),

    ok(PERSISTENCE, "aof-everysec-and-rdb", redis_stack()),
    bad(PERSISTENCE, "aof-off", redis_stack(conf=conf_with("appendonly yes", "appendonly no"))),
    bad(PERSISTENCE, "aof-never-fsynced", redis_stack(conf=conf_with("appendfsync everysec", "appendfsync no"))),
    bad(PERSISTENCE, "rdb-disabled", redis_stack(conf=conf_with("save 3600 1 300 100 60 10000", 'save ""'))),
    bad(PERSISTENCE, "rdb-unstated", redis_stack(conf=conf_with("save 3600 1 300 100 60 10000\n", ""))),

    ok(EVICTION, "allkeys-lru-with-maxmemory", redis_stack()),
    ok(EVICTION, "maxmemory-in-redis-units", redis_stack(conf=conf_with(f"maxmemory {8 * 2**30}", "maxmemory 8gb"))),
    bad(EVICTION, "noeviction", redis_stack(conf=conf_with("maxmemory-policy allkeys-lru",
                                                           "maxmemory-policy noeviction"))),
    bad(EVICTION, "no-maxmemory", redis_stack(conf=conf_with(f"maxmemory {8 * 2**30}\n", "")),
        also=(REDIS_CAPACITY,)),

    ok(HEADROOM, "limit-is-1.5x-maxmemory", redis_stack()),
    bad(HEADROOM, "limit-equals-maxmemory", redis_stack(sts={REDIS + "resources.limits.memory": "8Gi",
                                                             REDIS + "resources.requests.memory": "8Gi"})),

    ok(PROBES, "timeouts-3s", redis_stack()),
    ok(PROBES, "timeout-unset-defaults-to-1s", redis_stack(sts={REDIS + "livenessProbe.timeoutSeconds": DELETE})),
    bad(PROBES, "liveness-timeout-30s", redis_stack(sts={REDIS + "livenessProbe.timeoutSeconds": 30.0})),
    bad(PROBES, "exporter-readiness-5s", redis_stack(sts={
        STS + "containers.1.readinessProbe.timeoutSeconds": 5.0})),

    ok(EXPOSURE, "cluster-ip-and-headless", redis_stack()),
    bad(EXPOSURE, "load-balancer", redis_stack(client={"spec.type": "LoadBalancer"}), also=(EXTERNAL_SERVICE,)),
    bad(EXPOSURE, "external-ips", redis_stack(client={"spec.externalIPs": ["203.0.113.7"]})),
    bad(EXPOSURE, "neg-annotation", redis_stack(client={"metadata.annotations": {
        "cloud.google.com/neg": '{"exposed_ports": {"6379": {}}}'}})),

    ok(PASSWORD, "include-from-secret-volume", redis_stack()),
    bad(PASSWORD, "no-include", redis_stack(conf=CONF_WITHOUT_INCLUDE)),
    bad(PASSWORD, "requirepass-in-configmap", redis_stack(conf=GOOD_CONF + "requirepass hunter2hunter2hunter2\n")),
    bad(PASSWORD, "include-from-a-config-map-volume", redis_stack(sts={
        STS + "volumes.2": {"name": "auth", "configMap": {"name": "redis-cluster-auth"}}})),
]
