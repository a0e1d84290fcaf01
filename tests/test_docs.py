"""The README is the contract: keep its tables and commands in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from policies.aiwfe_policies.catalog import all_rules
from stacks.settings import ALLOWED_KEYS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_policy_is_documented_with_its_severity() -> None:
    for rule in all_rules():
        row = re.search(rf"^\| `{re.escape(rule.name)}` \| (\w+) \|", README, re.MULTILINE)
        assert row, f"README policy table lacks {rule.name}"
        assert row.group(1) == rule.severity, rule.name


def test_policy_table_gives_each_stacks_level() -> None:
    """The level column is what each stack's own pack config (from its settings) makes of the rule;
    `—` for a prod-only rule on staging."""
    from policies.aiwfe_policies.engine import REGISTRY, PackConfig
    from tests.rendered_stacks import stack_pack_config

    configs = {stack: PackConfig.parse(stack_pack_config(stack), REGISTRY) for stack in ("staging", "prod")}
    for rule in all_rules():
        row = re.search(rf"^\| `{re.escape(rule.name)}` \| \w+ \| ([^|]+) \|", README, re.MULTILINE)
        assert row, rule.name
        expected = " / ".join("—" if rule.prod_only and stack != "prod" else configs[stack].level(rule)
                              for stack in ("staging", "prod"))
        cell = row.group(1).strip()
        assert cell == expected or cell.startswith(f"{expected} ("), f"{rule.name}: {cell!r}, expected {expected!r}"


def config_reference() -> str:
    return README.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]


def test_every_config_key_is_documented() -> None:
    """Every top-level key and every nested key the stack files use has a row mentioning it."""
    section = config_reference()
    for key in ALLOWED_KEYS:
        assert f"`{key}" in section, f"README configuration reference lacks {key}"
    for stack in ("staging", "prod"):
        document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        for full_key, value in document.items():
            if full_key.startswith("aiwfe-platform:") and isinstance(value, dict):
                top = full_key.split(":", 1)[1]
                for nested in value:
                    assert re.search(rf"`{top}\.{nested}`|`{nested}`", section), f"README lacks {top}.{nested}"


def test_readme_commands_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "make render STACK=staging" in README and "make test" in README
    assert "$(BIN)/python -m tools.render --stack $(STACK) --out build/$(STACK)" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    for command in ("pulumi login", "pulumi stack select", "pulumi preview --policy-pack policies", "pulumi up"):
        assert command in README
