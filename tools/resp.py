"""A small Redis client over sockets (RESP2), enough to check a cluster: commands, errors, and
cluster redirects (MOVED/ASK) followed from any node. Used by the integration test and the benchmark."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any


class RespError(Exception):
    """An error reply (`-ERR ...`, `-NOAUTH ...`, `-MOVED ...`)."""


class Connection:
    """One connection to one node; `call` sends a command and returns its decoded reply."""

    def __init__(self, host: str, port: int, password: str | None = None, timeout: float = 5.0) -> None:
        self.address = (host, port)
        self.sock = socket.create_connection(self.address, timeout=timeout)
        self.reader = self.sock.makefile("rb")
        if password is not None:
            self.call("AUTH", password)

    def call(self, *args: Any) -> Any:
        parts = [str(a).encode() if not isinstance(a, bytes) else a for a in args]
        payload = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        self.sock.sendall(payload)
        return self._reply()

    def _reply(self) -> Any:
        line = self.reader.readline()
        if not line:
            raise ConnectionError(f"{self.address} closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return None
            data = self.reader.read(length + 2)[:-2]
            return data.decode(errors="replace")
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._reply() for _ in range(count)]
        raise ConnectionError(f"unexpected reply {line!r}")

    def close(self) -> None:
        try:
            self.reader.close()
            self.sock.close()
        except OSError:
            pass


class ClusterClient:
    """Sends key commands to a starting node and follows MOVED/ASK redirects, like a cluster client."""

    def __init__(self, password: str | None, timeout: float = 5.0,
                 resolve: Callable[[str], str] | None = None) -> None:
        self.password = password
        self.timeout = timeout
        # Redirects name the announced hostname; `resolve` maps it to an IP (a test's stand-in DNS).
        self.resolve = resolve or (lambda host: host)
        self.connections: dict[tuple[str, int], Connection] = {}

    def connection(self, host: str, port: int) -> Connection:
        key = (self.resolve(host), port)
        if key not in self.connections:
            self.connections[key] = Connection(*key, self.password, self.timeout)
        return self.connections[key]

    def call(self, start: tuple[str, int], *args: Any, redirects: int = 5) -> tuple[Any, Connection]:
        """The reply and the connection that gave it (for WAIT on the node that took a write)."""
        host, port = start
        asking = False
        for _ in range(redirects + 1):
            conn = self.connection(host, port)
            if asking:
                conn.call("ASKING")
            try:
                return conn.call(*args), conn
            except RespError as error:
                kind, *rest = str(error).split()
                if kind not in ("MOVED", "ASK"):
                    raise
                host, _, port_text = rest[1].rpartition(":")
                port = int(port_text)
                asking = kind == "ASK"
        raise RespError(f"too many redirects for {args[:2]}")

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()
        self.connections.clear()


def parse_info(text: str) -> dict[str, str]:
    """`INFO` / `CLUSTER INFO` text -> {field: value}."""
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


def cluster_nodes(text: str) -> list[dict[str, Any]]:
    """`CLUSTER NODES` -> one dict per node: id, address, flags, master id, link state, slots."""
    nodes = []
    for line in text.strip().splitlines():
        fields = line.split()
        slots = 0
        for part in fields[8:]:
            if part.startswith("["):
                continue  # a slot being migrated
            low, _, high = part.partition("-")
            slots += int(high or low) - int(low) + 1
        nodes.append({"id": fields[0], "address": fields[1], "flags": set(fields[2].split(",")),
                      "master": fields[3], "link": fields[7], "slots": slots, "ranges": tuple(fields[8:])})
    return nodes
