"""Every policy rule judged on a known-good hardened app and on one-change mutations of it.

Cases are table-driven: each names the rule it is about, whether the resources should pass, and
(for failing cases) which other rules the mutation is known to trip as well. Every case runs
against the whole pack, so a mutation that trips an unintended rule, or a "good" variant that
some other rule rejects, fails the suite. A meta-test demands a passing and a failing case for
every registered rule. Cases marked `bug=` document a known rule defect (strict xfail).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UnknownValueError

import policies.aiwfe_policies.catalog  # noqa: F401  (registers every rule)
from policies.aiwfe_policies import offline
from policies.aiwfe_policies.crossguard import build_policies, resource_policy, stack_policy
from policies.aiwfe_policies.engine import MANDATORY, REGISTRY, Context, Resource, Rule, analyzer_props, evaluate
from policies.aiwfe_policies.rules.kubernetes import DEPLOYMENT, HPA, NETWORK_POLICY, PDB
from tests.policy_cases import Case, bad, check_failing_case, check_passing_case, collect_cases, ok, params
from tests.policy_fixtures import (
    CONTAINER,
    DELETE,
    NAMESPACE,
    POD,
    UNKNOWN,
    Wire,
    batch_stack,
    change,
    container,
    document,
    to_resource,
    urn,
    web_stack,
)

RUN_AS_NON_ROOT = "kubernetes-workload-require-run-as-non-root"
NO_ESCALATION = "kubernetes-workload-disallow-privilege-escalation"
NOT_PRIVILEGED = "kubernetes-workload-disallow-privileged"
READ_ONLY_ROOT = "kubernetes-workload-require-read-only-root-filesystem"
DROP_ALL = "kubernetes-workload-require-drop-all-capabilities"
SECCOMP = "kubernetes-workload-require-seccomp-runtime-default"
HOST_NAMESPACES = "kubernetes-workload-disallow-host-namespaces"
HOST_PATH = "kubernetes-workload-disallow-host-path"
HOST_PORT = "kubernetes-workload-disallow-host-port"
TOKEN_AUTOMOUNT = "kubernetes-workload-disallow-service-account-token-automount"
RESOURCES = "kubernetes-workload-require-resources"
PROBES = "kubernetes-workload-require-probes"
PINNED_IMAGE = "kubernetes-workload-require-pinned-image"
SECRET_ENV = "kubernetes-workload-disallow-literal-secret-env"
SELECTOR_MATCH = "kubernetes-workload-require-selector-match"
SPREAD = "kubernetes-workload-require-spread"
EXPLICIT_NAMESPACE = "kubernetes-resource-require-explicit-namespace"
EXTERNAL_SERVICE = "kubernetes-core-v1-service-disallow-external-exposure"
HPA_MIN = "kubernetes-autoscaling-v2-horizontalpodautoscaler-require-min-replicas"
DISRUPTION_BUDGET = "kubernetes-workload-require-disruption-budget"
REPLICAS = "kubernetes-workload-require-replicas"
NETWORK_POLICY_RULE = "kubernetes-workload-require-network-policy"

SC = CONTAINER + "securityContext."
OTHER_APP = {"matchLabels": {"app.kubernetes.io/name": "api"}}
ANTI_AFFINITY = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
    "weight": 100.0,
    "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "web"}}},
}]}}


def web(**edits: Any) -> list[Wire]:
    """The hardened web stack with edits to its Deployment."""
    return web_stack(deployment_edits=edits)


def secret_file(path: str, kind: str) -> dict[str, Any]:
    """DB_PASSWORD_FILE=`path`, with a `kind` volume (projected Secret, or a ConfigMap) at /run/secrets/db."""
    source = {"sources": [{"secret": {"name": "db"}}]} if kind == "projected" else {"name": "db"}
    return {CONTAINER + "env": [{"name": "DB_PASSWORD_FILE", "value": path}],
            POD + "volumes": [{"name": "db", kind: source}],
            CONTAINER + "volumeMounts": [{"name": "db", "mountPath": "/run/secrets/db", "readOnly": True}]}


def single_replica() -> list[Wire]:
    """One replica, no HPA and no PDB: fine in staging, not in prod."""
    return web_stack(deployment_edits={"spec.replicas": 1.0, POD + "topologySpreadConstraints": DELETE},
                     without=(HPA, PDB))


def extra(resource_type: str, name: str, props: dict[str, Any]) -> list[Wire]:
    return web_stack(extra=[Wire(resource_type, name, props)])


def init_container(**edits: Any) -> dict[str, Any]:
    return change(container("init"), edits)


CONFIG_MAP = "kubernetes:core/v1:ConfigMap"

CASES: list[Case] = [
    # ---- hardened pods
    ok(RUN_AS_NON_ROOT, "pod-level-uid-inherited", web()),
    ok(RUN_AS_NON_ROOT, "container-overrides-with-high-uid", web(**{SC + "runAsUser": 20000.0})),
    bad(RUN_AS_NON_ROOT, "container-uid-0", web(**{SC + "runAsUser": 0.0})),
    bad(RUN_AS_NON_ROOT, "uid-below-10000", web(**{POD + "securityContext.runAsUser": 1000.0})),
    bad(RUN_AS_NON_ROOT, "uid-unset", web(**{POD + "securityContext.runAsUser": DELETE})),
    bad(RUN_AS_NON_ROOT, "container-run-as-non-root-false", web(**{SC + "runAsNonRoot": False})),
    bad(RUN_AS_NON_ROOT, "init-container-uid-0",
        web(**{POD + "initContainers": [init_container(**{"securityContext.runAsUser": 0.0})]})),
    bad(RUN_AS_NON_ROOT, "cronjob-container-uid-0", batch_stack(cron=True, edits={
        "spec.jobTemplate.spec.template.spec.containers.0.securityContext.runAsUser": 0.0})),

    ok(NO_ESCALATION, "false", web()),
    bad(NO_ESCALATION, "unset", web(**{SC + "allowPrivilegeEscalation": DELETE})),
    bad(NO_ESCALATION, "true", web(**{SC + "allowPrivilegeEscalation": True})),

    ok(NOT_PRIVILEGED, "false", web()),
    ok(NOT_PRIVILEGED, "unset", web(**{SC + "privileged": DELETE})),
    bad(NOT_PRIVILEGED, "true", web(**{SC + "privileged": True})),

    ok(READ_ONLY_ROOT, "true", web()),
    bad(READ_ONLY_ROOT, "false", web(**{SC + "readOnlyRootFilesystem": False})),
    bad(READ_ONLY_ROOT, "unset", web(**{SC + "readOnlyRootFilesystem": DELETE})),

    ok(DROP_ALL, "drop-all", web()),
    ok(DROP_ALL, "adds-net-bind-service", web(**{SC + "capabilities.add": ["NET_BIND_SERVICE"]})),
    bad(DROP_ALL, "drops-only-net-raw", web(**{SC + "capabilities.drop": ["NET_RAW"]})),
    bad(DROP_ALL, "adds-sys-admin", web(**{SC + "capabilities.add": ["SYS_ADMIN"]})),
    bad(DROP_ALL, "no-capabilities", web(**{SC + "capabilities": DELETE})),

    ok(SECCOMP, "pod-runtime-default", web()),
    ok(SECCOMP, "container-localhost",
       web(**{SC + "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/web.json"}})),
    bad(SECCOMP, "container-unconfined-overrides-pod", web(**{SC + "seccompProfile": {"type": "Unconfined"}})),
    bad(SECCOMP, "unset", web(**{POD + "securityContext.seccompProfile": DELETE})),

    ok(HOST_NAMESPACES, "all-false", web()),
    bad(HOST_NAMESPACES, "host-network", web(**{POD + "hostNetwork": True})),
    bad(HOST_NAMESPACES, "host-pid", web(**{POD + "hostPID": True})),
    bad(HOST_NAMESPACES, "host-ipc", web(**{POD + "hostIPC": True})),

    ok(HOST_PATH, "empty-dir-only", web()),
    bad(HOST_PATH, "docker-socket", web(**{POD + "volumes": [
        {"name": "tmp", "emptyDir": {}}, {"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}]})),

    ok(HOST_PORT, "container-port-only", web()),
    bad(HOST_PORT, "host-port", web(**{CONTAINER + "ports.0.hostPort": 8080.0})),

    ok(TOKEN_AUTOMOUNT, "false", web()),
    bad(TOKEN_AUTOMOUNT, "unset-defaults-to-true", web(**{POD + "automountServiceAccountToken": DELETE})),
    bad(TOKEN_AUTOMOUNT, "true", web(**{POD + "automountServiceAccountToken": True})),

    # ---- resources, probes, images, env
    ok(RESOURCES, "requests-and-limits", web()),
    bad(RESOURCES, "no-memory-limit", web(**{CONTAINER + "resources.limits.memory": DELETE})),
    bad(RESOURCES, "no-requests", web(**{CONTAINER + "resources.requests": DELETE})),
    bad(RESOURCES, "empty-cpu-request", web(**{CONTAINER + "resources.requests.cpu": ""})),
    bad(RESOURCES, "init-container-without-resources",
        web(**{POD + "initContainers": [init_container(resources=DELETE)]})),

    ok(PROBES, "readiness-and-liveness", web()),
    ok(PROBES, "job-needs-none", batch_stack()),
    ok(PROBES, "init-container-needs-none",
       web(**{POD + "initContainers": [init_container(readinessProbe=DELETE, livenessProbe=DELETE)]})),
    bad(PROBES, "no-liveness", web(**{CONTAINER + "livenessProbe": DELETE})),
    bad(PROBES, "no-readiness", web(**{CONTAINER + "readinessProbe": DELETE})),

    ok(PINNED_IMAGE, "tag", web()),
    ok(PINNED_IMAGE, "digest", web(**{CONTAINER + "image": "ghcr.io/aiwfe/web@sha256:" + "a" * 64})),
    ok(PINNED_IMAGE, "registry-port-and-tag", web(**{CONTAINER + "image": "registry.local:5000/aiwfe/web:1.9.0"})),
    bad(PINNED_IMAGE, "untagged", web(**{CONTAINER + "image": "ghcr.io/aiwfe/web"})),
    bad(PINNED_IMAGE, "latest", web(**{CONTAINER + "image": "ghcr.io/aiwfe/web:latest"})),
    bad(PINNED_IMAGE, "registry-port-no-tag", web(**{CONTAINER + "image": "registry.local:5000/aiwfe/web"})),
    bad(PINNED_IMAGE, "no-image", web(**{CONTAINER + "image": DELETE})),

    ok(SECRET_ENV, "secret-key-ref-and-plain-literal", web()),
    bad(SECRET_ENV, "literal-password", web(**{CONTAINER + "env": [{"name": "DB_PASSWORD", "value": "hunter2"}]})),
    bad(SECRET_ENV, "literal-lowercase-api-key",
        web(**{CONTAINER + "env": [{"name": "stripe_api_key", "value": "sk_live_x"}]})),
    ok(SECRET_ENV, "password-file-in-a-secret-volume", web(**secret_file("/run/secrets/db/password", "projected"))),
    bad(SECRET_ENV, "password-file-outside-secret-volumes", web(**secret_file("/etc/app/password", "projected"))),
    bad(SECRET_ENV, "password-file-in-a-config-map-volume", web(**secret_file("/run/secrets/db/password",
                                                                           "configMap"))),

    ok(SELECTOR_MATCH, "match-labels", web()),
    ok(SELECTOR_MATCH, "match-expressions-in", web(**{"spec.selector": {"matchExpressions": [
        {"key": "app.kubernetes.io/name", "operator": "In", "values": ["web", "web-canary"]}]}})),
    bad(SELECTOR_MATCH, "selects-other-app", web(**{"spec.selector": OTHER_APP})),
    bad(SELECTOR_MATCH, "no-selector", web(**{"spec.selector": DELETE})),
    bad(SELECTOR_MATCH, "not-in-excludes-own-label", web(**{"spec.selector": {"matchExpressions": [
        {"key": "app.kubernetes.io/name", "operator": "NotIn", "values": ["web"]}]}})),

    ok(SPREAD, "topology-spread", web()),
    ok(SPREAD, "pod-anti-affinity",
       web(**{POD + "topologySpreadConstraints": DELETE, POD + "affinity": ANTI_AFFINITY})),
    ok(SPREAD, "single-replica-need-not-spread", single_replica(), stack="staging"),
    bad(SPREAD, "no-spread", web(**{POD + "topologySpreadConstraints": DELETE})),
    bad(SPREAD, "replicas-unset-hpa-owned",
        web(**{"spec.replicas": DELETE, POD + "topologySpreadConstraints": DELETE})),

    # ---- namespaces and services
    ok(EXPLICIT_NAMESPACE, "every-object-namespaced", web()),
    ok(EXPLICIT_NAMESPACE, "namespace-object-is-cluster-scoped", extra(
        "kubernetes:core/v1:Namespace", "app-namespace", {"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": NAMESPACE}})),
    ok(EXPLICIT_NAMESPACE, "ingress-class-is-cluster-scoped", extra(
        "kubernetes:networking.k8s.io/v1:IngressClass", "gce", {
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "gce"},
            "spec": {"controller": "k8s.io/ingress-gce"}})),
    ok(EXPLICIT_NAMESPACE, "gmp-cluster-rules-are-cluster-scoped", extra(
        "kubernetes:monitoring.googleapis.com/v1:ClusterRules", "alerts", {
            "apiVersion": "monitoring.googleapis.com/v1", "kind": "ClusterRules", "metadata": {"name": "alerts"},
            "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0"}]}]}})),
    bad(EXPLICIT_NAMESPACE, "gmp-pod-monitoring-without-namespace", extra(
        "kubernetes:monitoring.googleapis.com/v1:PodMonitoring", "web-metrics", {
            "apiVersion": "monitoring.googleapis.com/v1", "kind": "PodMonitoring", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "endpoints": [{"port": "metrics"}]}})),
    bad(EXPLICIT_NAMESPACE, "service-without-namespace",
        web_stack(service_edits={"metadata.namespace": DELETE})),
    bad(EXPLICIT_NAMESPACE, "config-map-in-default", extra(CONFIG_MAP, "web-config", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "default"},
        "data": {"LOG_LEVEL": "info"}})),

    ok(EXTERNAL_SERVICE, "cluster-ip", web()),
    ok(EXTERNAL_SERVICE, "headless", web_stack(service_edits={"spec.clusterIP": "None"})),
    bad(EXTERNAL_SERVICE, "load-balancer", web_stack(service_edits={"spec.type": "LoadBalancer"})),
    bad(EXTERNAL_SERVICE, "node-port", web_stack(service_edits={"spec.type": "NodePort"})),

    ok(HPA_MIN, "min-3-max-6", web()),
    ok(HPA_MIN, "min-1-allowed-in-staging", web_stack(hpa_edits={"spec.minReplicas": 1.0}), stack="staging"),
    ok(HPA_MIN, "min-unset-defaults-to-1", web_stack(hpa_edits={"spec.minReplicas": DELETE}), stack="staging"),
    bad(HPA_MIN, "min-1-in-prod", web_stack(hpa_edits={"spec.minReplicas": 1.0}), also=(REPLICAS,)),
    bad(HPA_MIN, "max-equals-min", web_stack(hpa_edits={"spec.maxReplicas": 3.0})),
    bad(HPA_MIN, "max-unset", web_stack(hpa_edits={"spec.maxReplicas": DELETE})),

    # ---- stack rules
    ok(DISRUPTION_BUDGET, "max-unavailable-1", web()),
    ok(DISRUPTION_BUDGET, "max-unavailable-50-percent", web_stack(pdb_edits={"spec.maxUnavailable": "50%"})),
    ok(DISRUPTION_BUDGET, "min-available-50-percent",
       web_stack(pdb_edits={"spec.maxUnavailable": DELETE, "spec.minAvailable": "50%"})),
    ok(DISRUPTION_BUDGET, "single-replica-needs-none", single_replica(), stack="staging"),
    ok(DISRUPTION_BUDGET, "max-unavailable-10-percent-rounds-up",
       web_stack(pdb_edits={"spec.maxUnavailable": "10%"})),
    bad(DISRUPTION_BUDGET, "no-pdb", web_stack(without=(PDB,))),
    bad(DISRUPTION_BUDGET, "max-unavailable-0", web_stack(pdb_edits={"spec.maxUnavailable": 0.0})),
    bad(DISRUPTION_BUDGET, "min-available-equals-replicas",
        web_stack(pdb_edits={"spec.maxUnavailable": DELETE, "spec.minAvailable": 3.0})),
    bad(DISRUPTION_BUDGET, "min-available-100-percent",
        web_stack(pdb_edits={"spec.maxUnavailable": DELETE, "spec.minAvailable": "100%"})),
    bad(DISRUPTION_BUDGET, "min-available-equals-hpa-min-not-replicas",
        web_stack(hpa_edits={"spec.minReplicas": 2.0},
                  pdb_edits={"spec.maxUnavailable": DELETE, "spec.minAvailable": 2.0})),
    bad(DISRUPTION_BUDGET, "pdb-selects-other-pods", web_stack(pdb_edits={"spec.selector": OTHER_APP})),
    bad(DISRUPTION_BUDGET, "pdb-in-other-namespace", web_stack(pdb_edits={"metadata.namespace": "other"})),
    bad(DISRUPTION_BUDGET, "allows-disrupting-more-than-hpa-min",
        web_stack(pdb_edits={"spec.maxUnavailable": 5.0})),

    ok(REPLICAS, "three-replicas", web()),
    ok(REPLICAS, "replicas-owned-by-hpa", web(**{"spec.replicas": DELETE})),
    ok(REPLICAS, "one-replica-allowed-in-staging", single_replica(), stack="staging"),
    bad(REPLICAS, "one-replica-in-prod", single_replica()),
    bad(REPLICAS, "replicas-unset-without-hpa", web_stack(deployment_edits={"spec.replicas": DELETE},
                                                          without=(HPA,))),
    bad(REPLICAS, "hpa-min-1-overrides-replicas-3", web_stack(hpa_edits={"spec.minReplicas": 1.0}),
        also=(HPA_MIN,)),

    ok(NETWORK_POLICY_RULE, "policy-selects-pods", web()),
    ok(NETWORK_POLICY_RULE, "namespace-wide-policy", web_stack(netpol_edits={"spec.podSelector": {}})),
    ok(NETWORK_POLICY_RULE, "match-expressions-exists", web_stack(netpol_edits={"spec.podSelector": {
        "matchExpressions": [{"key": "app.kubernetes.io/part-of", "operator": "Exists"}]}})),
    bad(NETWORK_POLICY_RULE, "no-policy", web_stack(without=(NETWORK_POLICY,))),
    bad(NETWORK_POLICY_RULE, "policy-selects-other-pods", web_stack(netpol_edits={"spec.podSelector": OTHER_APP})),
    bad(NETWORK_POLICY_RULE, "policy-in-other-namespace", web_stack(netpol_edits={"metadata.namespace": "other"})),
    bad(NETWORK_POLICY_RULE, "job-without-policy", batch_stack()[:1]),
]


# ---------------------------------------------------------------- the case table itself

def test_every_rule_has_a_passing_and_a_failing_case() -> None:
    covered = {(c.rule, c.passes) for c in collect_cases() if not c.bug}
    missing = [f"{name}: no {'passing' if passes else 'failing'} case"
               for name in REGISTRY for passes in (True, False) if (name, passes) not in covered]
    assert not missing, "\n".join(missing)


def test_cases_name_registered_rules_and_have_unique_ids() -> None:
    cases = collect_cases()
    named = {c.rule for c in cases} | {r for c in cases for r in c.also}
    assert named <= set(REGISTRY), f"cases for unregistered rules: {sorted(named - set(REGISTRY))}"
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"


# ---------------------------------------------------------------- rules

# Every module's cases (this one's and tests/test_policy_*.py's), run here once each.
@pytest.mark.parametrize("case", params([c for c in collect_cases() if not c.passes]))
def test_failing_case_reports_its_rule(case: Case) -> None:
    check_failing_case(case)


@pytest.mark.parametrize("case", params([c for c in collect_cases() if c.passes]))
def test_passing_case_reports_nothing(case: Case) -> None:
    check_passing_case(case)


def test_prod_only_rules_follow_the_production_stacks() -> None:
    """The same one-replica app fails require-replicas only when its stack is a production stack."""
    wires = single_replica()
    resources = [to_resource(w, "prod") for w in wires]
    assert evaluate(resources, Context("prod")).failed_policies() == {REPLICAS}
    assert evaluate(resources, Context("prod", production_stacks=("live",))).failed_policies() == set()


# ---------------------------------------------------------------- unknown values at preview

UNKNOWN_CASES = [
    pytest.param(web_stack(deployment_edits={CONTAINER + "image": UNKNOWN}), {PINNED_IMAGE}, id="image"),
    pytest.param(web_stack(deployment_edits={SC + "privileged": UNKNOWN}), {NOT_PRIVILEGED}, id="privileged"),
    pytest.param(web_stack(pdb_edits={"spec.maxUnavailable": UNKNOWN}), {DISRUPTION_BUDGET},
                 id="pdb-max-unavailable"),
    pytest.param(web_stack(deployment_edits={"metadata.namespace": UNKNOWN}),
                 {EXPLICIT_NAMESPACE, DISRUPTION_BUDGET, REPLICAS, NETWORK_POLICY_RULE}, id="deployment-namespace"),
]


@pytest.mark.parametrize(("wires", "unevaluated"), UNKNOWN_CASES)
def test_unknown_value_is_not_evaluated_rather_than_judged(wires: list[Wire], unevaluated: set[str]) -> None:
    report = evaluate([to_resource(w, "prod") for w in wires], Context("prod"))
    assert {n["policy"] for n in report.not_evaluated} == unevaluated
    assert report.violations == [], report.as_text()
    assert "NOT EVALUATED" in report.as_text()


def test_unknown_in_resource_rule_names_the_resource() -> None:
    wires = web_stack(deployment_edits={CONTAINER + "image": UNKNOWN})
    report = evaluate([to_resource(w, "prod") for w in wires], Context("prod"))
    assert report.not_evaluated[0]["urn"] == urn(DEPLOYMENT, "web-deployment")


def test_unknown_reason_says_which_value_is_unknown() -> None:
    wires = web_stack(deployment_edits={CONTAINER + "image": UNKNOWN})
    report = evaluate([to_resource(w, "prod") for w in wires], Context("prod"))
    assert "containers.0.image" in report.not_evaluated[0]["reason"]


# ---------------------------------------------------------------- CrossGuard adapters

class Recorder:
    """A report_violation callback that keeps what it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.calls.append((message, urn))


