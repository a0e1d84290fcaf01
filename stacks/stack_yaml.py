"""Read a `Pulumi.<stack>.yaml` as the Pulumi CLI does, so the offline render gets what `pulumi up` gets.

The CLI decodes stack files with Go's yaml.v3 (YAML 1.2 rules plus a few of its own) and hands the
program every top-level value as a string: scalars printed the way Go prints them, maps and lists
as JSON (after a JSON round trip, so their numbers are float64). PyYAML follows YAML 1.1, which
reads `010` as 8 but `yes` as true and `1:00:00` as 3600; the table in tests/test_stack_yaml.py
shows both readers give the same values, and tests/e2e checks it against the real CLI.

What the CLI refuses is refused here too (`StackFileError`, exit 2 in the render): a duplicated
key, `.inf` or `.nan`. Also refused, where the CLI would accept: explicit tags other than `!!str`
and `!!binary`, and aliases that expand past `MAX_EXPANDED_NODES` (an alias bomb).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import yaml

MAX_EXPANDED_NODES = 10_000
_PLAIN = "!aiwfe/plain"
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_NON_FINITE = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN"}
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
# yaml.v3's timestamp layouts: RFC 3339 with short date fields (T or t), space-separated without a
# zone, date only.
_TIMESTAMP = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{1,2})-(?P<d>[0-9]{1,2})"
    r"(?:(?P<sep>[Tt ])(?P<h>[0-9]{1,2}):(?P<mi>[0-9]{1,2}):(?P<s>[0-9]{1,2})(?:\.(?P<frac>[0-9]{1,9}))?"
    r"(?P<zone>Z|[-+][0-9]{2}:[0-9]{2})?)?")
_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1


class StackFileError(ValueError):
    """A stack file the CLI would refuse, or that this reader refuses; the message names where."""


class GoTime(str):
    """A yaml.v3 timestamp, kept as the text Go's time.Time prints (what the CLI passes on)."""


def _go_int(text: str) -> int | None:
    """strconv.ParseInt/ParseUint with base 0 on text yaml.v3 stripped of underscores."""
    sign, body = (-1, text[1:]) if text[:1] == "-" else (1, text[1:] if text[:1] == "+" else text)
    digits, base = body, 10
    prefix = body[:2].lower()
    if prefix in ("0x", "0o", "0b"):
        digits, base = body[2:], {"0x": 16, "0o": 8, "0b": 2}[prefix]
    elif len(body) > 1 and body[0] == "0":
        digits, base = body[1:], 8
    if not digits or not re.fullmatch({16: "[0-9a-fA-F]+", 10: "[0-9]+", 8: "[0-7]+", 2: "[01]+"}[base], digits):
        return None
    value = sign * int(digits, base)
    if _INT64[0] <= value <= _INT64[1] or (sign > 0 and text[:1] != "+" and value <= _UINT64_MAX):
        return value
    return None


def _go_time(match: re.Match[str]) -> GoTime | None:
    try:
        parts = {k: int(v) for k, v in match.groupdict().items() if v and k not in ("sep", "zone", "frac")}
        frac = match["frac"] or ""
        stamp = datetime(parts["y"], parts["mo"], parts["d"], parts.get("h", 0), parts.get("mi", 0),
                         parts.get("s", 0))
    except ValueError:
        return None
    if match["sep"] in ("T", "t") and not match["zone"]:
        return None  # the RFC 3339 layouts need a zone
    zone = match["zone"] or "Z"
    offset = timedelta(0) if zone == "Z" else (1 if zone[0] == "+" else -1) * timedelta(
        hours=int(zone[1:3]), minutes=int(zone[4:6]))
    stamp = stamp.replace(tzinfo=timezone(offset))
    clock = stamp.strftime("%Y-%m-%d %H:%M:%S") + (("." + frac.rstrip("0")) if frac.rstrip("0") else "")
    if offset == timedelta(0):
        return GoTime(f"{clock} +0000 UTC")
    total = int(offset.total_seconds()) // 60
    numeric = f"{'+' if total >= 0 else '-'}{abs(total) // 60:02d}{abs(total) % 60:02d}"
    return GoTime(f"{clock} {numeric} {numeric}")


def resolve_plain(text: str) -> Any:
    """The value yaml.v3 gives an untagged plain scalar (decoded into an interface{})."""
    if text in _NULLS:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if text in _NON_FINITE:
        raise StackFileError(f"{text!r} is not a finite number (the Pulumi CLI cannot pass it on either)")
    if text[:1] in "+-.0123456789":
        stamp = _TIMESTAMP.fullmatch(text)
        if stamp:
            value = _go_time(stamp)
            if value is not None:
                return value
        plain = text.replace("_", "")
        as_int = _go_int(plain)
        if as_int is not None:
            return as_int
        if _YAML_FLOAT.fullmatch(plain):
            return float(plain)
        if plain.startswith("-0b") and re.fullmatch("[01]+", plain[3:]):
            return -int(plain[3:], 2)
    return text


