"""The flows the platform needs, declared once, for the reachability rules of the policy pack.

Each end is a workload as its component declared it (the components' `flow_ends` outputs: namespace,
`app.kubernetes.io/name`, ports by role, what the scraper reads, whether it holds data) or a peer
outside the stack (the ingress gateway, the scraper, kube-dns, istiod, as the settings and the
components' NetworkPolicies name them). This module decides only who calls whom on which port role;
the ports are the components' own. `stacks.platform` exports the result (`intended_flows`,
`data_stores`), and `stacks.policy_config` writes it into the pack config, where the rules of
`policies/aiwfe_policies/rules/reachability.py` check every NetworkPolicy, AuthorizationPolicy and
mTLS setting against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components import keycloak, podspec, postgres, redis_cluster
from components.workloads import ADMIN_FRONTEND_APP, USER_FRONTEND_APP, WEBSOCKET_APP
from stacks.settings import Settings

FlowEnds = Mapping[str, Mapping[str, Any]]
"""`app.kubernetes.io/name` -> the component's flow end (components.podspec.flow_end)."""

FLOWS_OUTPUT = "intended_flows"
DATA_STORES_OUTPUT = "data_stores"


class FlowEndError(ValueError):
    """A component's flow ends lack a workload or a port role the platform's flows use."""


def _end(ends: FlowEnds, app: str) -> Mapping[str, Any]:
    if app not in ends:
        raise FlowEndError(f"no component declared the workload {app!r} (declared: {sorted(ends)})")
    return ends[app]


def _ports(end: Mapping[str, Any], *roles: str) -> list[str]:
    declared = end.get("ports") or {}
    missing = [role for role in roles if role not in declared]
    if missing:
        raise FlowEndError(f"workload {end['workload']!r} declares no port for {missing} "
                           f"(declared: {sorted(declared)})")
    return [str(end["ports"][role]) for role in roles]


def merge_ends(*parts: FlowEnds) -> dict[str, Mapping[str, Any]]:
    """The components' ends as one map; two workloads of one name would make the flows ambiguous."""
    merged: dict[str, Mapping[str, Any]] = {}
    for part in parts:
        for app, end in part.items():
            if app in merged:
                raise FlowEndError(f"two components declare the workload {app!r} "
                                   f"(in {merged[app]['namespace']!r} and {end['namespace']!r})")
            merged[app] = end
    return merged


def _identity(end: Mapping[str, Any]) -> dict[str, Any]:
    return {"namespace": end["namespace"], "workload": end["workload"]}


def _flow(source: Mapping[str, Any], destination: Mapping[str, Any], ports: list[str]) -> dict[str, Any]:
    def name(end: Mapping[str, Any]) -> str:
        return str(end.get("workload") or end.get("name"))
    def identity(end: Mapping[str, Any]) -> dict[str, Any]:
        return _identity(end) if "workload" in end else dict(end)
    return {"name": f"{name(source)} -> {name(destination)}", "from": identity(source),
            "to": identity(destination), "ports": ports}


def intended_flows(settings: Settings, ends: FlowEnds) -> list[dict[str, Any]]:
    """Every flow the platform needs, ports taken from the components' declared ends."""
    mesh, monitoring = settings.mesh, settings.monitoring
    gateway = {"name": "ingress-gateway", "namespace": mesh.ingress_gateway_namespace,
               "labels": dict(mesh.ingress_gateway_labels), "serviceAccount": mesh.ingress_gateway_service_account}
    scraper = {"name": "scraper", "namespace": monitoring.namespace, "labels": dict(monitoring.scraper_labels or {})}
    kube_dns = {"name": "kube-dns", "namespace": podspec.KUBE_DNS_NAMESPACE, "labels": dict(podspec.KUBE_DNS_LABELS)}
    istiod = {"name": "istiod", "namespace": mesh.istiod_namespace, "labels": dict(podspec.ISTIOD_LABELS)}

    websocket = _end(ends, WEBSOCKET_APP)
    frontends = [_end(ends, USER_FRONTEND_APP), _end(ends, ADMIN_FRONTEND_APP)]
    redis = _end(ends, redis_cluster.APP)
    bootstrap = _end(ends, redis_cluster.BOOTSTRAP)
    identity = _end(ends, keycloak.APP)
    reconcile = _end(ends, keycloak.RECONCILE)
    database = [ends[postgres.APP]] if postgres.APP in ends else []

    flows = [
        _flow(gateway, websocket, _ports(websocket, "websocket")),
        *(_flow(gateway, frontend, _ports(frontend, "http")) for frontend in frontends),
        _flow(gateway, identity, _ports(identity, "http")),
        _flow(websocket, redis, _ports(redis, "client")),
        _flow(redis, redis, _ports(redis, "client", "bus")),
        _flow(bootstrap, redis, _ports(redis, "client")),
        *(_flow(identity, store, _ports(store, "postgres")) for store in database),
        _flow(identity, identity, _ports(identity, "jgroups", "jgroups-fd")),
        _flow(reconcile, identity, _ports(identity, "http")),
    ]
    for end in ends.values():
        if end.get("scraped"):
            flows.append(_flow(scraper, end, _ports(end, *end["scraped"])))
    for end in ends.values():
        flows.append(_flow(end, kube_dns, [f"{podspec.DNS_PORT}/UDP", str(podspec.DNS_PORT)]))
        flows.append(_flow(end, istiod, [str(podspec.ISTIOD_XDS_PORT)]))
    return flows


def data_stores(ends: FlowEnds) -> list[dict[str, Any]]:
    """Workloads that hold data: no NetworkPolicy may admit every pod, or a whole namespace, into them."""
    return [_identity(end) for end in ends.values() if end.get("holdsData")]
