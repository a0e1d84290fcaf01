"""Capacity rules: the declared sizes against the stack's targets.

The targets are options of these rules, given per stack by the pack config that `tools.render`
writes from the stack's `targets` settings (defaults: REQUIREMENTS' figures). Each rule finds its
workload the way traffic does: the WebSocket Deployment behind the mesh's `/ws` route, Keycloak by
its pod labels, each Redis Cluster by the redis.conf its StatefulSets mount.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..contract import (
    CONNECTIONS_PER_POD_ENV,
    DEFAULT_TARGET_AUTHENTICATIONS_PER_MINUTE,
    DEFAULT_TARGET_CONCURRENT_CONNECTIONS,
    DEFAULT_TARGET_SESSION_DATA,
    parse_cpu_millis,
    parse_memory_bytes,
)
from ..engine import Context, Option, Resource, stack_rule
from ..model.index import index_of
from . import keycloak, paths, redis
from .kubernetes import DEPLOYMENT, HPA, dig, expected_replicas, items, namespace_of, number, pod_spec

WEBSOCKET_CAPACITY = "platform-websocket-capacity-require-target-connections"
KEYCLOAK_CAPACITY = "platform-keycloak-capacity-require-target-authentications"
REDIS_CAPACITY = "platform-redis-capacity-require-target-session-data"

# Keycloak's HA sizing guide: requests per second one vCPU serves, per kind, and the spike headroom.
PASSWORD_LOGINS_PER_VCPU = 15
CLIENT_CREDENTIAL_GRANTS_PER_VCPU = 120
REFRESHES_PER_VCPU = 120
CPU_HEADROOM = 1.5  # +150 %
DEFAULT_MIX = {"passwordLoginPercent": 20, "clientCredentialsPercent": 30, "refreshPercent": 50}


def keycloak_required_vcpu(authentications_per_minute: float, password_login_percent: float,
                           client_credentials_percent: float, refresh_percent: float) -> float:
    """vCPU Keycloak needs for the load and mix, with the guide's headroom."""
    per_second = authentications_per_minute / 60
    base = per_second * (password_login_percent / 100 / PASSWORD_LOGINS_PER_VCPU
                         + client_credentials_percent / 100 / CLIENT_CREDENTIAL_GRANTS_PER_VCPU
                         + refresh_percent / 100 / REFRESHES_PER_VCPU)
    return base * (1 + CPU_HEADROOM)


def _hpa_max(workload: Resource, resources: list[Resource]) -> float | None:
    hpa = index_of(resources).hpa_for(HPA, namespace_of(workload), "Deployment",
                                      dig(workload.props, "metadata", "name"))
    return number(dig(hpa.props, "spec", "maxReplicas")) if hpa is not None else None


def env_value(container: Mapping[str, Any], name: str, workload: Resource, resources: list[Resource]) -> Any:
    """An env var's value: literal, from the ConfigMap key it references, or from a ConfigMap the
    container imports whole (`envFrom`, with its prefix); None when it has none."""
    def config_map_data(config_name: Any) -> Mapping[str, Any]:
        for config_map in index_of(resources).in_namespace(redis.CONFIG_MAP, namespace_of(workload)):
            if dig(config_map.props, "metadata", "name") == config_name:
                return dig(config_map.props, "data") or {}
        return {}
    for env in items(container.get("env")):
        if env.get("name") == name:
            if "value" in env:
                return env["value"]
            ref = dig(env, "valueFrom", "configMapKeyRef") or {}
            return config_map_data(ref.get("name")).get(ref.get("key"))
    for source in reversed(items(container.get("envFrom"))):  # the last source with the key wins
        prefix = str(source.get("prefix") or "")
        ref = source.get("configMapRef")
        if isinstance(ref, Mapping) and name.startswith(prefix):
            value = config_map_data(ref.get("name")).get(name[len(prefix):])
            if value is not None:
                return value
    return None


@stack_rule(WEBSOCKET_CAPACITY, severity="high",
            description="The WebSocket tier must hold the target number of concurrent connections at full "
                        "scale, and the mesh must not cap it lower: otherwise connections are refused before "
                        "the autoscaler's ceiling is reached.",
            options={"targetConcurrentConnections": Option(
                "integer", DEFAULT_TARGET_CONCURRENT_CONNECTIONS,
                "Concurrent WebSocket connections the stack must hold (settings: targets.concurrentConnections).",
                minimum=1)})
