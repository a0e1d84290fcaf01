"""The Redis cluster on real servers: six `redis-server` processes from the redis.conf the component
renders for prod (memory scaled down, a short cluster-node-timeout so the test is quick), formed by
the component's own bootstrap script, then checked point by point (issue: "Proof on real servers").

Every process is started and stopped by this test by its pid, on free loopback ports, in tmp dirs.
In CI a missing redis-server/redis-cli fails the test (`require_tool`)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.redis_cluster import layout
from components.redis_layout import plan_layout
from components.redis_scripts import render_liveness_script, render_readiness_script
from tests.conftest import require_tool
from tools.redis_local import HOST, LocalCluster, Node, prod_conf_params, wait_for
from tools.resp import ClusterClient, Connection, RespError, cluster_nodes, parse_info

PASSWORD = "TestOnlyPassword0123456789abcdef"
NODE_TIMEOUT_MS = 1500
SLOTS = 16384
# What point 4 leaves for point 5: (the killed master, its promoted replica).
PROMOTED: dict[str, Node] = {}


def failover_bound_seconds(node_timeout_ms: int) -> float:
    """Upper bound for a replica's promotion: the master is flagged PFAIL after node-timeout and FAIL
    once a majority agrees (gossip, within another node-timeout); the replica then waits 500 ms +
    up to 500 ms random + 1 s per rank before asking for votes. Plus 2 s for a loaded CI machine."""
    timeout = node_timeout_ms / 1000
    return 2 * timeout + 1.0 + 1.0 + 2.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    server = require_tool("redis-server")
    require_tool("redis-cli")
    # The prod config, with 64 MiB of data instead of 8 GiB and a 1.5 s node timeout.
    settings, params = prod_conf_params(64 * 2**20, NODE_TIMEOUT_MS)
    # Nodes stand in for prod's pods: the layout over prod's zones decides who follows whom.
    local = LocalCluster(tmp_path_factory.mktemp("redis-cluster"), params, PASSWORD,
                         layout=layout(settings.redis, settings.gcp.zones), server=server)
    try:
        local.start_all()
        result = local.bootstrap()
        assert result.returncode == 0, result.stdout + result.stderr
        assert "cluster formed" in result.stdout
        yield local
    finally:
        local.stop_all()


def conn(node: Node) -> Connection:
    return Connection(HOST, node.port, PASSWORD)


def nodes_seen_by(node: Node) -> list[dict]:
    c = conn(node)
    try:
        return cluster_nodes(c.call("CLUSTER", "NODES"))
    finally:
        c.close()


def cluster_info(node: Node) -> dict[str, str]:
    c = conn(node)
    try:
        return parse_info(c.call("CLUSTER", "INFO"))
    finally:
        c.close()


def shape(node: Node) -> tuple[int, int, int]:
    """(masters with slots, replicas, slots covered) as `node` sees the cluster."""
    seen = nodes_seen_by(node)
    masters = [n for n in seen if "master" in n["flags"] and n["slots"] and "fail" not in n["flags"]]
    replicas = [n for n in seen if "slave" in n["flags"] and "fail" not in n["flags"]]
    return len(masters), len(replicas), sum(n["slots"] for n in masters)


def running(cluster: LocalCluster) -> list[Node]:
    return [n for n in cluster.nodes if n.process is not None]


def replication(node: Node) -> dict[str, str]:
    c = conn(node)
    try:
        return parse_info(c.call("INFO", "replication"))
    finally:
        c.close()


def settled(cluster: LocalCluster) -> bool:
    """Every running node sees 3 masters with all slots and 3 replicas, and every replica has
    synced with its master (the link authenticates with `masterauth` from the include)."""
    return all(shape(n) == (3, 3, SLOTS) and cluster_info(n)["cluster_state"] == "ok"
               and replication(n).get("master_link_status", "up") == "up" for n in running(cluster))


# Tests below run in file order on one cluster: each point builds on the state the one before left.

def test_1_three_masters_three_replicas_all_slots_state_ok(cluster: LocalCluster) -> None:
    # Replicas sync after repl-diskless-sync-delay (5 s by default).
    wait_for(lambda: settled(cluster), 20, "the cluster did not settle into 3 masters + 3 synced replicas")
    for node in cluster.nodes:
        info = cluster_info(node)
        assert info["cluster_state"] == "ok"
        assert info["cluster_slots_assigned"] == info["cluster_slots_ok"] == str(SLOTS)
        assert info["cluster_known_nodes"] == "6"
        assert info["cluster_size"] == "3"
    seen = nodes_seen_by(cluster.nodes[0])
    masters = {n["id"] for n in seen if "master" in n["flags"]}
    assert {n["master"] for n in seen if "slave" in n["flags"]} == masters, "one replica per master"
    # Each replica follows the master the layout chose for it, which is in another zone.
    node_at = {int(n["address"].split(":")[1].split("@")[0]): n for n in seen}
    port_of = {n["id"]: port for port, n in node_at.items()}
    zone_at = {node.port: node.slot.zone for node in cluster.nodes}
    planned = {cluster.node_of(r).port: cluster.node_of(s.master).port
               for s in cluster.layout.shards for r in s.replicas}
    follows = {port: port_of[n["master"]] for port, n in node_at.items() if "slave" in n["flags"]}
    assert follows == planned
    assert all(zone_at[replica] != zone_at[master] for replica, master in follows.items())
    # Redirects name the announced hostname (stands in for the pod's headless-Service DNS name).
    assert all(n["address"].endswith(f",{HOST}") for n in seen)


def test_2_a_client_without_the_password_is_refused(cluster: LocalCluster) -> None:
    anonymous = Connection(HOST, cluster.nodes[0].port)
    try:
        with pytest.raises(RespError, match="NOAUTH"):
            anonymous.call("GET", "ws:session:x")
        with pytest.raises(RespError, match=r"WRONGPASS|invalid"):
            anonymous.call("AUTH", "not-the-password")
    finally:
        anonymous.close()
    assert cluster.ping(cluster.nodes[0]), "and the right password is accepted"


def test_3_keys_with_ttls_are_readable_through_any_node(cluster: LocalCluster) -> None:
    client = ClusterClient(PASSWORD)
    try:
        start = (HOST, cluster.nodes[0].port)
        keys = [f"ws:session:{i:04d}" for i in range(60)] + [f"connection:{i}" for i in range(60)]
        served_by = set()
        for key in keys:
            ttl = 3600 if key.startswith("ws:") else 86400
            reply, used = client.call(start, "SET", key, f"value-{key}", "EX", ttl)
            assert reply == "OK"
            served_by.add(used.address[1])
        assert len(served_by) == 3, "the keys spread over the three masters"
        for node in cluster.nodes:
            for key in keys:
                value, _ = client.call((HOST, node.port), "GET", key)
                assert value == f"value-{key}"
                ttl, _ = client.call((HOST, node.port), "TTL", key)
                assert 0 < ttl <= (3600 if key.startswith("ws:") else 86400)
    finally:
        client.close()


def test_4_killing_a_master_promotes_its_replica_and_keeps_acknowledged_writes(cluster: LocalCluster) -> None:
    seen = nodes_seen_by(cluster.nodes[0])
    by_port = {int(n["address"].split(":")[1].split("@")[0]): n for n in seen}
    victim = next(node for node in cluster.nodes if "master" in by_port[node.port]["flags"])
    victim_id = by_port[victim.port]["id"]
    replica_port = next(p for p, n in by_port.items() if n["master"] == victim_id)
    replica = next(node for node in cluster.nodes if node.port == replica_port)

    client = ClusterClient(PASSWORD)
    acked = {}
    try:
        for i in range(150):
            key = f"ws:session:acked-{i}"
            _, used = client.call((HOST, victim.port), "SET", key, str(i), "EX", 3600)
            # WAIT 1: the write reached at least one replica before we count it as kept.
            assert used.call("WAIT", 1, 2000) >= 1
            acked[key] = (str(i), used.address[1])
    finally:
        client.close()
    assert any(port == victim.port for _, port in acked.values()), "some acknowledged writes went to the victim"

    cluster.stop(victim, signal.SIGKILL)
    bound = failover_bound_seconds(NODE_TIMEOUT_MS)
    took = wait_for(lambda: "master" in next(n for n in nodes_seen_by(replica) if "myself" in n["flags"])["flags"],
                    bound, f"the replica was not promoted within {bound:.1f} s")
    assert took <= bound
    wait_for(lambda: cluster_info(replica)["cluster_state"] == "ok", bound, "cluster_state did not return to ok")

    client = ClusterClient(PASSWORD)
    try:
        for key, (value, _) in acked.items():
            got, _ = client.call((HOST, replica.port), "GET", key)
            assert got == value, key
    finally:
        client.close()
    PROMOTED.update(victim=victim, replica=replica)


def test_5_the_killed_node_rejoins_as_a_replica_with_its_files(cluster: LocalCluster) -> None:
    assert PROMOTED, "runs after point 4"
    victim, new_master = PROMOTED["victim"], PROMOTED["replica"]
    node_id = next(n["id"] for n in nodes_seen_by(new_master) if n["address"].startswith(f"{HOST}:{victim.port}@"))
    cluster.start(victim)

    def rejoined() -> bool:
        me = next(n for n in nodes_seen_by(victim) if "myself" in n["flags"])
        return "slave" in me["flags"] and me["id"] == node_id
    wait_for(rejoined, 15, "the restarted node did not rejoin as a replica under its old identity")
    c = conn(victim)
    try:
        wait_for(lambda: parse_info(c.call("INFO", "replication")).get("master_link_status") == "up", 15,
                 "the restarted replica did not sync with its new master")
        # RDB: a snapshot lands in the node's data dir, where the config points.
        c.call("BGSAVE", "SCHEDULE")  # after the AOF rewrite that a fresh sync starts
        wait_for(lambda: parse_info(c.call("INFO", "persistence"))["rdb_bgsave_in_progress"] == "0"
                 and (victim.dir / "dump.rdb").exists(), 15, "no dump.rdb after BGSAVE")
    finally:
        c.close()
    aof_dir = victim.dir / "appendonlydir"
    assert (victim.dir / "nodes.conf").exists()
    assert list(aof_dir.glob("appendonly.aof.*.base.rdb")), "AOF base (RDB preamble) exists"
    assert list(aof_dir.glob("appendonly.aof.*.incr.aof")) and (aof_dir / "appendonly.aof.manifest").exists()
    wait_for(lambda: settled(cluster), 20, "the cluster did not settle back into 3 masters + 3 replicas")


def test_6_running_the_bootstrap_again_changes_nothing(cluster: LocalCluster) -> None:
    def topology() -> list[tuple]:
        return sorted((n["id"], "master" in n["flags"], n["master"], n["ranges"])
                      for n in nodes_seen_by(cluster.nodes[0]))
    before = topology()
    result = cluster.bootstrap()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to do" in result.stdout and "creating" not in result.stdout
    assert topology() == before


def test_probe_scripts_judge_real_nodes(cluster: LocalCluster, tmp_path: Path) -> None:
    """The readiness and liveness scripts the pods run, against a cluster node, a fresh node and
    without the password."""
    readiness, liveness = tmp_path / "readiness.sh", tmp_path / "liveness.sh"
    readiness.write_text(render_readiness_script())
    liveness.write_text(render_liveness_script())

    def run(script: Path, port: int, password: str, data: Path | None = None) -> int:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "REDIS_PORT": str(port), "REDISCLI_AUTH": password,
               "REDIS_DATA_DIR": str(data or tmp_path / "no-data")}
        return subprocess.run(["sh", str(script)], env=env, capture_output=True, timeout=10).returncode

    for node in cluster.nodes:
        assert run(readiness, node.port, PASSWORD) == 0
        assert run(liveness, node.port, PASSWORD) == 0
    assert run(readiness, cluster.nodes[0].port, "wrong-password-0000") == 1
    assert run(liveness, cluster.nodes[0].port, "wrong-password-0000") == 1
    fresh = LocalCluster(tmp_path / "fresh", cluster.params, PASSWORD, layout=plan_layout(("local-a",), 1, 0),
                         server=cluster.server)
    with fresh:
        fresh.start_all()
        assert run(readiness, fresh.nodes[0].port, PASSWORD) == 0, "a node before the bootstrap is ready"
        # start.sh marks a node it is rejoining to its shard: alone then means "not synced yet".
        (fresh.nodes[0].dir / ".rejoining").write_text("")
        assert run(readiness, fresh.nodes[0].port, PASSWORD, fresh.nodes[0].dir) == 1
    assert run(liveness, fresh.nodes[0].port, PASSWORD) == 1, "a stopped node is not alive"


def test_failover_bound_grows_with_the_node_timeout() -> None:
    assert failover_bound_seconds(1500) < failover_bound_seconds(5000)
    assert failover_bound_seconds(5000) >= 2 * 5
