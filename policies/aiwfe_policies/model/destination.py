"""Which traffic policy of a DestinationRule applies to one port of one subset, and whether it
carries WebSockets (the WebSocket route rule and the cross-layer tracer judge the same merged policy)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from .props import dig, items, number

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def duration_seconds(value: Any) -> float | None:
    """An Istio (Go/protobuf) duration like `0s`, `1.5s`, `100ms`, `1h30m` in seconds; None if not one."""
    if not isinstance(value, str) or not value:
        return None
    parts = _DURATION_PART.findall(value)
    if "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


POLICY_PARTS = ("connectionPool", "outlierDetection", "loadBalancer", "tls")


def effective_policy(spec: Mapping[str, Any], port: float | None, subset: str | None) -> dict[str, Any] | None:
    """The traffic policy Istio applies to one port of one subset (None: the subset is undefined):
    the subset's parts override the rule's one by one; then port-level settings for the port (the
    subset's, else the rule's) replace all four parts, a part they leave out falling back to its
    default ("port level policies do not inherit")."""
    top = spec.get("trafficPolicy") if isinstance(spec.get("trafficPolicy"), Mapping) else {}
    merged: dict[str, Any] = {k: top[k] for k in (*POLICY_PARTS, "portLevelSettings") if k in top}
    if subset is not None:
        chosen = next((c for c in items(spec.get("subsets")) if c.get("name") == subset), None)
        if chosen is None:
            return None
        own = chosen.get("trafficPolicy") if isinstance(chosen.get("trafficPolicy"), Mapping) else {}
        merged.update({k: own[k] for k in (*POLICY_PARTS, "portLevelSettings") if k in own})
    for port_policy in items(merged.pop("portLevelSettings", None)):
        if port is not None and number(dig(port_policy, "port", "number")) == port:
            return {k: port_policy[k] for k in POLICY_PARTS if k in port_policy}
    return merged


def long_lived_problems(policy: Mapping[str, Any], minimum: float, *, outlier_detection: bool = True
                        ) -> Iterator[str]:
    """Why a traffic policy would break or cut a WebSocket (h2 upgrade, per-connection request cap,
    idle timeouts under `minimum` seconds, and unless told otherwise no outlier detection)."""
    http = dig(policy, "connectionPool", "http") or {}
    if http.get("h2UpgradePolicy") == "UPGRADE":
        yield "connectionPool.http.h2UpgradePolicy is UPGRADE: it breaks WebSocket upgrades"
    per_connection = number(http.get("maxRequestsPerConnection"))
    if per_connection:
        yield f"connectionPool.http.maxRequestsPerConnection is {per_connection:g}: it churns long-lived connections"
    for layer in ("tcp", "http"):
        value = dig(policy, "connectionPool", layer, "idleTimeout")
        seconds = duration_seconds(value) if value is not None else 3600.0  # Istio's default: 1 h
        if seconds == 0:
            continue  # 0s turns the idle timeout off
        if seconds is None or seconds < minimum:
            shown = repr(value) if value is not None else "unset (1h)"
            yield f"connectionPool.{layer}.idleTimeout is {shown}; WebSockets need at least {minimum:g}s"
    if not outlier_detection:
        return
    detection = policy.get("outlierDetection")
    thresholds = [number(dig(detection, k)) for k in ("consecutive5xxErrors", "consecutiveGatewayErrors")]
    if not isinstance(detection, Mapping) or not any(t and t > 0 for t in thresholds):
        yield "no outlierDetection with consecutive5xxErrors or consecutiveGatewayErrors above 0"


def traffic_policies(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, policy) for a DestinationRule's policy, its port-level settings and its subsets'."""
    def with_ports(where: str, policy: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
        if isinstance(policy, Mapping):
            yield where, policy
            for index, port_policy in enumerate(items(policy.get("portLevelSettings"))):
                yield f"{where}.portLevelSettings[{index}]", port_policy
    yield from with_ports("trafficPolicy", spec.get("trafficPolicy"))
    for subset in items(spec.get("subsets")):
        yield from with_ports(f"subsets[{subset.get('name')}].trafficPolicy", subset.get("trafficPolicy"))


def service_fqdn(host: Any, namespace: str) -> str:
    """Istio's reading of a short host in a VirtualService/DestinationRule: relative to its namespace."""
    host = str(host)
    if "." not in host:
        return f"{host}.{namespace}.svc.cluster.local"
    if host.count(".") == 1:
        return f"{host}.svc.cluster.local"
    return host