def options(parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=None, aliases=[],
                                 custom_timeouts=PolicyCustomTimeouts(0.0, 0.0, 0.0),
                                 additional_secret_outputs=[], parent=parent)


def resource_args(wire: Wire, stack: str = "prod", parent: str | None = None) -> ResourceValidationArgs:
    return ResourceValidationArgs(wire.type, analyzer_props(wire.props), urn(wire.type, wire.name, stack),
                                  wire.name, options(parent), None)


def policy_resource(wire: Wire, stack: str = "prod", parent: PolicyResource | None = None) -> PolicyResource:
    return PolicyResource(wire.type, analyzer_props(wire.props), urn(wire.type, wire.name, stack), wire.name,
                          options(parent.urn if parent else None), None, parent, [], {})


def policy_named(name: str) -> Any:
    return next(p for p in build_policies() if p.name == name)


def wire_of(wires: list[Wire], resource_type: str) -> Wire:
    return next(w for w in wires if w.type == resource_type)


def test_build_policies_mirrors_the_registry() -> None:
    built = build_policies()
    names = [p.name for p in built]
    assert len(built) == len(REGISTRY)
    assert len(set(names)) == len(names)
    assert set(names) == set(REGISTRY)
    for policy in built:
        rule = REGISTRY[policy.name]
        expected = EnforcementLevel.MANDATORY if rule.enforcement == MANDATORY else EnforcementLevel.ADVISORY
        assert policy.enforcement_level == expected
        assert policy.severity == Severity(rule.severity)
        assert policy.description == rule.description
        assert isinstance(policy, StackValidationPolicy if rule.is_stack_rule else ResourceValidationPolicy)


