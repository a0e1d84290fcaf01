"""Build the real Pulumi toolchain from the Go module proxy into a cache outside the checkout.

`make toolchain` runs `python3 -m tools.toolchain build`; the tests and the README's workflow use
`python3 -m tools.toolchain env` (shell exports) or `toolchain_env()`. Stdlib only: it runs before
any virtualenv exists.

What it builds (versions in toolchain/versions.toml, plugin versions from requirements.txt):
- `pulumi` (the CLI and engine) and the Python language host, version stamped with -ldflags (the
  Automation API checks `pulumi version`); the proxy serves only an older host, so the CLI reaches
  it through a protocol adapter (toolchain/plugins/cmd/pulumi-language-python);
- `pulumi-resource-kubernetes`, the real provider, from the one pseudo-version the proxy serves;
- `pulumi-resource-gcp` (a RECORDING TEST DOUBLE) and `pulumi-resource-random` (a stand-in), from
  toolchain/plugins, because the proxy refuses both real provider modules;
- the virtualenvs the CLI would make: one from requirements.txt alone (the program) and one from
  policies/requirements.txt alone (the policy pack);
- the Keycloak server distribution the stacks pin, fetched with the Maven client into its own folder
  (`keycloak/<version>`), and the JDK it runs on, found on the machine.
Plugins are registered with `pulumi plugin install ... --file` in a PULUMI_HOME inside the cache,
and automatic plugin acquisition is off, so nothing is fetched when the tools run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSIONS_FILE = ROOT / "toolchain" / "versions.toml"
PLUGINS_DIR = ROOT / "toolchain" / "plugins"
CACHE_ENV = "AIWFE_TOOLCHAIN_HOME"
# Only for the throwaway stacks of tests and local trials; real stacks use their own passphrase or KMS.
TEST_PASSPHRASE = "aiwfe-e2e-not-a-secret"  # noqa: S105 (a throwaway stack's passphrase)
# Bump when the build steps or the cache's layout change (the key then changes too).
LAYOUT = 1
KEEP_BUILDS = 3
SDK_PACKAGES = {"kubernetes": "pulumi-kubernetes", "gcp": "pulumi-gcp", "random": "pulumi-random"}
# Sections of versions.toml fetched into folders of their own, outside the Go build's key.
SEPARATE_SECTIONS = ("keycloak", "validators")
JVM_ROOT = Path("/usr/lib/jvm")


class ToolchainError(Exception):
    """A tool could not be built or is missing; the message says which and why."""


@dataclass(frozen=True)
class Toolchain:
    """Where one keyed build of the toolchain lives."""

    home: Path

    @property
    def bin(self) -> Path:
        return self.home / "bin"

    @property
    def plugins(self) -> Path:
        return self.home / "plugins"

    @property
    def pulumi_home(self) -> Path:
        return self.home / "pulumi-home"

    @property
    def program_venv(self) -> Path:
        return self.home / "venvs" / "program"

    @property
    def policy_venv(self) -> Path:
        return self.home / "venvs" / "policy"

    @property
    def manifest(self) -> Path:
        return self.home / "toolchain.json"

    @property
    def pulumi(self) -> Path:
        return self.bin / "pulumi"

    def complete(self) -> bool:
        return self.manifest.is_file() and self.pulumi.is_file()


def versions() -> dict:
    return tomllib.loads(VERSIONS_FILE.read_text())


def requirement_pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a requirements file and the files it includes (names lower-cased)."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        include = re.fullmatch(r"\s*-r\s+(\S+)\s*", line)
        if include:
            pins.update(requirement_pins(path.parent / include.group(1)))
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)==([^\s;#]+).*", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def plugin_versions() -> dict[str, str]:
    """The provider versions the Python SDK packages ask the engine for."""
    pins = requirement_pins(ROOT / "requirements.txt")
    missing = [pkg for pkg in SDK_PACKAGES.values() if pkg not in pins]
    if missing:
        raise ToolchainError(f"requirements.txt pins none of {missing}")
    return {name: pins[pkg] for name, pkg in SDK_PACKAGES.items()}


def cache_key() -> str:
    """Changes whenever anything that decides the built tools changes: the versions file, the Python
    pins (plugin versions, virtualenvs), the project's provider sources, and the cache layout."""
    digest = hashlib.sha256(f"layout {LAYOUT}\n".encode())
    for requirements in (ROOT / "requirements.txt", ROOT / "policies" / "requirements.txt"):
        digest.update(json.dumps(requirement_pins(requirements), sort_keys=True).encode())
    go_sections = {k: v for k, v in versions().items() if k not in SEPARATE_SECTIONS}
    digest.update(json.dumps(go_sections, sort_keys=True).encode())
    files: dict[str, Path] = {}
    files.update({str(p.relative_to(PLUGINS_DIR)): p for p in sorted(PLUGINS_DIR.rglob("*")) if p.is_file()})
    for label, path in files.items():
        digest.update(label.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "aiwfe-toolchain")


