"""The real validators the tests run the rendered manifests through, built with the Go client.

`make toolchain` builds them after the Pulumi tools (tools/toolchain.py calls `build()`); the tests
find them with `current()`. Stdlib only, like tools/toolchain.py. Pinned in the `[validators.*]`
sections of toolchain/versions.toml, built into `<cache>/validators/<key>/bin`, where the key
covers only those sections and this file's LAYOUT: changing a validator never rebuilds the Pulumi
tools, and the reverse.

- `kube-apiserver` from k8s.io/kubernetes and `etcd` from go.etcd.io/etcd/server/v3: both modules
  replace sibling modules with local paths, which `go install mod@version` refuses; the wrapper
  module restates each such replace with the published version of that sibling.
- `istioctl` from istio.io/istio (Istio tags without a `v`, so the proxy serves commits as
  pseudo-versions). Some of its pinned dependencies are refused by the proxy: versions.toml replaces
  them with served releases, and Istio's generated list of Envoy filter types is regenerated the way
  its own `go:generate` does, against the served go-control-plane modules.
- `kubeconform` and `kube-score`, the peer scanners the proxy serves.
- CRD sources fetched as Go modules (no build): prometheus-operator's monitoring CRDs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools import toolchain as base

# Bump when the build steps or the folder's layout change.
LAYOUT = 1
SECTION = "validators"
# Istio's generated blank imports of every Envoy filter type (pkg/config/xds/filter_types.go says how).
ISTIO_FILTER_TYPES = "pkg/config/xds/filter_types.gen.go"


@dataclass(frozen=True)
class Validators:
    """Where one keyed build of the validators lives."""

    home: Path

    @property
    def bin(self) -> Path:
        return self.home / "bin"

    @property
    def crds(self) -> Path:
        return self.home / "crds"

    @property
    def manifest(self) -> Path:
        return self.home / "validators.json"

    def tool(self, name: str) -> Path:
        return self.bin / name

    def complete(self) -> bool:
        return self.manifest.is_file()

    def built(self) -> dict[str, Any]:
        """The manifest: what was built, from which module version, and what was refused."""
        return json.loads(self.manifest.read_text())


def spec() -> dict[str, dict[str, Any]]:
    return base.versions()[SECTION]


def cache_key() -> str:
    digest = hashlib.sha256(f"validators layout {LAYOUT}\n".encode())
    digest.update(json.dumps(spec(), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def current() -> Validators:
    return Validators(base.cache_root() / SECTION / cache_key())


def _download(module: str, version: str, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """`go mod download -json` of one module version: its `Dir`, `GoMod`, ..."""
    done = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:  # the JSON on stdout carries the proxy's answer
        raise base.ToolchainError(f"go mod download {module}@{version} failed: "
                                  f"{(done.stdout + done.stderr).strip()[-500:]}")
    return json.loads(done.stdout)


def local_replaces(go_mod: str) -> list[str]:
    """Modules a go.mod both requires and replaces with a local directory (`=> ./x`, `=> ../x`);
    a local replace of a module it does not require (etcd's `./FORBIDDEN_DEPENDENCY` guards) is
    left out."""
    required = set(re.findall(r"^\s*(?:require\s+)?(\S+)\s+v\S+(?:\s+//.*)?$", go_mod, re.MULTILINE))
    found = []
    for line in go_mod.splitlines():
        match = re.match(r"\s*(?:replace\s+)?(\S+)(?:\s+v\S+)?\s+=>\s+\.\.?/", line)
        if match and match.group(1) in required:
            found.append(match.group(1))
    return found


def regenerate_filter_types(gen_file: Path, modules: dict[str, Path]) -> None:
    """Rewrite Istio's blank-import list of Envoy filter types from the modules actually used, with
    the filters of Istio's `go:generate` lines (packages with `v3`, no `/pkg/`, contrib without alpn,
    istio_stats, workload_discovery; istio.io/api filters with a version)."""

    def packages(module: str, root: Path, keep: Callable[[str], bool]) -> list[str]:
        found = []
        for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
            if any(f.suffix == ".go" and not f.name.endswith("_test.go") for f in folder.iterdir() if f.is_file()):
                name = f"{module}/{folder.relative_to(root).as_posix()}"
                if keep(name):
                    found.append(name)
        return found

    contrib = packages("github.com/envoyproxy/go-control-plane/contrib",
                       modules["github.com/envoyproxy/go-control-plane/contrib"],
                       lambda p: "v3" in p and "/pkg/" not in p
                       and not any(x in p for x in ("alpn", "istio_stats", "workload_discovery")))
    envoy = packages("github.com/envoyproxy/go-control-plane/envoy",
                     modules["github.com/envoyproxy/go-control-plane/envoy"],
                     lambda p: "v3" in p and "/pkg/" not in p)
    istio_api = packages("istio.io/api/envoy/config/filter",
                         modules["istio.io/api"] / "envoy" / "config" / "filter",
                         lambda p: re.search(r"/v[0-9]", p) is not None)
    text = gen_file.read_text()
    head = text[: text.index("import (")]
    imports = [f'\t_ "{p}"' for p in contrib + envoy] + ["", "\t// Istio-specific Envoy filters"]
    imports += [f'\t_ "{p}"' for p in istio_api]
    gen_file.chmod(0o644)
    gen_file.write_text(head + "import (\n" + "\n".join(imports) + "\n)\n")


def build_tool(name: str, tool: dict, out: Path, work: Path, env: dict[str, str], log: Path) -> str:
    """One Go-built validator into `out`; returns what it was built from."""
    src = work / name
    src.mkdir(parents=True)
    module, version = tool["module"], tool["version"]
    replaces = list(tool.get("replace", []))
    if "local_replace_version" in tool:
        go_mod = Path(_download(module, version, src, env)["GoMod"]).read_text()
        replaces += [f"{m}={m}@{tool['local_replace_version']}" for m in local_replaces(go_mod)]
    requires: dict[str, str] = {}
    if tool.get("regenerate_filter_types"):
        # Build from a copy of the module with the filter list regenerated against the served modules.
        copy = src / "module"
        shutil.copytree(_download(module, version, src, env)["Dir"], copy)
        for folder, _, _ in os.walk(copy):
            os.chmod(folder, 0o700)  # the module cache is read-only; the copy is ours
        replaces.append(f"{module}=./module")
        requires[module] = version
        served = {}
        for item in tool.get("replace", []):
            old, new = item.split("=", 1)
            path, at = new.split("@", 1)
            served[old] = Path(_download(path, at, src, env)["Dir"])
        regenerate_filter_types(copy / ISTIO_FILTER_TYPES, served)
    base.write_go_mod(src, f"aiwfe.local/validators/{name}", replaces, requires)
    ldflags = " ".join(["-s", "-w", *(f"-X {x}" for x in tool.get("stamp", []))])
    if "main" in tool:  # a library entry point: a two-line main calls it with the process arguments
        base._run(["go", "get", f"{tool['main']}@{version}"], src, env, log)
        function = tool.get("main_function", "Main(os.Args)")
        (src / "main.go").write_text(
            "// Entry point generated by tools/toolchain_validators.py.\npackage main\n\nimport (\n\t\"os\"\n\n"
            f"\tentry \"{tool['main']}\"\n)\n\nfunc main() {{\n\tentry.{function}\n}}\n")
        base._run(["go", "mod", "tidy"], src, env, log)
        target = "."
    else:
        # A module replaced by a local copy is required as is: `@version` would ask the proxy again.
        wanted = tool["package"] if requires else f"{tool['package']}@{version}"
        base._run(["go", "get", wanted], src, env, log)
        target = tool["package"]
    base._run(["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(out), target], src, env, log)
    return f"{module}@{version}"


def fetch_crds(name: str, source: dict, dest: Path, work: Path, env: dict[str, str]) -> list[str]:
    """Copy CRD files out of a Go module (a registry that has the real thing) into `dest`."""
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "go.mod").is_file():
        (work / "go.mod").write_text("module aiwfe.local/validators/crds\n\ngo 1.26\n")
    folder = Path(_download(source["module"], source["version"], work, env)["Dir"])
    copied = []
    for relative in source["files"]:
        target = dest / name / Path(relative).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / relative, target)
        copied.append(str(target.relative_to(dest)))
    return copied


def build(force: bool = False) -> Validators:
    v = current()
    if v.complete() and not force:
        return v
    go_version = base.check_go(base.versions()["go"]["minimum"])
    if v.home.exists():
        shutil.rmtree(v.home)
    v.bin.mkdir(parents=True)
    work = v.home / "src"
    log = v.home / "build.log"
    env = base._go_env(v.home)
    built: dict[str, str] = {}
    refused: dict[str, str] = {}
    seconds: dict[str, float] = {}
    crds: dict[str, list[str]] = {}
    for name, tool in spec().items():
        started = time.monotonic()
        if "refused" in tool:
            refused[name] = tool["refused"]
            continue
        if "files" in tool:
            print(f"toolchain: fetching {name} CRDs ...", flush=True)
            crds[name] = fetch_crds(name, tool, v.crds, work / "crds", env)
        else:
            print(f"toolchain: building {name} ...", flush=True)
            built[name] = build_tool(name, tool, v.tool(tool.get("binary", name)), work, env, log)
        seconds[name] = round(time.monotonic() - started, 1)
        print(f"toolchain: {name} done in {seconds[name]} s", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    v.manifest.write_text(json.dumps({"go": go_version, "built": built, "crds": crds, "refused": refused,
                                      "build_seconds": seconds}, indent=2) + "\n")
    prune()
    return v


def prune(keep: int = base.KEEP_BUILDS) -> list[Path]:
    return base.prune(keep, base.cache_root() / SECTION, "validators.json")
