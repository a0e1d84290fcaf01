"""The policy pack runs from a copy of `policies/` alone (what `pulumi policy publish` uploads; the
folder is not even named `policies`), in the virtualenv made from policies/requirements.txt alone
(as the CLI makes it for a pack): it starts the way the CLI starts it (`python <folder>`), answers
the analyzer protocol with every rule of the catalog and judges a resource, and its offline runner
gives the checkout's verdicts on a render, while neither the program nor its providers are there.
(The preview tests run the pack from that same virtualenv through the CLI.)"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policies.aiwfe_policies.catalog import all_rules
from tests.e2e.conftest import ROOT
from tools import render as render_tool
from tools import toolchain as toolchain_tool


def copy_pack(dest: Path) -> Path:
    shutil.copytree(ROOT / "policies", dest, ignore=shutil.ignore_patterns("__pycache__", "venv", "*.pyc"))
    return dest


def test_the_pack_runs_from_a_copy_in_its_own_virtualenv(toolchain: toolchain_tool.Toolchain, tmp_path: Path) -> None:
    pack_dir = copy_pack(tmp_path / "published-pack")
    python = toolchain.policy_venv / "bin" / "python"
    pack = subprocess.Popen([str(python), "-u", str(pack_dir), "127.0.0.1:1"], cwd=pack_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = pack.stdout.readline().strip()
        assert port.isdigit(), pack.stderr.read() if pack.poll() is not None else f"no port: {port!r}"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            analyzer = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=60)
            assert {p.name for p in info.policies} == {rule.name for rule in all_rules()}
            # A resource rule judges a resource sent over the wire: a privileged container is refused.
            request = analyzer_pb2.AnalyzeRequest(type="kubernetes:apps/v1:Deployment", name="bad",
                                                  urn="urn:pulumi:prod::aiwfe-platform::kubernetes:apps/v1:Deployment::bad")
            request.properties.update({"apiVersion": "apps/v1", "kind": "Deployment",
                                       "metadata": {"name": "bad", "namespace": "aiwfe"},
                                       "spec": {"template": {"spec": {"containers": [
                                           {"name": "c", "image": "x:1", "securityContext": {"privileged": True}}]}}}})
            response = analyzer.Analyze(request, timeout=60)
            assert "kubernetes-workload-disallow-privileged" in {d.policyName for d in response.diagnostics}
    finally:
        pack.kill()
        pack.wait()
    # Made from policies/requirements.txt alone: the program's providers are not there.
    probe = subprocess.run([str(python), "-c", "import pulumi_kubernetes"], capture_output=True, text=True)
    assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr


def test_the_copys_offline_runner_gives_the_checkouts_verdicts(toolchain: toolchain_tool.Toolchain,
                                                               tmp_path: Path) -> None:
    pack_dir = copy_pack(tmp_path / "published-pack")
    python = toolchain.policy_venv / "bin" / "python"
    for stack in ("staging", "prod"):
        rendered = render_tool.render(stack, tmp_path / stack)
        done = subprocess.run([str(python), "-m", "aiwfe_policies.offline", str(tmp_path / stack / "resources.json"),
                               "--config", str(tmp_path / stack / "policy-config.json"), "--json"],
                              cwd=pack_dir, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        from_copy = json.loads(done.stdout)
        assert from_copy.pop("config") == str(tmp_path / stack / "policy-config.json")
        assert from_copy == rendered.report.as_json()
