"""Reading config.yaml against an environment: YAML, keys, `os.environ/` references, types."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from seance.litellm_config.errors import ConfigError
from seance.litellm_config.keys import Ignored, check_entry, check_keys
from seance.litellm_config.resolve import Resolved, resolve
from seance.litellm_config.schema import ConfigFile, ModelEntry

ENV_PREFIX = "os.environ/"

# a deployment's litellm_params (but its model) may name a variable that is unset: whether that is
# an error depends on whether the gateway serves that deployment, which the gateway decides
_DEFERRED = re.compile(r"model_list\[\d+\]\.litellm_params\.(?!model$)")


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config file and the environment its `os.environ/` references resolved against
    (the process environment plus the file's own environment_variables)."""

    file: ConfigFile
    env: Mapping[str, str] = field(repr=False)
    source: str  # the config file's path
    # keys that are set and that Seance does not act on (yet): the start's warning lists them
    ignored: tuple[Ignored, ...] = ()
    # key path -> NAME for every value written `os.environ/NAME` (where a value came from)
    env_refs: Mapping[str, str] = field(default_factory=dict)
    # key path -> NAME for references to unset variables that were left None: in ignored keys (no
    # harm) and in litellm_params (an error for every deployment the gateway serves)
    unresolved: Mapping[str, str] = field(default_factory=dict)
    resolved: Resolved = field(default_factory=Resolved)

    @property
    def warnings(self) -> list[str]:
        """One line per problem that does not stop the start."""
        if not self.ignored:
            return []
        by_note: dict[str, list[str]] = {}
        for item in self.ignored:
            by_note.setdefault(item.note, []).append(item.path)
        listed = "; ".join(
            f"{', '.join(paths)} ({note})" if note else ", ".join(paths) for note, paths in by_note.items()
        )
        return [f"{self.source}: LiteLLM settings that Seance does not implement (yet) are ignored: {listed}"]


def read_config(path: str | Path, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read and validate `path` against `environ` (default: the process environment)."""
    env = dict(os.environ if environ is None else environ)
    source = str(path)
    raw = _read_yaml(Path(path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, found {_kind(raw)}")
    findings = check_keys(raw, source)
    if not raw.get("model_list"):
        raise ConfigError(
            f'{source}: model_list: no models; add entries, or one with model_name "*" and '
            f'litellm_params.model "*" to serve every provider that has a key (or start without a config)'
        )
    refs: dict[str, str] = {}
    unresolved: dict[str, str] = {}
    resolver = _Resolver(env, source, refs, unresolved, tuple(findings.unused))
    # environment_variables come first: the rest of the file may refer to them.
    variables = raw.get("environment_variables") or {}
    if not isinstance(variables, dict):
        raise ConfigError(f"{source}: environment_variables: must be a mapping of NAME: value")
    for name, value in variables.items():
        resolved = resolver(value, f"environment_variables.{name}")
        env[str(name)] = "" if resolved is None else str(resolved)
    data = resolver(raw, "")
    try:
        file = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from None
    resolved = resolve(file)
    ignored = [*findings.ignored, *(Ignored(path, f"overridden by {by}") for path, by in resolved.overridden)]
    return LoadedConfig(file, env, source, tuple(ignored), refs, unresolved, resolved)


def read_model_entry(raw: Mapping[str, Any], env: Mapping[str, str]) -> ModelEntry:
    """One model_list entry given at run time (LiteLLM's /model/new body), checked as an entry of
    the file is: its keys ("did you mean"), its `os.environ/` references (which must be set here:
    the entry is served at once) and its types. ConfigError names the key path, from the entry."""
    check_entry(raw)
    resolver = _Resolver(env, "", {}, {}, ())
    try:
        return ModelEntry.model_validate(resolver(dict(raw), ""))
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None


@dataclass
class _Resolver:
    """Replaces every `os.environ/NAME` string in a YAML tree by the variable's value."""

    env: Mapping[str, str]
    source: str
    refs: dict[str, str]
    unresolved: dict[str, str]
    unused: tuple[str, ...]

    def __call__(self, value: Any, where: str) -> Any:
        if isinstance(value, str) and value.startswith(ENV_PREFIX):
            name = value[len(ENV_PREFIX) :]
            self.refs[where] = name
            if name in self.env:
                return self.env[name]
            if self.source and (_DEFERRED.match(where) or any(_under(where, path) for path in self.unused)):
                self.unresolved[where] = name
                return None
            source = f"{self.source}: " if self.source else ""
            raise ConfigError(f"{source}{where}: environment variable {name} is not set")
        if isinstance(value, dict):
            return {k: self(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    path = ""
    for part in first["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    message = first["msg"]
    message = message[len("Value error, ") :] if message.startswith("Value error, ") else message.lower()
    return f"{path}: {message}{suffix}"


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number"}.get(type(value), "a scalar")