def current() -> Toolchain:
    return Toolchain(cache_root() / cache_key())


@dataclass(frozen=True)
class KeycloakDist:
    """The Keycloak server distribution of the pinned release and the JDK it runs on."""

    version: str
    home: Path
    java_home: Path | None

    def complete(self) -> bool:
        return (self.home / "bin" / "kc.sh").is_file() and (self.home / ".aiwfe-complete").is_file()


def find_java(major: str, root: Path = JVM_ROOT) -> Path | None:
    """A JDK of that major version among the machine's (its `release` file says JAVA_VERSION)."""
    if not root.is_dir():
        return None
    for candidate in sorted(root.iterdir()):
        release = candidate / "release"
        if not release.is_file() or not (candidate / "bin" / "java").is_file():
            continue
        match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.MULTILINE)
        if match and match.group(1) == major:
            return candidate
    return None


def keycloak_dist() -> KeycloakDist:
    spec = versions()["keycloak"]
    home = cache_root() / "keycloak" / spec["version"] / f"keycloak-{spec['version']}"
    return KeycloakDist(spec["version"], home, find_java(spec["java"]))


def fetch_keycloak(log: Path | None = None) -> KeycloakDist:
    """Download the distribution with `mvn dependency:copy` and unpack it (once per version)."""
    dist = keycloak_dist()
    spec = versions()["keycloak"]
    if dist.java_home is None:
        raise ToolchainError(f"no JDK {spec['java']} in {JVM_ROOT} (Keycloak {dist.version} runs on it)")
    if dist.complete():
        return dist
    mvn = shutil.which("mvn")
    if not mvn:
        raise ToolchainError("mvn not found on PATH: the Keycloak distribution is fetched with the Maven client")
    folder = dist.home.parent
    shutil.rmtree(folder, ignore_errors=True)
    download = folder / "download"
    download.mkdir(parents=True)
    log = log or folder / "fetch.log"
    _run([mvn, "-B", "-q", "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
          f"-Dartifact={spec['artifact']}:{dist.version}:tar.gz", f"-DoutputDirectory={download}"],
         folder, dict(os.environ), log)
    archives = list(download.glob("*.tar.gz"))
    if len(archives) != 1:
        raise ToolchainError(f"expected one archive from Maven in {download}, found {archives}")
    _run(["tar", "-xzf", str(archives[0]), "-C", str(folder)], folder, dict(os.environ), log)
    shutil.rmtree(download)
    if not (dist.home / "bin" / "kc.sh").is_file():
        raise ToolchainError(f"the archive did not unpack into {dist.home}")
    (dist.home / ".aiwfe-complete").write_text(f"{spec['artifact']}:{dist.version}:tar.gz\n")
    return dist


