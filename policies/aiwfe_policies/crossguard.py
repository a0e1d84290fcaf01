"""Adapters from our plain rules to pulumi_policy's CrossGuard policies (used by __main__.py).

Importable without starting the pack's gRPC server, so tests can drive `validate` directly."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from .catalog import all_rules
from .engine import MANDATORY, Context, Resource, Rule, run_resource_rule, run_stack_rule, stack_of

PACK_NAME = "aiwfe-platform-policies"


def _urn_of(resource: object) -> str:
    return getattr(resource, "urn", "") or ""


def _context(rule: Rule, stack: str, args: Any) -> Context:
    """The rule's options: its defaults overlaid with what `--policy-pack-config` gave it."""
    context = Context(stack=stack, options=MappingProxyType({**rule.defaults(), **(args.get_config() or {})}))
    if rule.prod_only and not context.is_prod:
        args.not_applicable(f"judged on production stacks only ({', '.join(context.production_stacks)})")
    return context


def _schema(rule: Rule) -> PolicyConfigSchema | None:
    if not rule.options:
        return None
    return PolicyConfigSchema(properties={name: option.schema() for name, option in rule.options.items()})


def resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if rule.applies_to is None or not rule.applies_to(args.resource_type):
            return
        resource = Resource(type=args.resource_type, name=args.name, urn=args.urn, props=args.props,
                            protect=bool(args.opts.protect), parent=args.opts.parent or "")
        for message in run_resource_rule(rule, resource, _context(rule, stack_of(args.urn), args)):
            report_violation(message, None)

    return ResourceValidationPolicy(name=rule.name, description=rule.description, validate=validate,
                                    enforcement_level=level(rule), severity=Severity(rule.severity),
                                    config_schema=_schema(rule))


def stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [Resource(type=r.resource_type, name=r.name, urn=r.urn, props=r.props,
                              protect=bool(r.opts.protect), parent=_urn_of(r.parent))
                     for r in args.resources]
        stack = stack_of(resources[0].urn) if resources else ""
        for resource, message in run_stack_rule(rule, resources, _context(rule, stack, args)):
            report_violation(message, resource.urn if resource else None)

    return StackValidationPolicy(name=rule.name, description=rule.description, validate=validate,
                                 enforcement_level=level(rule), severity=Severity(rule.severity),
                                 config_schema=_schema(rule))


def level(rule: Rule) -> EnforcementLevel:
    return EnforcementLevel.MANDATORY if rule.enforcement == MANDATORY else EnforcementLevel.ADVISORY


def build_policies() -> list[Policy]:
    return [stack_policy(r) if r.is_stack_rule else resource_policy(r) for r in all_rules()]
