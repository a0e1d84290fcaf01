"""Strict validation of Istio custom resources against Istio's own CRD schemas.

The CRDs (`tests/schemas/istio-1.30.3-crds.yaml`, extracted by `tools/extract_istio_crds.py`) carry
structural OpenAPI schemas. The API server prunes fields a schema does not declare, silently: a
misspelt field would vanish rather than fail. A strict check therefore treats every undeclared
property as an error: `additionalProperties: false` is added to every object schema that lists
`properties` and neither declares `additionalProperties` nor preserves unknown fields.
Not evaluated: the CEL rules (`x-kubernetes-validations`) the API server also runs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_FILE = Path(__file__).parent / "schemas" / "istio-1.30.3-crds.yaml"
ISTIO_GROUPS = ("networking.istio.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io")

# What a client may set in an object's metadata here (the server fills in the rest).
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def is_istio(manifest: Mapping[str, Any]) -> bool:
    return str(manifest.get("apiVersion", "")).split("/")[0] in ISTIO_GROUPS


def strict(schema: Any) -> Any:
    """A copy of a structural schema in which every object rejects undeclared properties."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) if key in ("items", "additionalProperties", "not", "oneOf", "anyOf", "allOf")
              else value for key, value in schema.items()}
    if "properties" in schema:
        result["properties"] = {name: strict(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            result["additionalProperties"] = False
    return result


@cache
def served_schemas(path: Path = SCHEMA_FILE) -> dict[tuple[str, str], dict[str, Any]]:
    """{(apiVersion, kind): strict schema of the whole object} for every served version in the file."""
    result: dict[tuple[str, str], dict[str, Any]] = {}
    for crd in yaml.safe_load_all(path.read_text()):
        if not crd:
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served"):
                continue
            api_version = f"{group}/{version['name']}"
            body = strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            body["properties"] = {
                **body.get("properties", {}),
                "apiVersion": {"const": api_version},
                "kind": {"const": kind},
                "metadata": _METADATA,
            }
            body["required"] = sorted({*body.get("required", []), "apiVersion", "kind", "metadata", "spec"})
            body["additionalProperties"] = False
            result[(api_version, kind)] = body
    return result


class IstioSchemaError(ValueError):
    """An Istio object names no served version in the schema file, or does not match its schema."""


def validate(manifest: Mapping[str, Any], path: Path = SCHEMA_FILE) -> None:
    """Raise IstioSchemaError listing every schema violation of one Istio object."""
    key = (manifest.get("apiVersion"), manifest.get("kind"))
    schema = served_schemas(path).get(key)  # type: ignore[arg-type]
    if schema is None:
        served = ", ".join(f"{v} {k}" for v, k in sorted(served_schemas(path)))
        raise IstioSchemaError(f"{key[0]} {key[1]} is not served by the schema file ({served})")
    validator = jsonschema.Draft4Validator(schema)
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        name = manifest.get("metadata", {}).get("name")
        details = "; ".join(f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)
        raise IstioSchemaError(f"{key[1]} {name}: {details}")
