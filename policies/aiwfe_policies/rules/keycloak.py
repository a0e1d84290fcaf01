"""Identity rules: Keycloak's availability, the realm it imports, its database, and its exposure.

The realm is judged where it is declared: a ConfigMap data key `<realm>-realm.json` (the file
`kc.sh start --import-realm` reads). Secrets never live there, so the rules can read it in full.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..contract import KEYCLOAK_TOKEN_BOUNDS
from ..engine import Context, Resource, resource_rule, stack_rule
from .kubernetes import (
    DEPLOYMENT,
    SERVICE,
    STATEFUL_SET,
    _of_type,
    dig,
    expected_replicas,
    items,
    namespace_of,
    number,
    pod_template_labels,
)

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
VIRTUAL_SERVICE = "kubernetes:networking.istio.io/v1:VirtualService"
SQL_INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
KEYCLOAK_APP = "keycloak"
PROD_MIN_REPLICAS = 3
MANAGEMENT_PORT = 9000
# Paths that must never be reachable from the internet: the admin console and API, the master
# realm (where the server administrators log in), and the management endpoints if ever served on 8080.
FORBIDDEN_ROOTS = ("/admin", "/realms/master", "/metrics", "/health")
# Samples a regex match is tried against (Istio regexes are RE2, matched against the whole path).
FORBIDDEN_SAMPLES = ("/admin", "/admin/", "/admin/master/console/", "/admin/realms/aiwfe/users",
                     "/realms/master", "/realms/master/", "/realms/master/protocol/openid-connect/token",
                     "/metrics", "/health", "/health/ready")
PLACEHOLDER = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:[^}]*)?\}$")


def realms(resource: Resource) -> Iterator[tuple[str, Any]]:
    """(data key, parsed realm) of every realm file a ConfigMap carries."""
    data = dig(resource.props, "data")
    if not isinstance(data, Mapping):
        return
    for key, text in data.items():
        if str(key).endswith("-realm.json"):
            try:
                yield str(key), json.loads(text)
            except (TypeError, ValueError):
                yield str(key), None


def secret_bearers(resource: Resource) -> Iterator[tuple[str, Any, list[Any], list[Any]]]:
    """(data key, parsed document, its clients, its identity providers) for every file of a ConfigMap
    that can carry client secrets: whole realms (`<realm>-realm.json`, what the import reads) and the
    reconcile Job's pieces (`client-<id>.json`, `idp-<alias>.json`)."""
    for key, realm in realms(resource):
        ok = isinstance(realm, Mapping)
        yield key, realm, _clients(realm) if ok else [], items(realm.get("identityProviders")) if ok else []
    data = dig(resource.props, "data")
    if not isinstance(data, Mapping):
        return
    for key, text in data.items():
        name = str(key)
        if not name.endswith(".json") or not name.startswith(("client-", "idp-")):
            continue
        try:
            document = json.loads(text)
        except (TypeError, ValueError):
            document = None
        piece = [document] if isinstance(document, Mapping) else []
        yield (name, document, piece, []) if name.startswith("client-") else (name, document, [], piece)


def _realm_problem(realm: Any) -> str | None:
    return None if isinstance(realm, Mapping) else "is not a JSON object"


# ---------------------------------------------------------------- availability

def is_keycloak(workload: Resource) -> bool:
    return pod_template_labels(workload).get("app.kubernetes.io/name") == KEYCLOAK_APP


@stack_rule("keycloak-workload-require-ha-replicas", severity="high",
            description=f"Prod Keycloak runs at least {PROD_MIN_REPLICAS} replicas: logins keep working "
                        "with one replica drained and another failing.", prod_only=True)
def keycloak_replicas(resources: list[Resource], context: Context) -> Iterable[tuple[Resource, str]]:
    """On prod stacks, each Deployment or StatefulSet whose pod template is labelled app.kubernetes.io/name=keycloak
    expects at least 3 replicas (spec.replicas, or the minReplicas of the HPA targeting it; unset = 1)."""
    for workload in _of_type(resources, DEPLOYMENT, STATEFUL_SET):
        if is_keycloak(workload):
            replicas = expected_replicas(workload, resources)
            if replicas < PROD_MIN_REPLICAS:
                yield workload, f"Keycloak runs {replicas:.0f} replica(s); prod needs at least {PROD_MIN_REPLICAS}"


# ---------------------------------------------------------------- the realm

@resource_rule("keycloak-realm-require-token-lifespans-within-bounds", types=(CONFIG_MAP,), severity="high",
               description="Realm token lifespans stay within the settings' bounds (5 min access tokens, "
                           "refresh tokens that die with a 30 min idle session): a leaked token is short-lived.")