@pytest.mark.parametrize(("edits", "violations"), [
    pytest.param({}, 0, id="good"),
    pytest.param({SC + "privileged": True}, 1, id="privileged"),
])
def test_crossguard_resource_policy(edits: dict[str, Any], violations: int) -> None:
    record = Recorder()
    wire = wire_of(web_stack(deployment_edits=edits), DEPLOYMENT)
    policy_named(NOT_PRIVILEGED).validate(resource_args(wire), record)
    assert len(record.calls) == violations
    for message, reported_urn in record.calls:
        assert "privileged" in message
        assert reported_urn is None  # CrossGuard attributes a resource violation to the resource itself


@pytest.mark.parametrize(("stack", "violations"), [("prod", 1), ("staging", 0)])
def test_crossguard_resource_policy_takes_the_stack_from_the_urn(stack: str, violations: int) -> None:
    record = Recorder()
    wire = wire_of(web_stack(hpa_edits={"spec.minReplicas": 1.0, "spec.maxReplicas": 4.0}), HPA)
    policy_named(HPA_MIN).validate(resource_args(wire, stack), record)
    assert len(record.calls) == violations


def test_crossguard_resource_policy_lets_unknowns_reach_the_analyzer() -> None:
    """pulumi_policy's analyzer turns UnknownValueError into "can't run policy during preview"."""
    wire = wire_of(web_stack(deployment_edits={CONTAINER + "image": UNKNOWN}), DEPLOYMENT)
    with pytest.raises(UnknownValueError):
        policy_named(PINNED_IMAGE).validate(resource_args(wire), Recorder())


