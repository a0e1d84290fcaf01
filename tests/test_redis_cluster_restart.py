"""Real `redis-server` processes through the component's own start and bootstrap scripts, each on
its own loopback IP and announcing a pod-like hostname that a `getent` test double answers:

- a first bootstrap interrupted after creating the masters is completed by the next run, which
  attaches each replica to the master the layout chose for it (another zone);
- a replica interrupted between MEET and REPLICATE (an empty master), and a master back with an
  empty volume after its replica took over, are made to follow their shard again, and their old
  identities are forgotten;
- every node restarting at once on a new IP (a node-pool upgrade reschedules every pod) finds the
  cluster again: started one by one while the names of nodes that start later do not resolve yet,
  and started all together while no name resolves for a moment; without the start script's
  refresh the same restart leaves every node cut off from its peers (the control).

Every process is started and stopped by this test by its pid; in CI a missing redis-server fails."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from components.redis_layout import plan_layout
from components.redis_scripts import render_bootstrap_script
from tests.conftest import require_tool
from tools.redis_local import FakeResolver, LocalCluster, Node, prod_conf_params, wait_for
from tools.resp import ClusterClient, Connection, cluster_nodes, parse_info

PASSWORD = "TestOnlyPassword0123456789abcdef"
# Short, so the failure cases are quick, but not so short that a node coming up a moment after its
# replica during a parallel start (a loaded 2-core CI machine) counts as failed: 1.5 s swapped a
# master and its replica in one full run. Prod uses 5 s.
NODE_TIMEOUT_MS = 3000
ZONES = ("test-zone-b", "test-zone-c", "test-zone-d")
KEYS = {f"ws:session:restart-{i}": f"value-{i}" for i in range(60)}


def hosts(subnet: int, count: int) -> list[str]:
    return [f"127.0.{subnet}.{i + 1}" for i in range(count)]


def call(node: Node, *args: str) -> object:
    conn = Connection(node.host, node.port, PASSWORD, timeout=2.0)
    try:
        return conn.call(*args)
    finally:
        conn.close()


def view(node: Node) -> list[dict]:
    return cluster_nodes(str(call(node, "CLUSTER", "NODES")))


def ip_of(entry: dict) -> str:
    return entry["address"].split("@")[0].rpartition(":")[0]


def whole(cluster: LocalCluster) -> bool:
    """Every node sees every node at its current IP, connected and not failing, and the cluster ok."""
    current = {node.name: node.host for node in cluster.nodes}
    for node in cluster.nodes:
        entries = view(node)
        if len(entries) != len(cluster.nodes):
            return False
        for entry in entries:
            name = entry["address"].partition(",")[2].partition(",")[0]
            if ip_of(entry) != current.get(name) or entry["flags"] & {"fail", "fail?", "handshake", "noaddr"}:
                return False
            if "myself" not in entry["flags"] and entry["link"] != "connected":
                return False
        if parse_info(str(call(node, "CLUSTER", "INFO")))["cluster_state"] != "ok":
            return False
    return True


def roles(cluster: LocalCluster) -> dict[str, str]:
    """{node id: its master's id, or "-" for a master}, as the first node sees it."""
    return {e["id"]: e["master"] for e in view(cluster.nodes[0])}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    server = require_tool("redis-server")
    require_tool("redis-cli")
    _, params = prod_conf_params(64 * 2**20, NODE_TIMEOUT_MS)
    root = tmp_path_factory.mktemp("redis-restart")
    layout = plan_layout(ZONES, 3, 1)
    names = [f"redis-cluster-{s.zone_suffix}-{s.ordinal}.redis-cluster-headless.test" for s in layout.nodes]
    resolver = FakeResolver(root)
    local = LocalCluster(root, params, PASSWORD, layout=layout, server=server,
                         hosts=hosts(1, len(names)), names=names, resolver=resolver)
    resolver.set({n.name: n.host for n in local.nodes})
    try:
        local.start_all()
        yield local
    finally:
        local.stop_all()


def test_an_interrupted_bootstrap_is_completed_with_the_planned_pairs(cluster: LocalCluster) -> None:
    masters = [cluster.node_of(s.master) for s in cluster.layout.shards]
    # The first run died after `--cluster create` of the masters, before any replica was attached.
    created = subprocess.run(["redis-cli", "--no-auth-warning", "--cluster", "create",
                              *(m.address for m in masters), "--cluster-replicas", "0", "--cluster-yes"],
                             env=cluster.script_env(), capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stdout + created.stderr

    result = cluster.bootstrap()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "creating" not in result.stdout
    assert result.stdout.count("attaching") == 3 and "cluster formed" in result.stdout
    wait_for(lambda: whole(cluster), 20, "the cluster did not become whole")
    ids = {ip_of(e): e["id"] for e in view(cluster.nodes[0])}
    planned = {ids[cluster.node_of(r).host]: ids[cluster.node_of(s.master).host]
               for s in cluster.layout.shards for r in s.replicas}
    # Every node learns each replica's role by gossip, a moment after the attachment.
    wait_for(lambda: all({e["id"]: e["master"] for e in view(n) if e["master"] != "-"} == planned
                         for n in cluster.nodes), 10, "the replicas do not follow the planned masters")
    assert all(r.zone != s.master.zone for s in cluster.layout.shards for r in s.replicas)

    again = cluster.bootstrap()
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr


def wipe(cluster: LocalCluster, node: Node) -> None:
    """The node comes back with an empty volume: a new identity, no data. It starts without
    start.sh, which would rejoin it by itself (tests/test_redis_faults.py): these tests make the
    states the bootstrap must repair when that did not happen (an `add-node` interrupted halfway)."""
    cluster.stop(node, signal.SIGKILL)
    for path in sorted(node.dir.rglob("*"), reverse=True):
        if path.name not in ("redis.conf", "auth.conf", "redis.log"):
            path.rmdir() if path.is_dir() else path.unlink()
    cluster.start(node, refresh_peers=False)


def shard_of(cluster: LocalCluster, node: Node) -> set[str]:
    """The hosts of the planned shard `node` belongs to."""
    shard = next(s for s in cluster.layout.shards if node.slot in (s.master, *s.replicas))
    return {cluster.node_of(slot).host for slot in (shard.master, *shard.replicas)}


def converged(cluster: LocalCluster) -> bool:
    """Whole, and each shard's members are one master with slots and replicas following it."""
    if not whole(cluster):
        return False
    entries = {ip_of(e): e for e in view(cluster.nodes[0])}
    for shard in cluster.layout.shards:
        hosts = [cluster.node_of(slot).host for slot in (shard.master, *shard.replicas)]
        leaders = [h for h in hosts if "master" in entries[h]["flags"] and entries[h]["slots"]]
        if len(leaders) != 1 or any(entries[h]["master"] != entries[leaders[0]]["id"]
                                    for h in hosts if h != leaders[0]):
            return False
    return True


def test_a_replica_stopped_between_meet_and_replicate_is_made_to_follow(cluster: LocalCluster) -> None:
    cluster.wait_settled()
    shard = cluster.layout.shards[0]
    master, replica = cluster.node_of(shard.master), cluster.node_of(shard.replicas[0])
    old_id = str(call(replica, "CLUSTER", "MYID"))
    wipe(cluster, replica)
    # What `--cluster add-node` leaves when it dies after MEET: a master with no slot, following nobody.
    assert call(replica, "CLUSTER", "MEET", master.host, str(master.port), str(master.bus_port)) == "OK"
    wait_for(lambda: parse_info(str(call(replica, "CLUSTER", "INFO")))["cluster_known_nodes"] != "1", 10,
             "the wiped replica did not meet the cluster")
    # The new identity answers at the old address: the old one loses its address (noaddr).
    wait_for(lambda: any(e["id"] == old_id and e["flags"] & {"fail", "noaddr"} for e in view(master)), 15,
             "the old identity was neither failed nor without address")

    result = cluster.bootstrap()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "joined without slots and follows nobody" in result.stdout
    assert f"forgetting {old_id}" in result.stdout
    wait_for(lambda: converged(cluster), 20, "the shard did not converge")
    assert not any(e["id"] == old_id for n in cluster.nodes for e in view(n)), "the old identity is forgotten"


def test_a_master_back_with_an_empty_volume_follows_its_promoted_replica(cluster: LocalCluster) -> None:
    cluster.wait_settled()
    shard = cluster.layout.shards[1]
    master, replica = cluster.node_of(shard.master), cluster.node_of(shard.replicas[0])
    old_id = str(call(master, "CLUSTER", "MYID"))
    cluster.stop(master, signal.SIGKILL)
    wait_for(lambda: "master" in next(e for e in view(replica) if "myself" in e["flags"])["flags"], 15,
             "the replica was not promoted")
    wipe(cluster, master)
    assert parse_info(str(call(master, "CLUSTER", "INFO")))["cluster_known_nodes"] == "1", "alone, empty"

    result = cluster.bootstrap()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"attaching {master.endpoint}" in result.stdout and f"forgetting {old_id}" in result.stdout
    wait_for(lambda: converged(cluster), 20, "the shard did not converge")
    me = next(e for e in view(master) if "myself" in e["flags"])
    assert "slave" in me["flags"] and me["master"] == str(call(replica, "CLUSTER", "MYID"))
    assert shard_of(cluster, master) == shard_of(cluster, replica)


def test_a_cluster_with_fewer_shards_than_the_layout_is_refused(cluster: LocalCluster) -> None:
    """Masters raised after the first deploy: the bootstrap fails rather than claim success."""
    wider = plan_layout(ZONES, 4, 1)
    shards = [(cluster.nodes[0].endpoint, [])] + [(f"{n.endpoint}", []) for n in cluster.nodes[1:4]]
    assert len(wider.shards) == len(shards)
    result = subprocess.run(["sh", "-c", render_bootstrap_script(shards, attempts=5, interval="0.1")],
                            env=cluster.script_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "the layout plans 4: resharding is manual" in result.stderr


def write_keys(cluster: LocalCluster) -> None:
    names = {n.name: n.host for n in cluster.nodes}
    client = ClusterClient(PASSWORD, resolve=lambda host: names.get(host, host))
    try:
        for key, value in KEYS.items():
            _, used = client.call((cluster.nodes[0].host, cluster.nodes[0].port), "SET", key, value, "EX", 3600)
            assert used.call("WAIT", 1, 2000) >= 1
    finally:
        client.close()


def read_keys(cluster: LocalCluster) -> dict[str, str]:
    names = {n.name: n.host for n in cluster.nodes}
    client = ClusterClient(PASSWORD, resolve=lambda host: names.get(host, host))
    try:
        return {key: client.call((node.host, node.port), "GET", key)[0]
                for node in cluster.nodes[::2] for key in KEYS}
    finally:
        client.close()


def restart_everywhere(cluster: LocalCluster, subnet: int, *, refresh_peers: bool) -> None:
    """Stop every node (SIGTERM: each saves), give each a new IP, and start them one after another;
    a name resolves only once its node is up (as a pod's DNS record appears with its IP)."""
    cluster.stop_all(signal.SIGTERM)
    for node, host in zip(cluster.nodes, hosts(subnet, len(cluster.nodes)), strict=True):
        cluster.move(node, host)
    cluster.resolver.set({})
    for started, node in enumerate(cluster.nodes, start=1):
        cluster.resolver.set({n.name: n.host for n in cluster.nodes[:started]})
        cluster.start(node, refresh_peers=refresh_peers)


def test_restarting_every_node_on_new_ips_without_the_refresh_strands_them(cluster: LocalCluster) -> None:
    """The control: what the start script's refresh prevents."""
    cluster.wait_settled()  # the replicas' first sync is over: WAIT 1 can be acknowledged
    write_keys(cluster)
    restart_everywhere(cluster, 2, refresh_peers=False)

    # Whether any node has received a single cluster-bus message since it started. (Not the
    # `link` column: it says "connected" while an outgoing connect is still pending, for the
    # moment before it is refused.)
    def heard_from_a_peer() -> bool:
        return any(int(parse_info(str(call(n, "CLUSTER", "INFO"))).get("cluster_stats_messages_received", 0)) > 0
                   for n in cluster.nodes)
    # Give the nodes two node timeouts and more: nobody can reach a peer at its recorded IP.
    with pytest.raises(TimeoutError):
        wait_for(heard_from_a_peer, 2 * NODE_TIMEOUT_MS / 1000 + 2, "expected: no node reaches a peer")


def test_restarting_every_node_on_new_ips_with_the_refresh_finds_the_cluster(cluster: LocalCluster) -> None:
    before = roles(cluster)
    restart_everywhere(cluster, 3, refresh_peers=True)
    wait_for(lambda: whole(cluster), 30, "the cluster did not find itself after every node moved")
    assert roles(cluster) == before, "same nodes, same shards"
    assert read_keys(cluster) == {k: v for k, v in KEYS.items()}
    result = cluster.bootstrap()
    assert result.returncode == 0 and "nothing to do" in result.stdout, result.stdout + result.stderr


def test_starting_every_node_together_while_names_resolve_late(cluster: LocalCluster) -> None:
    """All pods start at once on new IPs and DNS answers only after a moment: start.sh waits for
    a peer's name instead of starting blind."""
    before = roles(cluster)
    cluster.stop_all(signal.SIGTERM)
    for node, host in zip(cluster.nodes, hosts(4, len(cluster.nodes)), strict=True):
        cluster.move(node, host)
    cluster.resolver.set({})
    for node in cluster.nodes:
        cluster.start(node, wait=False, peer_wait_seconds=30)
    time.sleep(1.0)
    assert all(node.process.poll() is None for node in cluster.nodes)
    cluster.resolver.set({n.name: n.host for n in cluster.nodes})
    for node in cluster.nodes:
        cluster.wait_started(node, timeout=20)
    wait_for(lambda: whole(cluster), 30, "the cluster did not find itself after a parallel start")
    assert roles(cluster) == before
    assert read_keys(cluster) == {k: v for k, v in KEYS.items()}
