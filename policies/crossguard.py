"""Adapters from our plain rules to pulumi_policy's CrossGuard policies (used by __main__.py).

Importable without starting the pack's gRPC server, so tests can drive `validate` directly."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.catalog import all_rules
from policies.engine import MANDATORY, Context, Resource, Rule, run_resource_rule, stack_of

PACK_NAME = "aiwfe-platform-policies"


def _urn_of(resource: object) -> str:
    return getattr(resource, "urn", "") or ""


def resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        resource = Resource(type=args.resource_type, name=args.name, urn=args.urn, props=args.props,
                            protect=bool(args.opts.protect), parent=args.opts.parent or "")
        for message in run_resource_rule(rule, resource, Context(stack=stack_of(args.urn))):
            report_violation(message, None)

    return ResourceValidationPolicy(name=rule.name, description=rule.description, validate=validate,
                                    enforcement_level=level(rule), severity=Severity(rule.severity))


def stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [Resource(type=r.resource_type, name=r.name, urn=r.urn, props=r.props,
                              protect=bool(r.opts.protect), parent=_urn_of(r.parent))
                     for r in args.resources]
        stack = stack_of(resources[0].urn) if resources else ""
        for resource, message in rule.check(resources, Context(stack=stack)):
            report_violation(message, resource.urn if resource else None)

    return StackValidationPolicy(name=rule.name, description=rule.description, validate=validate,
                                 enforcement_level=level(rule), severity=Severity(rule.severity))


def level(rule: Rule) -> EnforcementLevel:
    return EnforcementLevel.MANDATORY if rule.enforcement == MANDATORY else EnforcementLevel.ADVISORY


def build_policies() -> list[Policy]:
    return [stack_policy(r) if r.is_stack_rule else resource_policy(r) for r in all_rules()]
