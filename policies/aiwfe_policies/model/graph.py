"""Who can reach whom: the platform's declared workloads, NetworkPolicies, AuthorizationPolicies and
mTLS settings, indexed once per evaluation, and the questions the reachability rules ask of them.

A flow is what the platform intends (`stacks/flows.py` derives it from the components and the
stack's settings and hands it over in the pack config): a source and a destination, each a declared
workload (`namespace` + `workload`, its `app.kubernetes.io/name`) or a peer the stack does not
declare (`namespace` + `labels` + `serviceAccount`: the ingress gateway, the scraper, kube-dns,
istiod), and the ports. Kubernetes' and Istio's semantics as their docs state them:
- NetworkPolicy: a pod selected by a policy of a direction is isolated in it; a connection is then
  allowed when one rule of one selecting policy matches the peer and the port (an empty `from`/`to`
  or `ports` matches all). A peer with only a podSelector means the policy's own namespace.
- AuthorizationPolicy (sidecar-served ports only; ports the pod excludes from the sidecar and
  Istio's own 15020/15021/15090 bypass it): a DENY that matches refuses; when any ALLOW policy applies
  to the workload (a namespace-wide `{}` included), one of its rules must match.
- mTLS: a STRICT destination refuses plaintext: no DestinationRule for its host may set `tls.mode`
  DISABLE or SIMPLE for the port.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..engine import Resource
from .authz import authz_pattern_matches
from .destination import effective_policy, service_fqdn
from .props import dig, items, namespace_name, number, selector_matches

NAME_LABEL = "app.kubernetes.io/name"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
ISTIO_AGENT_PORTS = frozenset({15020, 15021, 15090})
_WORKLOAD_TEMPLATE = {
    "kubernetes:apps/v1:Deployment": ("spec", "template"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template"),
    "kubernetes:batch/v1:Job": ("spec", "template"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template"),
}
_NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
_NAMESPACE = "kubernetes:core/v1:Namespace"
_SERVICE = "kubernetes:core/v1:Service"


@dataclass(frozen=True)
class Endpoint:
    """One end of a flow, as the policies see it."""

    namespace: str
    labels: Mapping[str, Any]
    service_account: str
    name: str
    resource: Resource | None = None
    """The declared workload; None for a peer the stack does not declare."""
    sidecar_excluded: frozenset[int] = frozenset()

    def principal(self, trust_domain: str) -> str:
        return f"{trust_domain}/ns/{self.namespace}/sa/{self.service_account}"


@dataclass(frozen=True)
class Port:
    number: int
    protocol: str = "TCP"

    def __str__(self) -> str:
        return f"{self.number}" if self.protocol == "TCP" else f"{self.number}/{self.protocol}"


@dataclass
class Graph:
    """The stack's resources, indexed for the reachability questions."""

    resources: list[Resource]
    workloads: dict[tuple[str, str], Resource] = field(default_factory=dict)
    network_policies: dict[str, list[Resource]] = field(default_factory=dict)
    authorization_policies: dict[str, list[Resource]] = field(default_factory=dict)
    peer_authentications: dict[str, list[Resource]] = field(default_factory=dict)
    destination_rules: list[Resource] = field(default_factory=list)
    services: list[Resource] = field(default_factory=list)
    namespace_labels: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, resources: list[Resource]) -> Graph:
        graph = cls(resources)
        for resource in resources:
            namespace = namespace_name(resource)
            kind = resource.type.rsplit(":", 1)[-1]
            if resource.type in _WORKLOAD_TEMPLATE:
                name = dig(resource.props, *_WORKLOAD_TEMPLATE[resource.type], "metadata", "labels", NAME_LABEL)
                if name:
                    graph.workloads.setdefault((namespace, str(name)), resource)
            elif resource.type == _NETWORK_POLICY:
                graph.network_policies.setdefault(namespace, []).append(resource)
            elif resource.type.startswith("kubernetes:security.istio.io/") and kind == "AuthorizationPolicy":
                graph.authorization_policies.setdefault(namespace, []).append(resource)
            elif resource.type.startswith("kubernetes:security.istio.io/") and kind == "PeerAuthentication":
                graph.peer_authentications.setdefault(namespace, []).append(resource)
            elif resource.type.startswith("kubernetes:networking.istio.io/") and kind == "DestinationRule":
                graph.destination_rules.append(resource)
            elif resource.type == _SERVICE:
                graph.services.append(resource)
            elif resource.type == _NAMESPACE:
                name = dig(resource.props, "metadata", "name")
                labels = dict(dig(resource.props, "metadata", "labels") or {})
                graph.namespace_labels[str(name)] = {**labels, NAMESPACE_NAME_LABEL: str(name)}
        return graph

    # ------------------------------------------------------------ endpoints

    def endpoint(self, spec: Mapping[str, Any]) -> Endpoint | str:
        """A flow end as declared; a string says why it cannot be resolved."""
        namespace = str(spec.get("namespace") or "")
        workload = spec.get("workload")
        if workload:
            resource = self.workloads.get((namespace, str(workload)))
            if resource is None:
                return f"no workload {namespace}/{workload} is declared"
            template = dig(resource.props, *_WORKLOAD_TEMPLATE[resource.type]) or {}
            annotations = dig(template, "metadata", "annotations") or {}
            excluded = {int(p) for p in str(annotations.get("traffic.sidecar.istio.io/excludeInboundPorts") or "")
                        .split(",") if p.strip().isdigit()}
            account = dig(template, "spec", "serviceAccountName") or "default"
            return Endpoint(namespace, dict(dig(template, "metadata", "labels") or {}), str(account), str(workload),
                            resource, frozenset(excluded))
        labels = dict(spec.get("labels") or {})
        name = str(spec.get("name") or labels.get(NAME_LABEL) or next(iter(labels.values()), "") or namespace)
        return Endpoint(namespace, labels, str(spec.get("serviceAccount") or "default"), name)

    def labels_of_namespace(self, namespace: str) -> Mapping[str, Any]:
        return self.namespace_labels.get(namespace, {NAMESPACE_NAME_LABEL: namespace})

    # ------------------------------------------------------------ NetworkPolicy

    def isolating(self, endpoint: Endpoint, direction: str) -> list[Resource]:
        """The NetworkPolicies that select the endpoint's pods for `Ingress` or `Egress`."""
        found = []
        for policy in self.network_policies.get(endpoint.namespace, []):
            spec = policy.props.get("spec") or {}
            types = [str(t) for t in items(spec.get("policyTypes"))] or (
                ["Ingress", "Egress"] if spec.get("egress") is not None else ["Ingress"])
            if direction in types and selector_matches(spec.get("podSelector") or {}, endpoint.labels):
                found.append(policy)
        return found

    def network_allows(self, policy: Resource, direction: str, peer: Endpoint, port: Port) -> bool:
        spec = policy.props.get("spec") or {}
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for rule in items(spec.get(key)):
            if _ports_match(items(rule.get("ports")), port) and self._peer_listed(
                    items(rule.get(peers_key)), namespace_name(policy), peer):
                return True
        return False

    def _peer_listed(self, peers: list[Any], own_namespace: str, peer: Endpoint) -> bool:
        if not peers:
            return True
        for entry in peers:
            if not isinstance(entry, Mapping) or "ipBlock" in entry:
                continue  # addresses: not how pods of the flow are matched
            namespaces = entry.get("namespaceSelector")
            if namespaces is None:
                in_namespace = peer.namespace == own_namespace
            else:
                in_namespace = selector_matches(namespaces, self.labels_of_namespace(peer.namespace))
            pods = entry.get("podSelector")
            if in_namespace and (pods is None or selector_matches(pods, peer.labels)):
                return True
        return False

    # ------------------------------------------------------------ Istio

    def through_sidecar(self, endpoint: Endpoint, port: Port) -> bool:
        """Whether the destination's sidecar serves the port (so Istio's policies apply to it)."""
        return (endpoint.resource is not None and self.injected(endpoint.namespace)
                and port.number not in endpoint.sidecar_excluded and port.number not in ISTIO_AGENT_PORTS)

    def injected(self, namespace: str) -> bool:
        labels = self.labels_of_namespace(namespace)
        return labels.get("istio-injection") == "enabled" or "istio.io/rev" in labels

    def authorization_problem(self, source: Endpoint, destination: Endpoint, port: Port,
                              trust_domain: str) -> tuple[Resource | None, str] | None:
        """Why Istio would refuse the connection, or None."""
        applying = [p for p in self.authorization_policies.get(destination.namespace, [])
                    if _selects(p, destination)]
        principal = source.principal(trust_domain)
        for policy in applying:
            if str(dig(policy.props, "spec", "action") or "ALLOW") == "DENY" and any(
                    _rule_matches(r, source, principal, port) for r in items(dig(policy.props, "spec", "rules"))):
                return policy, f"denies {principal} on port {port}"
        allows = [p for p in applying if str(dig(p.props, "spec", "action") or "ALLOW") == "ALLOW"]
        if not allows:
            return None
        if any(_rule_matches(r, source, principal, port) for p in allows for r in items(dig(p.props, "spec", "rules"))):
            return None
        named = next((p for p in allows if items(dig(p.props, "spec", "rules"))), allows[0])
        return named, f"allows no rule for {principal} on port {port}"

    def plaintext_problem(self, destination: Endpoint, port: Port) -> tuple[Resource, str] | None:
        """A DestinationRule that sends plaintext (or TLS of its own) to a STRICT destination."""
        if not self.strict(destination, port):
            return None
        for host in self.service_hosts(destination):
            for rule in self.destination_rules:
                rule_host = str(dig(rule.props, "spec", "host") or "")
                if service_fqdn(rule_host, namespace_name(rule)) != host:
                    continue
                policy = effective_policy(rule.props.get("spec") or {}, float(port.number), None) or {}
                mode = dig(policy, "tls", "mode")
                if mode in ("DISABLE", "SIMPLE"):
                    return rule, f"sets tls.mode {mode} for {host} while its PeerAuthentication is STRICT"
        return None

    def strict(self, destination: Endpoint, port: Port) -> bool:
        mode = None
        for policy in self.peer_authentications.get(destination.namespace, []):
            spec = policy.props.get("spec") or {}
            selector = spec.get("selector")
            if selector is not None and not selector_matches(selector, destination.labels):
                continue
            port_mode = dig(spec, "portLevelMtls", str(port.number), "mode")
            mode = port_mode or dig(spec, "mtls", "mode") or mode
        return mode == "STRICT"

    def service_hosts(self, endpoint: Endpoint) -> list[str]:
        hosts = []
        for service in self.services:
            if namespace_name(service) != endpoint.namespace:
                continue
            selector = dig(service.props, "spec", "selector")
            if isinstance(selector, Mapping) and selector and all(endpoint.labels.get(k) == v
                                                                  for k, v in selector.items()):
                hosts.append(f"{dig(service.props, 'metadata', 'name')}.{endpoint.namespace}.svc.cluster.local")
        return hosts