def toolchain_env(toolchain: Toolchain | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the real CLI runs in here: our tools first on PATH, offline plugin handling."""
    toolchain = toolchain or current()
    env = dict(os.environ if base is None else base)
    env["PATH"] = os.pathsep.join([str(toolchain.bin), env.get("PATH", "")])
    env["PULUMI_HOME"] = str(toolchain.pulumi_home)
    env["PULUMI_SKIP_UPDATE_CHECK"] = "true"
    env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "true"
    env.setdefault("PULUMI_CONFIG_PASSPHRASE", TEST_PASSPHRASE)
    return env


# ---------------------------------------------------------------- building


def _run(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
    with log.open("a") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        result = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log.read_text().splitlines()[-15:]
        raise ToolchainError(f"{' '.join(cmd[:3])} failed in {cwd} (exit {result.returncode}); log {log}:\n"
                             + "\n".join(tail))


def _go_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-buildvcs=false")
    env["CGO_ENABLED"] = "0"
    env["GOTOOLCHAIN"] = env.get("GOTOOLCHAIN", "local")
    return env


def check_go(minimum: str) -> str:
    go = shutil.which("go")
    if not go:
        raise ToolchainError("go not found on PATH: the toolchain is built with the Go client (see README)")
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()
    have = tuple(int(p) for p in re.findall(r"\d+", out)[:3])
    need = tuple(int(p) for p in minimum.split("."))
    if have < need:
        raise ToolchainError(f"{out} is older than go{minimum}, which toolchain/versions.toml needs")
    return out


def write_go_mod(src: Path, module: str, replaces: list[str], requires: dict[str, str] | None = None) -> None:
    """A wrapper module's go.mod: `replaces` are `old=new@version` or `old=./local/path`."""
    src.mkdir(parents=True, exist_ok=True)
    lines = [f"module {module}", "", "go 1.26", ""]
    lines += [f"require {path} {version}" for path, version in (requires or {}).items()]
    for spec in replaces:
        old, new = spec.split("=", 1)
        lines.append(f"replace {old} => {new if new.startswith('.') else ' '.join(new.split('@', 1))}")
    (src / "go.mod").write_text("\n".join(lines) + "\n")


def _wrapper(src: Path, name: str, requires: list[tuple[str, str]], replaces: list[str], env: dict[str, str],
             log: Path) -> None:
    """A module that requires the tool's module, so `replace` directives of the tool's own go.mod
    (which `go install mod@version` refuses) are restated here with published versions."""
    write_go_mod(src, f"aiwfe.local/toolchain/{name}", replaces)
    for package, version in requires:  # a package path, so go.sum gets everything it imports
        _run(["go", "get", f"{package}@{version}"], src, env, log)


def _module_dir(src: Path, module: str, env: dict[str, str]) -> Path:
    out = subprocess.run(["go", "list", "-m", "-f", "{{.Dir}}", module], cwd=src, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    return Path(out)


def build_pulumi(tc: Toolchain, spec: dict, work: Path, env: dict[str, str], log: Path) -> None:
    src = work / "pulumi"
    _wrapper(src, "pulumi", [(spec["package"], spec["version"])], spec.get("replace", []), env, log)
    ldflags = f"-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version={spec['version']}"
    _run(["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(tc.bin / "pulumi"), spec["package"]],
         src, env, log)


def build_language_python(tc: Toolchain, spec: dict, cli: dict, work: Path, env: dict[str, str],
                          log: Path) -> None:
    src = work / "language-python"
    _wrapper(src, "language-python", [(spec["package"], spec["version"])], spec.get("replace", []), env, log)
    ldflags = f"-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version={spec['version']}"
    # The CLI finds `pulumi-language-python` (the adapter, built with the project's plugins) first.
    _run(["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(tc.bin / "pulumi-language-python-host"),
          spec["package"]], src, env, log)
    # The host runs programs through this script beside it; take the one published with the CLI's
    # SDK module (it accepts every flag the older host passes).
    _run(["go", "mod", "download", f"github.com/pulumi/pulumi/sdk/v3@{cli['version']}"], src, env, log)
    sdk = subprocess.run(["go", "mod", "download", "-json", f"github.com/pulumi/pulumi/sdk/v3@{cli['version']}"],
                         cwd=src, env=env, capture_output=True, text=True, check=True).stdout
    script = Path(json.loads(sdk)["Dir"]) / "python" / "cmd" / "pulumi-language-python-exec"
    target = tc.bin / "pulumi-language-python-exec"
    shutil.copyfile(script, target)
    target.chmod(0o755)


def build_kubernetes(tc: Toolchain, spec: dict, plugin_version: str, work: Path, env: dict[str, str],
                     log: Path) -> Path:
    src = work / "kubernetes"
    _wrapper(src, "kubernetes", [(spec["module"], spec["version"])], spec.get("replace", []), env, log)
    module_dir = _module_dir(src, spec["module"], env)
    cmd_dir = src / "cmd"
    cmd_dir.mkdir(exist_ok=True)
    # The module ships schema.json but not the generated embed files its main package needs: write
    # them as its generator does (the schema stamped with the version the plugin is registered as).
    schema = json.loads((module_dir / "cmd" / "pulumi-resource-kubernetes" / "schema.json").read_text())
    schema["version"] = plugin_version
    (cmd_dir / "schema-embed.json").write_text(json.dumps(schema, separators=(",", ":")))
    mapping = json.loads((module_dir / "cmd" / "pulumi-resource-kubernetes" / "terraform-mapping.json").read_text())
    (cmd_dir / "terraform-mapping-embed.json").write_text(json.dumps(mapping, separators=(",", ":")))
    (cmd_dir / "main.go").write_text(
        "// Entry point of the kubernetes provider built from its module (generated by tools/toolchain.py).\n"
        "package main\n\nimport (\n\t_ \"embed\"\n\n"
        "\t\"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider\"\n"
        "\t\"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version\"\n)\n\n"
        "//go:embed schema-embed.json\nvar schema []byte\n\n"
        "//go:embed terraform-mapping-embed.json\nvar mapping []byte\n\n"
        "func main() {\n\tprovider.Serve(\"kubernetes\", version.Version, schema, mapping)\n}\n")
    _run(["go", "mod", "tidy"], src, env, log)
    out = tc.plugins / "pulumi-resource-kubernetes"
    ldflags = f"-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version={plugin_version}"
    _run(["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(out), "./cmd"], src, env, log)
    return out


def build_project_plugins(tc: Toolchain, versions_: dict[str, str], env: dict[str, str], log: Path) -> None:
    for name in ("gcp", "random"):
        ldflags = f"-s -w -X main.Version={versions_[name]}"
        _run(["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(tc.plugins / f"pulumi-resource-{name}"),
              f"./cmd/pulumi-resource-{name}"], PLUGINS_DIR, env, log)
    _run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(tc.bin / "pulumi-language-python"),
          "./cmd/pulumi-language-python"], PLUGINS_DIR, env, log)


def make_venv(path: Path, requirements: Path, log: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    _run([sys.executable, "-m", "venv", str(path)], ROOT, dict(os.environ), log)
    _run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          "-r", str(requirements)], ROOT, dict(os.environ), log)


def build(force: bool = False) -> Toolchain:
    tc = current()
    if tc.complete() and not force:
        return tc
    spec = versions()
    go_version = check_go(spec["go"]["minimum"])
    plugins = plugin_versions()
    if tc.home.exists():
        shutil.rmtree(tc.home)
    for folder in (tc.bin, tc.plugins, tc.pulumi_home):
        folder.mkdir(parents=True)
    work = tc.home / "src"
    log = tc.home / "build.log"
    env = _go_env(tc.home)
    seconds: dict[str, float] = {}

    def step(name: str, fn, *args) -> None:
        started = time.monotonic()
        print(f"toolchain: building {name} ...", flush=True)
        fn(*args)
        seconds[name] = round(time.monotonic() - started, 1)
        print(f"toolchain: {name} done in {seconds[name]} s", flush=True)

    step("pulumi", build_pulumi, tc, spec["pulumi"], work, env, log)
    step("pulumi-language-python", build_language_python, tc, spec["language_python"], spec["pulumi"], work, env, log)
    step("pulumi-resource-kubernetes", build_kubernetes, tc, spec["kubernetes"], plugins["kubernetes"], work, env, log)
    step("language host adapter, pulumi-resource-gcp (double), pulumi-resource-random (stand-in)",
         build_project_plugins, tc, plugins, env, log)
    run_env = toolchain_env(tc)
    for name in ("kubernetes", "gcp", "random"):
        _run([str(tc.pulumi), "plugin", "install", "resource", name, plugins[name], "--file",
              str(tc.plugins / f"pulumi-resource-{name}")], tc.home, run_env, log)
    step("virtualenv from requirements.txt", make_venv, tc.program_venv, ROOT / "requirements.txt", log)
    step("virtualenv from policies/requirements.txt", make_venv, tc.policy_venv,
         ROOT / "policies" / "requirements.txt", log)
    shutil.rmtree(work, ignore_errors=True)
    write_manifest(tc, go_version, seconds)
    prune()
    return tc


def prune(keep: int = KEEP_BUILDS, root: Path | None = None, marker: str = "toolchain.json") -> list[Path]:
    """Remove all but the `keep` most recently completed builds (other checkouts may use them); a
    build is complete when its `marker` file exists."""
    root = root or cache_root()
    builds = sorted((d for d in root.iterdir() if (d / marker).is_file()),
                    key=lambda d: (d / marker).stat().st_mtime, reverse=True)
    for old in builds[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return builds[keep:]


def write_manifest(tc: Toolchain, go_version: str, seconds: dict[str, float]) -> None:
    """What was built and how long it took; its presence marks the build complete."""
    spec = versions()
    manifest = {
        "go": go_version,
        "pulumi_cli": spec["pulumi"]["version"],
        "pulumi_python_sdk": requirement_pins(ROOT / "requirements.txt")["pulumi"],
        "language_python": f"{spec['language_python']['module']}@{spec['language_python']['version']}",
        "kubernetes_provider": f"{spec['kubernetes']['module']}@{spec['kubernetes']['version']}",
        "plugins_registered_as": plugin_versions(),
        "gcp_provider": "recording test double (toolchain/plugins/cmd/pulumi-resource-gcp)",
        "random_provider": "stand-in (toolchain/plugins/cmd/pulumi-resource-random)",
        "language_host_adapter": "toolchain/plugins/cmd/pulumi-language-python",
        "build_seconds": seconds,
    }
    tc.manifest.write_text(json.dumps(manifest, indent=2) + "\n")


def build_all(force: bool, optional: bool) -> int:
    """The Go-built Pulumi tools, the Keycloak distribution, then the validators; each is tried even if
    another fails."""
    failures = 0

    def pulumi_tools() -> str:
        started = time.monotonic()
        tc = build(force=force)
        return f"ready in {tc.home} ({time.monotonic() - started:.0f} s)"

    def keycloak() -> str:
        dist = fetch_keycloak()
        return f"Keycloak {dist.version} in {dist.home} (Java in {dist.java_home})"

    def validators() -> str:
        from tools import toolchain_validators

        started = time.monotonic()
        built = toolchain_validators.build(force=force)
        refused = ", ".join(built.built()["refused"]) or "none"
        return f"validators ready in {built.home} ({time.monotonic() - started:.0f} s; refused: {refused})"

    for part in (pulumi_tools, keycloak, validators):
        try:
            print(f"toolchain: {part()}")
        except ToolchainError as err:
            failures += 1
            print(f"toolchain: {err}", file=sys.stderr)
    if failures and optional and os.environ.get("CI") != "true":
        print("toolchain: continuing without it; the tests that need it will be skipped", file=sys.stderr)
        return 0
    return 2 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tools.toolchain", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build what is missing (cached by the versions file)")
    b.add_argument("--force", action="store_true", help="rebuild even if the cache is complete")
    b.add_argument("--optional", action="store_true",
                   help="on failure, say so and exit 0 (the end-to-end tests then skip; not with CI=true)")
    sub.add_parser("env", help="print shell exports that put the toolchain first (eval them)")
    sub.add_parser("path", help="print the cache directory of the current versions")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            return build_all(force=args.force, optional=args.optional)
        elif args.command == "env":
            tc = current()
            if not tc.complete():
                raise ToolchainError(f"no toolchain in {tc.home}: run `make toolchain` first")
            env = toolchain_env(tc, base={"PATH": "$PATH"})
            for key in ("PATH", "PULUMI_HOME", "PULUMI_SKIP_UPDATE_CHECK",
                        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"):
                print(f'export {key}="{env[key]}"')
        else:
            print(current().home)
    except ToolchainError as err:
        print(f"toolchain: {err}", file=sys.stderr)
        if args.command == "build" and args.optional and os.environ.get("CI") != "true":
            print("toolchain: continuing without it; the end-to-end tests will be skipped", file=sys.stderr)
            return 0
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
