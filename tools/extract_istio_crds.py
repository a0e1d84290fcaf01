"""Extract the Istio CustomResourceDefinitions this program declares from Istio's full CRD file.

    python -m tools.extract_istio_crds /work/shared/schemas/istio-1.30.3-crds.yaml \
        tests/schemas/istio-1.30.3-crds.yaml

The source is istio/api, tag v1.30.3, `kubernetes/customresourcedefinitions.gen.yaml`
(Apache-2.0, Copyright Istio Authors). Only the CRDs of the kinds the program declares are kept, and
of each only the version it uses (`v1`) and the storage version, where that is another (Telemetry's
`v1alpha1`), so a real API server can install them (tests/real_validators); their content is
unchanged (re-serialized YAML). The full file is 870 KB, the extract about a quarter of it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

KINDS = ("Gateway", "VirtualService", "DestinationRule", "PeerAuthentication", "RequestAuthentication",
         "AuthorizationPolicy", "Telemetry")
HEADER = """\
# Istio CustomResourceDefinitions (OpenAPI schemas), extracted by tools/extract_istio_crds.py.
# Source: https://github.com/istio/api, tag v1.30.3, kubernetes/customresourcedefinitions.gen.yaml
# Copyright Istio Authors. Licensed under the Apache License, Version 2.0
# (http://www.apache.org/licenses/LICENSE-2.0). Kept: {kinds}, versions {versions}
# and each CRD's storage version; content unchanged (re-serialized).
"""
VERSIONS = ("v1",)


def extract(text: str, kinds: tuple[str, ...] = KINDS, versions: tuple[str, ...] = VERSIONS) -> str:
    """The source's first comment line, then the CRDs of `kinds` with only `versions` left."""
    first = text.partition("\n")[0]
    kept = []
    for document in yaml.safe_load_all(text):
        if not document or document["spec"]["names"]["kind"] not in kinds:
            continue
        document["spec"]["versions"] = [v for v in document["spec"]["versions"]
                                        if v["name"] in versions or v.get("storage")]
        if not document["spec"]["versions"]:
            raise SystemExit(f"{document['spec']['names']['kind']} serves none of {versions}")
        kept.append(yaml.safe_dump(document, sort_keys=False, width=100))
    if len(kept) != len(kinds):
        raise SystemExit(f"expected {len(kinds)} CRDs, found {len(kept)}")
    header = HEADER.format(kinds=", ".join(kinds), versions=", ".join(versions))
    return header + first + "\n" + "---\n".join(kept)


def main(argv: list[str]) -> int:
    source, target = map(Path, argv)
    target.write_text(extract(source.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
