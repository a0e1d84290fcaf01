"""The README is the contract: keep its tables and commands in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

from policies.catalog import all_rules
from stacks.settings import ALLOWED_KEYS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_policy_is_documented_with_its_severity() -> None:
    for rule in all_rules():
        row = re.search(rf"^\| `{re.escape(rule.name)}` \| (\w+) \|", README, re.MULTILINE)
        assert row, f"README policy table lacks {rule.name}"
        assert row.group(1) == rule.severity, rule.name


def test_every_config_key_is_documented() -> None:
    for key in ALLOWED_KEYS:
        assert f"`{key}" in README, f"README configuration reference lacks {key}"


def test_readme_commands_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "make render STACK=staging" in README and "make test" in README
    assert "$(BIN)/python -m tools.render --stack $(STACK) --out build/$(STACK)" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    for command in ("pulumi login", "pulumi stack select", "pulumi preview --policy-pack policies", "pulumi up"):
        assert command in README
