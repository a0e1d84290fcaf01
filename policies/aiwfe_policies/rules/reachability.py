"""Reachability on the platform graph: every flow the platform intends is allowed end to end by the
NetworkPolicies on both sides, the Istio AuthorizationPolicies and consistent mTLS; and nothing is
open to everyone (model/graph.py has the semantics)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..engine import Context, Option, Resource, stack_rule
from ..model.graph import Endpoint, Graph, allow_all_rules, ports_of
from ..model.props import dig, items, namespace_name

FLOWS = "platform-flows-require-allowed-paths"
ALLOW_ALL = "platform-network-disallow-allow-all"


def label(resource: Resource) -> str:
    return (f"{resource.type.rsplit(':', 1)[-1]} {namespace_name(resource)}/"
            f"{dig(resource.props, 'metadata', 'name') or resource.name}")


@stack_rule(FLOWS, severity="high",
            description="Each flow the platform needs (gateway to the apps and Keycloak, WebSocket to Redis, Redis "
                        "to Redis, Keycloak to its database and peers, scrapers to metrics ports, DNS, istiod) is "
                        "allowed by the NetworkPolicies on both sides, by Istio's AuthorizationPolicies and by "
                        "consistent mTLS: one missing allowance is an outage nobody sees until traffic flows.",
            options={
                "flows": Option("array", [], "The intended flows: {name, from, to, ports} (stacks/flows.py writes "
                                              "them into the pack config)."),
                "trustDomain": Option("string", "cluster.local", "The mesh's trust domain (SPIFFE principals)."),
            })
def flows_allowed(resources: list[Resource], context: Context) -> Iterable[tuple[Resource | None, str]]:
    """For every flow of the `flows` option and each of its ports (`6379`, `53/UDP`): a source that some
    NetworkPolicy isolates for Egress has a rule of one of those policies allowing the destination (namespace
    and pod labels) and port; a destination isolated for Ingress likewise allows the source; when the port goes
    through the destination's sidecar (an injected namespace, not excluded, not Istio's own), no DENY
    AuthorizationPolicy matches the source's principal and, if ALLOW policies apply to the destination, one of
    their rules admits the principal and port; and no DestinationRule for the destination's Service sets
    tls.mode DISABLE or SIMPLE while its PeerAuthentication is STRICT. A declared workload end
    (`workload`) must exist; other ends (`labels`, `serviceAccount`) are peers outside the stack."""
    flows = items(context.options.get("flows"))
    if not flows:
        return  # nothing intended: nothing to read (values unknown at preview stay untouched)
    graph = Graph.of(resources)
    trust_domain = str(context.options.get("trustDomain") or "cluster.local")
    for flow in flows:
        if not isinstance(flow, Mapping):
            continue
        source, destination = graph.endpoint(flow.get("from") or {}), graph.endpoint(flow.get("to") or {})
        name = str(flow.get("name") or "")
        for end in (source, destination):
            if isinstance(end, str):
                yield None, f"flow {name}: {end}"
        if isinstance(source, str) or isinstance(destination, str):
            continue
        for port in ports_of(flow):
            where = f"flow {name or f'{source.name} -> {destination.name}'}:{port}"
            yield from _network(graph, where, source, destination, port)
            if graph.through_sidecar(destination, port):
                denied = graph.authorization_problem(source, destination, port, trust_domain)
                if denied is not None:
                    policy, why = denied
                    yield policy, f"{where}: AuthorizationPolicy {label(policy) if policy else ''} {why}"
                plaintext = graph.plaintext_problem(destination, port)
                if plaintext is not None:
                    rule, why = plaintext
                    yield rule, f"{where}: DestinationRule {label(rule)} {why}"


def _network(graph: Graph, where: str, source: Endpoint, destination: Endpoint, port: Any
             ) -> Iterable[tuple[Resource, str]]:
    for direction, own, peer in (("Egress", source, destination), ("Ingress", destination, source)):
        if own.resource is None:
            continue  # a peer outside the stack: its policies are not ours to judge
        policies = graph.isolating(own, direction)
        if policies and not any(graph.network_allows(p, direction, peer, port) for p in policies):
            # Name the policy with rules of that direction (the app's own), not a default-deny.
            key = direction.lower()
            named = next((p for p in policies if items(dig(p.props, "spec", key))), policies[0])
            towards = "to" if direction == "Egress" else "from"
            others = " (nor does any other policy selecting it)" if len(policies) > 1 else ""
            yield named, (f"{where}: NetworkPolicy {namespace_name(named)}/{dig(named.props, 'metadata', 'name')} "
                          f"allows no {key} {towards} {peer.namespace}/{peer.name} on port {port}{others}")


@stack_rule(ALLOW_ALL, severity="high",
            description="Nothing is open to everyone: an ALLOW AuthorizationPolicy rule any caller meets, or a "
                        "NetworkPolicy admitting any pod (or a whole namespace) into a data store, undoes the "
                        "per-flow allowances.",
            options={"dataStores": Option("array", [], "Workloads ({namespace, workload}) that hold data: Redis, "
                                                       "Keycloak's PostgreSQL (stacks/flows.py writes them).")})
def no_allow_all(resources: list[Resource], context: Context) -> Iterable[tuple[Resource, str]]:
    """ALLOW AuthorizationPolicies: no rule without `from`, with an empty source, or with a `*` principal or
    namespace (a policy with no rules, `{}`, allows nothing and is fine). NetworkPolicies that select a data
    store of the `dataStores` option for Ingress: no rule with an empty or missing `from`, and no peer that
    names a namespace without a podSelector (every pod of it)."""
    authorization = [r for r in resources if r.type.startswith("kubernetes:security.istio.io/")
                     and r.type.endswith(":AuthorizationPolicy")]
    for policy, why in allow_all_rules(authorization):
        yield policy, f"AuthorizationPolicy {label(policy)}: {why}"
    stores = items(context.options.get("dataStores"))
    if not stores:
        return
    graph = Graph.of(resources)
    for store in stores:
        endpoint = graph.endpoint(store) if isinstance(store, Mapping) else None
        if not isinstance(endpoint, Endpoint):
            continue
        for policy in graph.isolating(endpoint, "Ingress"):
            for index, rule in enumerate(items(dig(policy.props, "spec", "ingress"))):
                peers = items(rule.get("from"))
                if not peers:
                    yield policy, (f"NetworkPolicy {label(policy)}: ingress[{index}] admits every pod into "
                                   f"the data store {endpoint.namespace}/{endpoint.name}")
                for peer in peers:
                    if isinstance(peer, Mapping) and "namespaceSelector" in peer and "podSelector" not in peer:
                        yield policy, (f"NetworkPolicy {label(policy)}: ingress[{index}] admits a whole namespace "
                                       f"into the data store {endpoint.namespace}/{endpoint.name}")
