"""tools.deploy against a TEST DOUBLE of the pulumi CLI (tests/fake_pulumi.py) in a real git repository,
for the cases a real run cannot produce on demand: a stack locked by another update, histories
recorded from a dirty tree or outside git, a pinned SDK that differs between commits, and exact
argument lists. Deploy, history, rollback and rollback-on-failure run against the real CLI in
tests/e2e/test_deploy_rollback.py.

The Automation API really runs: it spawns `pulumi` from PATH (the double), parses its JSON, receives
the preview's engine events on its gRPC event server and maps lock messages to ConcurrentUpdateError.
The git side is real too: commits, `git cat-file`, `git worktree add/remove`.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tools import deploy

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "pulumi_cli"
STACK_FILE = "Pulumi.staging.yaml"
IMAGES = {"C1": "2.3.0", "C2": "2.4.0", "C3": "2.4.1"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def stack_file_at(image: str) -> str:
    return ("config:\n  aiwfe-platform:environment: staging\n  aiwfe-platform:websocket:\n"
            f"    image: ghcr.io/aiwfe/websocket-service:{image}\n")


class Harness:
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.repo = tmp / "repo"
        self.repo.mkdir()
        self.log = tmp / "pulumi-calls.jsonl"
        for key, value in {"GIT_AUTHOR_NAME": "Ops Test", "GIT_AUTHOR_EMAIL": "ops@example.com",
                           "GIT_COMMITTER_NAME": "Ops Test", "GIT_COMMITTER_EMAIL": "ops@example.com"}.items():
            monkeypatch.setenv(key, value)
        git(self.repo, "init", "-q", "-b", "main")
        (self.repo / ".gitignore").write_text(".venv/\npolicies/venv/\n")
        (self.repo / "Pulumi.yaml").write_text("name: aiwfe-platform\nruntime:\n  name: python\n  options:\n"
                                               "    toolchain: pip\n    virtualenv: .venv\n")
        (self.repo / "requirements-dev.txt").write_text("-r requirements.txt\npytest==9.2.0\n")
        (self.repo / "policies").mkdir()
        (self.repo / "policies" / "requirements.txt").write_text("pulumi-policy==1.21.0\n")
        (self.repo / "README.md").write_text("# project\n")
        self.commits: dict[str, str] = {}
        for name, image in IMAGES.items():
            (self.repo / STACK_FILE).write_text(stack_file_at(image))
            # C1 pinned an older SDK: a checkout of it must not borrow the caller's .venv.
            (self.repo / "requirements.txt").write_text("pulumi==3.270.0\n" if name == "C1" else "pulumi==3.272.0\n")
            git(self.repo, "add", "-A")
            git(self.repo, "commit", "-q", "-m", f"release {image}")
            self.commits[name] = git(self.repo, "rev-parse", "HEAD").strip()
        (self.repo / ".venv").mkdir()  # the caller's virtualenv (ignored by git)
        (self.repo / "policies" / "venv").mkdir()
        # The caller is mid-work: a modified tracked file and an untracked one must survive untouched.
        (self.repo / "README.md").write_text("# project\nwork in progress\n")
        (self.repo / "notes.txt").write_text("scratch\n")
        self.before = self.snapshot()

        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        pulumi = bin_dir / "pulumi"
        pulumi.write_text(f"#!/bin/sh\nexec {sys.executable} {HERE / 'fake_pulumi.py'} \"$@\"\n")
        pulumi.chmod(pulumi.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("FAKE_PULUMI_LOG", str(self.log))
        monkeypatch.setenv("FAKE_PULUMI_FIXTURES", str(FIXTURES))
        self.vars = {**self.commits, **{f"{k}_SHORT": v[:12] for k, v in self.commits.items()}}
        self.monkeypatch = monkeypatch

    def scenario(self, *, history: list[str], preview: list[str] = ("preview-ok",),
                 up: list[str] = ("up-ok",), **overrides: str) -> None:
        self.monkeypatch.setenv("FAKE_PULUMI_SCENARIO", json.dumps(
            {"history": list(history), "preview": list(preview), "up": list(up)}))
        self.monkeypatch.setenv("FAKE_PULUMI_VARS", json.dumps({**self.vars, **overrides}))

    def run(self, *argv: str, confirm: bool = True) -> int:
        return deploy.main(["--repo", str(self.repo), *argv], confirm=lambda _question: confirm)

    def calls(self, command: str | None = None) -> list[dict]:
        records = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [r for r in records if command is None or r["argv"][:1] == [command]]

    def snapshot(self) -> dict[str, str]:
        return {"status": git(self.repo, "status", "--porcelain"), "head": git(self.repo, "rev-parse", "HEAD"),
                "readme": (self.repo / "README.md").read_text(), "notes": (self.repo / "notes.txt").read_text(),
                "stack": (self.repo / STACK_FILE).read_text(),
                "worktrees": git(self.repo, "worktree", "list", "--porcelain")}

    def assert_caller_untouched(self) -> None:
        assert self.snapshot() == self.before
        assert git(self.repo, "worktree", "list", "--porcelain").count("worktree ") == 1


@pytest.fixture
def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    return Harness(tmp_path, monkeypatch)


def flags(call: dict) -> list[str]:
    """An invocation's argv without the values that differ per run (event-log port, message)."""
    argv = list(call["argv"])
    for option in ("--event-log", "--message"):
        if option in argv:
            i = argv.index(option)
            argv[i + 1] = "<" + option.strip("-") + ">"
    return argv


