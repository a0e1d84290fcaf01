"""Network namespaces for partition tests: one namespace per node, each with its own address on a
bridge that lives in a namespace of its own, plus one address in the test's namespace so the test
reaches every node. Everything is created here and removed by `close()`: namespaces, links and the
one address in the test's namespace (deleting a namespace deletes its links, and the peer ends).

A partition is a set of blackhole routes inside the namespaces it separates: packets between the
two sides are dropped in both directions, while the test's own address still reaches both sides
(a client that can still talk to a master that the cluster lost)."""

from __future__ import annotations

import ipaddress
import os
import subprocess


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


def _subnet_in_use(subnet: ipaddress.IPv4Network) -> bool:
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show"], check=True, capture_output=True, text=True).stdout
    shown += subprocess.run(["ip", "-4", "route", "show"], check=True, capture_output=True, text=True).stdout
    for word in shown.split():
        try:
            if ipaddress.ip_network(word, strict=False).overlaps(subnet):
                return True
        except ValueError:
            continue
    return False


class Namespaces:
    """`count` namespaces `<prefix>-n<i>` on a bridge in `<prefix>-sw`, addresses from a free /24."""

    def __init__(self, count: int) -> None:
        self.prefix = f"aiwfe{os.getpid() % 100000}"
        self.switch = f"{self.prefix}-sw"
        self.names = [f"{self.prefix}-n{i}" for i in range(count)]
        self.subnet = next(net for net in (ipaddress.ip_network(f"10.{a}.{b}.0/24")
                                           for a in range(231, 240) for b in range(0, 256, 17))
                           if not _subnet_in_use(net))
        hosts = list(self.subnet.hosts())
        self.addresses = [str(h) for h in hosts[:count]]
        self.test_address = str(hosts[-1])
        self.test_link = f"{self.prefix}-t"
        self._created: list[str] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        prefix_len = self.subnet.prefixlen
        ip("netns", "add", self.switch)
        self._created.append(self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for i, (name, address) in enumerate(zip(self.names, self.addresses, strict=True)):
            ip("netns", "add", name)
            self._created.append(name)
            ip("-n", name, "link", "set", "lo", "up")
            ip("-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{i}", "netns", self.switch)
            ip("-n", name, "addr", "add", f"{address}/{prefix_len}", "dev", "eth0")
            ip("-n", name, "link", "set", "eth0", "up")
            ip("-n", self.switch, "link", "set", f"p{i}", "master", "br0")
            ip("-n", self.switch, "link", "set", f"p{i}", "up")
        ip("link", "add", self.test_link, "type", "veth", "peer", "name", "pt", "netns", self.switch)
        ip("addr", "add", f"{self.test_address}/{prefix_len}", "dev", self.test_link)
        ip("link", "set", self.test_link, "up")
        ip("-n", self.switch, "link", "set", "pt", "master", "br0")
        ip("-n", self.switch, "link", "set", "pt", "up")

    def partition(self, isolated: int, *, heal: bool = False) -> None:
        """Drop every packet between node `isolated` and the other nodes (or stop dropping)."""
        verb = "del" if heal else "add"
        for i, name in enumerate(self.names):
            if i == isolated:
                continue
            ip("-n", self.names[isolated], "route", verb, "blackhole", f"{self.addresses[i]}/32")
            ip("-n", name, "route", verb, "blackhole", f"{self.addresses[isolated]}/32")

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.test_link], capture_output=True, timeout=10)
        for name in reversed(self._created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        self._created.clear()