@pytest.mark.parametrize(("without", "violations"), [((), 0), ((NETWORK_POLICY,), 1)])
def test_crossguard_stack_policy(without: tuple[str, ...], violations: int) -> None:
    record = Recorder()
    args = StackValidationArgs([policy_resource(w) for w in web_stack(without=without)])
    policy_named(NETWORK_POLICY_RULE).validate(args, record)
    assert len(record.calls) == violations
    for message, reported_urn in record.calls:
        assert "NetworkPolicy" in message
        assert reported_urn == urn(DEPLOYMENT, "web-deployment")


def test_crossguard_stack_policy_takes_the_stack_from_the_urns() -> None:
    """A prod-only rule judges prod, and tells the analyzer it does not apply elsewhere."""
    record = Recorder()
    policy_named(REPLICAS).validate(StackValidationArgs([policy_resource(w) for w in single_replica()]), record)
    assert len(record.calls) == 1
    with pytest.raises(_NotApplicableError) as raised:
        policy_named(REPLICAS).validate(
            StackValidationArgs([policy_resource(w, "staging") for w in single_replica()]), record)
    assert "production stacks only" in raised.value.reason
    assert len(record.calls) == 1


PARENT = "urn:pulumi:prod::aiwfe-platform::aiwfe:platform:Frontend::web"


