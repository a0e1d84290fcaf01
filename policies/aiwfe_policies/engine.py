"""Rules as plain functions, run the same way by CrossGuard (`policies/__main__.py`) and offline.

A resource rule takes `(Resource, Context)` and yields violation messages; a stack rule takes
`(list[Resource], Context)` and yields `(Resource | None, message)` pairs. Props are what the
analyzer sees: deserialized wire values (camelCase, numbers as floats) behind pulumi_policy's
unknown-checking proxy, so a rule that touches a value unknown at preview is reported as not
evaluated instead of passing or failing by accident.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .wire import plain_props

if TYPE_CHECKING:
    from pulumi_policy.proxy import UnknownValueError

MANDATORY = "mandatory"
ADVISORY = "advisory"
# The levels a pack config may give a rule. No `disabled`: every rule runs on every stack, so a
# report always says where each one stands.
LEVELS = (MANDATORY, ADVISORY)
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
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The judged rule's options (its defaults overlaid with the pack config's values)."""

    @property
    def is_prod(self) -> bool:
        return self.stack in self.production_stacks


_JSON_TYPES: dict[str, tuple[type, ...]] = {"integer": (int, float), "number": (int, float), "string": (str,),
                                             "array": (list, tuple)}


@dataclass(frozen=True)
class Option:
    """A value a rule reads from the pack config (a capacity target), with the default it judges by
    when the config leaves it out."""

    type: str
    """JSON schema type: integer, number, string or array."""
    default: Any
    description: str
    minimum: float | None = None

    def schema(self) -> dict[str, Any]:
        """The JSON schema CrossGuard validates the pack config's value against."""
        schema: dict[str, Any] = {"type": self.type, "default": self.default, "description": self.description}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        return schema

    def problem(self, value: Any) -> str | None:
        """Why `value` is not allowed, or None."""
        # JSON has no integer/float split: 3.0 is an integer, True is not a number.
        if isinstance(value, bool) or not isinstance(value, _JSON_TYPES[self.type]) \
                or (self.type == "integer" and isinstance(value, float) and not value.is_integer()):
            return f"must be a JSON {self.type}"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}"
        return None


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
    options: Mapping[str, Option] = field(default_factory=lambda: MappingProxyType({}))
    prod_only: bool = False
    """Judged on production stacks only (elsewhere it reports nothing)."""

    @property
    def is_stack_rule(self) -> bool:
        return self.applies_to is None

    @property
    def checks(self) -> str:
        """What the rule checks, in detail: its check function's docstring."""
        return " ".join((self.check.__doc__ or "").split())

    def defaults(self) -> dict[str, Any]:
        return {name: option.default for name, option in self.options.items()}


REGISTRY: dict[str, Rule] = {}


def _register(rule: Rule) -> None:
    if rule.name in REGISTRY:
        raise ValueError(f"policy {rule.name} registered twice")
    if rule.severity not in SEVERITIES:
        raise ValueError(f"policy {rule.name}: severity {rule.severity} not in {SEVERITIES}")
    REGISTRY[rule.name] = rule


def resource_rule(name: str, *, types: Sequence[str] | Callable[[str], bool], severity: str,
                  description: str, enforcement: str = MANDATORY, prod_only: bool = False,
                  options: Mapping[str, Option] | None = None) -> Callable[[ResourceCheck], ResourceCheck]:
    """Register a rule over single resources of the given types (or types a predicate accepts)."""
    applies = types if callable(types) else frozenset(types).__contains__

    def wrap(check: ResourceCheck) -> ResourceCheck:
        _register(Rule(name, description, severity, enforcement, applies, check,
                       MappingProxyType(dict(options or {})), prod_only))
        return check
    return wrap


def stack_rule(name: str, *, severity: str, description: str, enforcement: str = MANDATORY,
               prod_only: bool = False, options: Mapping[str, Option] | None = None
               ) -> Callable[[StackCheck], StackCheck]:
    """Register a rule over all of the stack's resources at once."""

    def wrap(check: StackCheck) -> StackCheck:
        _register(Rule(name, description, severity, enforcement, None, check,
                       MappingProxyType(dict(options or {})), prod_only))
        return check
    return wrap


class PackConfigError(ValueError):
    """A pack config names an unknown rule, option or level, or weakens a production stack."""


