"""The table-driven harness every policy rule module's tests use.

A `Case` names the rule it is about, whether its resources should pass, and (for failing cases)
which other rules the mutation is known to trip as well. Every case runs against the whole pack,
so a mutation that trips an unintended rule, or a "good" variant that another rule rejects, fails
the suite. Each `tests/test_policy_*.py` module keeps its cases in a module-level `CASES` list;
`test_policy_rules.py` collects every module's `CASES`, runs each once through
`check_failing_case` / `check_passing_case`, and demands a passing and a failing case for every
registered rule. Cases marked `bug=` document a known rule defect (strict xfail).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import policies.aiwfe_policies.catalog  # noqa: F401  (registers every rule)
from policies.aiwfe_policies.engine import REGISTRY, Context, PackConfig, Report, Resource, evaluate, offline_props
from tests.policy_fixtures import Wire, to_resource, urn


@dataclass(frozen=True)
class Case:
    rule: str
    passes: bool
    why: str
    wires: tuple[Wire, ...]
    stack: str = "prod"
    also: frozenset[str] = frozenset()
    """Other rules the failing input is known to trip too."""
    bug: str = ""
    """Non-empty: the case documents a rule defect and is expected to fail (strict xfail)."""
    config: tuple[tuple[str, Any], ...] = ()
    """The pack config the case is judged under (a stack's levels and targets); defaults without."""

    @property
    def id(self) -> str:
        return f"{self.rule}:{'pass' if self.passes else 'fail'}:{self.why}"


def ok(rule: str, why: str, wires: list[Wire], *, stack: str = "prod", bug: str = "",
       config: dict[str, Any] | None = None) -> Case:
    return Case(rule, True, why, tuple(wires), stack, bug=bug, config=tuple((config or {}).items()))


def bad(rule: str, why: str, wires: list[Wire], *, stack: str = "prod", also: tuple[str, ...] = (),
        bug: str = "", config: dict[str, Any] | None = None) -> Case:
    return Case(rule, False, why, tuple(wires), stack, frozenset(also), bug, tuple((config or {}).items()))


def params(cases: list[Case]) -> list[Any]:
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else [])
            for c in cases]


def run(case: Case) -> Report:
    """The whole pack over the case's resources as the analyzer hands them to rules; the offline
    runner's stdlib reading of the same props, as read from a JSON file, must give the same report."""
    config = PackConfig.parse(dict(case.config), REGISTRY)
    report = evaluate([to_resource(w, case.stack) for w in case.wires], Context(stack=case.stack), config=config)
    offline = evaluate([Resource(type=w.type, name=w.name, urn=urn(w.type, w.name, case.stack),
                                 props=offline_props(json.loads(json.dumps(w.props))), protect=w.protect)
                        for w in case.wires], Context(stack=case.stack), config=config)
    assert offline.as_json() == report.as_json(), "the offline runner's reading judged the case otherwise"
    return report


def check_failing_case(case: Case) -> None:
    """The case's rule fails, no other rule than the declared `also` does, and every violation
    points at one of the case's resources with a message."""
    report = run(case)
    assert report.not_evaluated == []
    assert case.rule in report.failed_policies(), report.as_text()
    assert report.failed_policies() - {case.rule} == case.also, report.as_text()
    urns = {urn(w.type, w.name, case.stack) for w in case.wires}
    for violation in report.violations:
        assert violation.urn in urns and violation.message
        assert violation.enforcement == run_level(case, violation.policy)
        assert violation.severity == REGISTRY[violation.policy].severity


def run_level(case: Case, policy: str) -> str:
    return PackConfig.parse(dict(case.config), REGISTRY).level(REGISTRY[policy])


def check_passing_case(case: Case) -> None:
    """The case holds a resource the rule judges, and the whole pack reports nothing."""
    rule = REGISTRY[case.rule]
    assert rule.applies_to is None or any(rule.applies_to(w.type) for w in case.wires), \
        "the case holds no resource the rule judges, so passing proves nothing"
    report = run(case)
    assert case.rule not in report.failed_policies(), report.as_text()
    assert report.violations == [], report.as_text()
    assert report.not_evaluated == []


def collect_cases() -> list[Case]:
    """Every `CASES` list of every `tests/test_policy_*.py` module."""
    cases: list[Case] = []
    for path in sorted(Path(__file__).parent.glob("test_policy_*.py")):
        module = importlib.import_module(f"tests.{path.stem}")
        cases.extend(getattr(module, "CASES", []))
    return cases
