"""tools/deploy.py against the real CLI on real state: deploy, change, deploy, history, rollback, and a
failed up that `--rollback-on-failure` returns to the last good update."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import ROOT, Project, new_project
from tests.e2e.test_engine import _objects
from tools import toolchain as toolchain_tool

STACK = "staging"
HPA = ("autoscaling/v2", "HorizontalPodAutoscaler", "aiwfe", "websocket")


def deploy_tool(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.deploy", "--repo", str(project.dir), *args],
                          cwd=ROOT, env=project.env, capture_output=True, text=True, timeout=1800)


def commit(project: Project, message: str) -> str:
    project.git("add", "-A")
    project.git("commit", "-q", "-m", message)
    return project.git("rev-parse", "HEAD")


def history(project: Project) -> list[dict]:
    return json.loads(project.pulumi("stack", "history", "--json", "--stack", STACK).stdout)


def assert_checkout_untouched(project: Project, head: str) -> None:
    """A rollback works in a temporary worktree: the caller's checkout and HEAD stay as they were."""
    assert project.git("status", "--porcelain") == ""
    assert project.git("rev-parse", "HEAD") == head
    assert project.git("worktree", "list", "--porcelain").count("worktree ") == 1


def test_deploy_history_rollback_and_rollback_on_failure(toolchain: toolchain_tool.Toolchain,
                                                         tmp_path: Path) -> None:
    project = new_project(toolchain, tmp_path, "repo")
    rendered = tmp_path / "rendered"
    project.init_stack(STACK, render_dir=rendered)
    (project.dir / ".gitignore").write_text(".venv\nbuild/\n__pycache__/\n")
    project.git("init", "-q", "-b", "main")
    project.git("config", "user.email", "e2e@aiwfe.invalid")
    project.git("config", "user.name", "e2e")
    first = commit(project, "first")

    result = deploy_tool(project, "deploy", "--stack", STACK, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    v1 = _objects(rendered)
    assert v1[HPA]["spec"]["minReplicas"] == 2

    project.pulumi("config", "set", "--path", "--stack", STACK, "aiwfe-platform:websocket.minReplicas", "3")
    second = commit(project, "second: three WebSocket replicas at least")
    result = deploy_tool(project, "deploy", "--stack", STACK, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _objects(rendered)[HPA]["spec"]["minReplicas"] == 3

    shown = deploy_tool(project, "history", "--stack", STACK)
    assert shown.returncode == 0
    # Newest first: version, kind, result, start time, commit, message (versions numbered from 1).
    rows = [line.split() for line in shown.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[2], r[6]) for r in rows] == [("2", "update", "succeeded", second[:12]),
                                                        ("1", "update", "succeeded", first[:12])]
    updates = history(project)
    assert [(u["result"], u["environment"]["git.head"]) for u in updates if u["kind"] == "update"] == \
        [("succeeded", second), ("succeeded", first)]

    result = deploy_tool(project, "rollback", "--stack", STACK, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _objects(rendered) == v1, "the rollback did not return the rendered YAML to the first version"
    assert_checkout_untouched(project, second)
    updates = [u for u in history(project) if u["kind"] == "update"]
    assert len(updates) == 3 and updates[0]["result"] == "succeeded"
    assert updates[0]["environment"]["git.head"] == first and "rollback to version 1" in updates[0]["message"]

    # A value every check accepts but the cloud API refuses on apply (the gcp double's
    # AIWFE_GCP_DOUBLE_REJECT): the update fails after a clean preview.
    project.env["AIWFE_GCP_DOUBLE_REJECT"] = "refused-by-gcp"
    project.pulumi("config", "set", "--path", "--stack", STACK,
                   "aiwfe-platform:loadBalancer.customRequestHeaders.X-Client-Region", "refused-by-gcp")
    third = commit(project, "third: a header value GCP refuses")
    result = deploy_tool(project, "deploy", "--stack", STACK, "--yes")
    assert result.returncode == 1 and "refused-by-gcp" in result.stdout, result.stdout + result.stderr
    assert "rolling" not in result.stdout, "without --rollback-on-failure nothing is rolled back"
    assert [u["result"] for u in history(project)[:2]] == ["failed", "succeeded"]
    result = deploy_tool(project, "deploy", "--stack", STACK, "--yes", "--rollback-on-failure")
    assert result.returncode == 1, result.stdout + result.stderr
    # The last success before the failures is version 3, the earlier rollback (commit `first`).
    assert "refused-by-gcp" in result.stdout and "rolled staging back to version 3" in result.stdout
    updates = [u for u in history(project) if u["kind"] == "update"]
    assert [u["result"] for u in updates[:3]] == ["succeeded", "failed", "failed"]
    assert updates[0]["environment"]["git.head"] == first
    assert _objects(rendered) == v1
    assert_checkout_untouched(project, third)
    calls = Path(project.env["AIWFE_GCP_DOUBLE_RECORD"]).read_text()
    assert "refused-by-gcp" in calls  # the failed update reached the provider
