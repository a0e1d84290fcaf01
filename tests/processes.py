"""Stopping the servers the tests start (API server, etcd, Keycloak, nginx) the same way."""

from __future__ import annotations

import subprocess


def stop(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM (each server's graceful shutdown), then SIGKILL if it is still running after `timeout`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