def websocket_capacity(resources: list[Resource], context: Context) -> Iterable[tuple[Resource, str]]:
    """For each Deployment behind the mesh's WebSocket route (the path rule's trace): its most pods
    (HPA maxReplicas, else spec.replicas) x the connections one pod holds (the container's
    MAX_CONNECTIONS_PER_POD, literal or from its ConfigMap) >= targetConcurrentConnections; and the
    DestinationRule's policy for the route's port and subset has connectionPool.tcp.maxConnections
    and http.http2MaxRequests (the active-request cap, HTTP/1.1 included; unset: unlimited) >= the
    target too, since each Envoy (a single gateway pod may carry them all) enforces them alone."""
    target = float(context.options["targetConcurrentConnections"])
    seen: set[str] = set()
    reported: set[tuple[str, str]] = set()
    for trace in paths.trace_websocket_paths(resources):
        rule = trace.destination_rule
        if rule is not None and trace.traffic_policy is not None:
            pool = trace.traffic_policy.get("connectionPool") or {}
            # An upgraded WebSocket is one long request: the active-request cap limits them too.
            for where in (("tcp", "maxConnections"), ("http", "http2MaxRequests")):
                limit = number(dig(pool, *where))
                if limit is None or limit >= target:
                    continue
                message = (f"connectionPool.{'.'.join(where)} {limit:.0f} (as applied to the WebSocket route's port "
                           f"and subset) is under the target of {target:.0f} concurrent connections")
                if (rule.urn, message) not in reported:
                    reported.add((rule.urn, message))
                    yield rule, message
        for deployment in trace.deployments:
            if deployment.urn in seen:
                continue
            seen.add(deployment.urn)
            pods = _hpa_max(deployment, resources) or number(dig(deployment.props, "spec", "replicas")) or 1.0
            containers = items((pod_spec(deployment) or {}).get("containers"))
            values = [env_value(c, CONNECTIONS_PER_POD_ENV, deployment, resources) for c in containers]
            per_pod = next((float(v) for v in values if str(v).isdigit()), None)
            if per_pod is None:
                yield deployment, f"no container states {CONNECTIONS_PER_POD_ENV}: its capacity is unknown"
            elif pods * per_pod < target:
                yield deployment, (f"at most {pods:.0f} pods x {per_pod:.0f} connections = {pods * per_pod:.0f}, "
                                   f"under the target of {target:.0f} concurrent connections")


@stack_rule(KEYCLOAK_CAPACITY, severity="high",
            description="Keycloak must carry the target authentication rate with one replica down (a drain "
                        "or a failure), at the CPU its limits allow, or logins queue and time out.",
            options={
                "targetAuthenticationsPerMinute": Option(
                    "integer", DEFAULT_TARGET_AUTHENTICATIONS_PER_MINUTE,
                    "Authentications per minute (settings: targets.authenticationsPerMinute).", minimum=1),
                **{name: Option("number", default, f"Share of the load, in percent (settings: keycloak.sizing.{name}).",
                                minimum=0) for name, default in DEFAULT_MIX.items()},
            })
def keycloak_capacity(resources: list[Resource], context: Context) -> Iterable[tuple[Resource, str]]:
    """For each Keycloak Deployment or StatefulSet (pod label app.kubernetes.io/name=keycloak):
    (replicas - 1) x the Keycloak container's CPU limit >= the vCPU Keycloak's HA sizing guide asks
    for targetAuthenticationsPerMinute at the configured mix (15 password logins/s, 120 client
    credential grants/s, 120 refreshes/s per vCPU, +150 % headroom)."""
    options = context.options
    need = keycloak_required_vcpu(float(options["targetAuthenticationsPerMinute"]),
                                  float(options["passwordLoginPercent"]),
                                  float(options["clientCredentialsPercent"]), float(options["refreshPercent"]))
    for workload in resources:
        if workload.type not in (DEPLOYMENT, redis.STATEFUL_SET) or not keycloak.is_keycloak(workload):
            continue
        replicas = expected_replicas(workload, resources)
        containers = items((pod_spec(workload) or {}).get("containers"))
        main = next((c for c in containers if c.get("name") == keycloak.KEYCLOAK_APP), containers[0] if containers
                    else {})
        limit = dig(main, "resources", "limits", "cpu")
        try:
            vcpu = parse_cpu_millis(str(limit)) / 1000 if number(limit) is None else float(limit)
        except ValueError:
            yield workload, f"container {main.get('name')} has no CPU limit to size by"
            continue
        have = (replicas - 1) * vcpu
        if have < need:
            yield workload, (f"{replicas:g} replicas x {vcpu:g} vCPU with one down = {have:g} vCPU, under the "
                             f"{need:.2f} vCPU that {float(options['targetAuthenticationsPerMinute']):.0f} "
                             "authentications/min need (Keycloak's sizing guide, +150 % headroom)")


@stack_rule(REDIS_CAPACITY, severity="high",
            description="The session store's masters must hold the target session data within maxmemory: "
                        "below it, allkeys-lru evicts live sessions and users are logged out.",
            options={"targetSessionDataBytes": Option(
                "integer", parse_memory_bytes(DEFAULT_TARGET_SESSION_DATA),
                "Session data the Redis Cluster must hold, in bytes (settings: targets.sessionData).", minimum=1)})
def redis_capacity(resources: list[Resource], context: Context) -> Iterable[tuple[Resource, str]]:
    """For each Redis Cluster (StatefulSets mounting one redis.conf): masters (the StatefulSets'
    aiwfe.io/redis-masters annotation) x redis.conf maxmemory >= targetSessionDataBytes. Replicas
    hold copies, not extra room. The memory limit's headroom over maxmemory is
    redis-workload-require-memory-headroom's."""
    target = float(context.options["targetSessionDataBytes"])
    for members in redis.redis_clusters(resources):
        first = members[0]
        annotations = dig(first.statefulset.props, "metadata", "annotations") or {}
        try:
            masters = int(annotations.get(redis.MASTERS_ANNOTATION))
        except (TypeError, ValueError):
            yield first.statefulset, f"annotation {redis.MASTERS_ANNOTATION} must state the number of masters"
            continue
        maxmemory = redis.redis_bytes((redis.last(first.conf, "maxmemory") or ["0"])[0]) or 0.0
        if maxmemory == 0:
            yield first.statefulset, "redis.conf sets no maxmemory: the cluster's capacity is unbounded and unknown"
        elif masters * maxmemory < target:
            yield first.statefulset, (f"{masters} masters x maxmemory {maxmemory / 2**20:g} MiB = "
                                      f"{masters * maxmemory / 2**30:.2f} GiB, under the target of "
                                      f"{target / 2**30:.2f} GiB of session data")