@dataclass(frozen=True)
class PackConfig:
    """Per-stack enforcement levels and rule options, in the file format `pulumi preview
    --policy-pack policies --policy-pack-config <file>` takes: `{"all": level, "<rule>": level |
    {"enforcementLevel": level, "<option>": value, ...}}`."""

    levels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    all: str | None = None

    @classmethod
    def parse(cls, document: Any, rules: Mapping[str, Rule]) -> PackConfig:
        """Validate a pack config against the rules it configures; PackConfigError names the key."""
        if not isinstance(document, Mapping):
            raise PackConfigError("a pack config is a JSON object keyed by policy name (or `all`)")
        levels: dict[str, str] = {}
        options: dict[str, dict[str, Any]] = {}
        default = document.get("all")
        if default is not None and default not in LEVELS:
            raise PackConfigError(f"all: level {default!r} is not one of {', '.join(LEVELS)}")
        for name, entry in document.items():
            if name == "all":
                continue
            if name not in rules:
                raise PackConfigError(f"{name}: no such policy in this pack")
            body = {"enforcementLevel": entry} if isinstance(entry, str) else entry
            if not isinstance(body, Mapping):
                raise PackConfigError(f"{name}: expected a level or an object, got {entry!r}")
            for key, value in body.items():
                if key == "enforcementLevel":
                    if value not in LEVELS:
                        raise PackConfigError(f"{name}.enforcementLevel: {value!r} is not one of {', '.join(LEVELS)}")
                    levels[name] = value
                    continue
                option = rules[name].options.get(key)
                if option is None:
                    allowed = ", ".join(rules[name].options) or "none"
                    raise PackConfigError(f"{name}.{key}: not an option of this policy (options: {allowed})")
                problem = option.problem(value)
                if problem:
                    raise PackConfigError(f"{name}.{key}: {value!r} {problem}")
                options.setdefault(name, {})[key] = value
        return cls(MappingProxyType(levels), MappingProxyType(options), default)

    def level(self, rule: Rule) -> str:
        return self.levels.get(rule.name) or self.all or rule.enforcement

    def options_for(self, rule: Rule) -> Mapping[str, Any]:
        return MappingProxyType({**rule.defaults(), **self.options.get(rule.name, {})})

    def require_mandatory(self, rules: Iterable[Rule], stack: str) -> None:
        """Production stacks enforce every rule: an advisory level there is a config error."""
        weakened = [r.name for r in rules if self.level(r) != MANDATORY]
        if weakened:
            raise PackConfigError(f"stack {stack} is a production stack, where every policy is mandatory; "
                                  f"the pack config makes advisory: {', '.join(weakened)}")

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"all": self.all} if self.all else {}
        for name in sorted(set(self.levels) | set(self.options)):
            entry: dict[str, Any] = dict(self.options.get(name, {}))
            if name in self.levels:
                entry["enforcementLevel"] = self.levels[name]
            document[name] = entry
        return document


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
    levels: dict[str, str] = field(default_factory=dict)
    """Each policy's enforcement level on this stack."""
    not_applicable: list[str] = field(default_factory=list)
    """Prod-only policies, when the stack is not a production stack."""

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
            "levels": self.levels,
            "notApplicable": self.not_applicable,
            "violations": [v.as_json() for v in self.violations],
            "notEvaluated": self.not_evaluated,
        }

    def status(self, policy: str) -> str:
        """pass, FAIL (mandatory violation), WARN (advisory violation), SKIP (not evaluated) or n/a
        (a prod-only policy on another stack)."""
        levels = {v.enforcement for v in self.violations if v.policy == policy}
        if MANDATORY in levels:
            return "FAIL"
        if levels:
            return "WARN"
        if policy in self.not_applicable:
            return "n/a"
        return "SKIP" if any(n["policy"] == policy for n in self.not_evaluated) else "pass"

    def as_text(self) -> str:
        """A table with one row per policy (status, level, violations), then each violation with the
        resource it names. `--explain <policy>` tells what a row checks."""
        width = max((len(p) for p in self.policies), default=6)
        lines = [f"policy pack on stack {self.stack}: {len(self.policies)} policies, {self.resources} resources",
                 f"  {'status':6}  {'level':9}  {'policy':{width}}  violations"]
        for policy in self.policies:
            count = sum(v.policy == policy for v in self.violations)
            level = self.levels.get(policy, MANDATORY)
            lines.append(f"  {self.status(policy):6}  {level:9}  {policy:{width}}  {count}")
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
    # Imported on use: the program lists rule names (settings) without pulumi_policy installed.
    from pulumi_policy.deserialize import deserialize_properties
    from pulumi_policy.proxy import unknown_checking_proxy

    return unknown_checking_proxy(deserialize_properties(json.loads(json.dumps(wire_props))))


