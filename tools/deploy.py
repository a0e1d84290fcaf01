"""Deploy, roll back and list a stack's updates with the Pulumi Automation API.

    python -m tools.deploy deploy   --stack prod [--yes] [--rollback-on-failure]
    python -m tools.deploy rollback --stack prod [--to VERSION] [--yes]
    python -m tools.deploy history  --stack prod

Pulumi has no rollback command: going back means deploying the program and the stack config of an
earlier update again. Each update records the git commit it ran from (`environment["git.head"]`,
`git.dirty`), so `rollback` checks that commit out into a temporary `git worktree` (the caller's
checkout is never touched), previews with the policy pack, then runs `up` from there with that
commit's `Pulumi.<stack>.yaml`. The pack runs with the stack's pack config (levels and capacity
targets), written by the deployed checkout's own `stacks.policy_config` from its own settings and program.
The Automation API drives the `pulumi` CLI found on PATH.

Exit codes: 0 done, 1 the update failed (after `--rollback-on-failure`, also when the rollback
itself succeeded: the deploy did not), 2 refused before changing anything (dirty or unknown commit,
stack locked, not confirmed, bad arguments).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pulumi import automation as auto

ROOT = Path(__file__).resolve().parent.parent
POLICY_PACK = "policies"
PACK_CONFIG_MODULE = "stacks.policy_config"
# What the CLI records in each update's environment (sdk/go/common/apitype, backend.GitHead/GitDirty).
GIT_HEAD = "git.head"
GIT_DIRTY = "git.dirty"

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
# Virtualenvs (gitignored) -> the requirement files that decide their contents.
VIRTUALENVS = {
    ".venv": ("requirements.txt", "requirements-dev.txt", "policies/requirements.txt"),
    "policies/venv": ("policies/requirements.txt",),
}


class RefusedError(Exception):
    """Nothing was changed: the message says why and what to do instead."""


@dataclass(frozen=True)
class Update:
    """One entry of the stack history, as the tool uses it."""

    version: int
    kind: str
    result: str
    start_time: str
    commit: str | None
    dirty: bool
    message: str

    @classmethod
    def from_summary(cls, summary: auto.UpdateSummary) -> Update:
        env = summary.environment or {}
        return cls(
            version=int(summary.version or 0),
            kind=summary.kind,
            result=summary.result,
            start_time=summary.start_time.strftime("%Y-%m-%d %H:%M:%S UTC"),
            commit=env.get(GIT_HEAD) or None,
            dirty=env.get(GIT_DIRTY, "false") == "true",
            message=(summary.message or "").splitlines()[0] if summary.message else "",
        )


Confirm = Callable[[str], bool]


def ask(question: str) -> bool:
    """Interactive confirmation; without a terminal the answer is no (use --yes in automation)."""
    if not sys.stdin.isatty():
        print(f"{question} [y/N] no (not a terminal; pass --yes)")
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _say(line: str) -> None:
    print(line, flush=True)


# ---------------------------------------------------------------- git

def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=check)


def working_tree_dirty(repo: Path) -> bool:
    return bool(git(repo, "status", "--porcelain").stdout.strip())


def commit_exists(repo: Path, commit: str) -> bool:
    return git(repo, "cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode == 0


def _same_file(left: Path, right: Path) -> bool:
    """Both absent, or both present with the same bytes."""
    if not left.is_file() or not right.is_file():
        return not left.exists() and not right.exists()
    return left.read_bytes() == right.read_bytes()


@contextmanager
def commit_checkout(repo: Path, commit: str):
    """A detached worktree of `commit` in a temporary folder, removed afterwards whatever happens."""
    holder = Path(tempfile.mkdtemp(prefix="aiwfe-rollback-"))
    checkout = holder / "checkout"
    try:
        git(repo, "worktree", "add", "--detach", str(checkout), commit)
        # The program runs in `.venv` (Pulumi.yaml), the policy pack in `policies/venv`
        # (PulumiPolicy.yaml): reuse the caller's when that commit pins the same dependencies;
        # otherwise the CLI creates them from the commit's requirements files.
        for venv, pins in VIRTUALENVS.items():
            same = all(_same_file(repo / pin, checkout / pin) for pin in pins)
            if (repo / venv).is_dir() and same and not (checkout / venv).exists():
                (checkout / venv).symlink_to((repo / venv).resolve())
        yield checkout
    finally:
        git(repo, "worktree", "remove", "--force", str(checkout), check=False)
        git(repo, "worktree", "prune", check=False)
        shutil.rmtree(holder, ignore_errors=True)


# ---------------------------------------------------------------- pulumi

def select(stack: str, work_dir: Path) -> auto.Stack:
    return auto.select_stack(stack_name=stack, work_dir=str(work_dir))


def history(stack: auto.Stack) -> list[Update]:
    """Newest first, as the CLI lists them. Self-managed backends (file://, gs://, s3://) record no
    version numbers (every entry says 0): they are numbered as Pulumi Cloud numbers them, 1 for the
    oldest, so `--to` and the messages mean the same on every backend."""
    updates = [Update.from_summary(s) for s in stack.history()]
    if updates and all(u.version == 0 for u in updates):
        updates = [replace(u, version=len(updates) - i) for i, u in enumerate(updates)]
    return updates


def rollback_target(updates: Sequence[Update], to: int | None) -> Update:
    """The update to return to: `to`, or the last successful deploy before the current one."""
    if to is not None:
        found = [u for u in updates if u.version == to]
        if not found:
            raise RefusedError(f"version {to} is not in the stack history (versions: "
                          f"{', '.join(str(u.version) for u in updates) or 'none'})")
        target = found[0]
        if target.kind != "update" or target.result != "succeeded":
            raise RefusedError(f"version {to} is a {target.kind} that {target.result}; roll back to a succeeded update")
        return target
    for update in updates[1:]:
        if update.kind == "update" and update.result == "succeeded":
            return update
    raise RefusedError("no successful update before the current one to roll back to")


def check_target(repo: Path, target: Update) -> str:
    """The commit to deploy, or RefusedError with the reason."""
    if target.dirty:
        raise RefusedError(f"version {target.version} ran from a dirty working tree (git.dirty=true): its code is "
                      "not in any commit, so it cannot be reproduced; pick another version with --to")
    if not target.commit:
        raise RefusedError(f"version {target.version} recorded no git commit (git.head is empty): it was not run "
                      "from a git checkout; pick another version with --to")
    if not commit_exists(repo, target.commit):
        raise RefusedError(f"commit {target.commit} of version {target.version} is not in this repository; "
                      "`git fetch` it (or the branch that has it) first")
    return target.commit


def _locked(error: auto.ConcurrentUpdateError) -> RefusedError:
    return RefusedError("the stack is locked by another update (the CLI said: "
                   f"{_first_error_line(error)}); wait for it to finish, or if it died, `pulumi cancel` it")


def _first_error_line(error: Exception) -> str:
    # str(CommandError) is "code: N / stdout: ... / stderr: ..."; the CLI's own lines start with "error:".
    lines = [re.sub(r"^(stdout|stderr):\s*", "", line.strip()) for line in str(error).splitlines()]
    errors = [line for line in lines if line.startswith("error:")]
    return errors[0] if errors else " ".join(line for line in lines if line)[-300:]


def _summary(changes: dict[str, Any]) -> str:
    return ", ".join(f"{op} {int(n)}" for op, n in sorted(changes.items()) if n) or "no changes"


def pack_config_file(work_dir: Path, stack_name: str) -> Path | None:
    """The stack's policy pack config, written by the checkout's own code from its own settings (a
    rollback judges the old program by its own rules and targets). None for checkouts older than
    pack configs: the pack then judges with its defaults (REQUIREMENTS' targets, all mandatory)."""
    module = work_dir / Path(*PACK_CONFIG_MODULE.split(".")).with_suffix(".py")
    if not module.exists():
        _say(f"warning: {work_dir.name} has no {PACK_CONFIG_MODULE}; the policy pack runs with its defaults")
        return None
    out = work_dir / "build" / stack_name / "policy-config.json"
    result = subprocess.run([sys.executable, "-m", PACK_CONFIG_MODULE, "--stack", stack_name, "--out", str(out)],
                            cwd=work_dir, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise RefusedError(f"cannot write the policy pack config of {stack_name}: "
                           f"{detail[-1] if detail else f'exit {result.returncode}'}")
    return out


def preview_and_up(stack: auto.Stack, *, yes: bool, confirm: Confirm, message: str, work_dir: Path) -> None:
    """Preview with the policy pack (and the stack's pack config), then `up` once confirmed.
    Raises RefusedError or auto.CommandError."""
    config = pack_config_file(work_dir, stack.name)
    packs: dict[str, Any] = {"policy_packs": [POLICY_PACK]}
    if config is not None:
        packs["policy_pack_configs"] = [str(config)]
    try:
        preview = stack.preview(**packs, on_output=_say)
    except auto.ConcurrentUpdateError as error:
        raise _locked(error) from None
    _say(f"preview of {stack.name}: {_summary(preview.change_summary)}")
    if not yes and not confirm(f"apply these changes to {stack.name}?"):
        raise RefusedError("not confirmed; nothing was changed")
    try:
        stack.up(**packs, message=message, on_output=_say)
    except auto.ConcurrentUpdateError as error:
        raise _locked(error) from None


# ---------------------------------------------------------------- commands

def rollback(repo: Path, stack_name: str, *, to: int | None = None, yes: bool = False,
             confirm: Confirm = ask) -> int:
    current = select(stack_name, repo)
    updates = history(current)
    if updates and updates[0].result == "in-progress":
        raise RefusedError(f"version {updates[0].version} is still in progress: the stack is locked by another update")
    target = rollback_target(updates, to)
    commit = check_target(repo, target)
    _say(f"rolling {stack_name} back to version {target.version} (commit {commit[:12]}, {target.start_time})")
    with commit_checkout(repo, commit) as checkout:
        if not (checkout / f"Pulumi.{stack_name}.yaml").exists():
            raise RefusedError(f"commit {commit[:12]} has no Pulumi.{stack_name}.yaml")
        stack = select(stack_name, checkout)
        try:
            preview_and_up(stack, yes=yes, confirm=confirm, work_dir=checkout,
                           message=f"rollback to version {target.version} ({commit[:12]})")
        except auto.CommandError as error:
            _say(f"error: rollback to version {target.version} failed: {_first_error_line(error)}")
            return EXIT_FAILED
    _say(f"rolled {stack_name} back to version {target.version}")
    return EXIT_OK


def deploy(repo: Path, stack_name: str, *, yes: bool = False, rollback_on_failure: bool = False,
           confirm: Confirm = ask) -> int:
    if working_tree_dirty(repo):
        _say("warning: the working tree has uncommitted changes; this update will record git.dirty=true "
             "and can never be a rollback target")
    stack = select(stack_name, repo)
    head = git(repo, "rev-parse", "--short=12", "HEAD", check=False).stdout.strip()
    try:
        preview_and_up(stack, yes=yes, confirm=confirm, work_dir=repo, message=f"deploy {head or 'without git'}")
    except auto.CommandError as error:
        _say(f"error: pulumi up failed: {_first_error_line(error)}")
        if not rollback_on_failure:
            return EXIT_FAILED
        _say("--rollback-on-failure: returning to the last successful update")
        try:
            rollback(repo, stack_name, yes=True, confirm=confirm)
        except RefusedError as refused:
            _say(f"error: rollback refused: {refused}")
        return EXIT_FAILED
    _say(f"deployed {stack_name}")
    return EXIT_OK


def show_history(repo: Path, stack_name: str) -> int:
    updates = history(select(stack_name, repo))
    if not updates:
        _say(f"{stack_name} has never been updated")
        return EXIT_OK
    _say(f"{'version':>7}  {'kind':<8} {'result':<11} {'started':<23} {'commit':<12} message")
    for u in updates:
        commit = (u.commit or "-")[:12] + ("+dirty" if u.dirty else "")
        _say(f"{u.version:>7}  {u.kind:<8} {u.result:<11} {u.start_time:<23} {commit:<12} {u.message}")
    return EXIT_OK


def main(argv: list[str] | None = None, confirm: Confirm = ask) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=ROOT, help="the project checkout (default: this one)")
    commands = parser.add_subparsers(dest="command", required=True)
    p_deploy = commands.add_parser("deploy", help="preview with the policy pack, then up")
    p_deploy.add_argument("--rollback-on-failure", action="store_true",
                          help="when up fails, return to the last successful update")
    p_rollback = commands.add_parser("rollback", help="deploy an earlier update's commit and config again")
    p_rollback.add_argument("--to", type=int, metavar="VERSION",
                            help="the history version to return to (default: last success before the current)")
    p_history = commands.add_parser("history", help="versions, results, times and commits")
    for sub in (p_deploy, p_rollback, p_history):
        sub.add_argument("--stack", required=True)
    for sub in (p_deploy, p_rollback):
        sub.add_argument("--yes", action="store_true", help="do not ask before up")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    try:
        if args.command == "deploy":
            return deploy(repo, args.stack, yes=args.yes, rollback_on_failure=args.rollback_on_failure,
                          confirm=confirm)
        if args.command == "rollback":
            return rollback(repo, args.stack, to=args.to, yes=args.yes, confirm=confirm)
        return show_history(repo, args.stack)
    except RefusedError as refused:
        print(f"refused: {refused}", file=sys.stderr)
        return EXIT_REFUSED
    except auto.ConcurrentUpdateError as error:
        print(f"refused: {_locked(error)}", file=sys.stderr)
        return EXIT_REFUSED
    except auto.CommandError as error:
        print(f"error: {_first_error_line(error)}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
