"""checkov, the peer scanner, over both stacks' rendered manifests: nothing fails but the checks
skipped on purpose (tools/checkov_baseline.py, README "checkov baseline"), and each of those really
fails without its skip, so the list never hides more than it says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools import checkov_baseline


def require_checkov() -> None:
    try:
        checkov_baseline.checkov_binary()
    except checkov_baseline.CheckovMissingError as missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"checkov is required in CI (make test installs .venv-checkov): {missing}")
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def render_root(rendered: dict) -> Path:
    """The folder holding <stack>/manifests for both stacks."""
    roots = {result.manifests[0].parent.parent.parent for result in rendered.values()}
    assert len(roots) == 1
    return roots.pop()


def test_checkov_finds_nothing_but_the_skipped_checks(render_root: Path, rendered: dict) -> None:
    require_checkov()
    result = checkov_baseline.scan(render_root)
    assert result.failures == ()
    scanned = {f.split("/")[1] for f in result.files}
    assert scanned == {"staging", "prod"}, result.files  # both stacks, through one invocation
    assert not any("/masked/" in f for f in result.files)
    # Every workload manifest was judged (checkov reads the rest, but has checks only for some kinds).
    workloads = {f"/{stack}/manifests/{p.name}" for stack, r in rendered.items() for p in r.manifests
                 if p.name.split("-")[1] in ("deployment", "statefulset", "job")}
    assert workloads and workloads <= set(result.files)
    assert result.resources > 0 and result.passed > 1000


def test_every_skipped_check_fails_without_its_skip(render_root: Path) -> None:
    require_checkov()
    unskipped = checkov_baseline.scan(render_root, skip=False)
    assert {f.check_id for f in unskipped.failures} == set(checkov_baseline.SKIPPED_CHECKS)


def test_the_baseline_cli_reports_and_exits_zero(render_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_checkov()
    assert checkov_baseline.main([str(render_root)]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "CKV_K8S_43" in out


def test_missing_checkov_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHECKOV", str(tmp_path / "nope"))
    monkeypatch.setattr(checkov_baseline, "CHECKOV_VENV", tmp_path / "no-venv")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert checkov_baseline.main([str(tmp_path)]) == 2
    assert "make checkov-setup" in capsys.readouterr().err
