"""CrossGuard entry point: `pulumi preview --policy-pack policies` runs this file.

Only this module constructs the PolicyPack (it starts a gRPC server and never returns); the rules
live in importable modules so the offline runner and the tests use the very same functions.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The CLI runs this file from inside policies/: make `policies.*` importable as in the offline runner.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.catalog import all_rules
from policies.engine import MANDATORY, Context, Resource, Rule, run_resource_rule, stack_of


def _resource(args: ResourceValidationArgs) -> Resource:
    return Resource(type=args.resource_type, name=args.name, urn=args.urn, props=args.props,
                    protect=bool(args.opts.protect), parent=getattr(args.opts.parent, "urn", "") or "")


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        resource = _resource(args)
        for message in run_resource_rule(rule, resource, Context(stack=stack_of(args.urn))):
            report_violation(message, None)

    return ResourceValidationPolicy(name=rule.name, description=rule.description, validate=validate,
                                    enforcement_level=_level(rule), severity=Severity(rule.severity))


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [Resource(type=r.resource_type, name=r.name, urn=r.urn, props=r.props,
                              protect=bool(r.opts.protect), parent=getattr(r.parent, "urn", "") or "")
                     for r in args.resources]
        stack = stack_of(resources[0].urn) if resources else ""
        for resource, message in rule.check(resources, Context(stack=stack)):
            report_violation(message, resource.urn if resource else None)

    return StackValidationPolicy(name=rule.name, description=rule.description, validate=validate,
                                 enforcement_level=_level(rule), severity=Severity(rule.severity))


def _level(rule: Rule) -> EnforcementLevel:
    return EnforcementLevel.MANDATORY if rule.enforcement == MANDATORY else EnforcementLevel.ADVISORY


PolicyPack(
    name="aiwfe-platform-policies",
    policies=[_stack_policy(r) if r.is_stack_rule else _resource_policy(r) for r in all_rules()],
)
