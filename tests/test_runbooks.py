"""The runbooks in docs/ exist, are linked from the README, and name commands that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools import deploy

ROOT = Path(__file__).resolve().parent.parent
RUNBOOKS = ("deploy.md", "rollback.md", "troubleshooting.md", "upgrades.md", "observability.md")
MAKEFILE = (ROOT / "Makefile").read_text()
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", RUNBOOKS)
def test_runbook_is_linked_and_names_only_existing_make_targets(name: str) -> None:
    text = (ROOT / "docs" / name).read_text()
    assert f"(docs/{name})" in README, f"README does not link docs/{name}"
    for target in set(re.findall(r"(?:`|^)make ([a-z]+)", text, re.MULTILINE)):
        assert re.search(rf"^{target}:", MAKEFILE, re.MULTILINE), f"docs/{name} names `make {target}`"
    for link in re.findall(r"\]\(([a-z]+\.md)(?:#[-a-z0-9]+)?\)", text):
        assert (ROOT / "docs" / link).is_file(), f"docs/{name} links missing {link}"


def test_troubleshooting_covers_the_issue_topics() -> None:
    headings = re.findall(r"^## (.+)$", (ROOT / "docs" / "troubleshooting.md").read_text(), re.MULTILINE)
    for topic in ("WebSocket drops", "Auth header problems", "Redis failover", "Keycloak not ready"):
        assert any(h.startswith(topic) for h in headings), topic


def test_upgrades_cover_each_component() -> None:
    headings = re.findall(r"^## (.+)$", (ROOT / "docs" / "upgrades.md").read_text(), re.MULTILINE)
    assert headings == ["Keycloak", "Redis", "Istio", "Kubernetes versions"]


def test_rollback_runbook_matches_the_tool() -> None:
    text = (ROOT / "docs" / "rollback.md").read_text()
    for words in ("pulumi stack history", "git worktree add --detach", "pulumi preview --policy-pack policies",
                  "pulumi up --policy-pack policies", "git.dirty"):
        assert words in text and words.split(" --")[0] in README
    assert deploy.POLICY_PACK == "policies" and (ROOT / deploy.POLICY_PACK / "PulumiPolicy.yaml").is_file()


@pytest.mark.parametrize("target", ["deploy", "rollback", "history"])
def test_make_targets_call_the_tool(target: str) -> None:
    recipe = MAKEFILE.split(f"\n{target}: setup\n", 1)[1].split("\n\n", 1)[0]
    assert f"-m tools.deploy {target} --stack $(STACK)" in recipe