def token_lifespans(resource: Resource, _: Context) -> Iterable[str]:
    """For each ConfigMap data key `<realm>-realm.json` (reported when not a JSON object): accessTokenLifespan is
    60..900 s, ssoSessionIdleTimeout 300..3600 s, ssoSessionMaxLifespan 1800..86400 s and clientSessionIdleTimeout
    0..3600 s (each must be set), and clientSessionIdleTimeout does not exceed ssoSessionIdleTimeout."""
    for key, realm in realms(resource):
        problem = _realm_problem(realm)
        if problem:
            yield f"{key} {problem}"
            continue
        for field, (low, high) in KEYCLOAK_TOKEN_BOUNDS.items():
            value = number(realm.get(field))
            if value is None or not low <= value <= high:
                yield f"{key}: {field} is {realm.get(field)!r}; must be {low}..{high} s"
        idle, client_idle = number(realm.get("ssoSessionIdleTimeout")), number(realm.get("clientSessionIdleTimeout"))
        if idle is not None and client_idle is not None and client_idle > idle:
            yield f"{key}: clientSessionIdleTimeout ({client_idle:.0f}) exceeds ssoSessionIdleTimeout ({idle:.0f})"


def _clients(realm: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in items(realm.get("clients")) if isinstance(c, Mapping)]


@resource_rule("keycloak-realm-public-client-require-pkce", types=(CONFIG_MAP,), severity="critical",
               description="Public (browser) clients use the code flow with PKCE S256 only, and exact https "
                           "redirect URIs and origins: no implicit flow, no password grant, no '*'.")
def public_client_pkce(resource: Resource, _: Context) -> Iterable[str]:
    """For each client with publicClient true in a ConfigMap's `<realm>-realm.json`:
    attributes.pkce.code.challenge.method is S256, implicitFlowEnabled is not true, directAccessGrantsEnabled is
    explicitly false (absent means enabled), redirectUris is not empty, and every redirectUris and webOrigins entry
    is an https:// URL without `*`. Confidential clients are skipped."""
    for key, realm in realms(resource):
        if _realm_problem(realm):
            yield f"{key} {_realm_problem(realm)}"
            continue
        for client in _clients(realm):
            if client.get("publicClient") is not True:
                continue
            name = f"{key}: client {client.get('clientId')}"
            if dig(client, "attributes", "pkce.code.challenge.method") != "S256":
                yield f"{name}: attributes.pkce.code.challenge.method must be S256"
            if client.get("implicitFlowEnabled") is True:
                yield f"{name}: implicitFlowEnabled must be false"
            # Keycloak enables direct access grants when the field is absent.
            if client.get("directAccessGrantsEnabled") is not False:
                yield f"{name}: directAccessGrantsEnabled must be false (no password grant for browsers)"
            for field in ("redirectUris", "webOrigins"):
                values = items(client.get(field))
                if field == "redirectUris" and not values:
                    yield f"{name}: redirectUris is empty"
                for value in values:
                    if not isinstance(value, str) or "*" in value or not value.startswith("https://"):
                        yield f"{name}: {field} entry {value!r} must be an exact https URL without '*'"


@resource_rule("keycloak-realm-disallow-literal-client-secret", types=(CONFIG_MAP,), severity="critical",
               description="Confidential client and identity-provider secrets in a realm ConfigMap (the "
                           "import's realm or the reconcile Job's pieces) are ${ENV} placeholders filled from "
                           "Secret-backed env, never literals.")
def no_literal_client_secret(resource: Resource, _: Context) -> Iterable[str]:
    """In each ConfigMap's `<realm>-realm.json`, and in the realm reconcile's `client-*.json` and
    `idp-*.json` pieces, every client's `secret` and every identity provider's config.clientSecret is
    absent, empty, or a whole `${ENV}` or `${ENV:default}` placeholder; any other value is reported
    as a literal."""
    for key, document, clients, idps in secret_bearers(resource):
        if _realm_problem(document):
            yield f"{key} {_realm_problem(document)}"
            continue
        for client in clients:
            secret = client.get("secret")
            if secret not in (None, "") and not (isinstance(secret, str) and PLACEHOLDER.match(secret)):
                yield f"{key}: client {client.get('clientId')} has a literal secret; use a ${{ENV}} placeholder"
        for idp in idps:
            secret = dig(idp, "config", "clientSecret")
            if secret not in (None, "") and not (isinstance(secret, str) and PLACEHOLDER.match(secret)):
                yield f"{key}: identity provider {dig(idp, 'alias')} has a literal clientSecret"


# ---------------------------------------------------------------- the database

@resource_rule("gcp-sql-databaseinstance-require-deletion-protection-and-backups", types=(SQL_INSTANCE,),
               severity="high",
               description="Prod Cloud SQL instances are protected from deletion (GCP, Pulumi provider and "
                           "`protect`) and keep automated backups with point-in-time recovery.", prod_only=True)
def sql_protection(resource: Resource, context: Context) -> Iterable[str]:
    """On prod stacks, every Cloud SQL DatabaseInstance: deletionProtection is not false (unset passes),
    settings.deletionProtectionEnabled is true, the resource is declared with protect=True, and
    settings.backupConfiguration has enabled and pointInTimeRecoveryEnabled true."""
    props = resource.props
    if dig(props, "deletionProtection") is False:
        yield "deletionProtection is false (the provider would delete the instance)"
    if dig(props, "settings", "deletionProtectionEnabled") is not True:
        yield "settings.deletionProtectionEnabled must be true"
    if not resource.protect:
        yield "the resource must be declared with protect=True"
    backups = dig(props, "settings", "backupConfiguration") or {}
    if backups.get("enabled") is not True:
        yield "settings.backupConfiguration.enabled must be true"
    if backups.get("pointInTimeRecoveryEnabled") is not True:
        yield "settings.backupConfiguration.pointInTimeRecoveryEnabled must be true"


