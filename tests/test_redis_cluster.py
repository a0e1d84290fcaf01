"""The RedisCluster component under the mock engine, for both stacks, and its render functions."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from pathlib import Path

import pytest

from components.redis_cluster import (
    RedisConfParams,
    client_url,
    layout,
    render_auth_conf,
    render_redis_conf,
    seed_addresses,
)
from components.redis_scripts import render_bootstrap_script, render_start_script
from policies.aiwfe_policies.contract import parse_memory_bytes
from policies.aiwfe_policies.rules.redis import parse_conf
from tests.conftest import one, resources_of
from tests.test_workloads import settings_for

STS = "kubernetes:apps/v1:StatefulSet"
SERVICE = "kubernetes:core/v1:Service"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SECRET = "kubernetes:core/v1:Secret"
JOB = "kubernetes:batch/v1:Job"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE = "kubernetes:core/v1:Namespace"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
PASSWORD = "random:index/randomPassword:RandomPassword"


def zonal_statefulsets(rendered: dict, stack: str) -> dict[str, dict]:
    """{zone: its StatefulSet}, in the order of the stack's zones."""
    zones = settings_for(stack).gcp.zones
    return {zone: one(rendered[stack], STS, f"redis-cluster-statefulset-{zone[-1]}") for zone in zones}


def statefulset(rendered: dict, stack: str) -> dict:
    """The first zone's StatefulSet (all zones share the pod template apart from the zone)."""
    return next(iter(zonal_statefulsets(rendered, stack).values()))


def containers(rendered: dict, stack: str) -> dict[str, dict]:
    pod = statefulset(rendered, stack)["props"]["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"]}


def conf(rendered: dict, stack: str) -> dict[str, list[list[str]]]:
    return parse_conf(one(rendered[stack], CONFIG_MAP, "redis-cluster-config")["props"]["data"]["redis.conf"])


