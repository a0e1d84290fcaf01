"""The policy pack's virtualenv, made from policies/requirements.txt alone (as the CLI makes it for a
pack), is enough for the pack: it starts there, answers the analyzer protocol with every rule of the
catalog and judges a resource, while the program's providers are absent from it. (The preview tests
run the pack from that same virtualenv through the CLI.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policies.catalog import all_rules
from tests.e2e.conftest import copy_program
from tools import toolchain as toolchain_tool


def test_the_pack_runs_from_its_own_virtualenv(toolchain: toolchain_tool.Toolchain, tmp_path: Path) -> None:
    copy_program(tmp_path / "project")
    python = toolchain.policy_venv / "bin" / "python"
    pack = subprocess.Popen([str(python), "-u", str(tmp_path / "project" / "policies" / "__main__.py"),
                             "127.0.0.1:1"], cwd=tmp_path / "project" / "policies",
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
