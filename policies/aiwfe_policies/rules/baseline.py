"""Baselines a reviewer expects at this level: GCP exposure (firewall sources, Cloud SQL private and
regional), the identity service's production hardening (realm, clustered cache), and a shutdown the
grace period can hold."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..contract import GOOGLE_LB_SOURCE_RANGES, SHUTDOWN_DRAIN_ENV, SHUTDOWN_EXIT_SECONDS
from ..engine import Context, Option, Resource, resource_rule, stack_rule
from ..model.props import dig, items, namespace_name, number
from .keycloak import CONFIG_MAP, SQL_INSTANCE, is_keycloak, realms
from .kubernetes import DEPLOYMENT, STATEFUL_SET, WORKLOADS, expected_replicas, pod_spec

FIREWALL = "gcp:compute/firewall:Firewall"
BACKEND_SERVICE = "gcp:compute/backendService:BackendService"
HEALTH_CHECK = "gcp:compute/healthCheck:HealthCheck"
GATEWAY_PORTS = "gcp-compute-firewall-require-gateway-ports"
_GOOGLE = tuple(ipaddress.ip_network(r) for r in GOOGLE_LB_SOURCE_RANGES)
DEFAULT_GRACE_SECONDS = 30.0


# ---------------------------------------------------------------- GCP exposure

@resource_rule("gcp-compute-firewall-require-google-lb-sources", types=(FIREWALL,), severity="high",
               description="An ingress firewall rule the stack opens admits only Google's front ends and health "
                            "checkers: the gateway pods are reached through the load balancer, never directly.")
def firewall_sources(resource: Resource, _: Context) -> Iterable[str]:
    """Firewalls with direction INGRESS (the default) that allow traffic and are not disabled: sourceRanges is set,
    every range lies within 35.191.0.0/16 or 130.211.0.0/22, and no sourceTags or sourceServiceAccounts widen it."""
    props = resource.props
    if str(props.get("direction") or "INGRESS") != "INGRESS" or props.get("disabled") is True \
            or not items(props.get("allows")):
        return
    ranges = [str(r) for r in items(props.get("sourceRanges"))]
    if not ranges:
        yield "no sourceRanges: the rule admits whatever its tags or service accounts select"
    for text in ranges:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            yield f"sourceRanges {text!r} is not a CIDR"
            continue
        if not any(network.version == g.version and network.subnet_of(g) for g in _GOOGLE):
            yield f"sourceRanges {text} is outside Google's front-end and health-check ranges " \
                  f"({', '.join(GOOGLE_LB_SOURCE_RANGES)})"
    for key in ("sourceTags", "sourceServiceAccounts"):
        if items(props.get(key)):
            yield f"{key} admits other VMs next to the load balancer's ranges"


def _last_segment(link: Any) -> str:
    return str(link).rstrip("/").rsplit("/", 1)[-1]


def _health_check_port(check: Resource) -> int | None:
    for key in ("httpHealthCheck", "httpsHealthCheck", "http2HealthCheck", "tcpHealthCheck", "grpcHealthCheck"):
        port = number(dig(check.props, key, "port"))
        if port is not None:
            return int(port)
    return None


def _opens(firewall: Resource, port: int) -> bool:
    """An enabled ingress rule admitting tcp `port` from both of Google's ranges."""
    props = firewall.props
    if str(props.get("direction") or "INGRESS") != "INGRESS" or props.get("disabled") is True:
        return False
    ranges = []
    for text in items(props.get("sourceRanges")):
        try:
            ranges.append(ipaddress.ip_network(str(text), strict=False))
        except ValueError:
            continue
    covered = [*ipaddress.collapse_addresses(r for r in ranges if r.version == 4)]
    if not all(any(g.subnet_of(c) for c in covered) for g in _GOOGLE):  # blocks may be split
        return False
    for allow in items(props.get("allows")):
        if not isinstance(allow, Mapping) or str(allow.get("protocol", "")).lower() not in ("tcp", "all", "6"):
            continue
        ports = [str(p) for p in items(allow.get("ports"))]
        if not ports:
            return True
        for spec in ports:
            low, _, high = spec.partition("-")
            if low.isdigit() and (high or low).isdigit() and int(low) <= port <= int(high or low):
                return True
    return False


def _describe(firewall: Resource) -> str:
    allows = [a for a in items(firewall.props.get("allows")) if isinstance(a, Mapping)]
    ports = [str(p) for a in allows for p in items(a.get("ports"))]
    return f"{firewall.props.get('name') or firewall.name} opens {', '.join(ports) or 'all ports'}"


