"""kubeconform (built by `make toolchain`) over both stacks' rendered manifests, strict, offline.

Its schemas: Kubernetes 1.34's from the pinned `kubernetes-validate` package (their `$id` and
absolute `$ref`s point at kubernetes.io, which kubeconform would try to download; the copies here
refer to `_definitions.json` beside them instead), and for the custom resources the CRDs the API
server test installs (Istio 1.30.3, prometheus-operator), as whole-object schemas that reject
undeclared fields (tests/istio_schemas.py). Every object must be checked: none may be skipped for a
missing schema.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests import istio_schemas
from tests.real_validators.conftest import ISTIO_CRDS, STACKS, tool
from tools import toolchain_validators

KUBERNETES_SCHEMAS = "v1.34.0-local-strict"
K8S_TEMPLATE = "{{ .ResourceKind }}{{ .KindSuffix }}.json"
CRD_TEMPLATE = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"


@pytest.fixture(scope="module")
def kubeconform(validators: toolchain_validators.Validators) -> Path:
    return tool(validators, "kubeconform")


@pytest.fixture(scope="module")
def schemas(validators: toolchain_validators.Validators, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("schemas")
    source = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / KUBERNETES_SCHEMAS
    (root / "k8s").mkdir()
    for path in source.glob("*.json"):
        document = json.loads(path.read_text().replace('"/api/_definitions.json#', '"_definitions.json#'))
        document.pop("$id", None)
        (root / "k8s" / path.name).write_text(json.dumps(document))
    for crd_file in [ISTIO_CRDS, *sorted(validators.crds.glob("*/*.yaml"))]:
        for (api_version, kind), schema in istio_schemas.served_schemas(crd_file).items():
            group, version = api_version.split("/")
            target = root / "crds" / group / f"{kind.lower()}_{version}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(schema))
    return [str(root / "k8s" / K8S_TEMPLATE), str(root / "crds" / CRD_TEMPLATE)]


def run(kubeconform: Path, schemas: list[str], files: list[Path]) -> dict:
    argv = [str(kubeconform), "-strict", "-summary", "-output", "json"]
    for location in schemas:
        argv += ["-schema-location", location]
    done = subprocess.run([*argv, *map(str, files)], capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("stack", STACKS)
def test_every_manifest_is_valid(kubeconform: Path, schemas: list[str], build: Path, stack: str) -> None:
    files = sorted((build / stack / "manifests").glob("*.yaml")) + sorted((build / stack / "masked").glob("*.yaml"))
    report = run(kubeconform, schemas, files)
    problems = [r for r in report["resources"] if r["status"] != "statusValid"]
    assert problems == []
    assert report["summary"] == {"valid": len(files), "invalid": 0, "errors": 0, "skipped": 0}


def test_misspelt_fields_are_invalid(kubeconform: Path, schemas: list[str], build: Path, tmp_path: Path) -> None:
    copies = []
    for name in ("07-deployment-aiwfe-websocket.yaml", "13-virtualservice-aiwfe-aiwfe-product.yaml"):
        copy = tmp_path / name
        shutil.copyfile(build / "prod" / "manifests" / name, copy)
        document = yaml.safe_load(copy.read_text())
        document["spec"]["replicaz" if document["kind"] == "Deployment" else "gatewayz"] = 1
        copy.write_text(yaml.safe_dump(document))
        copies.append(copy)
    report = run(kubeconform, schemas, copies)
    assert [r["status"] for r in report["resources"]] == ["statusInvalid", "statusInvalid"], report
