"""Every rule of the pack. Importing a rule module registers its rules."""

from __future__ import annotations

from policies import gcp, kubernetes  # noqa: F401  (registers the GCP and Kubernetes rules)
from policies.engine import REGISTRY, Rule


def all_rules() -> list[Rule]:
    return list(REGISTRY.values())