def offline_props(wire_props: Mapping[str, Any]) -> Mapping[str, Any]:
    """What `analyzer_props` gives, without importing the SDK when the props need nothing of it
    (`wire.plain_props`); the offline runner's reading."""
    plain = plain_props(wire_props)
    return plain if plain is not None else analyzer_props(wire_props)


class _NeverRaisedError(Exception):
    """Stands for UnknownValueError while pulumi_policy is not loaded: only its proxy raises that."""


def _unknown_value_error() -> type[Exception]:
    proxy = sys.modules.get("pulumi_policy.proxy")
    return proxy.UnknownValueError if proxy is not None else _NeverRaisedError


def run_resource_rule(rule: Rule, resource: Resource, context: Context) -> list[str]:
    if rule.applies_to is None or not rule.applies_to(resource.type) or (rule.prod_only and not context.is_prod):
        return []
    return list(rule.check(resource, context))


def run_stack_rule(rule: Rule, resources: list[Resource], context: Context) -> Iterator[tuple[Resource | None, str]]:
    """The rule's violations as it finds them: those found before a value unknown at preview stops
    it are still reported (as CrossGuard does)."""
    if rule.prod_only and not context.is_prod:
        return
    yield from rule.check(resources, context)


def _reason(unknown: UnknownValueError) -> str:
    # pulumi_policy keeps the text in `.message`; str() of the exception is empty.
    return getattr(unknown, "message", "") or str(unknown) or "a value is unknown until the update runs"


class RuleError(Exception):
    """A rule raised on what it was given (malformed props): the pack cannot judge, which is not a
    violation. Names the rule and the resource (its URN; empty for a stack rule's stack)."""

    def __init__(self, rule: str, urn: str, error: BaseException) -> None:
        self.rule, self.urn, self.error = rule, urn, error
        where = f"on {urn}" if urn else "on the stack"
        super().__init__(f"rule {rule} failed {where}: {type(error).__name__}: {error}")


def _culprit(rule: Rule, resources: list[Resource], context: Context) -> str:
    """The URNs of the resources without any one of which a failing stack rule runs (error path only)."""
    found = []
    for index, resource in enumerate(resources):
        try:
            for _ in run_stack_rule(rule, resources[:index] + resources[index + 1:], context):
                pass
        except Exception:  # noqa: S112 (still failing without it: not this one)
            continue
        found.append(resource.urn)
    return found[0] if len(found) == 1 else (f"one of {', '.join(found)}" if found else "")


def evaluate(resources: list[Resource], context: Context, rules: Iterable[Rule] | None = None,
             config: PackConfig | None = None) -> Report:
    """Run every rule (or `rules`) over the stack's resources, at the levels and with the options of
    `config` (the rules' own defaults without one)."""
    unknown_error = _unknown_value_error()

    selected = list(rules if rules is not None else REGISTRY.values())
    config = config or PackConfig()
    if context.is_prod:
        config.require_mandatory(selected, context.stack)
    report = Report(stack=context.stack, resources=len(resources), policies=[r.name for r in selected],
                    levels={r.name: config.level(r) for r in selected},
                    not_applicable=[r.name for r in selected if r.prod_only and not context.is_prod])

    def record(rule: Rule, urn: str, message: str) -> None:
        report.violations.append(Violation(rule.name, rule.severity, config.level(rule), urn, message))

    for rule in selected:
        rule_context = replace(context, options=config.options_for(rule))
        if rule.is_stack_rule:
            try:
                for resource, message in run_stack_rule(rule, resources, rule_context):
                    record(rule, resource.urn if resource else "", message)
            except unknown_error as unknown:
                report.not_evaluated.append({"policy": rule.name, "urn": "", "reason": _reason(unknown)})
            except Exception as error:  # a bug or malformed props: never a verdict
                raise RuleError(rule.name, _culprit(rule, resources, rule_context), error) from error
            continue
        for resource in resources:
            try:
                for message in run_resource_rule(rule, resource, rule_context):
                    record(rule, resource.urn, message)
            except unknown_error as unknown:
                report.not_evaluated.append({"policy": rule.name, "urn": resource.urn, "reason": _reason(unknown)})
            except Exception as error:
                raise RuleError(rule.name, resource.urn, error) from error
    return report
