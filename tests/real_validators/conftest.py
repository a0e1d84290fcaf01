"""The validators `make toolchain` built (tools/toolchain_validators.py) and the rendered stacks they judge."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.real_validators import built
from tests.real_validators.cluster import ApiClient, ServerError, local_api_server
from tests.rendered_stacks import rendered_document
from tools import render, toolchain_validators

ROOT = Path(__file__).resolve().parents[2]
ISTIO_CRDS = ROOT / "tests" / "schemas" / "istio-1.30.3-crds.yaml"
STACKS = ("staging", "prod")


@pytest.fixture(scope="session")
def validators() -> toolchain_validators.Validators:
    return built.validators()


tool = built.tool


def stack_manifests(stack: str) -> list[dict[str, Any]]:
    """Every Kubernetes object the stack declares, in the order `tools.render` numbers them."""
    objects = [m for r in rendered_document(stack)["resources"] if (m := render.kubernetes_manifest(r))]

    def order(obj: dict[str, Any]) -> int:
        kind = obj["kind"]
        return render.KIND_ORDER.index(kind) if kind in render.KIND_ORDER else len(render.KIND_ORDER)

    return sorted(objects, key=order)


def install_crds(client: ApiClient, files: list[Path]) -> list[str]:
    names = []
    for path in files:
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            answer = client.apply(crd, dry_run=False)
            assert answer.ok, f"CRD {crd['metadata']['name']} from {path.name} refused: {answer.message}"
            names.append(crd["metadata"]["name"])
    for name in names:
        client.wait_established(name)
    return names


@contextmanager
def cluster_with_crds(v: toolchain_validators.Validators) -> Iterator[ApiClient]:
    """etcd and kube-apiserver on loopback with Istio 1.30.3's CRDs and the monitoring CRDs installed."""
    etcd, apiserver = tool(v, "etcd"), tool(v, "kube-apiserver")
    with tempfile.TemporaryDirectory(prefix="aiwfe-apiserver-") as workdir:
        try:
            with local_api_server(etcd, apiserver, Path(workdir)) as client:
                try:
                    install_crds(client, [ISTIO_CRDS, *sorted(v.crds.glob("*/*.yaml"))])
                except ServerError as err:
                    pytest.fail(f"the CRDs were not established: {err}")
                yield client
        except ServerError as err:
            pytest.fail(f"the local API server did not start: {err}")


def create_namespaces(client: ApiClient, objects: list[dict[str, Any]]) -> set[str]:
    """The stack's Namespaces for real (its labels decide Pod Security); namespaces it only uses
    (the ingress gateway's, monitoring) plain, as a cluster would already have them."""
    declared = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Namespace"}
    used = {o["metadata"]["namespace"] for o in objects if o["metadata"].get("namespace")}
    for name in sorted(used - set(declared)):
        answer = client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, dry_run=False)
        assert answer.ok, f"namespace {name}: {answer.message}"
    for name, namespace in declared.items():
        answer = client.apply(namespace, dry_run=False)
        assert answer.ok, f"Namespace {name}: {answer.message}"
    return set(declared)


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both stacks' files as `make render` writes them (manifests/, masked/, resources.json), from the
    documents the session has rendered already."""
    root = tmp_path_factory.mktemp("build")
    for stack in STACKS:
        render.write_outputs(rendered_document(stack), root / stack)
    return root
