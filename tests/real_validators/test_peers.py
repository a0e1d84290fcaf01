"""kube-score (built by `make toolchain`) over both stacks' rendered manifests: every check it raises
is fixed in the program or listed in tools/peers.py with its reason and the pack rule covering it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.real_validators.conftest import STACKS, tool
from tools import peers, toolchain_validators


@pytest.fixture(scope="module")
def kube_score(validators: toolchain_validators.Validators) -> Path:
    return tool(validators, "kube-score")


@pytest.mark.parametrize("stack", STACKS)
def test_kube_score_raises_only_listed_findings(kube_score: Path, build: Path, stack: str) -> None:
    findings = peers.kube_score(kube_score, build / stack / "manifests", stack)
    assert findings, "kube-score graded nothing: it did not read the manifests"
    assert peers.unlisted(findings) == []


def test_every_listed_kube_score_finding_still_fires(kube_score: Path, build: Path) -> None:
    """A listed finding that no longer fires on any stack is removed from the list."""
    fired = {f.check for stack in STACKS for f in peers.kube_score(kube_score, build / stack / "manifests", stack)}
    assert {check for peer, check in peers.FINDINGS if peer == "kube-score"} <= fired


def test_kube_score_reports_a_broken_variant(kube_score: Path, build: Path, tmp_path: Path) -> None:
    """The fixes stay fixed: the frontends' identical probes and the Postgres Service that is not
    headless come back as unlisted findings when undone."""
    manifests = tmp_path / "manifests"
    shutil.copytree(build / "staging" / "manifests", manifests)
    frontend = manifests / "07-deployment-aiwfe-user-frontend.yaml"
    deployment = yaml.safe_load(frontend.read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"] = dict(container["readinessProbe"])
    frontend.write_text(yaml.safe_dump(deployment))
    service = manifests / "05-service-keycloak-keycloak-postgres.yaml"
    headless = yaml.safe_load(service.read_text())
    del headless["spec"]["clusterIP"]
    service.write_text(yaml.safe_dump(headless))
    unlisted = {(f.check, f.target) for f in peers.unlisted(peers.kube_score(kube_score, manifests, "staging"))}
    assert ("pod-probes-identical", "Deployment aiwfe/user-frontend") in unlisted
    assert ("statefulset-has-servicename", "StatefulSet keycloak/keycloak-postgres") in unlisted