@stack_rule(GATEWAY_PORTS, severity="high",
            description="The firewall opens the ports the load balancer sends to: the gateway pods' traffic "
                        "port (NEG endpoints) and the health check's port. With only the health port open the "
                        "backends look healthy and every request is dropped.",
            options={"gatewayTargetPort": Option(
                "integer", 0, "The gateway pods' traffic port the NEG endpoints point at "
                "(settings: loadBalancer.gatewayHttpPort); 0 checks the health check ports only.", minimum=0)})
def firewall_gateway_ports(resources: list[Resource], context: Context) -> Iterable[tuple[Resource | None, str]]:
    """For each backend service whose backends are network endpoint groups: tcp on the pack config's
    gatewayTargetPort and on the port of each of its health checks (HealthCheck resources of the
    stack, by name) is opened by at least one enabled INGRESS firewall whose sourceRanges (merged)
    cover both 35.191.0.0/16 and 130.211.0.0/22 (ports lists and ranges such as 8000-8100 are read;
    no ports means all)."""
    firewalls = [r for r in resources if r.type == FIREWALL]
    checks = {str(r.props.get("name") or r.name): r for r in resources if r.type == HEALTH_CHECK}
    target = int(number(context.options.get("gatewayTargetPort")) or 0)
    for backend in resources:
        if backend.type != BACKEND_SERVICE or not any(
                "/networkEndpointGroups/" in str(b.get("group", "")) for b in items(backend.props.get("backends"))
                if isinstance(b, Mapping)):
            continue
        wanted: dict[int, str] = {target: "the gateway pods' traffic port, gatewayTargetPort"} if target else {}
        links = backend.props.get("healthChecks")
        for link in items(links) or ([links] if isinstance(links, str) else []):
            check = checks.get(_last_segment(link))
            port = _health_check_port(check) if check else None
            if port is not None:
                wanted.setdefault(port, f"the port of health check {_last_segment(link)}")
        opened = "; ".join(sorted(_describe(f) for f in firewalls)) or "the stack declares no firewall"
        for port, why in sorted(wanted.items()):
            if not any(_opens(f, port) for f in firewalls):
                yield backend, (f"backend service {backend.props.get('name') or backend.name} sends to tcp:{port} "
                                f"({why}) but no ingress firewall opens it to Google's ranges ({opened})")


@resource_rule("gcp-sql-databaseinstance-require-private-ip", types=(SQL_INSTANCE,), severity="critical",
               description="Cloud SQL has no public IP and sits on the VPC's private range: the identity database "
                           "is never one firewall mistake away from the internet.")
def sql_private(resource: Resource, _: Context) -> Iterable[str]:
    """settings.ipConfiguration.ipv4Enabled is false (unset means a public IP) and privateNetwork is set."""
    ip = dig(resource.props, "settings", "ipConfiguration") or {}
    if ip.get("ipv4Enabled") is not False:
        yield "settings.ipConfiguration.ipv4Enabled must be false (unset gives the instance a public IP)"
    if not ip.get("privateNetwork"):
        yield "settings.ipConfiguration.privateNetwork is not set (no private IP on the VPC)"


@resource_rule("gcp-sql-databaseinstance-require-regional-availability", types=(SQL_INSTANCE,), severity="high",
               description="Prod Cloud SQL is REGIONAL: a zone outage fails over to the standby instead of "
                           "stopping every login.", prod_only=True)
def sql_regional(resource: Resource, _: Context) -> Iterable[str]:
    """On prod stacks, settings.availabilityType is REGIONAL (unset means ZONAL)."""
    value = dig(resource.props, "settings", "availabilityType")
    if value != "REGIONAL":
        yield f"settings.availabilityType is {value or 'unset (ZONAL)'}; prod needs REGIONAL"


# ---------------------------------------------------------------- identity baseline

@resource_rule("keycloak-realm-require-production-hardening", types=(CONFIG_MAP,), severity="high",
               description="The realm follows the Keycloak server-admin guide's production baseline: TLS required "
                           "for external requests, brute-force detection on, no self-registration, one account "
                           "per e-mail.")
