"""The offline runner's stdlib reading of wire props, for renders that need nothing of the SDK.

pulumi_policy's analyzer deserializes wire props (secrets, assets, archives, unknown sentinels) and
hands rules a proxy that raises on an unknown value. Importing it costs most of a cold offline run
(the Pulumi SDK and grpc come with it). When a resource's props hold no signature object and no
unknown sentinel, that deserialization is a plain copy and the proxy never raises; `plain_props`
then builds the same shape with the same container protocol (a `Mapping` for objects, a
`Sequence` for arrays: no list or dict equality, hashing or `+`; item assignment and the SDK's
`__target` key answered alike). Only their class names differ: a message that printed a container
would show it, and every rule case is judged through both readings (tests/policy_cases.py) to the
same report. Anything else returns None and the caller takes the SDK's path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SIGNATURE_KEY = "4dabf18193072939515e22adb298388d"
"""The key that marks a secret, asset, archive or resource reference in wire props."""
UNKNOWN_SENTINELS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
    "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string
    "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
    "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
    "e48ece36-62e2-4504-bad9-02848725956a",  # archive
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
})
"""pulumi_policy's sentinels for values unknown at preview (pulumi_policy.proxy.UNKNOWN_*_VALUE)."""


_TARGET = "__target"
# pulumi_policy's proxies answer this key with the object they wrap (the SDK unwraps them that way);
# answered alike here, so even a rule that met it would see the same.


class WireObject(Mapping):
    """A wire object as a rule sees it: a Mapping like the analyzer's proxy, not a dict."""

    def __init__(self, items: dict[str, Any]) -> None:
        self._items = items

    def __getitem__(self, key: str) -> Any:
        return self._items if key == _TARGET else self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._items[key] = value

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Any:
        return iter(self._items)


class WireArray(Sequence):
    """A wire array as a rule sees it: a Sequence like the analyzer's proxy, not a list."""

    def __init__(self, items: list[Any]) -> None:
        self._items = items

    def __getitem__(self, index: Any) -> Any:
        return self._items if index == _TARGET else self._items[index]

    def __len__(self) -> int:
        return len(self._items)


class _NeedsSdkError(Exception):
    """A signature object or an unknown: only pulumi_policy reads it as the analyzer does."""


def _convert(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        if value in UNKNOWN_SENTINELS:
            raise _NeedsSdkError
        return value
    if kind is dict:
        return _object(value)
    if kind is list:
        return WireArray([_convert(item) for item in value])
    if value is None or kind in (bool, int, float):
        return value
    raise _NeedsSdkError  # not JSON: leave it to the SDK's own handling


def _object(value: dict[Any, Any]) -> WireObject:
    if SIGNATURE_KEY in value:
        raise _NeedsSdkError
    items = {}
    for key, item in value.items():
        if type(key) is not str:
            raise _NeedsSdkError  # the SDK's JSON round trip would turn it into a string
        items[key] = _convert(item)
    return WireObject(items)


def plain_props(wire_props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The props as the analyzer would hand them to a rule, or None when they need the SDK."""
    try:
        return _object(dict(wire_props))
    except _NeedsSdkError:
        return None