# ---------------------------------------------------------------- deploy

def test_deploy_asks_and_stops_when_not_confirmed(h: Harness) -> None:
    h.scenario(history=["history-before-deploy"])
    assert h.run("deploy", "--stack", "staging", confirm=False) == deploy.EXIT_REFUSED
    assert len(h.calls("preview")) == 1 and h.calls("up") == []


# ---------------------------------------------------------------- rollback

def test_rollback_to_a_chosen_version(h: Harness) -> None:
    h.scenario(history=["history-current-v3", "history-after-rollback"])
    assert h.run("rollback", "--stack", "staging", "--to", "1", "--yes") == 0
    (up,) = h.calls("up")
    assert up["stack_file"] == stack_file_at(IMAGES["C1"])
    # Other pinned SDK: the CLI builds that commit's .venv itself; the policy pack's pins are unchanged.
    assert (up["venv"], up["policy_venv"]) == (False, True)
    h.assert_caller_untouched()


def test_rollback_not_confirmed_changes_nothing(h: Harness) -> None:
    h.scenario(history=["history-current-v3"])
    assert h.run("rollback", "--stack", "staging", confirm=False) == deploy.EXIT_REFUSED
    assert len(h.calls("preview")) == 1 and h.calls("up") == []
    h.assert_caller_untouched()


MISSING_COMMIT = "0" * 39 + "1"

REFUSALS = [
    # (id, history, preview, up, extra argv, vars, words of the message, previews expected)
    ("dirty", "history-v2-dirty", "preview-ok", "up-ok", [], {}, "dirty working tree (git.dirty=true)", 0),
    ("no-commit", "history-v2-without-git", "preview-ok", "up-ok", [], {}, "recorded no git commit", 0),
    ("missing-commit", "history-current-v3", "preview-ok", "up-ok", [], {"C2": MISSING_COMMIT},
     f"commit {MISSING_COMMIT} of version 2 is not in this repository", 0),
    ("locked-file-backend", "history-current-v3", "preview-locked", "up-ok", [], {},
     "the stack is locked by another update (the CLI said: error: the stack is currently locked by 1 lock(s)", 1),
    ("locked-cloud-backend", "history-current-v3", "preview-ok", "up-locked", [], {},
     "the stack is locked by another update (the CLI said: error: [409] Conflict", 1),
    ("update-in-progress", "history-in-progress", "preview-ok", "up-ok", [], {}, "still in progress", 0),
    ("failed-target", "history-after-failed-deploy", "preview-ok", "up-ok", ["--to", "3"], {},
     "version 3 is a update that failed", 0),
    ("unknown-version", "history-current-v3", "preview-ok", "up-ok", ["--to", "9"], {}, "version 9 is not in", 0),
]