def spy_rule(seen: list[str], *, stack: bool) -> Rule:
    """An unregistered rule that records the parent URN of every resource it is shown."""

    def check_resource(resource: Resource, _: Context) -> list[str]:
        seen.append(resource.parent)
        return []

    def check_stack(resources: list[Resource], context: Context) -> list[tuple[Resource, str]]:
        for resource in resources:
            check_resource(resource, context)
        return []

    if stack:
        return Rule("spy", "records parents", "low", MANDATORY, None, check_stack)
    return Rule("spy", "records parents", "low", MANDATORY, lambda _: True, check_resource)


def test_crossguard_stack_policy_passes_the_parent_urn() -> None:
    seen: list[str] = []
    wire = wire_of(web_stack(), DEPLOYMENT)
    parent = PolicyResource("aiwfe:platform:Frontend", analyzer_props({}), PARENT, "web", options(), None, None, [], {})
    stack_policy(spy_rule(seen, stack=True)).validate(StackValidationArgs([policy_resource(wire, parent=parent)]),
                                                      Recorder())
    assert seen == [PARENT]


def test_crossguard_resource_policy_passes_the_parent_urn() -> None:
    seen: list[str] = []
    wire = wire_of(web_stack(), DEPLOYMENT)
    resource_policy(spy_rule(seen, stack=False)).validate(resource_args(wire, parent=PARENT), Recorder())
    assert seen == [PARENT]


