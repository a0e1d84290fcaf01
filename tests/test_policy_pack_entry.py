"""`policies/__main__.py` as the Pulumi CLI runs it: from inside policies/, building the whole pack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from policies.aiwfe_policies.catalog import all_rules
from policies.aiwfe_policies.crossguard import PACK_NAME

ROOT = Path(__file__).resolve().parent.parent


# Stands in for pulumi_policy.PolicyPack (which serves gRPC forever): prints what it was given.
FAKE_PACK = """
import json, runpy, pulumi_policy
def fake(name, policies, **_):
    print(json.dumps({"name": name, "policies": sorted(p.name for p in policies)}))
pulumi_policy.PolicyPack = fake
runpy.run_path("__main__.py", run_name="__main__")
"""


def test_entry_point_builds_the_pack_from_its_own_folder() -> None:
    """Run as the CLI does: a fresh interpreter inside policies/, the repository not on sys.path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", FAKE_PACK], cwd=ROOT / "policies", env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    built = json.loads(result.stdout.strip().splitlines()[-1])
    assert built["name"] == PACK_NAME
    assert built["policies"] == sorted(r.name for r in all_rules())


def test_pack_project_files() -> None:
    project = yaml.safe_load((ROOT / "policies" / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert project["version"]
    requirements = (ROOT / "policies" / "requirements.txt").read_text()
    assert "pulumi-policy==" in requirements and "pulumi==" in requirements
