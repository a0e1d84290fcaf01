"""tools/toolchain.py: one versions file, a cache key that follows what decides the tools, offline env."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from tools import toolchain, toolchain_validators


def test_plugin_versions_are_the_python_sdk_pins() -> None:
    pins = toolchain.requirement_pins(toolchain.ROOT / "requirements.txt")
    assert {"pulumi", "pulumi-kubernetes", "pulumi-gcp", "pulumi-random"} <= set(pins)
    # The program's venv has no policy SDK; program and pack run on the same pulumi SDK.
    pack = toolchain.requirement_pins(toolchain.ROOT / "policies" / "requirements.txt")
    assert "pulumi-policy" not in pins and pack["pulumi"] == pins["pulumi"]
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


def test_the_keycloak_pin_is_outside_the_go_builds_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A new Keycloak release is fetched into its own folder; it does not rebuild the Go tools."""
    before = toolchain.cache_key()
    spec = toolchain.versions()["keycloak"]
    copy = tmp_path / "versions.toml"
    copy.write_text(toolchain.VERSIONS_FILE.read_text().replace(f'version = "{spec["version"]}"',
                                                                 'version = "26.6.3"'))
    monkeypatch.setattr(toolchain, "VERSIONS_FILE", copy)
    assert toolchain.versions()["keycloak"]["version"] == "26.6.3"
    assert toolchain.cache_key() == before
    assert toolchain.keycloak_dist().home.parent.name == "26.6.3"


def test_find_java_reads_each_jdks_release_file(tmp_path: Path) -> None:
    for name, version in (("openjdk-17", "17.0.15"), ("temurin-25-jdk", "25.0.1"), ("broken", None)):
        (tmp_path / name / "bin").mkdir(parents=True)
        (tmp_path / name / "bin" / "java").write_text("")
        if version:
            (tmp_path / name / "release").write_text(f'IMPLEMENTOR="x"\nJAVA_VERSION="{version}"\n')
    assert toolchain.find_java("25", tmp_path) == tmp_path / "temurin-25-jdk"
    assert toolchain.find_java("17", tmp_path) == tmp_path / "openjdk-17"
    assert toolchain.find_java("21", tmp_path) is None
    assert toolchain.find_java("25", tmp_path / "absent") is None


def test_a_missing_maven_names_what_it_was_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(toolchain.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(toolchain, "find_java", lambda major, root=None: tmp_path)
    with pytest.raises(toolchain.ToolchainError, match="mvn not found"):
        toolchain.fetch_keycloak()


def test_a_missing_jdk_names_the_major(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(toolchain.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(toolchain, "find_java", lambda major, root=None: None)
    with pytest.raises(toolchain.ToolchainError, match=r"no JDK 25 in"):
        toolchain.fetch_keycloak()


# ---------------------------------------------------------------- the validators (tools/toolchain_validators.py)

def test_validators_have_a_cache_key_of_their_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Changing a validator's version rebuilds the validators only, never the Pulumi tools."""
    pulumi_key, validators_key = toolchain.cache_key(), toolchain_validators.cache_key()
    copy = tmp_path / "versions.toml"
    copy.write_text(toolchain.VERSIONS_FILE.read_text().replace('version = "v1.20.0"', 'version = "v1.19.0"'))
    monkeypatch.setattr(toolchain, "VERSIONS_FILE", copy)
    assert toolchain_validators.cache_key() != validators_key
    assert toolchain.cache_key() == pulumi_key


def test_every_validator_is_pinned_or_recorded_as_refused() -> None:
    spec = toolchain_validators.spec()
    for name, tool in spec.items():
        assert ("refused" in tool) != ("version" in tool), name
        if "version" in tool:
            assert tool["module"] and tool["version"].startswith("v"), name
    # The API server is the stacks' Kubernetes minor.
    minor = re.search(r'kubernetesVersion: "1\.(\d+)"', toolchain.ROOT.joinpath("Pulumi.prod.yaml").read_text())
    assert minor, "Pulumi.prod.yaml names no kubernetesVersion"
    assert spec["kube_apiserver"]["version"].startswith(f"v1.{minor.group(1)}.")
    assert spec["kube_apiserver"]["local_replace_version"].startswith(f"v0.{minor.group(1)}.")


def test_local_replaces_are_the_required_modules_only() -> None:
    go_mod = """module go.etcd.io/etcd/server/v3

require (
\tgo.etcd.io/etcd/api/v3 v3.6.16
\tgo.etcd.io/etcd/client/v3 v3.6.16 // indirect
\tgolang.org/x/net v0.40.0
)

replace (
\tgo.etcd.io/etcd/api/v3 => ../api
\tgo.etcd.io/etcd/client/v3 => ../client/v3
)

replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
replace golang.org/x/net => golang.org/x/net v0.41.0
"""
    assert toolchain_validators.local_replaces(go_mod) == ["go.etcd.io/etcd/api/v3", "go.etcd.io/etcd/client/v3"]


def test_filter_types_are_regenerated_from_the_served_modules(tmp_path: Path) -> None:
    def package(root: Path, relative: str, test_only: bool = False) -> None:
        folder = root / relative
        folder.mkdir(parents=True)
        (folder / ("x_test.go" if test_only else "x.go")).write_text("package x\n")

    contrib, envoy, api = tmp_path / "contrib", tmp_path / "envoy", tmp_path / "api"
    package(contrib, "envoy/extensions/filters/http/sxg/v3alpha")
    package(contrib, "envoy/extensions/filters/http/alpn/v3alpha")  # left out, as Istio's generator does
    package(envoy, "extensions/filters/http/router/v3")
    package(envoy, "pkg/cache/v3")  # not a filter type
    package(envoy, "extensions/filters/http/only_tests/v3", test_only=True)
    package(api, "envoy/config/filter/http/alpn/v2alpha1")
    gen = tmp_path / "filter_types.gen.go"
    gen.write_text("//go:build !agent\n\n// Code generated\n\npackage xds\n\nimport (\n\t_ \"gone/v3\"\n)\n")
    toolchain_validators.regenerate_filter_types(gen, {
        "github.com/envoyproxy/go-control-plane/contrib": contrib,
        "github.com/envoyproxy/go-control-plane/envoy": envoy, "istio.io/api": api})
    text = gen.read_text()
    assert text.startswith("//go:build !agent\n\n// Code generated\n\npackage xds\n\nimport (\n")
    imports = [line.strip() for line in text.splitlines() if line.strip().startswith("_ ")]
    assert imports == ['_ "github.com/envoyproxy/go-control-plane/contrib/envoy/extensions/filters/http/sxg/v3alpha"',
                       '_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"',
                       '_ "istio.io/api/envoy/config/filter/http/alpn/v2alpha1"']
