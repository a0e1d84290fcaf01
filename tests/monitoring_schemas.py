"""Validation of the monitoring custom resources, which kubernetes-validate does not know.

These JSON Schemas are OURS: hand-written for the fields `components/observability.py` emits,
following the field names and types of the Prometheus Operator CRDs (`monitoring.coreos.com/v1`
PodMonitor, PrometheusRule) and Google Managed Prometheus (`monitoring.googleapis.com/v1`
PodMonitoring, ClusterRules). They are strict (no unknown fields), so a misspelt field fails,
but they are not the upstream CRD schemas: they cover only what we declare.
"""

from __future__ import annotations

from typing import Any

import jsonschema

DURATION = {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h|d|w|y))+$"}
LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}


def _metadata(namespaced: bool) -> dict[str, Any]:
    properties = {"name": NAME, "labels": LABELS}
    required = ["name"]
    if namespaced:
        properties["namespace"] = NAME
        required.append("namespace")
    return {"type": "object", "additionalProperties": False, "properties": properties, "required": required}


LABEL_SELECTOR = {
    "type": "object", "additionalProperties": False, "minProperties": 1,
    "properties": {
        "matchLabels": {**LABELS, "minProperties": 1},
        "matchExpressions": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["key", "operator"],
            "properties": {"key": {"type": "string"}, "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                           "values": {"type": "array", "items": {"type": "string"}}}}},
    },
}
RELABEL = {
    "type": "object", "additionalProperties": False, "required": ["action"],
    "properties": {"sourceLabels": {"type": "array", "items": {"type": "string"}}, "regex": {"type": "string"},
                   "action": {"enum": ["replace", "keep", "drop", "labelmap", "labeldrop", "labelkeep"]},
                   "targetLabel": {"type": "string"}, "replacement": {"type": "string"}},
}
RULE_GROUPS = {
    "type": "array", "minItems": 1, "items": {
        "type": "object", "additionalProperties": False, "required": ["name", "rules"],
        "properties": {
            "name": {"type": "string"}, "interval": DURATION,
            "rules": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False, "required": ["alert", "expr"],
                "properties": {"alert": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                               "expr": {"type": "string", "minLength": 1}, "for": DURATION,
                               "labels": LABELS, "annotations": LABELS}}},
        },
    },
}


def _resource(api_version: str, kind: str, spec: dict[str, Any], namespaced: bool = True) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {"apiVersion": {"const": api_version}, "kind": {"const": kind},
                           "metadata": _metadata(namespaced), "spec": spec}}


SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "PodMonitor"): _resource("monitoring.coreos.com/v1", "PodMonitor", {
        "type": "object", "additionalProperties": False, "required": ["selector", "podMetricsEndpoints"],
        "properties": {
            "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                "matchNames": {"type": "array", "minItems": 1, "items": NAME}, "any": {"type": "boolean"}}},
            "selector": LABEL_SELECTOR,
            "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False,
                "properties": {"port": {"type": "string"}, "path": {"type": "string", "pattern": "^/"},
                               "interval": DURATION, "scheme": {"enum": ["http", "https"]},
                               "relabelings": {"type": "array", "items": RELABEL}}}},
        },
    }),
    ("monitoring.coreos.com/v1", "PrometheusRule"): _resource("monitoring.coreos.com/v1", "PrometheusRule", {
        "type": "object", "additionalProperties": False, "required": ["groups"], "properties": {"groups": RULE_GROUPS},
    }),
    ("monitoring.googleapis.com/v1", "PodMonitoring"): _resource("monitoring.googleapis.com/v1", "PodMonitoring", {
        "type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
        "properties": {
            "selector": LABEL_SELECTOR,
            "endpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False, "required": ["port"],
                "properties": {"port": {"type": ["string", "integer"]}, "path": {"type": "string", "pattern": "^/"},
                               "interval": DURATION, "scheme": {"enum": ["http", "https"]}}}},
        },
    }),
    ("monitoring.googleapis.com/v1", "ClusterRules"): _resource("monitoring.googleapis.com/v1", "ClusterRules", {
        "type": "object", "additionalProperties": False, "required": ["groups"], "properties": {"groups": RULE_GROUPS},
    }, namespaced=False),
}


def handles(manifest: dict[str, Any]) -> bool:
    """True for the monitoring API groups (validated here instead of by kubernetes-validate)."""
    return str(manifest.get("apiVersion", "")).split("/")[0] in ("monitoring.coreos.com", "monitoring.googleapis.com")


def validate(manifest: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError (or KeyError for a kind we never emit) when invalid."""
    schema = SCHEMAS[(manifest["apiVersion"], manifest["kind"])]
    jsonschema.validate(manifest, schema, cls=jsonschema.Draft202012Validator)
