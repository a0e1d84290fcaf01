"""Six (or N) real `redis-server` processes on loopback, each from the config the Redis component
renders, started through the component's own start script and formed by its own bootstrap script,
for the integration tests and the benchmark. Every process is started and stopped here by its own
pid; every file lives under the given folder.

Each node has an IP to bind (`127.0.0.1` by default; any 127.x.y.z works on Linux) and a hostname
to announce (the pod's DNS name in Kubernetes). Hostnames other than IPs are answered by
`FakeResolver`, a `getent` test double put first on the scripts' PATH.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from components.redis_cluster import RedisConfParams, conf_params, render_auth_conf, render_redis_conf
from components.redis_layout import ClusterLayout, NodeSlot, plan_layout
from components.redis_scripts import render_bootstrap_script, render_start_script
from tools.resp import Connection, RespError, parse_info

if TYPE_CHECKING:
    from stacks.settings import Settings

HOST = "127.0.0.1"
# Stand-in zones for a local cluster: the prod shape (3 masters, 1 replica each, 3 zones).
LOCAL_ZONES = ("local-a", "local-b", "local-c")


def prod_conf_params(maxmemory_bytes: int, node_timeout_ms: int | None = None) -> tuple[Settings, RedisConfParams]:
    """The prod stack's settings and the redis.conf parameters its component renders, scaled down
    for this machine (maxmemory, and optionally a shorter cluster-node-timeout for quick tests)."""
    from stacks.settings import parse_settings
    from tools.render import load_stack_config

    config = load_stack_config("prod")
    settings = parse_settings(config.values, stack="prod", secret_keys=config.secret_keys)
    params = dataclasses.replace(conf_params(settings.redis), maxmemory_bytes=maxmemory_bytes)
    if node_timeout_ms is not None:
        params = dataclasses.replace(params, cluster_node_timeout_ms=node_timeout_ms)
    return settings, params


def free_ports(count: int, host: str = HOST) -> list[int]:
    """Ports the kernel hands out as free right now (held together so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def default_conf(host: str, port: int, bus_port: int, data_dir: str) -> str:
    """A stock redis-server as a cluster node: only what cluster mode, loopback and the same password
    need; persistence, memory and everything else at Redis's defaults."""
    return (f"bind {host}\nport {port}\ndir {data_dir}\ncluster-enabled yes\n"
            f"cluster-config-file {data_dir}/nodes.conf\ncluster-port {bus_port}\ninclude {data_dir}/auth.conf\n")


class FakeResolver:
    """Test double for `getent ahostsv4 NAME` (the only lookup the rendered scripts make): a `getent`
    script answering from a hosts file this object rewrites, so a test can move a name to a new IP
    the way a rescheduled pod's DNS record moves. IP literals answer themselves."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "fake-getent-bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.hosts = root / "fake-hosts"
        self.hosts.write_text("")
        script = self.bin / "getent"
        script.write_text(f"""#!/bin/sh
# Test double for getent(1) (tools/redis_local.FakeResolver): `getent hosts NAME` from {self.hosts}.
case "$1" in hosts|ahostsv4) ;; *) exit 2 ;; esac
case "$2" in *[!0-9.]*) ;; *) echo "$2       $2"; exit 0 ;; esac
awk -v name="$2" '$2 == name {{ print $1 "       " $2; found = 1 }} END {{ exit found ? 0 : 2 }}' {self.hosts}
""")
        script.chmod(0o755)

    def set(self, names: dict[str, str]) -> None:
        """Answer each name with its IP (replaces every earlier answer)."""
        self.hosts.write_text("".join(f"{ip} {name}\n" for name, ip in names.items()))


@dataclass
class Node:
    index: int
    slot: NodeSlot
    port: int
    bus_port: int
    dir: Path
    host: str = HOST
    """The IP the node binds to (and is reached at)."""
    name: str = HOST
    """The hostname it announces and the bootstrap names it by (stands in for the pod's DNS name)."""
    netns: str | None = None
    """A network namespace to run the server in (`ip netns exec`), for partition tests."""
    process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{self.name}:{self.port}"


class LocalCluster:
    """The nodes of `layout` (by default 3 masters + 3 replicas over three stand-in zones) from
    `params` (port, bus port, bind, dir and include replaced per node) or stock configs."""

    def __init__(self, root: Path, params: RedisConfParams | None, password: str,
                 layout: ClusterLayout | None = None, server: str = "redis-server",
                 hosts: Sequence[str] | None = None, names: Sequence[str] | None = None,
                 resolver: FakeResolver | None = None) -> None:
        self.root = root
        self.params = params
        self.password = password
        self.server = server
        self.layout = layout or plan_layout(LOCAL_ZONES, 3, 1)
        self.resolver = resolver
        slots = self.layout.nodes
        hosts = list(hosts or [HOST] * len(slots))
        names = list(names or hosts)
        ports = free_ports(2 * len(slots))
        self.nodes = [Node(i, slot, ports[2 * i], ports[2 * i + 1], root / f"node-{i}", hosts[i], names[i])
                      for i, slot in enumerate(slots)]
        root.mkdir(parents=True, exist_ok=True)
        (root / "start.sh").write_text(render_start_script())
        for node in self.nodes:
            node.dir.mkdir(parents=True, exist_ok=True)
            (node.dir / "redis.conf").write_text(self.conf_for(node))
            (node.dir / "auth.conf").write_text(render_auth_conf(password))

    def conf_for(self, node: Node) -> str:
        if self.params is None:
            conf = default_conf(node.host, node.port, node.bus_port, str(node.dir))
        else:
            conf = render_redis_conf(dataclasses.replace(
                self.params, port=node.port, bus_port=node.bus_port, data_dir=str(node.dir),
                auth_include=str(node.dir / "auth.conf"), bind=node.host))
        # On loopback every outgoing connection would come from 127.0.0.1, and peers record the
        # sender's address from the socket: connect from the node's own IP, as a pod does.
        return conf + f"bind-source-addr {node.host}\n"

    def move(self, node: Node, host: str) -> None:
        """Give a stopped node a new IP (a rescheduled pod); its data directory stays."""
        assert node.process is None, "stop the node first"
        node.host = host
        (node.dir / "redis.conf").write_text(self.conf_for(node))

    def node_of(self, slot: NodeSlot) -> Node:
        return next(n for n in self.nodes if n.slot == slot)

    @property
    def addresses(self) -> list[str]:
        return [node.address for node in self.nodes]

    def script_env(self) -> dict[str, str]:
        """PATH with this redis-server's folder (and the fake getent, if any) first, and the password."""
        path = [str(Path(self.server).parent)] if os.sep in self.server else []
        if self.resolver is not None:
            path.insert(0, str(self.resolver.bin))
        return {**os.environ, "PATH": os.pathsep.join([*path, os.environ.get("PATH", "/usr/bin:/bin")]),
                "REDISCLI_AUTH": self.password}

    def start(self, node: Node, timeout: float = 15.0, refresh_peers: bool = True, wait: bool = True,
              peer_wait_seconds: int = 0, takeover_wait_seconds: int = 60) -> None:
        """Start one node through the component's start script (which checks the node's data and
        identity and refreshes the addresses in nodes.conf, then execs redis-server: the pid is the
        server's), and wait for PING unless `wait` is off. `refresh_peers=False` runs redis-server
        directly, as a node without the script would; `peer_wait_seconds` is how long start.sh may
        wait for a peer's name to resolve, `takeover_wait_seconds` how long a node that lost its
        data waits for its shard to be served by another node."""
        server = ["sh", str(self.root / "start.sh")] if refresh_peers else [self.server]
        if node.netns:
            # `ip netns exec` execs the command: the pid stays the server's.
            server = ["ip", "netns", "exec", node.netns, *server]
        log = open(node.dir / "redis.log", "ab")  # noqa: SIM115 (handed to the child)
        node.process = subprocess.Popen(
            [*server, str(node.dir / "redis.conf"), "--cluster-announce-hostname", node.name],
            stdout=log, stderr=subprocess.STDOUT, cwd=node.dir,
            env={**self.script_env(), "REDIS_DATA_DIR": str(node.dir), "POD_IP": node.host,
                 "REDIS_LOCAL_HOST": node.host, "REDIS_PORT": str(node.port),
                 "REDIS_PEERS": " ".join(n.endpoint for n in self.nodes),
                 "REDIS_PEER_WAIT_SECONDS": str(peer_wait_seconds),
                 "REDIS_TAKEOVER_WAIT_SECONDS": str(takeover_wait_seconds)})
        log.close()
        if wait:
            self.wait_started(node, timeout)

    def wait_started(self, node: Node, timeout: float = 15.0) -> None:
        wait_for(lambda: self.ping(node), timeout, f"node {node.index} on {node.address} did not start "
                 f"(see {node.dir / 'redis.log'})")

    def ping(self, node: Node) -> bool:
        if node.process is None or node.process.poll() is not None:
            raise RuntimeError(f"node {node.index} exited; log:\n{(node.dir / 'redis.log').read_text()[-2000:]}")
        try:
            conn = Connection(node.host, node.port, self.password, timeout=1.0)
        except (OSError, RespError):
            return False
        try:
            return conn.call("PING") == "PONG"
        except (OSError, RespError):
            return False
        finally:
            conn.close()

    def start_all(self, refresh_peers: bool = True) -> None:
        for node in self.nodes:
            self.start(node, refresh_peers=refresh_peers)

    def stop(self, node: Node, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Signal the node's own pid and reap it."""
        process = node.process
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout)
        node.process = None

    def stop_all(self, sig: int = signal.SIGKILL) -> None:
        for node in self.nodes:
            self.stop(node, sig)

    def shards(self) -> list[tuple[str, list[str]]]:
        """The layout's pairing, in the names the bootstrap uses."""
        return [(self.node_of(s.master).endpoint, [self.node_of(r).endpoint for r in s.replicas])
                for s in self.layout.shards]

    def bootstrap(self, interval: str = "0.2") -> subprocess.CompletedProcess:
        """Run the component's own bootstrap script against these nodes, with this layout's pairing."""
        script = render_bootstrap_script(self.shards(), attempts=150, interval=interval)
        return subprocess.run(["sh", "-c", script], env=self.script_env(), capture_output=True, text=True,
                              timeout=120)

    def info(self, node: Node, *section: str) -> dict[str, str]:
        """`INFO <section>` (or `CLUSTER INFO` for section "cluster-info") of one node as a dict."""
        conn = Connection(node.host, node.port, self.password, timeout=2.0)
        try:
            args = ("CLUSTER", "INFO") if section == ("cluster-info",) else ("INFO", *section)
            return parse_info(conn.call(*args))
        finally:
            conn.close()

    def settled(self, replicas_per_master: int = 1) -> bool:
        """Quiet and whole: every running node sees `cluster_state:ok` and knows every node, every
        master has its replicas online, every replica's link is up (its full sync is over), and no
        node has a background save or AOF rewrite running.

        The bootstrap ends when every node sees the whole cluster, but the replicas' first full sync
        may still be running (it starts after `repl-diskless-sync-delay`, 5 s by default)."""
        running = [n for n in self.nodes if n.process is not None]
        for node in running:
            cluster = self.info(node, "cluster-info")
            if cluster.get("cluster_state") != "ok" or cluster.get("cluster_known_nodes") != str(len(self.nodes)):
                return False
            replication = self.info(node, "replication")
            if replication.get("role") == "master":
                online = [k for k, v in replication.items() if k.startswith("slave") and "state=online" in v]
                if len(online) < replicas_per_master:
                    return False
            elif replication.get("master_link_status") != "up" or replication.get("master_sync_in_progress") != "0":
                return False
            persistence = self.info(node, "persistence")
            if persistence.get("rdb_bgsave_in_progress") != "0" or persistence.get("aof_rewrite_in_progress") != "0":
                return False
        return True

    def wait_settled(self, replicas_per_master: int = 1, timeout: float = 60.0) -> float:
        """Seconds until `settled()`; raises TimeoutError past `timeout`."""
        return wait_for(lambda: self.settled(replicas_per_master), timeout,
                        "the cluster did not settle (state ok everywhere, replicas synced, no background save)",
                        interval=0.1)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def wait_for(condition: Callable[[], bool], timeout: float, message: str, interval: float = 0.05) -> float:
    """Seconds until `condition()` held; raises TimeoutError with `message` past `timeout`."""
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(message)
        time.sleep(interval)
