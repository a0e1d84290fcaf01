"""Both stacks through the real engine: preview with the policy pack, up, and what up wrote.

One project per stack (module scope): `pulumi stack init`, the two secret config keys set with
`pulumi config set --secret`, the kubernetes provider told to render YAML into a folder, then
`pulumi preview --policy-pack` and `pulumi up`. The tests read what those left behind.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import SECRET_CONFIG, Project, new_project
from tools import render as render_tool
from tools import toolchain as toolchain_tool

STACKS = ("staging", "prod")
# Lines of the CLI's policy summary: "- [mandatory] [severity: high]  rule-name  (type: name)".
VIOLATION = re.compile(r"\[(mandatory|advisory|remediate)\](?:\s+\[severity: \w+\])?\s+([a-z0-9]+(?:-[a-z0-9]+)+)")


@dataclass
class Deployed:
    project: Project
    stack: str
    render_dir: Path
    offline: render_tool.RenderResult
    preview: subprocess.CompletedProcess[str]
    up: subprocess.CompletedProcess[str]


def violations(output: str) -> set[tuple[str, str]]:
    return {(name, level) for level, name in VIOLATION.findall(output)}


def offline_violations(report: dict) -> set[tuple[str, str]]:
    return {(v["policy"], v["enforcement"]) for v in report["violations"]}


@pytest.fixture(scope="module", params=STACKS)
def deployed(request: pytest.FixtureRequest, toolchain: toolchain_tool.Toolchain,
             tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    stack = request.param
    base = tmp_path_factory.mktemp(f"engine-{stack}")
    offline = render_tool.render(stack, base / "offline")
    project = new_project(toolchain, base, "project")
    render_dir = base / "rendered"
    project.init_stack(stack, render_dir=render_dir)
    pack = ["--policy-pack", str(project.dir / "policies"),
            "--policy-pack-config", str(base / "offline" / "policy-config.json")]
    preview = project.pulumi("preview", "--stack", stack, *pack)
    up = project.pulumi("up", "--yes", "--skip-preview", "--stack", stack, *pack)
    return Deployed(project, stack, render_dir, offline, preview, up)


def test_the_real_cli_runs(toolchain: toolchain_tool.Toolchain) -> None:
    version = subprocess.run([str(toolchain.pulumi), "version"], capture_output=True, text=True, check=True)
    manifest = json.loads(toolchain.manifest.read_text())
    print(f"pulumi CLI {version.stdout.strip()} from {toolchain.pulumi}")  # shown in the test log (-rA / -s)
    assert version.stdout.strip() == manifest["pulumi_cli"]


def test_preview_with_the_policy_pack_gives_the_offline_verdicts(deployed: Deployed) -> None:
    report = json.loads((deployed.render_dir.parent / "offline" / "policy-report.json").read_text())
    assert violations(deployed.preview.stdout) == offline_violations(report)
    # The pack really ran inside the preview: the CLI names it in its summary.
    assert "aiwfe" in deployed.preview.stdout.lower() and "polic" in deployed.preview.stdout.lower()


def _objects(folder: Path) -> dict[tuple[str, str, str, str], dict]:
    objects = {}
    for path in sorted(folder.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                meta = doc.get("metadata", {})
                objects[(doc["apiVersion"], doc["kind"], meta.get("namespace", ""), meta["name"])] = doc
    return objects


def _normalise(obj: dict) -> dict:
    """What differs by design between the offline render and the provider's YAML: generated secret
    values (masked offline, real and base64 `data` in the render folder), what is derived from them
    (the pods' secrets version), and the provider's own bookkeeping label."""
    obj = json.loads(json.dumps(obj))
    labels = obj.get("metadata", {}).get("labels", {})
    if labels.get("app.kubernetes.io/managed-by") == "pulumi":
        del labels["app.kubernetes.io/managed-by"]
    if obj.get("kind") == "Secret":
        keys = {**(obj.pop("data", None) or {}), **(obj.pop("stringData", None) or {})}
        obj["data"] = dict.fromkeys(keys, "<value>")
    # An HMAC of generated secrets with a generated salt: the offline stand-ins and the real
    # random provider generate different ones.
    annotations = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {})
    if "aiwfe.io/app-secrets-version" in annotations:
        annotations["aiwfe.io/app-secrets-version"] = "<generated>"
    return obj


_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?")
_SCALE = {None: 1, "m": 0.001, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def _same_quantity(a: object, b: object) -> bool:
    """`12288Mi` and `12Gi` are one Kubernetes quantity; the provider writes the canonical form."""
    if not (isinstance(a, str) and isinstance(b, str)):
        return False
    ma, mb = _QUANTITY.fullmatch(a), _QUANTITY.fullmatch(b)
    return bool(ma and mb) and float(ma[1]) * _SCALE[ma[2]] == float(mb[1]) * _SCALE[mb[2]]


def _is_empty(value: object) -> bool:
    return value is False or value == {} or value == []


def differences(real: object, offline: object, path: str = "") -> list[str]:
    """Where the two objects differ, except for fields the offline render states with their empty
    value and the provider leaves out: Kubernetes' own types omit empty `omitempty` fields
    (`hostNetwork: false`, `annotations: {}`, `ingress: []`) and the API server reads them back as
    that same empty value, so both mean the same object."""
    if isinstance(real, dict) and isinstance(offline, dict):
        found = []
        for key in sorted(set(real) | set(offline)):
            where = f"{path}.{key}"
            if key in real and key in offline:
                found += differences(real[key], offline[key], where)
            elif key in offline and _is_empty(offline[key]):
                continue
            else:
                found.append(f"{where}: only in {'the provider' if key in real else 'the offline render'}")
        return found
    if isinstance(real, list) and isinstance(offline, list) and len(real) == len(offline):
        return [d for i, (a, b) in enumerate(zip(real, offline, strict=True))
                for d in differences(a, b, f"{path}[{i}]")]
    if real == offline or _same_quantity(real, offline):
        return []
    return [f"{path}: {json.dumps(real)[:80]} != {json.dumps(offline)[:80]}"]


def test_up_writes_the_offline_render_object_for_object(deployed: Deployed) -> None:
    real = _objects(deployed.render_dir)
    offline = _objects(deployed.render_dir.parent / "offline")  # manifests/ and masked/
    assert real, f"the kubernetes provider wrote nothing into {deployed.render_dir}"
    assert sorted(real) == sorted(offline)
    for key, obj in offline.items():
        assert differences(_normalise(real[key]), _normalise(obj)) == [], f"{key} differs"


def _secret_values(deployed: Deployed) -> list[str]:
    """The generated passwords as up rendered them, and the secrets set with `config set --secret`."""
    values = list(SECRET_CONFIG.values())
    for obj in _objects(deployed.render_dir).values():
        if obj["kind"] == "Secret":
            values += [base64.b64decode(v).decode() for v in (obj.get("data") or {}).values()]
            values += list((obj.get("stringData") or {}).values())
    return [v for v in values if len(v) >= 12]


def test_no_plaintext_secret_in_state_stack_file_or_outputs(deployed: Deployed) -> None:
    secrets = _secret_values(deployed)
    assert len(secrets) >= len(SECRET_CONFIG) + 2, "expected the generated passwords among the Secrets"
    state_files = list(deployed.project.state.rglob("*.json"))
    assert state_files
    places = {str(p): p.read_text() for p in state_files}
    places["Pulumi.<stack>.yaml"] = (deployed.project.dir / f"Pulumi.{deployed.stack}.yaml").read_text()
    places["stack output"] = deployed.project.pulumi("stack", "output", "--json", "--stack", deployed.stack).stdout
    for where, text in places.items():
        for secret in secrets:
            assert secret not in text, f"a secret value is in plaintext in {where}"
    assert "ciphertext" in "".join(p.read_text() for p in state_files)


def test_the_gcp_double_recorded_the_load_balancer(deployed: Deployed) -> None:
    record = Path(deployed.project.env["AIWFE_GCP_DOUBLE_RECORD"])
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    created = {c["urn"].split("::")[-2].split("$")[-1] for c in calls if c["method"] == "Create"}
    offline = {r["type"] for r in deployed.offline.document["resources"]
               if r["type"].startswith("gcp:") and r["custom"]}
    assert offline and offline <= created


def test_a_second_up_changes_nothing(deployed: Deployed) -> None:
    again = deployed.project.pulumi("preview", "--stack", deployed.stack, "--expect-no-changes")
    assert again.returncode == 0


def test_a_config_the_pack_refuses_fails_the_preview_with_the_offline_rule(
        toolchain: toolchain_tool.Toolchain, tmp_path: Path) -> None:
    project = new_project(toolchain, tmp_path, "project")
    project.init_stack("prod", render_dir=tmp_path / "rendered")
    # Accepted by the settings, refused by the pack: 5 pods x 1000 connections < the 10,000 target.
    project.pulumi("config", "set", "--path", "--stack", "prod", "aiwfe-platform:websocket.maxReplicas", "5")
    offline = render_tool.render("prod", tmp_path / "offline",
                                 config=render_tool.load_stack_config("prod", root=project.dir))
    expected = offline_violations(offline.report.as_json())
    assert ("platform-websocket-capacity-require-target-connections", "mandatory") in expected
    result = project.pulumi("preview", "--stack", "prod", "--policy-pack", str(project.dir / "policies"),
                            "--policy-pack-config", str(tmp_path / "offline" / "policy-config.json"), check=False)
    assert result.returncode != 0
    assert violations(result.stdout) == expected, result.stdout[-5000:]


def refused_line(result: subprocess.CompletedProcess[str], key: str) -> str:
    """The program's one line, as the diagnostics print it (the progress view shows it too)."""
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text[-3000:]
    lines = {line.strip() for line in text.splitlines() if line.strip().startswith(f"error: config {key} = ")}
    assert len(lines) == 1, text[-3000:]
    return lines.pop()


def test_a_redis_layout_change_is_refused_before_anything_changes(deployed: Deployed) -> None:
    project, stack = deployed.project, deployed.stack
    state_before = sorted(r["urn"] for r in project.export(stack)["deployment"]["resources"])
    masters, first_zone = "aiwfe-platform:redis.masters", "aiwfe-platform:gcp.zones[0]"
    zones = render_tool.settings_of(render_tool.load_stack_config(stack, root=project.dir)).gcp.zones

    def run_with(key: str, value: str, restore: str, *command: str) -> subprocess.CompletedProcess[str]:
        project.pulumi("config", "set", "--path", "--stack", stack, key, value)
        try:
            return project.pulumi(*command, "--stack", stack, check=False)
        finally:
            project.pulumi("config", "set", "--path", "--stack", stack, key, restore)

    preview = run_with(masters, "4", "3", "preview")
    assert preview.returncode != 0
    line = refused_line(preview, "aiwfe-platform:redis.masters")
    assert "the deployed Redis cluster has 3 masters" in line and "docs/upgrades.md#redis" in line
    # An up with other zones: refused the same way, and the state keeps every resource.
    up = run_with(first_zone, "europe-west1-z", zones[0], "up", "--yes", "--skip-preview")
    assert up.returncode != 0
    assert "the deployed Redis cluster has the zones" in refused_line(up, "aiwfe-platform:gcp.zones")
    assert sorted(r["urn"] for r in project.export(stack)["deployment"]["resources"]) == state_before
    # That failed up left the stack resource without outputs; the component's state still says 3.
    again = run_with(masters, "6", "3", "preview")
    assert "the deployed Redis cluster has 3 masters" in refused_line(again, "aiwfe-platform:redis.masters")
