"""Rules as plain functions, run the same way by CrossGuard (`policies/__main__.py`) and offline.

A resource rule takes `(Resource, Context)` and yields violation messages; a stack rule takes
`(list[Resource], Context)` and yields `(Resource | None, message)` pairs. Props are what the
analyzer sees: deserialized wire values (camelCase, numbers as floats) behind pulumi_policy's
unknown-checking proxy, so a rule that touches a value unknown at preview is reported as not
evaluated instead of passing or failing by accident.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

MANDATORY = "mandatory"
ADVISORY = "advisory"
SEVERITIES = ("critical", "high", "medium", "low")
DEFAULT_PRODUCTION_STACKS = ("prod",)


@dataclass(frozen=True)
class Resource:
    """One declared resource as a rule sees it."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    protect: bool = False
    parent: str = ""

    @property
    def stack(self) -> str:
        return stack_of(self.urn)


def stack_of(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::<type>::<name>` -> stack."""
    return urn.split("::", 1)[0].removeprefix("urn:pulumi:")


@dataclass(frozen=True)
class Context:
    """What a rule may know about the stack it judges."""

    stack: str
    production_stacks: tuple[str, ...] = DEFAULT_PRODUCTION_STACKS

    @property
    def is_prod(self) -> bool:
        return self.stack in self.production_stacks


ResourceCheck = Callable[[Resource, Context], Iterable[str]]
StackCheck = Callable[[list[Resource], Context], Iterable[tuple[Resource | None, str]]]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    """One line: what it prevents and why."""
    severity: str
    enforcement: str
    applies_to: Callable[[str], bool] | None
    """Which resource types a resource rule judges; None for a stack rule."""
    check: Callable[..., Iterable[Any]]

    @property
    def is_stack_rule(self) -> bool:
        return self.applies_to is None


REGISTRY: dict[str, Rule] = {}


def _register(rule: Rule) -> None:
    if rule.name in REGISTRY:
        raise ValueError(f"policy {rule.name} registered twice")
    if rule.severity not in SEVERITIES:
        raise ValueError(f"policy {rule.name}: severity {rule.severity} not in {SEVERITIES}")
    REGISTRY[rule.name] = rule


def resource_rule(name: str, *, types: Sequence[str] | Callable[[str], bool], severity: str,
                  description: str, enforcement: str = MANDATORY) -> Callable[[ResourceCheck], ResourceCheck]:
    """Register a rule over single resources of the given types (or types a predicate accepts)."""
    applies = types if callable(types) else frozenset(types).__contains__

    def wrap(check: ResourceCheck) -> ResourceCheck:
        _register(Rule(name, description, severity, enforcement, applies, check))
        return check
    return wrap


def stack_rule(name: str, *, severity: str, description: str,
               enforcement: str = MANDATORY) -> Callable[[StackCheck], StackCheck]:
    """Register a rule over all of the stack's resources at once."""

    def wrap(check: StackCheck) -> StackCheck:
        _register(Rule(name, description, severity, enforcement, None, check))
        return check
    return wrap


@dataclass(frozen=True)
class Violation:
    policy: str
    severity: str
    enforcement: str
    urn: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"policy": self.policy, "severity": self.severity, "enforcement": self.enforcement,
                "urn": self.urn, "message": self.message}


@dataclass
class Report:
    stack: str
    resources: int
    policies: list[str]
    violations: list[Violation] = field(default_factory=list)
    not_evaluated: list[dict[str, str]] = field(default_factory=list)

    @property
    def mandatory_failures(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement == MANDATORY]

    def failed_policies(self) -> set[str]:
        return {v.policy for v in self.violations}

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "resources": self.resources,
            "policies": self.policies,
            "passed": not self.mandatory_failures,
            "violations": [v.as_json() for v in self.violations],
            "notEvaluated": self.not_evaluated,
        }

    def status(self, policy: str) -> str:
        """pass, FAIL (mandatory violation), WARN (advisory violation) or SKIP (not evaluated)."""
        levels = {v.enforcement for v in self.violations if v.policy == policy}
        if MANDATORY in levels:
            return "FAIL"
        if levels:
            return "WARN"
        return "SKIP" if any(n["policy"] == policy for n in self.not_evaluated) else "pass"

    def as_text(self) -> str:
        """A table with one row per policy, then each violation with the resource it names."""
        width = max((len(p) for p in self.policies), default=6)
        lines = [f"policy pack on stack {self.stack}: {len(self.policies)} policies, {self.resources} resources",
                 f"  {'status':6}  {'policy':{width}}  violations"]
        for policy in self.policies:
            count = sum(v.policy == policy for v in self.violations)
            lines.append(f"  {self.status(policy):6}  {policy:{width}}  {count}")
        for v in self.violations:
            lines.append(f"{v.enforcement.upper()} {v.policy} [{v.severity}]\n    {v.urn}\n    {v.message}")
        for n in self.not_evaluated:
            lines.append(f"NOT EVALUATED {n['policy']} on {n['urn'] or 'the stack'}: {n['reason']}")
        failed = len(self.mandatory_failures)
        advisory = len(self.violations) - failed
        verdict = "FAILED" if failed else "PASSED"
        lines.append(f"{verdict}: {failed} mandatory violation(s), {advisory} advisory")
        return "\n".join(lines)


def analyzer_props(wire_props: Mapping[str, Any]) -> Mapping[str, Any]:
    """Props exactly as pulumi_policy's analyzer hands them to validate functions."""
    return unknown_checking_proxy(deserialize_properties(json.loads(json.dumps(wire_props))))


def run_resource_rule(rule: Rule, resource: Resource, context: Context) -> list[str]:
    if rule.applies_to is None or not rule.applies_to(resource.type):
        return []
    return list(rule.check(resource, context))


def _reason(unknown: UnknownValueError) -> str:
    # pulumi_policy keeps the text in `.message`; str() of the exception is empty.
    return getattr(unknown, "message", "") or str(unknown) or "a value is unknown until the update runs"


def evaluate(resources: list[Resource], context: Context, rules: Iterable[Rule] | None = None) -> Report:
    """Run every rule (or `rules`) over the stack's resources."""
    selected = list(rules if rules is not None else REGISTRY.values())
    report = Report(stack=context.stack, resources=len(resources), policies=[r.name for r in selected])

    def record(rule: Rule, urn: str, message: str) -> None:
        report.violations.append(Violation(rule.name, rule.severity, rule.enforcement, urn, message))

    for rule in selected:
        if rule.is_stack_rule:
            try:
                for resource, message in rule.check(resources, context):
                    record(rule, resource.urn if resource else "", message)
            except UnknownValueError as unknown:
                report.not_evaluated.append({"policy": rule.name, "urn": "", "reason": _reason(unknown)})
            continue
        for resource in resources:
            try:
                for message in run_resource_rule(rule, resource, context):
                    record(rule, resource.urn, message)
            except UnknownValueError as unknown:
                report.not_evaluated.append({"policy": rule.name, "urn": resource.urn, "reason": _reason(unknown)})
    return report