class _Loader(yaml.SafeLoader):
    """PyYAML's parser with yaml.v3's scalar rules and no YAML 1.1 implicit types."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return _PLAIN
        return super().resolve(kind, value, implicit)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        self.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (dict, list)):
                raise StackFileError(f"line {key_node.start_mark.line + 1}: a map key must be a scalar")
            # Map keys reach the program as JSON strings (`1` -> "1", `true` -> "true").
            key = _key(key)
            if key in result:
                raise StackFileError(f"line {key_node.start_mark.line + 1}: key {key!r} is already defined "
                                     "(the Pulumi CLI refuses duplicated keys)")
            result[key] = self.construct_object(value_node, deep=deep)
        return result


# Only these rules: nothing YAML 1.1 resolves implicitly (bools, sexagesimals, dates) reaches us.
_Loader.yaml_implicit_resolvers = {}
_Loader.yaml_constructors = dict(yaml.SafeLoader.yaml_constructors)
_Loader.add_constructor(_PLAIN, lambda loader, node: resolve_plain(node.value))
_Loader.add_constructor("tag:yaml.org,2002:map", lambda loader, node: loader.construct_mapping(node, deep=True))


def _binary(loader: _Loader, node: yaml.ScalarNode) -> str:
    try:
        return base64.b64decode("".join(node.value.split()), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as error:
        raise StackFileError(f"line {node.start_mark.line + 1}: !!binary value is not base64 of UTF-8 text") from error


_Loader.add_constructor("tag:yaml.org,2002:binary", _binary)
for _tag in ("int", "float", "bool", "null", "timestamp", "set", "omap", "pairs", "merge"):
    _Loader.yaml_constructors.pop(f"tag:yaml.org,2002:{_tag}", None)


def _refuse_tag(loader: _Loader, node: yaml.Node) -> Any:
    raise StackFileError(f"line {node.start_mark.line + 1}: tag {node.tag} is not supported in a stack file "
                         "(write the value plainly or quote it)")


_Loader.add_constructor(None, _refuse_tag)


def _expanded_size(value: Any, seen: dict[int, int]) -> int:
    if not isinstance(value, (dict, list)):
        return 1
    key = id(value)
    if key not in seen:
        seen[key] = 0  # a cycle counts once
        items = value.values() if isinstance(value, dict) else value
        seen[key] = 1 + sum(_expanded_size(item, seen) for item in items)
    return seen[key]


def load(text: str) -> Any:
    """Parse a stack file; `StackFileError` for anything the CLI (or this reader) refuses."""
    loader = _Loader(text)
    try:
        document = loader.get_single_data()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise StackFileError(f"{where}not valid YAML ({getattr(error, 'problem', None) or error})") from None
    finally:
        loader.dispose()
    if loader.aliases and _expanded_size(document, {}) > MAX_EXPANDED_NODES:
        raise StackFileError(f"aliases expand to more than {MAX_EXPANDED_NODES} values (refused: an alias bomb)")
    return document


def go_float(value: float) -> str:
    """A float64 as Go's encoding/json prints it (shortest digits; exponent only outside 1e-6..1e21)."""
    if value == 0:
        return "0" if math.copysign(1, value) > 0 else "-0"
    if 1e-6 <= abs(value) < 1e21:
        digits = format(Decimal(repr(value)), "f")  # shortest round-trip digits, positional
        return digits[:-2] if digits.endswith(".0") else digits
    mantissa, exponent = repr(value).lower().split("e")
    mantissa = mantissa[:-2] if mantissa.endswith(".0") else mantissa
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}e{sign}{int(exponent.lstrip('+-'))}"


def _json_value(value: Any) -> Any:
    """What a map or list holds after the CLI's JSON round trip (numbers through float64)."""
    if isinstance(value, dict):
        return {_key(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    number = float(value)
    if not math.isfinite(number):
        raise StackFileError("a value is not a finite number")
    # Go prints a float64's shortest digits, so 2**64-ish integers come back rounded like this.
    return int(Decimal(repr(number))) if number.is_integer() and abs(number) < 1e21 else number


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return "" if key is None else str(key)


def config_string(value: Any) -> str:
    """The string the program receives for one top-level config value."""
    if isinstance(value, (dict, list)):
        return json.dumps(_json_value(value), separators=(",", ":"), sort_keys=True)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    return str(value)
