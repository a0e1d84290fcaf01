"""The peer scanners platform teams already run, over the same rendered manifests as the policy pack.

    python -m tools.peers [build]        # findings of every peer on both stacks' build/<stack>/manifests

Peers: checkov (tools/checkov_baseline.py, its own virtualenv) and kube-score (built by
`make toolchain`, tools/toolchain_validators.py). Polaris and kube-linter are in the versions file
as refused by the Go module proxy; they are reported as such, never silently left out.

Every check a peer raises on our manifests is either fixed in the program or listed in FINDINGS
with the reason it does not apply and the pack rule that covers the same concern. Exit 0 when every
finding is listed, 1 when a peer raises one that is not, 2 when a peer is missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools import checkov_baseline, toolchain_validators

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("staging", "prod")


@dataclass(frozen=True)
class Listed:
    """A peer check that fires on our manifests on purpose."""

    reason: str
    covered_by: str
    """The pack rule on the same concern, or `none` with why in the reason."""


# (peer, check) -> why it fires and what of ours covers the concern (README "Peer scanners").
_CHECKOV_COVERED_BY = {"CKV_K8S_43": "kubernetes-workload-require-pinned-image",
                       "CKV_K8S_15": "kubernetes-workload-require-pinned-image",
                       "CKV_K8S_35": "kubernetes-workload-disallow-literal-secret-env"}
FINDINGS: dict[tuple[str, str], Listed] = {
    ("checkov", check): Listed(checkov_baseline.SKIPPED_CHECKS[check], covered)
    for check, covered in _CHECKOV_COVERED_BY.items()
} | {
    ("kube-score", "container-image-pull-policy"): Listed(
        "the same concern as checkov's CKV_K8S_15: tags are pinned, so IfNotPresent pulls what Always would, "
        "without a registry round trip on every pod start", "kubernetes-workload-require-pinned-image"),
    ("kube-score", "container-ephemeral-storage-request-and-limit"): Listed(
        "every root filesystem is read-only and every writable path is an emptyDir with a sizeLimit, so a "
        "container's disk use is bounded already; a per-container limit would add an eviction on a burst of "
        "logs, which the kubelet rotates", "kubernetes-workload-require-read-only-root-filesystem"),
    ("kube-score", "deployment-has-host-podantiaffinity"): Listed(
        "replicas are spread over nodes by a DoNotSchedule topology spread on kubernetes.io/hostname "
        "(maxSkew 1), which keeps scaling past the node count possible; a required anti-affinity would stop "
        "the HPA at one pod per node", "kubernetes-workload-require-spread"),
}


@dataclass(frozen=True)
class Finding:
    peer: str
    check: str
    target: str
    """The object (kind namespace/name, or checkov's resource id)."""
    stack: str


def kube_score(binary: Path, manifests: Path, stack: str) -> list[Finding]:
    """Every check kube-score grades below OK (10) over one stack's manifests: critical (1), warning
    (5) and almost OK (7) alike."""
    files = sorted(str(p) for p in manifests.glob("*.yaml"))
    done = subprocess.run([str(binary), "score", "--output-format", "json", *files], capture_output=True, text=True,
                          check=False)
    if done.returncode not in (0, 1) or not done.stdout.strip():  # 1: it graded something below OK
        raise RuntimeError(f"kube-score failed (exit {done.returncode}): {done.stderr[-500:]}")
    findings = []
    for scored in json.loads(done.stdout):
        meta = scored["object_meta"]
        target = f"{scored['type_meta']['kind']} {meta.get('namespace', '')}/{meta['name']}"
        for check in scored["checks"]:
            if not check.get("skipped") and check["grade"] < 10:
                findings.append(Finding("kube-score", check["check"]["id"], target, stack))
    return findings


def checkov(build: Path) -> list[Finding]:
    """checkov's failed checks over every stack under `build`, the deliberate skips included."""
    result = checkov_baseline.scan(build, skip=False)
    # checkov names files from the scanned root: /<stack>/manifests/<file>.yaml
    return [Finding("checkov", f.check_id, f.resource, Path(f.file.lstrip("/")).parts[0]) for f in result.failures]


def unlisted(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if (f.peer, f.check) not in FINDINGS]


def refused_peers() -> dict[str, str]:
    return {name.replace("_", "-"): tool["refused"] for name, tool in toolchain_validators.spec().items()
            if "refused" in tool}


def kube_score_binary() -> Path:
    validators = toolchain_validators.current()
    binary = validators.tool("kube-score")
    if not binary.is_file():
        raise FileNotFoundError(f"kube-score not built ({validators.bin}): run `make toolchain`")
    return binary


def collect(build: Path) -> list[Finding]:
    """checkov over every stack under `build`, then kube-score per stack."""
    findings = checkov(build)
    binary = kube_score_binary()
    for stack in STACKS:
        findings += kube_score(binary, build / stack / "manifests", stack)
    return findings


def rows(findings: Sequence[Finding]) -> list[dict[str, object]]:
    """The findings table: one row per listed check (objects it fires on, the covering rule, why),
    then one per unlisted finding."""
    table: list[dict[str, object]] = []
    for (peer, check), listed in sorted(FINDINGS.items()):
        objects = sorted({f.target for f in findings if (f.peer, f.check) == (peer, check)})
        table.append({"peer": peer, "check": check, "objects": len(objects), "covered_by": listed.covered_by,
                      "reason": listed.reason})
    table += [{"peer": f.peer, "check": f.check, "objects": 1, "covered_by": "UNLISTED",
               "reason": f"{f.target} ({f.stack})"} for f in unlisted(findings)]
    return table


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    build = Path(args[0]) if args else ROOT / "build"
    try:
        findings = collect(build)
    except (checkov_baseline.CheckovMissingError, FileNotFoundError) as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    for row in rows(findings):
        print(f"{row['peer']} {row['check']}: {row['objects']} object(s); covered by {row['covered_by']}\n"
              f"    {row['reason']}")
    for peer, why in refused_peers().items():
        print(f"{peer}: not run ({why})")
    return 1 if unlisted(findings) else 0


if __name__ == "__main__":
    sys.exit(main())
