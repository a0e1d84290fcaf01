"""Every rule of the pack. Importing a rule module registers its rules."""

from __future__ import annotations

from .engine import REGISTRY, Rule
from .rules import (  # noqa: F401  (importing a rule module registers its rules)
    baseline,
    capacity,
    gcp,
    istio,
    keycloak,
    kubernetes,
    paths,
    protection,
    reachability,
    redis,
)


def all_rules() -> list[Rule]:
    return list(REGISTRY.values())
