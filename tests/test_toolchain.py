"""tools/toolchain.py: one versions file, a cache key that follows what decides the tools, offline env."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tools import toolchain


def test_plugin_versions_are_the_python_sdk_pins() -> None:
    pins = toolchain.requirement_pins(toolchain.ROOT / "requirements.txt")
    # requirements.txt includes the pack's file: its pins are the program's too.
    assert {"pulumi", "pulumi-policy", "pulumi-kubernetes", "pulumi-gcp", "pulumi-random"} <= set(pins)
    assert toolchain.plugin_versions() == {"kubernetes": pins["pulumi-kubernetes"], "gcp": pins["pulumi-gcp"],
                                           "random": pins["pulumi-random"]}


def test_every_tool_version_is_in_the_versions_file() -> None:
    spec = toolchain.versions()
    for tool in ("pulumi", "language_python", "kubernetes"):
        assert spec[tool]["module"] and spec[tool]["version"].startswith("v")
    assert spec["pulumi"]["version"].startswith("v3.27")


def test_the_cache_key_follows_the_versions_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    before = toolchain.cache_key()
    copy = tmp_path / "versions.toml"
    copy.write_text(toolchain.VERSIONS_FILE.read_text().replace('version = "v3.274.1"', 'version = "v3.274.0"'))
    monkeypatch.setattr(toolchain, "VERSIONS_FILE", copy)
    assert toolchain.cache_key() != before


def test_the_environment_keeps_the_cli_offline(tmp_path: Path) -> None:
    tc = toolchain.Toolchain(tmp_path / "k")
    env = toolchain.toolchain_env(tc, base={"PATH": "/usr/bin"})
    assert env["PATH"].split(os.pathsep)[0] == str(tc.bin)
    assert env["PULUMI_HOME"] == str(tc.pulumi_home)
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"


def test_prune_keeps_the_newest_builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(toolchain.CACHE_ENV, str(tmp_path))
    for i in range(5):
        (tmp_path / f"b{i}").mkdir()
        (tmp_path / f"b{i}" / "toolchain.json").write_text(json.dumps({}))
        os.utime(tmp_path / f"b{i}" / "toolchain.json", (time.time() + i, time.time() + i))
    removed = toolchain.prune(keep=3)
    assert sorted(p.name for p in removed) == ["b0", "b1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b2", "b3", "b4"]


def test_env_command_refuses_without_a_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(toolchain.CACHE_ENV, str(tmp_path))
    assert toolchain.main(["env"]) == 2
    assert "make toolchain" in capsys.readouterr().err


def test_a_failed_build_is_fatal_in_ci_and_optional_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(toolchain.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no go here
    monkeypatch.setenv("CI", "false")
    assert toolchain.main(["build", "--optional"]) == 0
    assert "go not found" in capsys.readouterr().err
    assert toolchain.main(["build"]) == 2
    monkeypatch.setenv("CI", "true")
    assert toolchain.main(["build", "--optional"]) == 2
