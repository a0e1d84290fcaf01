"""The real Pulumi engine, offline: the toolchain `make toolchain` built, a file:// state backend in
a temporary folder, a passphrase secrets provider, the kubernetes provider rendering YAML to a
folder instead of reaching a cluster, and the gcp provider's recording test double."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools import toolchain as toolchain_tool

ROOT = Path(__file__).resolve().parents[2]
# The checkout as `pulumi up` and tools/deploy.py use it: the program, its stack files, the policy
# pack, and the tools (the pack config is written by stacks.policy_config through tools.render).
PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "requirements.txt", "Pulumi.staging.yaml", "Pulumi.prod.yaml")
PROJECT_DIRS = ("stacks", "components", "policies", "tools")
SECRET_CONFIG = {"keycloakGoogleClientSecret": "google-client-secret-e2e-7f3a",
                 "keycloakGithubClientSecret": "github-client-secret-e2e-9c1d"}
RENDER_DIR_KEY = "kubernetes:renderYamlToDirectory"


@pytest.fixture(scope="session")
def toolchain() -> toolchain_tool.Toolchain:
    tc = toolchain_tool.current()
    if not tc.complete():
        message = f"the Pulumi toolchain is not built ({tc.home}); run `make toolchain`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return tc


@dataclass
class Project:
    """A copy of the program in its own folder, logged in to its own file:// backend."""

    dir: Path
    env: dict[str, str]
    state: Path

    def pulumi(self, *args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["pulumi", *args, "--non-interactive"], cwd=cwd or self.dir, env=self.env,
                                capture_output=True, text=True, timeout=1200)
        if check and result.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        return result

    def init_stack(self, stack: str, render_dir: Path | None = None) -> None:
        self.pulumi("stack", "init", stack)
        for key, value in SECRET_CONFIG.items():
            self.pulumi("config", "set", "--secret", "--stack", stack, key, value)
        if render_dir is not None:
            # The provider refuses a cluster context together with render mode.
            self.pulumi("config", "rm", "--stack", stack, "kubernetes:context")
            self.pulumi("config", "set", "--stack", stack, RENDER_DIR_KEY, str(render_dir))

    def export(self, stack: str) -> dict:
        return json.loads(self.pulumi("stack", "export", "--stack", stack).stdout)

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.dir), *args], check=True, capture_output=True,
                              text=True).stdout.strip()


def copy_program(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "venv", "*.pyc")
    for name in PROJECT_DIRS:
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)


def new_project(toolchain: toolchain_tool.Toolchain, base: Path, name: str, program: Path | None = None) -> Project:
    """A copy of the program (or of `program`) in `base/name`, with its own file:// state backend."""
    work = base / name
    if program is None:
        copy_program(work)
    else:
        shutil.copytree(program, work)
    # The virtualenvs the CLI makes (Pulumi.yaml's `.venv` from requirements.txt alone, the pack's
    # `venv` from policies/requirements.txt alone), built by make toolchain.
    (work / ".venv").symlink_to(toolchain.program_venv)
    if (work / "policies").is_dir():
        (work / "policies" / "venv").symlink_to(toolchain.policy_venv)
    state = base / f"{name}-state"
    state.mkdir()
    env = toolchain_tool.toolchain_env(toolchain)
    env["PULUMI_BACKEND_URL"] = f"file://{state}"
    env["AIWFE_GCP_DOUBLE_RECORD"] = str(base / f"{name}-gcp-calls.jsonl")
    # What the real gcp provider would authenticate with; the double never reads it.
    env["GOOGLE_OAUTH_ACCESS_TOKEN"] = "dummy-access-token"
    for var in ("PULUMI_ACCESS_TOKEN", "VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(var, None)
    return Project(dir=work, env=env, state=state)


@pytest.fixture
def make_project(toolchain: toolchain_tool.Toolchain, tmp_path: Path) -> Callable[..., Project]:
    def make(name: str = "project", program: Path | None = None) -> Project:
        return new_project(toolchain, tmp_path, name, program)

    return make
