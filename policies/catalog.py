"""Every rule of the pack. Importing a rule module registers its rules."""

from __future__ import annotations

from policies import (
    keycloak,  # noqa: F401  (registers the identity rules)
    kubernetes,  # noqa: F401  (registers the Kubernetes rules)
)
from policies.engine import REGISTRY, Rule


def all_rules() -> list[Rule]:
    return list(REGISTRY.values())