@pytest.mark.parametrize(("history", "preview", "up", "extra", "overrides", "words", "previews"),
                         [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_rollback_refuses(h: Harness, capsys: pytest.CaptureFixture[str], history: str, preview: str, up: str,
                          extra: list[str], overrides: dict, words: str, previews: int) -> None:
    h.scenario(history=[history], preview=[preview], up=[up], **overrides)
    assert h.run("rollback", "--stack", "staging", "--yes", *extra) == deploy.EXIT_REFUSED
    err = capsys.readouterr().err
    assert err.startswith("refused: ") and words in err, err
    assert len(h.calls("preview")) == previews
    if up != "up-locked":
        assert h.calls("up") == []
    h.assert_caller_untouched()


def test_deploy_on_a_locked_stack_is_refused(h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    h.scenario(history=["history-before-deploy"], preview=["preview-locked"])
    assert h.run("deploy", "--stack", "staging", "--yes", "--rollback-on-failure") == deploy.EXIT_REFUSED
    assert "pulumi cancel" in capsys.readouterr().err
    assert h.calls("up") == []


# ---------------------------------------------------------------- history

def test_the_double_refuses_what_it_does_not_know(h: Harness) -> None:
    """Guards the tests above: an unexpected invocation fails instead of passing silently."""
    h.scenario(history=["history-current-v3"])
    env = {**os.environ}
    result = subprocess.run(["pulumi", "destroy", "--yes"], capture_output=True, text=True, env=env)
    assert result.returncode == 3 and "no answer" in result.stderr


# ---------------------------------------------------------------- the stack's policy pack config

PACK_CONFIG_STUB = """\
import argparse, json, pathlib, sys
parser = argparse.ArgumentParser()
parser.add_argument("--stack")
parser.add_argument("--out")
args = parser.parse_args()
if pathlib.Path("broken-settings").exists():
    print("error: config aiwfe-platform:policy.advisory = ['x']: names no policy of the pack", file=sys.stderr)
    sys.exit(2)
pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
pathlib.Path(args.out).write_text(json.dumps({"all": "mandatory", "written-for": args.stack}))
"""


def with_pack_config_module(h: Harness) -> None:
    (h.repo / "stacks").mkdir()
    (h.repo / "stacks" / "__init__.py").write_text("")
    (h.repo / "stacks" / "policy_config.py").write_text(PACK_CONFIG_STUB)


def test_deploy_passes_the_stack_pack_config_to_preview_and_up(h: Harness) -> None:
    with_pack_config_module(h)
    h.scenario(history=["history-before-deploy", "history-after-deploy"])
    assert h.run("deploy", "--stack", "staging", "--yes") == 0
    written = h.repo / "build" / "staging" / "policy-config.json"
    assert json.loads(written.read_text()) == {"all": "mandatory", "written-for": "staging"}
    for call in (*h.calls("preview"), *h.calls("up")):
        argv = call["argv"]
        assert argv[argv.index("--policy-pack") + 1] == "policies"
        assert argv[argv.index("--policy-pack-config") + 1] == str(written)


def test_deploy_without_a_pack_config_module_warns_and_uses_the_defaults(
        h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    h.scenario(history=["history-before-deploy", "history-after-deploy"])
    assert h.run("deploy", "--stack", "staging", "--yes") == 0
    assert "--policy-pack-config" not in h.calls("preview")[0]["argv"]
    assert "policy pack runs with its defaults" in capsys.readouterr().out


def test_deploy_refuses_when_the_pack_config_cannot_be_written(
        h: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    with_pack_config_module(h)
    (h.repo / "broken-settings").write_text("")
    h.scenario(history=["history-before-deploy"])
    assert h.run("deploy", "--stack", "staging", "--yes") == deploy.EXIT_REFUSED
    assert h.calls("preview") == [] and h.calls("up") == []
    captured = capsys.readouterr()
    assert "names no policy of the pack" in captured.out + captured.err


def test_a_checkout_borrows_the_callers_virtualenvs_when_the_pins_match(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A pin file absent on both sides matches (a project without requirements-dev.txt, as the
    end-to-end tests' copy is); present on one side only does not."""
    from tools.deploy import commit_checkout

    for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(key, "Ops Test")
    for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(key, "ops@example.com")
    repo = tmp_path / "repo"
    (repo / "policies").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitignore").write_text(".venv/\npolicies/venv/\n")
    (repo / "requirements.txt").write_text("pulumi==3.272.0\n")
    (repo / "policies" / "requirements.txt").write_text("pulumi-policy==1.21.0\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    head = git(repo, "rev-parse", "HEAD").strip()
    (repo / ".venv").mkdir()
    (repo / "policies" / "venv").mkdir()
    with commit_checkout(repo, head) as checkout:
        assert (checkout / ".venv").is_symlink() and (checkout / "policies" / "venv").is_symlink()
    (repo / "requirements-dev.txt").write_text("pytest==9.2.0\n")  # only in the caller's tree
    with commit_checkout(repo, head) as checkout:
        assert not (checkout / ".venv").exists() and (checkout / "policies" / "venv").is_symlink()