def _ports_match(ports: list[Any], port: Port) -> bool:
    if not ports:
        return True
    for entry in ports:
        if not isinstance(entry, Mapping) or str(entry.get("protocol") or "TCP") != port.protocol:
            continue
        low, high = number(entry.get("port")), number(entry.get("endPort"))
        if low is None and entry.get("port") is None:
            return True  # every port of the protocol
        if low is not None and (low == port.number or (high is not None and low <= port.number <= high)):
            return True
    return False


def _selects(policy: Resource, endpoint: Endpoint) -> bool:
    selector = dig(policy.props, "spec", "selector")
    if selector is None:
        return True  # namespace-wide
    return all(endpoint.labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _rule_matches(rule: Any, source: Endpoint, principal: str, port: Port) -> bool:
    """An AuthorizationPolicy rule against a connection (request-level conditions, such as a JWT the
    request carries, count as met: the flow is allowed for requests that satisfy them)."""
    if not isinstance(rule, Mapping):
        return False
    sources = items(rule.get("from"))
    if sources and not any(_source_matches(s.get("source") or {}, source, principal) for s in sources):
        return False
    operations = items(rule.get("to"))
    return not operations or any(_operation_port(o.get("operation") or {}, port) for o in operations)


def _source_matches(source: Mapping[str, Any], endpoint: Endpoint, principal: str) -> bool:
    if "principals" in source and not any(authz_pattern_matches(p, principal) for p in items(source["principals"])):
        return False
    if any(authz_pattern_matches(p, principal) for p in items(source.get("notPrincipals"))):
        return False
    if "namespaces" in source and not any(authz_pattern_matches(n, endpoint.namespace)
                                          for n in items(source["namespaces"])):
        return False
    return not any(authz_pattern_matches(n, endpoint.namespace) for n in items(source.get("notNamespaces")))


def _operation_port(operation: Mapping[str, Any], port: Port) -> bool:
    if "ports" in operation and str(port.number) not in {str(p) for p in items(operation["ports"])}:
        return False
    return str(port.number) not in {str(p) for p in items(operation.get("notPorts"))}


def ports_of(flow: Mapping[str, Any]) -> Iterator[Port]:
    for entry in items(flow.get("ports")):
        text = str(entry)
        number_text, _, protocol = text.partition("/")
        if number_text.isdigit():
            yield Port(int(number_text), protocol.upper() or "TCP")


def allow_all_rules(policies: Iterable[Resource]) -> Iterator[tuple[Resource, str]]:
    """ALLOW rules any caller meets: `{}`, no `from`, or a `*` principal or namespace."""
    for policy in policies:
        if str(dig(policy.props, "spec", "action") or "ALLOW") != "ALLOW":
            continue
        for index, rule in enumerate(items(dig(policy.props, "spec", "rules"))):
            if not isinstance(rule, Mapping):
                continue
            sources = items(rule.get("from"))
            if not sources:
                yield policy, f"rules[{index}] has no `from`: any caller is allowed"
                continue
            for source in sources:
                block = source.get("source") or {}
                wildcard = [k for k in ("principals", "namespaces") if "*" in {str(v) for v in items(block.get(k))}]
                if wildcard or not block:
                    yield policy, f"rules[{index}] allows any {' or '.join(wildcard) or 'source'} (`*` or `{{}}`)"
