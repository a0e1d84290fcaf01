"""Redis rules: the session store's cluster shape, persistence, eviction, memory headroom, probes,
exposure and password, judged on what is declared: the `redis.conf` held by a ConfigMap, and the
StatefulSet whose pods mount that ConfigMap (its containers, probes, volumes and Services)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..engine import Context, Resource, resource_rule, stack_rule
from .kubernetes import (
    SERVICE,
    STATEFUL_SET,
    dig,
    items,
    namespace_of,
    number,
    pod_template_labels,
    selector_matches,
)

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
CONF_KEY = "redis.conf"
MASTERS_ANNOTATION = "aiwfe.io/redis-masters"
REPLICAS_ANNOTATION = "aiwfe.io/redis-replicas-per-master"
MIN_MASTERS = 3
MIN_REPLICAS_PER_MASTER = 1
EVICTION_POLICY = "allkeys-lru"
# The memory limit must be at least this many times maxmemory (fork copy-on-write, buffers).
MEMORY_HEADROOM = 1.5
MAX_PROBE_TIMEOUT_SECONDS = 3.0
# A Service with this annotation gets GCP network endpoint groups, i.e. can sit behind a Google LB.
NEG_ANNOTATION = "cloud.google.com/neg"
ZONE_KEY = "topology.kubernetes.io/zone"

_REDIS_UNITS = {"": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}
_K8S_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
              "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def parse_conf(text: str) -> dict[str, list[list[str]]]:
    """redis.conf -> {directive (lower-case): [arguments of each occurrence]}."""
    directives: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        directives.setdefault(words[0].lower(), []).append(words[1:])
    return directives


def last(conf: Mapping[str, list[list[str]]], name: str) -> list[str] | None:
    """Arguments of the last occurrence (the one Redis keeps)."""
    found = conf.get(name)
    return found[-1] if found else None


def redis_bytes(text: str) -> float | None:
    match = re.fullmatch(r"(\d+)([kmg]b?)?", text.lower())
    return float(int(match[1]) * _REDIS_UNITS[match[2] or ""]) if match else None


def k8s_bytes(value: Any) -> float | None:
    if number(value) is not None:
        return number(value)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(value))
    return float(match[1]) * _K8S_UNITS[match[2] or ""] if match else None


def conf_of(config_map: Resource) -> dict[str, list[list[str]]] | None:
    text = dig(config_map.props, "data", CONF_KEY)
    return parse_conf(text) if isinstance(text, str) else None


def holds_redis_conf(resource_type: str) -> bool:
    return resource_type == CONFIG_MAP


@dataclass(frozen=True)
class RedisWorkload:
    """A StatefulSet running Redis: its config, and the container that mounts it."""

    statefulset: Resource
    config_map: Resource
    conf: dict[str, list[list[str]]]
    container: Mapping[str, Any]
    pod: Mapping[str, Any]


def redis_workloads(resources: list[Resource]) -> Iterator[RedisWorkload]:
    """StatefulSets whose pods mount a ConfigMap (same namespace) that holds `redis.conf`."""
    configs = {(namespace_of(r), dig(r.props, "metadata", "name")): r for r in resources
               if r.type == CONFIG_MAP and conf_of(r) is not None}
    for sts in (r for r in resources if r.type == STATEFUL_SET):
        pod = dig(sts.props, "spec", "template", "spec") or {}
        for volume in items(pod.get("volumes")):
            config_map = configs.get((namespace_of(sts), dig(volume, "configMap", "name")))
            if config_map is None:
                continue
            for container in items(pod.get("containers")):
                if any(m.get("name") == volume.get("name") for m in items(container.get("volumeMounts"))):
                    yield RedisWorkload(sts, config_map, conf_of(config_map) or {}, container, pod)
                    break
            break


def redis_clusters(resources: list[Resource]) -> list[list[RedisWorkload]]:
    """Redis workloads grouped by the redis.conf ConfigMap they mount: one cluster, one StatefulSet
    per zone."""
    clusters: dict[str, list[RedisWorkload]] = {}
    for redis in redis_workloads(resources):
        clusters.setdefault(redis.config_map.urn, []).append(redis)
    return list(clusters.values())


def pinned_zone(pod: Mapping[str, Any]) -> str | None:
    """The one zone a pod is required to run in (`nodeAffinity` required, `<zone key> In [zone]`)."""
    terms = items(dig(pod, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
                      "nodeSelectorTerms"))
    if len(terms) != 1:
        return None
    zone_rules = [e for e in items(terms[0].get("matchExpressions"))
                  if e.get("key") == ZONE_KEY and e.get("operator") == "In"]
    values = items(zone_rules[0].get("values")) if len(zone_rules) == 1 else []
    return str(values[0]) if len(values) == 1 else None


# ---------------------------------------------------------------- config rules

@resource_rule("redis-config-require-persistence", types=holds_redis_conf, severity="high",
               description="redis.conf keeps both an AOF (fsync every second or always) and RDB save "
                           "points, so a restarted node loses at most a second of sessions.")
def require_persistence(resource: Resource, _: Context) -> Iterable[str]:
    """For each ConfigMap holding a `redis.conf` key (the last occurrence of a directive counts): appendonly is yes,
    appendfsync is everysec or always (unset means everysec), and a save line is present and does not disable
    snapshots (save "")."""
    conf = conf_of(resource)
    if conf is None:
        return
    if (last(conf, "appendonly") or ["no"])[0].lower() != "yes":
        yield "appendonly must be yes"
    if (last(conf, "appendfsync") or ["everysec"])[0].lower() not in ("everysec", "always"):
        yield "appendfsync must be everysec or always"
    # The last `save` line wins when it disables snapshots (`save ""`); state the points explicitly.
    if last(conf, "save") in (None, [], ['""'], ["''"]):
        yield "RDB save points are missing or disabled (save \"\")"


@resource_rule("redis-config-require-eviction-policy", types=holds_redis_conf, severity="medium",
               description=f"redis.conf sets maxmemory and evicts with {EVICTION_POLICY}, so a full node "
                           "drops the least recently used sessions instead of refusing writes.")
def require_eviction(resource: Resource, _: Context) -> Iterable[str]:
    """For each ConfigMap holding a `redis.conf` key (the last occurrence of a directive counts): maxmemory is set
    and non-zero (bytes, or k/kb/m/mb/g/gb), and maxmemory-policy is allkeys-lru (unset means noeviction)."""
    conf = conf_of(resource)
    if conf is None:
        return
    maxmemory = redis_bytes((last(conf, "maxmemory") or ["0"])[0])
    if not maxmemory:
        yield "maxmemory is not set (0 means unlimited: the kernel kills the node instead of evicting)"
    policy = (last(conf, "maxmemory-policy") or ["noeviction"])[0].lower()
    if policy != EVICTION_POLICY:
        yield f"maxmemory-policy is {policy}; sessions need {EVICTION_POLICY}"


# ---------------------------------------------------------------- workload rules

@stack_rule("redis-cluster-require-ha-topology", severity="high",
            description=f"In prod a Redis Cluster has at least {MIN_MASTERS} masters with at least "
                        f"{MIN_REPLICAS_PER_MASTER} replica each, and its StatefulSets (one per zone, all "
                        "mounting the same redis.conf) run exactly that many pods together.", prod_only=True)
def require_ha_topology(resources: list[Resource], context: Context) -> Iterable[tuple[Resource, str]]:
    """On prod stacks, for each Redis Cluster (the StatefulSets whose containers mount the same redis.conf
    ConfigMap): cluster-enabled is yes; every StatefulSet states the same integer shape in aiwfe.io/redis-masters
    and aiwfe.io/redis-replicas-per-master; masters >= 3 and replicas per master >= 1; and their spec.replicas (all
    set) sum to masters x (1 + replicas)."""
    for members in redis_clusters(resources):
        first = members[0]
        if (last(first.conf, "cluster-enabled") or ["no"])[0].lower() != "yes":
            yield first.statefulset, "redis.conf does not enable cluster mode"
            continue
        shapes = set()
        for redis in members:
            annotations = dig(redis.statefulset.props, "metadata", "annotations") or {}
            try:
                shapes.add((int(annotations.get(MASTERS_ANNOTATION)), int(annotations.get(REPLICAS_ANNOTATION))))
            except (TypeError, ValueError):
                yield redis.statefulset, (f"annotations {MASTERS_ANNOTATION} and {REPLICAS_ANNOTATION} must state "
                                          "the cluster shape")
                shapes.add(None)  # type: ignore[arg-type]
        if None in shapes:
            continue
        if len(shapes) > 1:
            yield first.statefulset, f"the StatefulSets of one cluster state different shapes: {sorted(shapes)}"
            continue
        ((masters, replicas),) = shapes
        if masters < MIN_MASTERS:
            yield first.statefulset, (f"{masters} masters; prod needs at least {MIN_MASTERS} (failover needs a "
                                      "majority of masters)")
        if replicas < MIN_REPLICAS_PER_MASTER:
            yield first.statefulset, f"{replicas} replica(s) per master; prod needs at least {MIN_REPLICAS_PER_MASTER}"
        counts = [number(dig(r.statefulset.props, "spec", "replicas")) for r in members]
        pods = sum(c or 0 for c in counts)
        if None in counts or pods != masters * (1 + replicas):
            yield first.statefulset, (f"the StatefulSets run {pods:.0f} pods together, not masters x (1 + replicas)"
                                      f" = {masters * (1 + replicas)}")


@stack_rule("redis-cluster-require-zone-separation", severity="high",
            description="In prod a Redis Cluster runs one StatefulSet per zone, each required (node affinity) "
                        "to stay in its own zone, over at least 2 zones: each replica is paired with a master "
                        "in another zone, which holds only while pods cannot move between zones.", prod_only=True)
def require_zone_separation(resources: list[Resource], context: Context) -> Iterable[tuple[Resource, str]]:
    """On prod stacks, for each Redis Cluster (StatefulSets mounting the same redis.conf): every StatefulSet's pods
    are pinned to one zone (a single required nodeAffinity term with topology.kubernetes.io/zone In [one zone]), no
    two StatefulSets share a zone, and when all are pinned they span at least 2 zones."""
    for members in redis_clusters(resources):
        owner: dict[str, str] = {}  # zone -> the StatefulSet pinned to it
        all_pinned = True
        for redis in members:
            zone = pinned_zone(redis.pod)
            name = str(dig(redis.statefulset.props, "metadata", "name"))
            if zone is None:
                all_pinned = False
                yield redis.statefulset, (f"its pods are not required to run in one zone (nodeAffinity required, "
                                          f"{ZONE_KEY} In [<zone>])")
            elif zone in owner:
                yield redis.statefulset, f"pinned to {zone}, like StatefulSet {owner[zone]}: one StatefulSet per zone"
            else:
                owner[zone] = name
        if all_pinned and len(owner) == 1:
            yield members[0].statefulset, f"every node is in {next(iter(owner))}: a zone outage takes every shard"


@stack_rule("redis-workload-require-memory-headroom", severity="high",
            description=f"The Redis container's memory limit is at least {MEMORY_HEADROOM}x maxmemory: a fork "
                        "for BGSAVE or AOF rewrite copies pages, and without headroom the node is OOM-killed.")
def require_headroom(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """For each StatefulSet whose container mounts a redis.conf ConfigMap: that container sets
    resources.limits.memory, and when redis.conf sets maxmemory the limit is at least 1.5 x maxmemory
    (MEMORY_HEADROOM)."""
    for redis in redis_workloads(resources):
        maxmemory = redis_bytes((last(redis.conf, "maxmemory") or ["0"])[0]) or 0.0
        limit = k8s_bytes(dig(redis.container, "resources", "limits", "memory"))
        if limit is None:
            yield redis.statefulset, f"container {redis.container.get('name')} has no memory limit"
        elif maxmemory and limit < MEMORY_HEADROOM * maxmemory:
            yield redis.statefulset, (f"memory limit {limit / 2**20:.0f} MiB is under {MEMORY_HEADROOM}x maxmemory "
                                      f"({maxmemory / 2**20:.0f} MiB)")


@stack_rule("redis-workload-require-fast-probes", severity="high",
            description=f"Every probe of a Redis pod times out within {MAX_PROBE_TIMEOUT_SECONDS:.0f} s: a 30 s "
                        "Redis check once made health endpoints hang and blocked deployments.")
def require_fast_probes(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """For each StatefulSet whose pods mount a redis.conf ConfigMap: in every container (init containers excepted),
    each startupProbe, readinessProbe and livenessProbe that sets timeoutSeconds sets it to 3 s or less
    (MAX_PROBE_TIMEOUT_SECONDS); an unset timeout (Kubernetes' 1 s) passes."""
    for redis in redis_workloads(resources):
        for container in items(redis.pod.get("containers")):
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(kind)
                if not isinstance(probe, Mapping):
                    continue
                timeout = number(probe.get("timeoutSeconds"))
                if timeout is not None and timeout > MAX_PROBE_TIMEOUT_SECONDS:
                    yield redis.statefulset, (f"container {container.get('name')}: {kind}.timeoutSeconds is "
                                              f"{timeout:.0f}; at most {MAX_PROBE_TIMEOUT_SECONDS:.0f}")


@stack_rule("redis-service-disallow-external-exposure", severity="critical",
            description="Services in front of Redis pods stay inside the cluster: ClusterIP or headless, no "
                        "external IPs, no load-balancer endpoint groups.")
def no_exposed_redis(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """Every Service whose non-empty selector matches the pod labels of a Redis StatefulSet (one mounting
    redis.conf) in its namespace: spec.type is unset or ClusterIP, spec.externalIPs is empty, and it has no
    cloud.google.com/neg annotation. Services without a selector are skipped."""
    workloads = list(redis_workloads(resources))
    for service in (r for r in resources if r.type == SERVICE):
        selector = dig(service.props, "spec", "selector")
        if not isinstance(selector, Mapping) or not selector:
            continue
        if not any(namespace_of(w.statefulset) == namespace_of(service)
                   and selector_matches({"matchLabels": selector}, pod_template_labels(w.statefulset))
                   for w in workloads):
            continue
        spec = dig(service.props, "spec") or {}
        if spec.get("type") not in (None, "ClusterIP"):
            yield service, f"spec.type is {spec.get('type')}: Redis must not be reachable from outside the cluster"
        if items(spec.get("externalIPs")):
            yield service, "spec.externalIPs exposes Redis outside the cluster"
        if NEG_ANNOTATION in (dig(service.props, "metadata", "annotations") or {}):
            yield service, f"{NEG_ANNOTATION} puts Redis behind a Google load balancer"


@stack_rule("redis-config-require-password", severity="critical",
            description="Redis requires a password for clients and replication, read from a Secret-mounted "
                        "include, never written in the ConfigMap.")
def require_password(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """For each Redis StatefulSet: its redis.conf writes neither requirepass nor masterauth (the ConfigMap is
    reported), and has an `include` of a path under the mountPath of a secret volume mounted in the container that
    mounts redis.conf. The included file's content is not checked."""
    for redis in redis_workloads(resources):
        for literal in ("requirepass", "masterauth"):
            if literal in redis.conf:
                yield redis.config_map, f"{literal} is written in the ConfigMap; keep it in a Secret-mounted include"
        secret_volumes = {v.get("name") for v in items(redis.pod.get("volumes"))
                          if isinstance(v.get("secret"), Mapping)}
        secret_dirs = [str(m.get("mountPath", "")).rstrip("/") + "/" for m in items(redis.container.get("volumeMounts"))
                       if m.get("name") in secret_volumes]
        includes = [args[0] for args in redis.conf.get("include", []) if args]
        if not any(path.startswith(d) for path in includes for d in secret_dirs):
            yield redis.statefulset, ("redis.conf includes no file from a Secret volume of container "
                                      f"{redis.container.get('name')}: clients and replicas would need no password")
