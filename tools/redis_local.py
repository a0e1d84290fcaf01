"""Six (or N) real `redis-server` processes on loopback, each from the config the Redis component
renders, for the integration test and the benchmark. Every process is started and stopped here by
its own pid; every file lives under the given folder."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from components.redis_cluster import RedisConfParams, render_auth_conf, render_bootstrap_script, render_redis_conf
from tools.resp import Connection, RespError, parse_info

HOST = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out as free right now (held together so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def default_conf(port: int, bus_port: int, data_dir: str) -> str:
    """A stock redis-server as a cluster node: only what cluster mode, loopback and the same password
    need; persistence, memory and everything else at Redis's defaults."""
    return (f"bind {HOST}\nport {port}\ndir {data_dir}\ncluster-enabled yes\n"
            f"cluster-config-file {data_dir}/nodes.conf\ncluster-port {bus_port}\ninclude {data_dir}/auth.conf\n")


@dataclass
class Node:
    index: int
    port: int
    bus_port: int
    dir: Path
    process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


class LocalCluster:
    """N nodes from `params` (port, bus port, dir and include replaced per node) or stock configs."""

    def __init__(self, root: Path, params: RedisConfParams | None, password: str, count: int = 6,
                 server: str = "redis-server") -> None:
        self.root = root
        self.params = params
        self.password = password
        self.server = server
        ports = free_ports(2 * count)
        self.nodes = [Node(i, ports[2 * i], ports[2 * i + 1], root / f"node-{i}") for i in range(count)]
        for node in self.nodes:
            node.dir.mkdir(parents=True, exist_ok=True)
            (node.dir / "redis.conf").write_text(self.conf_for(node))
            (node.dir / "auth.conf").write_text(render_auth_conf(password))

    def conf_for(self, node: Node) -> str:
        if self.params is None:
            return default_conf(node.port, node.bus_port, str(node.dir))
        return render_redis_conf(dataclasses.replace(
            self.params, port=node.port, bus_port=node.bus_port, data_dir=str(node.dir),
            auth_include=str(node.dir / "auth.conf"), bind=HOST))

    @property
    def addresses(self) -> list[str]:
        return [node.address for node in self.nodes]

    def start(self, node: Node, timeout: float = 15.0) -> None:
        """Start one node (the announced hostname stands in for the pod's DNS name) and wait for PING."""
        log = open(node.dir / "redis.log", "ab")  # noqa: SIM115 (handed to the child)
        node.process = subprocess.Popen(
            [self.server, str(node.dir / "redis.conf"), "--cluster-announce-hostname", HOST],
            stdout=log, stderr=subprocess.STDOUT, cwd=node.dir)
        log.close()
        wait_for(lambda: self.ping(node), timeout, f"node {node.index} on port {node.port} did not start "
                 f"(see {node.dir / 'redis.log'})")

    def ping(self, node: Node) -> bool:
        if node.process is None or node.process.poll() is not None:
            raise RuntimeError(f"node {node.index} exited; log:\n{(node.dir / 'redis.log').read_text()[-2000:]}")
        try:
            conn = Connection(HOST, node.port, self.password, timeout=1.0)
        except (OSError, RespError):
            return False
        try:
            return conn.call("PING") == "PONG"
        except (OSError, RespError):
            return False
        finally:
            conn.close()

    def start_all(self) -> None:
        for node in self.nodes:
            self.start(node)

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

    def stop_all(self) -> None:
        for node in self.nodes:
            self.stop(node, signal.SIGKILL)

    def bootstrap(self, replicas_per_master: int = 1, interval: str = "0.2") -> subprocess.CompletedProcess:
        """Run the component's own bootstrap script against these nodes."""
        script = render_bootstrap_script(self.addresses, replicas_per_master, attempts=150, interval=interval)
        env = {**os.environ, "REDISCLI_AUTH": self.password}
        return subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=120)

    def info(self, node: Node, *section: str) -> dict[str, str]:
        """`INFO <section>` (or `CLUSTER INFO` for section "cluster-info") of one node as a dict."""
        conn = Connection(HOST, node.port, self.password, timeout=2.0)
        try:
            args = ("CLUSTER", "INFO") if section == ("cluster-info",) else ("INFO", *section)
            return parse_info(conn.call(*args))
        finally:
            conn.close()

    def settled(self, replicas_per_master: int = 1) -> bool:
        """Quiet and whole: every running node sees `cluster_state:ok` and knows every node, every
        master has its replicas online, every replica's link is up (its full sync is over), and no
        node has a background save or AOF rewrite running.

        The bootstrap only waits for `cluster_state:ok` on the first node: right after it another
        master can still answer CLUSTERDOWN and the replicas have not synced yet (the full sync
        starts after `repl-diskless-sync-delay`, 5 s by default)."""
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