def realm_hardening(resource: Resource, _: Context) -> Iterable[str]:
    """For each `<realm>-realm.json` of a ConfigMap that is a JSON object: sslRequired is `external` or `all`,
    bruteForceProtected is true, registrationAllowed is not true and duplicateEmailsAllowed is not true."""
    for key, realm in realms(resource):
        if not isinstance(realm, Mapping):
            continue
        if realm.get("sslRequired") not in ("external", "all"):
            yield f"{key}: sslRequired is {realm.get('sslRequired')!r}; use 'external' or 'all'"
        if realm.get("bruteForceProtected") is not True:
            yield f"{key}: bruteForceProtected must be true"
        if realm.get("registrationAllowed") is True:
            yield f"{key}: registrationAllowed lets anyone create an account"
        if realm.get("duplicateEmailsAllowed") is True:
            yield f"{key}: duplicateEmailsAllowed lets two accounts share an e-mail"


@stack_rule("keycloak-workload-require-clustered-cache", severity="high",
            description="Keycloak with more than one replica runs the distributed cache: with `local` caches "
                        "(or start-dev) each replica keeps its own sessions and users are logged out at random.")
def clustered_cache(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """Each Deployment or StatefulSet labelled app.kubernetes.io/name=keycloak whose replicas (spec.replicas, or
    the HPA's minReplicas) exceed 1: no container runs `start-dev`, and KC_CACHE, when set, is `ispn`."""
    for workload in (r for r in resources if r.type in (DEPLOYMENT, STATEFUL_SET) and is_keycloak(r)):
        if expected_replicas(workload, resources) <= 1:
            continue
        for container in items((pod_spec(workload) or {}).get("containers")):
            words = [str(w) for w in (*items(container.get("command")), *items(container.get("args")))]
            if "start-dev" in words:
                yield workload, f"container {container.get('name')} runs start-dev (local caches, no cluster)"
            env = {str(e.get("name")): e.get("value") for e in items(container.get("env")) if isinstance(e, Mapping)}
            if "KC_CACHE" in env and env["KC_CACHE"] != "ispn":
                yield workload, f"container {container.get('name')} sets KC_CACHE={env['KC_CACHE']!r}; " \
                                "replicas need 'ispn'"


# ---------------------------------------------------------------- workload lifecycle

@stack_rule("kubernetes-workload-require-grace-covers-shutdown", severity="high",
            description="The termination grace period holds the preStop pause, the app's drain after SIGTERM "
                        f"and {SHUTDOWN_EXIT_SECONDS} s to exit: otherwise SIGKILL cuts the connections the drain "
                        "was closing.")
def grace_covers_shutdown(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """Each workload container with a preStop `sleep` (seconds): terminationGracePeriodSeconds (unset = 30) is at
    least that pause + its drain + 5 s, where the drain is the container's SHUTDOWN_DRAIN_SECONDS (a literal env
    value, or the ConfigMap key it references in the same namespace; none = 0)."""
    config_maps = {(namespace_name(r), str(dig(r.props, "metadata", "name"))): r for r in resources
                   if r.type == CONFIG_MAP}
    for workload in (r for r in resources if r.type in WORKLOADS):
        spec = pod_spec(workload) or {}
        grace = number(spec.get("terminationGracePeriodSeconds"))
        grace = DEFAULT_GRACE_SECONDS if grace is None else grace
        for container in items(spec.get("containers")):
            pause = number(dig(container, "lifecycle", "preStop", "sleep", "seconds"))
            if pause is None:
                continue
            drain = _drain_seconds(container, namespace_name(workload), config_maps)
            if drain is None:
                yield workload, f"container {container.get('name')}: {SHUTDOWN_DRAIN_ENV} is not a whole number"
                continue
            needed = pause + drain + SHUTDOWN_EXIT_SECONDS
            if grace < needed:
                yield workload, (f"terminationGracePeriodSeconds {grace:g} < preStop {pause:g} s + drain {drain:g} s "
                                 f"+ {SHUTDOWN_EXIT_SECONDS} s to exit ({needed:g} s)")


def _drain_seconds(container: Mapping[str, Any], namespace: str,
                   config_maps: Mapping[tuple[str, str], Resource]) -> float | None:
    for entry in _env(container):
        if entry.get("name") != SHUTDOWN_DRAIN_ENV:
            continue
        value = entry.get("value")
        ref = dig(entry, "valueFrom", "configMapKeyRef")
        if value is None and isinstance(ref, Mapping):
            source = config_maps.get((namespace, str(ref.get("name"))))
            value = dig(source.props, "data", str(ref.get("key"))) if source is not None else None
            if value is None:
                return 0.0  # a map not declared here: nothing to judge by
        text = str(value)
        return float(text) if text.isdigit() else None
    return 0.0


def _env(container: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from (e for e in items(container.get("env")) if isinstance(e, Mapping))