# ---------------------------------------------------------------- offline runner

def write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "resources.json"
    path.write_text(json.dumps(doc))
    return path


def test_offline_passes_a_good_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, document("prod", web_stack()))
    assert offline.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{len(REGISTRY)} policies, 5 resources" in out
    assert "PASSED: 0 mandatory violation(s)" in out


def test_offline_fails_on_a_mandatory_violation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, document("prod", web_stack(deployment_edits={SC + "privileged": True})))
    assert offline.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert NOT_PRIVILEGED in out
    assert "FAILED: 1 mandatory violation(s)" in out


@pytest.mark.parametrize(("edits", "code", "passed"), [
    pytest.param({}, 0, True, id="good"),
    pytest.param({SC + "privileged": True}, 1, False, id="privileged"),
])
def test_offline_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             edits: dict[str, Any], code: int, passed: bool) -> None:
    path = write(tmp_path, document("prod", web_stack(deployment_edits=edits)))
    assert offline.main([str(path), "--json"]) == code
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is passed
    assert report["stack"] == "prod"
    assert report["resources"] == 5
    assert sorted(report["policies"]) == sorted(REGISTRY)
    assert [v["policy"] for v in report["violations"]] == ([] if passed else [NOT_PRIVILEGED])


def test_offline_production_stack_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, document("staging", single_replica()))
    assert offline.main([str(path)]) == 0
    assert offline.main([str(path), "--production-stack", "staging"]) == 1
    assert REPLICAS in capsys.readouterr().out


@pytest.mark.parametrize("problem", ["missing-file", "format-version-2", "no-format-version", "not-json"])
def test_offline_unusable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str) -> None:
    path = tmp_path / "resources.json"
    good = document("prod", web_stack())
    if problem == "format-version-2":
        path.write_text(json.dumps(good | {"formatVersion": 2}))
    elif problem == "no-format-version":
        path.write_text(json.dumps({k: v for k, v in good.items() if k != "formatVersion"}))
    elif problem == "not-json":
        path.write_text("{resources: [")
    assert offline.main([str(path)]) == 2
    captured = capsys.readouterr()
    assert "error: cannot evaluate" in captured.err
    assert captured.out == ""
