"""Synthetic stacks: the real prod program plus N extra WebSocket-like workloads.

Each extra workload is a `WebSocketService` named `synthetic-<i>` (component and app name), built
from the running stack's own settings objects, so it costs what the real WebSocket service costs.
Imports happen inside the program, as in `tools.render.platform_program`, so that a measuring child
charges them to the program run, not to its start-up.
"""

from __future__ import annotations

from collections.abc import Callable

SYNTHETIC_PREFIX = "synthetic"


def synthetic_name(index: int) -> str:
    return f"{SYNTHETIC_PREFIX}-{index}"


def synthetic_program(extra: int) -> Callable[[], None]:
    """A Pulumi program: exactly `stacks.platform.main()`, then `extra` more WebSocket services."""
    if extra < 0:
        raise ValueError(f"extra must be >= 0, not {extra}")

    def program() -> None:
        from stacks.platform import main

        main()
        if extra:
            add_websocket_services(extra)

    return program


def add_websocket_services(count: int) -> None:
    """Declare `count` WebSocket services wired exactly like the real one (same ConfigMap keys,
    Secret and peers, through the same builder), with distinct names."""
    import pulumi

    from components.redis_cluster import client_url
    from components.websocket_service import WebSocketService
    from components.workloads import APP_CONFIG, APP_SECRETS, websocket_service_args
    from stacks.platform import workloads_args
    from stacks.settings import load_settings

    settings = load_settings()
    # An Output namespace, as the real service gets it from the Namespace resource.
    # The Redis address as the cluster component outputs it; a stand-in secret for its password.
    args_of_workloads = workloads_args(settings, pulumi.Output.from_input(settings.app_namespace),
                                       pulumi.Output.from_input(client_url(settings.redis, settings.gcp.zones)),
                                       pulumi.Output.secret("synthetic-stand-in-password"))
    for index in range(1, count + 1):
        name = synthetic_name(index)
        args = websocket_service_args(args_of_workloads, pulumi.Output.from_input(APP_CONFIG),
                                      pulumi.Output.from_input(APP_SECRETS), "synthetic", name=name)
        WebSocketService(name, args)
