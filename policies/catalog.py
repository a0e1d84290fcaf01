"""Every rule of the pack. Importing a rule module registers its rules."""

from __future__ import annotations

from policies import (
    istio,  # noqa: F401  (registers the Istio rules)
    kubernetes,  # noqa: F401  (registers the Kubernetes rules)
)
from policies.engine import REGISTRY, Rule


def all_rules() -> list[Rule]:
    return list(REGISTRY.values())