def test_one_statefulset_per_zone_with_the_layouts_pods(rendered: dict, stack: str) -> None:
    s = settings_for(stack)
    by_zone = zonal_statefulsets(rendered, stack)
    redis_sets = [r for r in resources_of(rendered[stack], STS) if "RedisCluster$" in r["urn"]]
    assert len(redis_sets) == len(by_zone) == len(s.gcp.zones)
    pods = {zone: sts["props"]["spec"]["replicas"] for zone, sts in by_zone.items()}
    assert sum(pods.values()) == s.redis.masters * (1 + s.redis.replicas_per_master) == 6
    assert pods == {"prod": {"europe-west1-b": 2, "europe-west1-c": 2, "europe-west1-d": 2},
                    "staging": {"europe-west1-b": 3, "europe-west1-c": 3}}[stack]
    for zone, resource in by_zone.items():
        sts = resource["props"]
        assert sts["metadata"]["name"] == f"redis-cluster-{zone[-1]}" and sts["metadata"]["namespace"] == "aiwfe-redis"
        assert sts["spec"]["serviceName"] == "redis-cluster-headless"
        assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
        claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
        assert claim["storageClassName"] == s.redis.storage_class
        assert claim["resources"]["requests"]["storage"] == s.redis.storage_size
        labels = sts["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "redis-cluster" and labels["aiwfe.io/redis-zone"] == zone[-1]
        # Selectors do not overlap: each StatefulSet owns only its zone's pods.
        assert sts["spec"]["selector"]["matchLabels"]["aiwfe.io/redis-zone"] == zone[-1]
        assert (sts["metadata"]["annotations"]["aiwfe.io/redis-masters"],
                sts["metadata"]["annotations"]["aiwfe.io/redis-replicas-per-master"]) == ("3", "1")
    assert parse_memory_bytes(s.redis.storage_size) >= 3 * s.redis.maxmemory_bytes


def test_zones_roll_one_after_another(rendered: dict, stack: str) -> None:
    """A PDB does not limit a rollout: each zone's StatefulSet waits for the one before it."""
    sets = list(zonal_statefulsets(rendered, stack).values())
    headless = one(rendered[stack], SERVICE, "redis-cluster-headless-service")["urn"]
    assert headless in sets[0]["dependencies"]
    for before, after in itertools.pairwise(sets):
        assert before["urn"] in after["dependencies"]


def test_prod_protects_the_data_and_staging_does_not(rendered: dict) -> None:
    for stack, protected in (("prod", True), ("staging", False)):
        assert all(sts["protect"] is protected for sts in zonal_statefulsets(rendered, stack).values())
        assert one(rendered[stack], NAMESPACE, "redis-cluster-namespace")["protect"] is protected


def test_memory_limit_is_maxmemory_with_fork_headroom(rendered: dict, stack: str) -> None:
    s = settings_for(stack).redis
    redis = containers(rendered, stack)["redis"]
    limit = parse_memory_bytes(redis["resources"]["limits"]["memory"])
    assert redis["resources"]["requests"]["memory"] == redis["resources"]["limits"]["memory"]
    maxmemory = int(conf(rendered, stack)["maxmemory"][-1][0])
    assert maxmemory == s.maxmemory_bytes
    assert limit == pytest.approx(1.5 * maxmemory, rel=0.001)
    if stack == "prod":
        assert (maxmemory, redis["resources"]["limits"]["memory"]) == (8 * 2**30, "12288Mi")


def test_config_has_cluster_persistence_eviction_and_no_secret(rendered: dict, stack: str) -> None:
    c = conf(rendered, stack)
    assert c["cluster-enabled"] == [["yes"]]
    assert c["cluster-config-file"] == [["/data/nodes.conf"]]
    assert c["cluster-node-timeout"] == [[str(settings_for(stack).redis.cluster_node_timeout_ms)]]
    assert c["cluster-preferred-endpoint-type"] == [["hostname"]]
    assert (c["port"], c["cluster-port"]) == ([["6379"]], [["16379"]])
    assert (c["appendonly"], c["appendfsync"]) == ([["yes"]], [["everysec"]])
    # A cut-off AOF stops the server; start.sh lets the replica take over (tests/test_redis_faults.py).
    assert c["aof-load-truncated"] == [["no"]]
    # Redis's default (10) stays: a replica that never finished a sync is never promoted by a vote.
    assert "cluster-replica-validity-factor" not in c
    assert c["save"] == [["3600", "1", "300", "100", "60", "10000"]]
    assert c["maxmemory-policy"] == [["allkeys-lru"]]
    assert "requirepass" not in c and "masterauth" not in c
    # The include is the file the Secret volume mounts.
    redis = containers(rendered, stack)["redis"]
    auth_mount = next(m for m in redis["volumeMounts"] if m["name"] == "auth")
    assert c["include"] == [[f"{auth_mount['mountPath']}/auth.conf"]]
    pod = statefulset(rendered, stack)["props"]["spec"]["template"]["spec"]
    auth_volume = next(v for v in pod["volumes"] if v["name"] == "auth")
    assert auth_volume["secret"]["secretName"] == "redis-cluster-auth"


def test_password_is_generated_and_secret(rendered: dict, stack: str) -> None:
    generated = one(rendered[stack], PASSWORD, "redis-cluster-password")["props"]
    assert generated["length"] >= 32 and generated["special"] is False
    secret = one(rendered[stack], SECRET, "redis-cluster-auth")["props"]
    assert secret["stringData"] == {"password": "[secret]", "auth.conf": "[secret]"}
    redis = containers(rendered, stack)["redis"]
    assert not any("$(REDIS" in arg or "pass" in arg for arg in redis["args"]), "no password on the command line"


def test_ports_probes_and_sidecar_exclusions(rendered: dict, stack: str) -> None:
    c = containers(rendered, stack)
    assert [(p["name"], p["containerPort"]) for p in c["redis"]["ports"]] == [("tcp-redis", 6379.0),
                                                                              ("tcp-redis-bus", 16379.0)]
    assert [(p["name"], p["containerPort"]) for p in c["metrics"]["ports"]] == [("http-metrics", 9121.0)]
    for container in c.values():
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in container:
                assert container[kind]["timeoutSeconds"] <= 3
    assert c["redis"]["readinessProbe"]["exec"]["command"] == ["sh", "/etc/redis/readiness.sh"]
    # Started through start.sh (peers' addresses refreshed), which execs redis-server with the args.
    assert c["redis"]["command"] == ["sh", "/etc/redis/start.sh"]
    assert c["redis"]["args"][:2] == ["/etc/redis/redis.conf", "--cluster-announce-hostname"]
    # start.sh asks the other nodes whether they know this one (a lost volume): every node's address.
    env = {e["name"]: e.get("value") for e in c["redis"]["env"]}
    assert env["REDIS_PEERS"].split() == seed_addresses(settings_for(stack).redis,
                                                         settings_for(stack).gcp.zones)
    data = one(rendered[stack], CONFIG_MAP, "redis-cluster-config")["props"]["data"]
    assert data["start.sh"] == render_start_script() and 'exec redis-server "$@"' in data["start.sh"]
    annotations = statefulset(rendered, stack)["props"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["traffic.sidecar.istio.io/excludeInboundPorts"] == "16379,9121"
    assert annotations["traffic.sidecar.istio.io/excludeOutboundPorts"] == "16379"
    assert json.loads(annotations["proxy.istio.io/config"]) == {"holdApplicationUntilProxyStarts": True}


def test_placement(rendered: dict) -> None:
    for stack in ("prod", "staging"):
        for zone, sts in zonal_statefulsets(rendered, stack).items():
            pod = sts["props"]["spec"]["template"]["spec"]
            (term,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            assert term["topologyKey"] == "kubernetes.io/hostname"
            assert term["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": "redis-cluster",
                                                            "app.kubernetes.io/part-of": "aiwfe"}, "over all zones"
            expression = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]}
            node_affinity = pod["affinity"]["nodeAffinity"]
            if stack == "prod":  # pinned: the layout's zone separation holds
                (selector,) = node_affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
                assert selector["matchExpressions"] == [expression]
            else:
                (preferred,) = node_affinity["preferredDuringSchedulingIgnoredDuringExecution"]
                assert preferred["preference"]["matchExpressions"] == [expression]
            spread = {t["topologyKey"]: t["whenUnsatisfiable"] for t in pod["topologySpreadConstraints"]}
            assert spread == {"kubernetes.io/hostname": "DoNotSchedule"}
        budget = one(rendered[stack], PDB, "redis-cluster-disruption-budget")["props"]["spec"]
        assert budget["maxUnavailable"] == 1.0
        assert budget["selector"]["matchLabels"] == {"app.kubernetes.io/name": "redis-cluster",
                                                     "app.kubernetes.io/part-of": "aiwfe"}, "one budget, all zones"


def test_services(rendered: dict, stack: str) -> None:
    headless = one(rendered[stack], SERVICE, "redis-cluster-headless-service")["props"]
    assert headless["metadata"]["name"] == "redis-cluster-headless"
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert {(p["name"], p["port"]) for p in headless["spec"]["ports"]} == {
        ("tcp-redis", 6379.0), ("tcp-redis-bus", 16379.0), ("http-metrics", 9121.0)}
    client = one(rendered[stack], SERVICE, "redis-cluster-client-service")["props"]
    assert client["metadata"]["name"] == "redis-cluster" and client["spec"]["type"] == "ClusterIP"
    assert [(p["name"], p["port"]) for p in client["spec"]["ports"]] == [("tcp-redis", 6379.0)]


def test_bootstrap_job(rendered: dict, stack: str) -> None:
    s = settings_for(stack).redis
    job = one(rendered[stack], JOB, "redis-cluster-bootstrap")
    template = job["props"]["spec"]["template"]
    assert template["metadata"]["annotations"]["sidecar.istio.io/nativeSidecar"] == "true"
    assert template["spec"]["serviceAccountName"] == "redis-cluster-bootstrap"
    assert template["spec"]["restartPolicy"] == "Never"
    assert all(sts["urn"] in job["dependencies"] for sts in zonal_statefulsets(rendered, stack).values()), \
        "runs once every node answers"
    script = one(rendered[stack], CONFIG_MAP, "redis-cluster-bootstrap-script")["props"]["data"]["bootstrap.sh"]
    assert "--cluster create" in script and "--cluster-replicas 0" in script
    # The pairs the layout made, by pod DNS name: each replica in another zone than its master.
    zones = settings_for(stack).gcp.zones
    pairs = dict(pair.split("=") for pair in re.search(r"^PAIRS='([^']*)'", script, re.M)[1].split())
    masters = re.search(r"^MASTERS='([^']*)'", script, re.M)[1].split()
    assert len(masters) == s.masters and len(pairs) == s.masters * s.replicas_per_master
    host = re.compile(r"redis-cluster-([a-z])-(\d)\.redis-cluster-headless\.aiwfe-redis\.svc\.cluster\.local:6379")
    assert all(host.fullmatch(a) for a in [*masters, *pairs, *pairs.values()])
    assert all(host.fullmatch(r)[1] != host.fullmatch(m)[1] for r, m in pairs.items()), "zones differ"
    assert set(pairs.values()) == set(masters)
    assert layout(s, zones).zone_separated


def test_network_policy_admits_only_websocket_redis_bootstrap_and_scraper(rendered: dict, stack: str) -> None:
    spec = one(rendered[stack], NETPOL, "redis-cluster-network-policy")["props"]["spec"]
    rules = [(tuple(sorted(p["port"] for p in rule["ports"])), rule["from"]) for rule in spec["ingress"]]
    assert [ports for ports, _ in rules] == [(6379.0,), (6379.0, 16379.0), (6379.0,), (9121.0, 15020.0)]
    websocket = rules[0][1][0]
    assert websocket["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "aiwfe"}
    assert websocket["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "websocket"
    assert rules[2][1] == [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "redis-cluster-bootstrap", "app.kubernetes.io/part-of": "aiwfe"}}}]
    rules = dict(rules[1:2] + rules[3:])
    assert rules[(6379.0, 16379.0)] == [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "redis-cluster", "app.kubernetes.io/part-of": "aiwfe"}}}]
    assert rules[(9121.0, 15020.0)][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"}
    assert one(rendered[stack], NETPOL, "redis-cluster-default-deny")["props"]["spec"]["podSelector"] == {}
    assert resources_of(rendered[stack], NETPOL)


def test_namespace_is_meshed(rendered: dict, stack: str) -> None:
    labels = one(rendered[stack], NAMESPACE, "redis-cluster-namespace")["props"]["metadata"]["labels"]
    assert labels["istio-injection"] == "enabled"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


def test_client_url_seeds_every_node() -> None:
    s = settings_for("prod").redis
    url = client_url(s, settings_for("prod").gcp.zones)
    assert url.startswith("redis://") and "@" not in url
    assert url.count(":6379") == s.nodes


# ---------------------------------------------------------------- render functions

def test_render_redis_conf_follows_its_params() -> None:
    text = render_redis_conf(RedisConfParams(maxmemory_bytes=1234567, cluster_node_timeout_ms=777, port=7000,
                                             bus_port=17000, data_dir="/x", auth_include="/y/auth.conf"))
    c = parse_conf(text)
    assert (c["maxmemory"], c["cluster-node-timeout"], c["port"], c["cluster-port"]) == (
        [["1234567"]], [["777"]], [["7000"]], [["17000"]])
    assert c["dir"] == [["/x"]] and c["include"] == [["/y/auth.conf"]]


@pytest.mark.parametrize("password", ["short", "has spaces in it 123", "quote\"quote\"quote\"1"])
def test_auth_conf_refuses_unsafe_passwords(password: str) -> None:
    with pytest.raises(ValueError):
        render_auth_conf(password)


def test_auth_conf_sets_client_and_replication_password() -> None:
    assert render_auth_conf("A" * 32) == f"requirepass {'A' * 32}\nmasterauth {'A' * 32}\n"


@pytest.mark.parametrize("shards", [[], [("host", [])], [("host:6379; rm -rf /", [])], [("a:1", ["$(x):1"])],
                                    [("a:1", ["a:1"])], [("", ["a:1"])]])
def test_bootstrap_script_refuses_bad_shards(shards: list) -> None:
    with pytest.raises(ValueError):
        render_bootstrap_script(shards)


# ---------------------------------------------------------------- start.sh on Redis 7.4's nodes.conf

NODES_CONF_74 = (
    "5d1f0c6e4b1c2f0b8a3e6f7d9c0b1a2e3f4d5c6b 10.8.0.11:6379@16379,redis-cluster-b-0.redis-cluster-headless"
    ".aiwfe-redis.svc.cluster.local,shard-id=a1b2c3d4e5f60718293a4b5c6d7e8f9012345678 myself,master - 0 0 1 "
    "connected 0-5460\n"
    "6e2a1d7f5c2d3a1c9b4f7a8e0d1c2b3f4a5e6d7c 10.8.1.12:6379@16379,redis-cluster-c-1.redis-cluster-headless"
    ".aiwfe-redis.svc.cluster.local,shard-id=a1b2c3d4e5f60718293a4b5c6d7e8f9012345678 slave "
    "5d1f0c6e4b1c2f0b8a3e6f7d9c0b1a2e3f4d5c6b 0 1795450000000 1 connected\n"
    "7f3b2e8a6d3e4b2d0c5a8b9f1e2d3c4a5b6f7e8d 10.8.2.13:6379@16379,redis-cluster-d-0.redis-cluster-headless"
    ".aiwfe-redis.svc.cluster.local,shard-id=b1b2c3d4e5f60718293a4b5c6d7e8f9012345678 master - 0 1795450000000 3 "
    "connected 10923-16383 [10924->-6e2a1d7f5c2d3a1c9b4f7a8e0d1c2b3f4a5e6d7c]\n"
    "8a4c3f9b7e4f5c3e1d6b9c0a2f3e4d5b6c7a8f9e :0@0,redis-cluster-c-0.redis-cluster-headless.aiwfe-redis.svc"
    ".cluster.local,shard-id=c1b2c3d4e5f60718293a4b5c6d7e8f9012345678 master,noaddr - 1795450000000 "
    "1795450000000 2 disconnected 5461-10922\n"
    "vars currentEpoch 3 lastVoteEpoch 0"  # no final newline: the last line must survive
)


def run_start_script(tmp_path: Path, conf: str, answers: dict[str, str], pod_ip: str | None = "10.9.0.11",
                     wait: int = 0) -> tuple[subprocess.CompletedProcess, str]:
    """start.sh against `conf`, with `getent` and `redis-server` replaced by test doubles: getent
    answers `answers` (name -> IP), redis-server prints the arguments it was exec'd with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    hosts = "\n".join(f"{name}) echo '{ip}       STREAM {name}' ;;" for name, ip in answers.items())
    (bin_dir / "getent").write_text(f'#!/bin/sh\n[ "$1" = ahostsv4 ] || exit 2\ncase "$2" in\n{hosts}\n'
                                    '*) exit 2 ;;\nesac\n')
    (bin_dir / "redis-server").write_text('#!/bin/sh\necho "redis-server $*"\n')
    # The data checks run on real servers (tests/test_redis_faults.py): here the AOF is sound.
    (bin_dir / "redis-check-aof").write_text('#!/bin/sh\nexit 0\n')
    (tmp_path / "appendonlydir").mkdir(exist_ok=True)
    (tmp_path / "appendonlydir" / "appendonly.aof.manifest").write_text("")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    (tmp_path / "nodes.conf").write_text(conf)
    (tmp_path / "start.sh").write_text(render_start_script())
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "REDIS_DATA_DIR": str(tmp_path),
           "REDIS_PEER_WAIT_SECONDS": str(wait), **({"POD_IP": pod_ip} if pod_ip else {})}
    result = subprocess.run(["sh", str(tmp_path / "start.sh"), "/etc/redis/redis.conf", "--port", "6379"],
                            env=env, capture_output=True, text=True, timeout=30)
    return result, (tmp_path / "nodes.conf").read_text()


def test_start_script_rewrites_ips_on_redis_74_lines_and_keeps_the_rest(tmp_path: Path) -> None:
    suffix = ".redis-cluster-headless.aiwfe-redis.svc.cluster.local"
    result, after = run_start_script(tmp_path, NODES_CONF_74, {
        f"redis-cluster-c-1{suffix}": "10.9.1.12", f"redis-cluster-d-0{suffix}": "10.9.2.13",
        f"redis-cluster-c-0{suffix}": "10.9.1.10"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "redis-server /etc/redis/redis.conf --port 6379", "exec with the args"
    expected = (NODES_CONF_74.replace("10.8.0.11:", "10.9.0.11:").replace("10.8.1.12:", "10.9.1.12:")
                .replace("10.8.2.13:", "10.9.2.13:").replace(" :0@0,", " 10.9.1.10:0@0,") + "\n")
    assert after == expected
    assert not (tmp_path / "nodes.conf.refresh").exists()


def test_start_script_leaves_an_unchanged_file_alone(tmp_path: Path) -> None:
    first, after = run_start_script(tmp_path, NODES_CONF_74 + "\n", {}, pod_ip=None)
    assert first.returncode == 0 and after == NODES_CONF_74 + "\n", "nothing resolved, no POD_IP: untouched"
    assert "no peer" in first.stderr and "starting with the recorded IPs" in first.stderr


def test_start_script_without_nodes_conf_just_starts(tmp_path: Path) -> None:
    result, after = run_start_script(tmp_path, "", {})
    assert result.returncode == 0 and result.stdout.startswith("redis-server ") and after == ""
