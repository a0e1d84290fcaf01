"""A stack file read the way the Pulumi CLI hands it to the program: every value a string, structured
values as JSON (the YAML rules are `stack_yaml`'s). The offline render, the pack config and the
tests read stacks through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stacks import settings as stack_settings
from stacks import stack_yaml

ROOT = Path(__file__).resolve().parent.parent
# Stands in for stack secrets, which only the stack's secrets provider can decrypt.
PLACEHOLDER_SECRET = "offline-render-placeholder-not-a-real-secret"  # noqa: S105


@dataclass
class StackConfig:
    project: str
    stack: str
    values: dict[str, str]
    secret_keys: list[str] = field(default_factory=list)


def load_stack_config(stack: str, root: Path | None = None) -> StackConfig:
    """Read `Pulumi.<stack>.yaml` the way Pulumi hands it to a program: every value a string,
    structured values as JSON. Encrypted (`secure:`) and unset secret keys get a placeholder."""
    root = root or ROOT
    project = yaml.safe_load((root / "Pulumi.yaml").read_text())["name"]
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no stack config {path.name}; stacks here: "
                                + ", ".join(sorted(p.name[7:-5] for p in root.glob("Pulumi.*.yaml"))))
    try:
        document = stack_yaml.load(path.read_text()) or {}
        if not isinstance(document, Mapping) or not isinstance(document.get("config") or {}, Mapping):
            raise stack_yaml.StackFileError("the file and its `config:` must be maps")
        values: dict[str, str] = {}
        secret_keys: list[str] = []
        for key, value in (document.get("config") or {}).items():
            if not isinstance(key, str):
                raise stack_yaml.StackFileError(f"config key {key!r} is not a string")
            full = key if ":" in key else f"{project}:{key}"
            if _has_secure(value):
                values[full] = PLACEHOLDER_SECRET if isinstance(value, Mapping) and set(value) == {"secure"} \
                    else stack_yaml.config_string(_replace_secure(value))
                secret_keys.append(full)
            else:
                values[full] = stack_yaml.config_string(value)
    except stack_yaml.StackFileError as error:
        raise stack_yaml.StackFileError(f"{path.name}: {error}") from None
    for name in stack_settings.SECRET_KEYS:
        full = f"{project}:{name}"
        if full not in values:
            values[full] = PLACEHOLDER_SECRET
            secret_keys.append(full)
    return StackConfig(project=project, stack=stack, values=values, secret_keys=secret_keys)


def _has_secure(value: Any) -> bool:
    if isinstance(value, Mapping):
        return set(value) == {"secure"} or any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def _replace_secure(value: Any) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {"secure"}:
            return PLACEHOLDER_SECRET
        return {k: _replace_secure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_secure(v) for v in value]
    return value


def settings_of(config: StackConfig) -> stack_settings.Settings:
    """The stack's validated settings, as the program sees them."""
    return stack_settings.parse_settings(config.values, stack=config.stack, secret_keys=config.secret_keys,
                                         project=config.project)
