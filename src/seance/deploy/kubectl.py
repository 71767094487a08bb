"""`seance deploy`'s conversation with the cluster, through the operator's own `kubectl`.

The manifest (which holds the Secret) goes to `kubectl` on stdin, so plaintext never touches disk.
kubectl's own output streams straight to the terminal: that is the progress the operator sees.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from seance.deploy.errors import DeployError

FIELD_MANAGER = "seance"


@dataclass(frozen=True)
class Kubectl:
    executable: str = "kubectl"
    context: str | None = None

    def _command(self, args: Sequence[str]) -> list[str]:
        path = shutil.which(self.executable)
        if path is None:
            raise DeployError(f"{self.executable!r} not found on PATH; install kubectl or pass --kubectl")
        context = ["--context", self.context] if self.context else []
        return [path, *context, *args]

    def run(self, args: Sequence[str], stdin: str | None = None, check: bool = True) -> bool:
        result = subprocess.run(self._command(args), input=stdin, text=True, check=False)
        if result.returncode != 0 and check:
            raise DeployError(f"kubectl {' '.join(args[:2])} failed (exit {result.returncode})")
        return result.returncode == 0

    def output(self, args: Sequence[str]) -> str:
        result = subprocess.run(self._command(args), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = result.stderr.strip().splitlines()[-1:] or [f"exit {result.returncode}"]
            raise DeployError(f"kubectl {' '.join(args[:2])} failed: {detail[0]}")
        return result.stdout.strip()


@dataclass(frozen=True)
class Plan:
    """What one deploy does: apply `manifest`, delete `stale` and wait for `rollouts` in `namespace`,
    on a cluster running at least `min_kubernetes`."""

    summary: str  # e.g. "prod: 11 objects, image …", shown before anything changes
    manifest: str
    namespace: str
    stale: Sequence[str]
    rollouts: Sequence[str]
    min_kubernetes: tuple[int, int]
    requirement: str  # why min_kubernetes, for the refusal


def server_version(kubectl: Kubectl) -> tuple[int, int]:
    text = kubectl.output(["version", "--output=json"])
    try:
        git_version = json.loads(text)["serverVersion"]["gitVersion"]
    except (ValueError, KeyError, TypeError):
        raise DeployError("kubectl version printed no server version; is the cluster reachable?") from None
    found = re.match(r"v?(\d+)\.(\d+)", str(git_version))  # v1.30.2, v1.31.1-gke.1146000, v1.29.3+k3s1
    if found is None:
        raise DeployError(f"cannot read the cluster's Kubernetes version {git_version!r}")
    return int(found.group(1)), int(found.group(2))


def apply_and_wait(kubectl: Kubectl, plan: Plan, timeout_seconds: int, dry_run: bool) -> None:
    """Server-side apply of the whole stream, delete the objects the settings no longer produce,
    then wait for each Deployment to finish rolling out."""
    context = kubectl.context or kubectl.output(["config", "current-context"])
    version = server_version(kubectl)
    if version < plan.min_kubernetes:
        minimum = ".".join(map(str, plan.min_kubernetes))
        raise DeployError(
            f"the cluster of context {context} runs Kubernetes {version[0]}.{version[1]}; this manifest needs"
            f" {minimum} or later ({plan.requirement})"
        )
    mode = "server-side dry run (nothing changes) of" if dry_run else "applying"
    _say(f"==> {mode} {plan.summary}")
    _say(f"==> namespace {plan.namespace}, context {context} (Kubernetes {version[0]}.{version[1]})")
    dry = ["--dry-run=server"] if dry_run else []
    apply = ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts", *dry]
    kubectl.run([*apply, "-f", "-"], stdin=plan.manifest)
    if plan.stale:
        _say(f"==> removing what the settings no longer produce (if present): {', '.join(plan.stale)}")
    for reference in plan.stale:
        delete = ["delete", reference, "-n", plan.namespace, "--ignore-not-found", *dry]
        # Without the Gateway API CRDs the cluster cannot hold an HTTPRoute, so there is none to delete.
        optional_kind = reference.startswith("httproutes.")
        if not kubectl.run(delete, check=not optional_kind):
            _say(f"==> skipped {reference}: its resource type is not installed in this cluster")
    if dry_run:
        _say("==> dry run finished; nothing was changed")
        return
    for deployment in plan.rollouts:
        _say(f"==> waiting for deployment/{deployment} to roll out (timeout {timeout_seconds}s)")
        kubectl.run(
            ["rollout", "status", f"deployment/{deployment}", "-n", plan.namespace, f"--timeout={timeout_seconds}s"]
        )
    _say("==> deployed")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
