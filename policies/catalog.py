"""Every rule of the pack. Importing a rule module registers its rules."""

from __future__ import annotations

from policies import kubernetes, redis  # noqa: F401  (importing registers the Kubernetes and Redis rules)
from policies.engine import REGISTRY, Rule


def all_rules() -> list[Rule]:
    return list(REGISTRY.values())