# ---------------------------------------------------------------- exposure

def keycloak_hosts(resources: list[Resource]) -> set[str]:
    """Every name a route may use for a Keycloak Service (short names resolve in the VS's namespace)."""
    hosts: set[str] = set()
    for service in _of_type(resources, SERVICE):
        if dig(service.props, "spec", "selector", "app.kubernetes.io/name") == KEYCLOAK_APP:
            name, ns = dig(service.props, "metadata", "name"), namespace_of(service)
            hosts |= {f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local", f"short:{ns}/{name}"}
    return hosts or {"keycloak.keycloak", "keycloak.keycloak.svc", "keycloak.keycloak.svc.cluster.local",
                     "short:keycloak/keycloak"}


def _to_keycloak(destinations: Any, hosts: set[str], namespace: Any) -> bool:
    for entry in items(destinations):
        host = str(dig(entry, "destination", "host") or "")
        if host in hosts or f"short:{namespace}/{host}" in hosts:
            return True
    return False


def _root_of(path: str) -> str | None:
    return next((r for r in FORBIDDEN_ROOTS if path == r or path.startswith(r + "/")), None)


def uri_reach(uri: Any, ignore_case: bool) -> tuple[set[str], set[str]]:
    """(forbidden roots the condition can match a path under, roots whose whole subtree it matches)."""
    if not isinstance(uri, Mapping):
        return set(FORBIDDEN_ROOTS), set(FORBIDDEN_ROOTS)
    fold = (lambda text: text.lower()) if ignore_case else (lambda text: text)
    if "exact" in uri:
        root = _root_of(fold(str(uri["exact"])))
        return ({root} if root else set()), set()
    if "prefix" in uri:
        value = fold(str(uri["prefix"]))
        covered = {r for r in FORBIDDEN_ROOTS if r.startswith(value)}
        root = _root_of(value)
        return covered | ({root} if root else set()), covered
    if "regex" in uri:
        try:
            pattern = re.compile(str(uri["regex"]), re.IGNORECASE if ignore_case else 0)
        except re.error:
            return set(FORBIDDEN_ROOTS), set()
        hit = {_root_of(sample) for sample in FORBIDDEN_SAMPLES if pattern.fullmatch(sample)}
        return {r for r in hit if r}, set()
    return set(FORBIDDEN_ROOTS), set(FORBIDDEN_ROOTS)


UNCONDITIONAL_KEYS = {"uri", "ignoreUriCase", "name"}


@stack_rule("keycloak-admin-console-disallow-public-route", severity="critical",
            description="No gateway route forwards /admin, /realms/master, /metrics or /health to Keycloak, "
                        "nor anything to its management port: the admin console is never on the internet.")
def admin_console_not_public(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """Each networking.istio.io/v1 VirtualService bound to a gateway other than `mesh` has no tcp or tls route to a
    Keycloak Service (selector app.kubernetes.io/name=keycloak; else keycloak.keycloak), no http destination to it on
    port 9000, and no http route to it whose uri (none, exact, prefix, regex on samples) reaches /admin, /realms/master,
    /metrics or /health, unless an earlier uri-only route to another backend already took all of that root."""
    hosts = keycloak_hosts(resources)
    for vs in _of_type(resources, VIRTUAL_SERVICE):
        gateways = [g for g in items(dig(vs.props, "spec", "gateways")) if g != "mesh"]
        if not gateways:
            continue  # mesh-internal routes are not public
        namespace = namespace_of(vs)
        for kind in ("tcp", "tls"):
            for route in items(dig(vs.props, "spec", kind)):
                if _to_keycloak(route.get("route"), hosts, namespace):
                    yield vs, f"a {kind} route forwards to Keycloak, bypassing the path rules"
        # First match wins: a forbidden root is safe once an unconditional earlier route took all of it.
        absorbed: set[str] = set()
        for index, route in enumerate(items(dig(vs.props, "spec", "http"))):
            to_keycloak = _to_keycloak(route.get("route"), hosts, namespace)
            for dest in items(route.get("route")):
                port = number(dig(dest, "destination", "port", "number"))
                if _to_keycloak([dest], hosts, namespace) and port == MANAGEMENT_PORT:
                    yield vs, f"http[{index}] forwards to Keycloak's management port {MANAGEMENT_PORT}"
            for match in items(route.get("match")) or [{}]:
                hit, covered = uri_reach(match.get("uri"), match.get("ignoreUriCase") is True)
                if to_keycloak and hit - absorbed:
                    yield vs, f"http[{index}] can forward {', '.join(sorted(hit - absorbed))} to Keycloak"
                    break
                if not to_keycloak and set(match) <= UNCONDITIONAL_KEYS:
                    absorbed |= covered
