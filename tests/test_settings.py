"""Stack settings: valid stacks parse, every kind of bad value is one clear SettingsError."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from stacks.settings import (
    ALLOWED_KEYS,
    PROJECT,
    SECRET_KEYS,
    TOP_LEVEL_OBJECTS,
    SecretStr,
    SettingsError,
    parse_cpu_millis,
    parse_duration_seconds,
    parse_memory_bytes,
    parse_settings,
)
from tools import render as render_tool

PASSWORD = "correct-horse-battery-staple-42"
OBJECT_KEYS = TOP_LEVEL_OBJECTS


def stack_values(stack: str) -> dict[str, Any]:
    """The stack file's config as Python values (objects decoded), with a real-looking password."""
    config = render_tool.load_stack_config(stack)
    values: dict[str, Any] = {}
    for key, raw in config.values.items():
        name = key.split(":", 1)[1]
        values[key] = json.loads(raw) if name in OBJECT_KEYS else raw
    values[f"{PROJECT}:redisPassword"] = PASSWORD
    return values


def parse(values: dict[str, Any], stack: str = "prod", secret: bool = True):
    raw = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in values.items()}
    secrets = [f"{PROJECT}:{key}" for key in SECRET_KEYS] if secret else []
    return parse_settings(raw, stack=stack, secret_keys=secrets)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_committed_stacks_parse(stack: str) -> None:
    s = parse(stack_values(stack), stack)
    assert s.environment == stack
    assert s.is_prod == (stack == "prod")
    assert s.websocket.min_replicas >= 2
    assert s.websocket.max_replicas > s.websocket.min_replicas
    assert s.sessions.redis_health_timeout_seconds <= 3
    assert s.sessions.session_ttl_seconds == 3600
    assert s.sessions.connection_ttl_seconds == 24 * 3600
    assert s.websocket.resources.as_k8s() == {
        "requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
    assert s.user_frontend.resources.as_k8s() == {
        "requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}}
    assert s.redis.password == SecretStr(PASSWORD)
    assert s.gcp.zones and all(zone.startswith(f"{s.gcp.region}-") for zone in s.gcp.zones)
    assert (s.product_host, s.auth_host) == (s.domain, f"auth.{s.domain}")


def test_prod_is_sized_for_the_requirements() -> None:
    s = parse(stack_values("prod"))
    assert (s.websocket.min_replicas, s.websocket.max_replicas) == (2, 10)
    assert (s.websocket.cpu_target_percent, s.websocket.memory_target_percent) == (70, 80)


def test_secret_never_shows_in_repr_or_errors() -> None:
    s = parse(stack_values("prod"))
    assert PASSWORD not in repr(s)
    values = stack_values("prod")
    with pytest.raises(SettingsError) as error:
        parse(values, secret=False)
    assert PASSWORD not in str(error.value)
    assert "pulumi config set --secret redisPassword" in str(error.value)


def mutate(values: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set (or delete, with value=...) a dotted path below a `project:key`."""
    result = copy.deepcopy(values)
    top, *rest = path.split(".")
    key = f"{PROJECT}:{top}"
    if not rest:
        if value is Ellipsis:
            result.pop(key, None)
        else:
            result[key] = value
        return result
    node = result[key]
    for part in rest[:-1]:
        node = node.setdefault(part, {})
    if value is Ellipsis:
        node.pop(rest[-1], None)
    else:
        node[rest[-1]] = value
    return result


def leaf_at(values: dict[str, Any], path: str) -> Any:
    """The value at a dotted path below a `project:key` (Ellipsis when absent)."""
    top, *rest = path.split(".")
    node: Any = values.get(f"{PROJECT}:{top}", ...)
    for part in rest:
        node = node.get(part, ...) if isinstance(node, dict) else ...
    return node


BAD_VALUES = [
    # (path, value, key named in the error, words from "what is allowed")
    ("environment", "production", "environment", "one of staging, prod"),
    ("environment", "staging", "environment", "must equal the stack name ('prod')"),
    ("kubernetesVersion", "1.3", "kubernetesVersion", "quoted minor version"),
    ("domain", "Not A Domain", "domain", "DNS name"),
    ("appNamespace", "default", "appNamespace", "system namespace"),
    ("appNamespace", ..., "appNamespace", "is required"),
    ("websocket.image", "ghcr.io/aiwfe/websocket-service:latest", "websocket.image", "pinned"),
    ("websocket.image", "ghcr.io/aiwfe/websocket-service", "websocket.image", "pinned"),
    ("websocket.minReplicas", 1, "websocket.minReplicas", "at least 2 in prod"),
    ("websocket.maxReplicas", 2, "websocket.maxReplicas", "greater than minReplicas"),
    ("websocket.minReplicas", "2", "websocket.minReplicas", "whole number"),
    ("websocket.minReplica", 2, "websocket.minReplica", "unknown key; allowed keys here: "),
    ("websocket.terminationGracePeriod", "2 minutes", "websocket.terminationGracePeriod", "duration"),
    ("websocket.drainDelay", "120s", "websocket.drainDelay", "shorter than terminationGracePeriod"),
    ("websocket.resources.requests", {"cpu": "lots"}, "websocket.resources.requests.cpu", "cpu like"),
    ("websocket.resources.limits", {"memory": "64Mi"}, "websocket.resources.limits.memory",
     "at least the memory request"),
    ("sessions.redisHealthTimeout", "30s", "sessions.redisHealthTimeout", "from 1s to 3s"),
    ("redis.url", "redis://:hunter2@redis:6379", "redis.url", "no password"),
    ("redis.port", 70000, "redis.port", "from 1 to 65535"),
    ("redis.url", "redis://redis.other.svc.cluster.local:6379", "redis.url", "namespace 'aiwfe-redis'"),
    ("redis.url", "redis://redis.aiwfe-redis.svc.cluster.local:6380", "redis.url", "on port 6379"),
    ("gcp.zones", ["us-central1-a"], "gcp.zones", "zones of europe-west1"),
    ("gcp.zones", [], "gcp.zones", "non-empty list"),
    ("gcp.zones", ["europe-west1-b", "europe-west1-b"], "gcp.zones", "distinct"),
    ("gcp.project", "AIWFE", "gcp.project", "project id"),
    ("gcp.network", "projects/x/networks/vpc", "gcp.network", "VPC network name"),
    ("gcp.region", ..., "gcp.region", "is required"),
    ("mesh.cni", "yes", "mesh.cni", "must be true"),
    ("mesh.cni", ..., "mesh.cni", "is required"),
    ("monitoring.scraperLabels", {}, "monitoring.scraperLabels", "non-empty map"),
    ("websocket.drainDelay", "0s", "websocket.drainDelay", "from 1s to 120s"),
    ("mesh.ingressGatewayLabels", {"istio": "ingress gateway"}, "mesh.ingressGatewayLabels", "label"),
    ("mesh", "istio-system", "mesh", "must be an object"),
    ("frontends.user.replicas", 1, "frontends.user.replicas", "at least 2 in prod"),
    ("frontends.admin.image", "nginx", "frontends.admin.image", "pinned"),
    ("redisPassword", "short", "redisPassword", "at least 16 characters"),
    ("replicas", 3, "replicas", "unknown key; allowed keys: " + ", ".join(ALLOWED_KEYS)),
    # keycloak
    ("keycloak.version", "23.0.7", "keycloak.version", "supported line: 26.6"),
    ("keycloak.version", "26.6", "keycloak.version", "release x.y.z"),
    ("keycloak.replicas", 2, "keycloak.replicas", "at least 3 in prod"),
    ("keycloak.realm", "master", "keycloak.realm", "must not be 'master'"),
    ("keycloak.resources", {"limits": {"memory": "1Gi"}, "requests": {"memory": "512Mi"}},
     "keycloak.resources.limits.memory", "at least 2Gi"),
    ("keycloak.tokens.accessTokenLifespan", "1h", "keycloak.tokens.accessTokenLifespan", "from 60s to 900s"),
    ("keycloak.tokens.clientSessionIdleTimeout", "1h", "keycloak.tokens.clientSessionIdleTimeout",
     "must not exceed ssoSessionIdleTimeout"),
    ("keycloak.webapp.redirectUris", ["https://aiwfe.example.com/*"], "keycloak.webapp.redirectUris", "no '*'"),
    ("keycloak.webapp.redirectUris", ["http://aiwfe.example.com/cb"], "keycloak.webapp.redirectUris", "https"),
    ("keycloak.webapp.redirectUris", ["https://evil.example.com/cb"], "keycloak.webapp.redirectUris",
     "the product host"),
    ("keycloak.webapp.webOrigins", ["https://aiwfe.example.com/app"], "keycloak.webapp.webOrigins",
     "https://aiwfe.example.com"),
    ("keycloak.trustedProxyAddresses", ["0.0.0.0/33"], "keycloak.trustedProxyAddresses", "CIDRs"),
    ("keycloak.database.mode", "sqlite", "keycloak.database.mode", "in-cluster, cloudsql"),
    ("keycloak.database.privateServicesRange", "10.64.0.1/20", "keycloak.database.privateServicesRange",
     "host bits zero"),
    ("keycloak.database.logRetentionDays", 30, "keycloak.database.logRetentionDays", "from 1 to 7"),
    ("keycloak.database.image", "postgres:15.15", "keycloak.database.image", "unknown key"),
    ("keycloak.sizing.refreshPercent", 10, "keycloak.sizing.refreshPercent", "add up to 100"),
    ("keycloak.identityProviders.google", {}, "keycloak.identityProviders.google.clientId", "is required"),
]


@pytest.mark.parametrize(("path", "value", "key", "allowed"), BAD_VALUES, ids=[f"{p}={v!r}" for p, v, *_ in BAD_VALUES])
def test_bad_value_names_key_value_and_what_is_allowed(path: str, value: Any, key: str, allowed: str) -> None:
    with pytest.raises(SettingsError) as error:
        parse(mutate(stack_values("prod"), path, value))
    message = str(error.value)
    assert f"config {PROJECT}:{key} = " in message
    assert allowed in message
    offending = leaf_at(mutate(stack_values("prod"), path, value), key)
    if path == "redisPassword":
        assert "= [secret]:" in message and "short" not in message
    elif offending is Ellipsis:
        assert "= (not set):" in message
    elif key != "websocket.drainDelay":  # that one reports the default it compared
        shown = repr(offending) if isinstance(offending, str) else json.dumps(offending)
        assert f"= {shown}:" in message


def test_image_digest_is_a_valid_pin() -> None:
    digest = "ghcr.io/aiwfe/websocket-service@sha256:" + "a" * 64
    s = parse(mutate(stack_values("prod"), "websocket.image", digest))
    assert s.websocket.image == digest


def test_staging_may_run_single_frontend_replica() -> None:
    s = parse(mutate(stack_values("staging"), "frontends.user.replicas", 1), stack="staging")
    assert s.user_frontend.replicas == 1


def test_istio_revision_is_optional() -> None:
    s = parse(mutate(stack_values("prod"), "mesh.istioRevision", "1-30-3"))
    assert s.mesh.istio_revision == "1-30-3"
    assert parse(stack_values("prod")).mesh.istio_revision is None


@pytest.mark.parametrize(("text", "expected"), [("100m", 100), ("0.5", 500), ("2", 2000)])
def test_parse_cpu(text: str, expected: int) -> None:
    assert parse_cpu_millis(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("128Mi", 128 * 2**20), ("1G", 10**9), ("512", 512)])
def test_parse_memory(text: str, expected: int) -> None:
    assert parse_memory_bytes(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("90s", 90), ("5m", 300), ("24h", 86400), ("1h30m", 5400), (7, 7)])
def test_parse_duration(text: Any, expected: int) -> None:
    assert parse_duration_seconds(text) == expected


@pytest.mark.parametrize("text", ["", "h", "5 m", "1d", "-5s", True])
def test_parse_duration_rejects(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration_seconds(text)


# ---------------------------------------------------------------- property tests

def leaf_paths(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in leaf_paths(v, f"{prefix}.{k}" if prefix else k)]
    return [prefix]


BASE = stack_values("prod")
PATHS = sorted(p for key, v in BASE.items() for p in leaf_paths(v, key.split(":", 1)[1]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.sampled_from(PATHS), json_values | st.just(...)), min_size=1, max_size=4))
def test_any_config_gives_settings_or_settings_error(edits: list[tuple[str, Any]]) -> None:
    """Whatever the config holds, the only possible failure is a SettingsError."""
    values = BASE
    for path, value in edits:
        values = mutate(values, path, value)
    try:
        parse(values)
    except SettingsError as error:
        assert str(error).startswith(f"config {PROJECT}:")


# Values of the wrong kind for every leaf: never a valid setting anywhere in the schema.
wrong_kind = st.lists(st.integers(), min_size=1, max_size=2) | st.dictionaries(
    st.sampled_from(["x", "y"]), st.integers(), min_size=1, max_size=2) | st.booleans()


# Top-level scalars arrive as text (Pulumi passes structured values as JSON), and any text of 16+
# characters is a valid password: skip the secret leaves here.
@settings(max_examples=200, deadline=None)
@given(path=st.sampled_from([p for p in PATHS if p not in SECRET_KEYS]), value=wrong_kind)
def test_wrong_kind_values_are_rejected_naming_the_key(path: str, value: Any) -> None:
    assume(type(value) is not type(leaf_at(BASE, path)))  # a boolean is right for a boolean leaf
    with pytest.raises(SettingsError) as error:
        parse(mutate(BASE, path, value))
    top = path.split(".")[0]
    assert error.value.key.startswith(f"{PROJECT}:{top}")


@settings(max_examples=100, deadline=None)
@given(section=st.sampled_from(OBJECT_KEYS), name=st.text("abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=12))
def test_unknown_keys_are_rejected_listing_allowed_ones(section: str, name: str) -> None:
    values = copy.deepcopy(BASE)
    if name in values[f"{PROJECT}:{section}"]:
        return
    values[f"{PROJECT}:{section}"][name] = 1
    with pytest.raises(SettingsError) as error:
        parse(values)
    assert error.value.key == f"{PROJECT}:{section}.{name}"
    assert "allowed keys here:" in str(error.value)


# ---------------------------------------------------------------- reading from the engine

def test_load_settings_reads_what_the_language_host_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under `pulumi up` config arrives in PULUMI_CONFIG (JSON) with its secret keys listed."""
    import pulumi

    from stacks.settings import load_settings

    values = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in stack_values("staging").items()}
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(values))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps([f"{PROJECT}:{key}" for key in SECRET_KEYS]))
    pulumi.runtime.reset_options(project=PROJECT, stack="staging")
    pulumi.runtime.set_all_config({}, [])
    s = load_settings()
    assert (s.stack, s.environment, s.redis.password) == ("staging", "staging", SecretStr(PASSWORD))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", "[]")
    with pytest.raises(SettingsError, match="must be a stack secret"):
        load_settings()


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_stack_files_hold_no_plaintext_secret(stack: str) -> None:
    import yaml

    document = yaml.safe_load((render_tool.ROOT / f"Pulumi.{stack}.yaml").read_text())
    for name in SECRET_KEYS:
        value = document["config"].get(f"{PROJECT}:{name}")
        assert value is None or (isinstance(value, dict) and set(value) == {"secure"}), name


@pytest.mark.parametrize(("edit", "key"), [
    ({"password": "hunter2-hunter2-hunter2"}, "redis.password"),           # unknown key under a secret object
    ({"url": "redis://:hunter2-hunter2@redis:6379"}, "redis.url"),        # bad value under a secret object
])
def test_values_under_a_secret_key_are_masked_in_errors(edit: dict, key: str) -> None:
    values = stack_values("prod")
    values[f"{PROJECT}:redis"] = {**values[f"{PROJECT}:redis"], **edit}
    raw = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in values.items()}
    with pytest.raises(SettingsError) as error:
        parse_settings(raw, stack="prod", secret_keys=[f"{PROJECT}:redisPassword", f"{PROJECT}:redis"])
    assert error.value.key == f"{PROJECT}:{key}"
    assert "hunter2" not in str(error.value) and "[secret]" in str(error.value)


def test_undecodable_secret_object_is_masked() -> None:
    raw = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in stack_values("prod").items()}
    raw[f"{PROJECT}:redis"] = "{not json hunter2"
    with pytest.raises(SettingsError) as error:
        parse_settings(raw, stack="prod", secret_keys=[f"{PROJECT}:redisPassword", f"{PROJECT}:redis"])
    assert "hunter2" not in str(error.value)
