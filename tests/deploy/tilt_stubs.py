"""Recording stand-ins for the Tilt builtins the Tiltfile uses.

Each stub has Tilt's real signature (parameter names, order, which ones are required, defaults) as
documented in tilt-dev/tilt `internal/tiltfile/api/__init__.py`, so a misspelt keyword or a missing
argument fails here as it would in Tilt. Defaults that are `[]`/`{}` in Tilt are `()`/`None` here
only to keep Python's shared-mutable-default trap out; the names and arity are what matter.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml as pyyaml

TRIGGER_MODE_AUTO = "TRIGGER_MODE_AUTO"
TRIGGER_MODE_MANUAL = "TRIGGER_MODE_MANUAL"


class TiltStubs:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def named(self, name: str) -> list[dict[str, Any]]:
        return [arguments for called, arguments in self.calls if called == name]

    def _record(self, builtin: str, /, **arguments: Any) -> None:
        self.calls.append((builtin, arguments))

    def builtins(self) -> dict[str, Any]:
        functions: list[Callable[..., Any]] = [
            self.watch_file, self.local, self.k8s_yaml, self.custom_build, self.decode_yaml_stream,
            self.k8s_resource, self.link, self.local_resource,
        ]  # fmt: skip
        table: dict[str, Any] = {function.__name__: function for function in functions}
        table["TRIGGER_MODE_AUTO"] = TRIGGER_MODE_AUTO
        table["TRIGGER_MODE_MANUAL"] = TRIGGER_MODE_MANUAL
        return table

    def watch_file(self, file_path: str) -> None:
        self._record("watch_file", file_path=file_path)

    def local(
        self,
        command: str | list[str],
        quiet: bool = False,
        command_bat: str | list[str] = "",
        echo_off: bool = False,
        env: dict[str, str] | None = None,
        dir: str = "",
        stdin: str | None = None,
    ) -> str:
        self._record("local", command=command, quiet=quiet, echo_off=echo_off)
        # Like Tilt: a string runs with `sh -c`, a list as argv; cwd is the Tiltfile's directory.
        argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
        result = subprocess.run(
            argv, cwd=self.root / dir, env={**self.env, **(env or {})}, input=stdin,
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"local({command!r}) failed: {result.stderr.strip()}")
        return result.stdout

    def k8s_yaml(self, yaml: str | list[str], allow_duplicates: bool = False) -> None:
        self._record("k8s_yaml", yaml=yaml, allow_duplicates=allow_duplicates)

    def custom_build(
        self,
        ref: str,
        command: str | list[str],
        deps: list[str],
        tag: str = "",
        disable_push: bool = False,
        skips_local_docker: bool = False,
        live_update: tuple[Any, ...] = (),
        match_in_env_vars: bool = False,
        ignore: str | list[str] | tuple[str, ...] = (),
        entrypoint: str | list[str] | tuple[str, ...] = (),
        command_bat_val: str = "",
        outputs_image_ref_to: str = "",
        command_bat: str | list[str] = "",
        image_deps: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        dir: str = "",
    ) -> None:
        self._record(
            "custom_build", ref=ref, command=command, deps=deps, ignore=ignore,
            skips_local_docker=skips_local_docker, disable_push=disable_push,
        )  # fmt: skip

    def decode_yaml_stream(self, yaml: str) -> list[Any]:
        return [document for document in pyyaml.safe_load_all(yaml) if document is not None]

    def k8s_resource(
        self,
        workload: str = "",
        new_name: str = "",
        port_forwards: Any = (),
        extra_pod_selectors: Any = (),
        trigger_mode: str = TRIGGER_MODE_AUTO,
        resource_deps: tuple[str, ...] | list[str] = (),
        objects: tuple[str, ...] | list[str] = (),
        auto_init: bool = True,
        pod_readiness: str = "",
        links: Any = (),
        labels: str | list[str] | tuple[str, ...] = (),
        discovery_strategy: str = "",
    ) -> None:
        self._record(
            "k8s_resource", workload=workload, port_forwards=port_forwards, objects=list(objects),
            resource_deps=list(resource_deps), labels=labels, links=links,
        )  # fmt: skip

    def link(self, url: str, name: str | None) -> str:
        return f"{name}={url}"

    def local_resource(
        self,
        name: str,
        cmd: str | list[str],
        deps: str | list[str] | None = None,
        trigger_mode: str = TRIGGER_MODE_AUTO,
        resource_deps: tuple[str, ...] = (),
        ignore: str | list[str] | tuple[str, ...] = (),
        auto_init: bool = True,
        serve_cmd: str | list[str] = "",
        cmd_bat: str | list[str] = "",
        serve_cmd_bat: str | list[str] = "",
        allow_parallel: bool = False,
        links: Any = (),
        labels: tuple[str, ...] | list[str] = (),
        env: dict[str, str] | None = None,
        serve_env: dict[str, str] | None = None,
        readiness_probe: Any = None,
        dir: str = "",
        serve_dir: str = "",
    ) -> None:
        self._record("local_resource", name=name, cmd=cmd, deps=deps, trigger_mode=trigger_mode)
