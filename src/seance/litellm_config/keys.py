"""The keys of a config file against what LiteLLM knows and what Seance implements.

Runs on the file as written (before `os.environ/` references are resolved), so a problem is named
by its key path whatever the environment holds:

- a key LiteLLM does not know is an error, with "did you mean" when it is close to a known one
  (in litellm_params and model_info, open to provider-specific keys, only a near-miss of a known
  key is an error: anything else in litellm_params is a request parameter, as LiteLLM treats it);
- a key Seance refuses (ignoring it would surprise) is an error;
- a key Seance accepts without implementing it yet is listed for the start's warning, when set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from seance.litellm_config.errors import ConfigError
from seance.litellm_config.known_keys import (
    CALLBACK_KEYS,
    CALLBACKS,
    LITELLM_PARAMS,
    MODEL_ENTRY,
    MODEL_INFO,
    REQUEST_PARAMS,
    ROUTING_STRATEGIES,
    SECTIONS,
    TOP_LEVEL,
    Key,
    Status,
)
from seance.litellm_config.suggest import closest, typo_of

COMPATIBILITY = "see the compatibility table in docs/gateway.md"


@dataclass(frozen=True)
class Ignored:
    """A key that is set and that Seance does not act on (yet)."""

    path: str
    note: str = ""

    def __str__(self) -> str:
        return f"{self.path} ({self.note})" if self.note else self.path


@dataclass
class Findings:
    ignored: list[Ignored] = field(default_factory=list)
    # key paths under which `os.environ/` references may name unset variables: nothing reads them
    unused: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


REDIS_KEYS = ("redis_host", "redis_password", "redis_port", "redis_url", "redis_db")


def check_keys(raw: Mapping[str, Any], source: str) -> Findings:
    """Check every key of the file; raise ConfigError (one line) on the first problem."""
    findings = Findings()
    _strict(raw, "", TOP_LEVEL, findings)
    for name in ("litellm_settings", "router_settings", "general_settings"):
        section = raw.get(name)
        if isinstance(section, Mapping):
            _strict(section, name, SECTIONS[name], findings)
    # the shared Redis is optional: a reference to an unset variable leaves state in-process
    findings.unused += [f"router_settings.{name}" for name in REDIS_KEYS]
    settings = raw.get("litellm_settings")
    if isinstance(settings, Mapping) and not _set(settings.get("cache")):
        findings.unused.append("litellm_settings.cache_params")  # read only when the cache is on
    models = raw.get("model_list")
    if isinstance(models, list):
        for index, entry in enumerate(models):
            if isinstance(entry, Mapping):
                _entry(entry, f"model_list[{index}]", findings)
    if findings.problems:
        raise ConfigError(f"{source}: {_first(findings.problems)}")
    return findings


def _strict(section: Mapping[str, Any], where: str, known: Mapping[str, Key], findings: Findings) -> None:
    for name, value in section.items():
        path = f"{where}.{name}" if where else str(name)
        key = known.get(str(name))
        if key is None:
            suggestion = closest(str(name), known)
            hint = f"did you mean '{suggestion}'?" if suggestion else COMPATIBILITY
            findings.problems.append(f"{path}: unknown key; {hint}")
        else:
            _known(path, key, value, findings)


def _known(path: str, key: Key, value: Any, findings: Findings) -> None:
    if key.status is Status.REFUSED:
        findings.problems.append(f"{path}: not supported by Seance ({key.note}); remove it to start without it")
    elif key.status is Status.IGNORED:
        findings.unused.append(path)
        if _set(value):
            findings.ignored.append(Ignored(path, key.note))
    elif path in CALLBACK_KEYS and (others := [name for name in _names(value) if name not in CALLBACKS]):
        # a slip of one Seance has (`promethues`) would leave it off: LiteLLM stops on it too (it
        # takes an unknown name for a module to import); other integrations are only not here
        slips = {name: near for name in others if (near := typo_of(name, CALLBACKS)) is not None}
        for name, near in slips.items():
            findings.problems.append(f"{path}: '{name}' is not a callback; did you mean '{near}'?")
        if others := [name for name in others if name not in slips]:
            implemented = ", ".join(sorted(CALLBACKS))
            findings.ignored.append(Ignored(path, f"{', '.join(others)}: not implemented; Seance has {implemented}"))
    elif path == "router_settings.routing_strategy" and value is not None and value not in ROUTING_STRATEGIES:
        near = closest(str(value), ROUTING_STRATEGIES)
        hint = f"did you mean '{near}'?" if near else "one of: " + ", ".join(ROUTING_STRATEGIES)
        findings.problems.append(f"{path}: unknown routing strategy '{value}'; {hint}")


def check_entry(entry: Mapping[str, Any]) -> Findings:
    """One model_list entry on its own (LiteLLM's /model/new body): its key paths start at the
    entry ("litellm_params.temprature"); ConfigError (one line) on the first problem."""
    findings = Findings()
    _entry(entry, "", findings)
    if findings.problems:
        raise ConfigError(_first(findings.problems))
    return findings


def _first(problems: list[str]) -> str:
    more = len(problems) - 1
    return problems[0] + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def _entry(entry: Mapping[str, Any], where: str, findings: Findings) -> None:
    _strict(entry, where, MODEL_ENTRY, findings)
    prefix = f"{where}." if where else ""
    params = entry.get("litellm_params")
    if isinstance(params, Mapping):
        for name, value in params.items():
            path = f"{prefix}litellm_params.{name}"
            key = LITELLM_PARAMS.get(str(name))
            if key is not None:
                _known(path, key, value, findings)
            elif str(name) not in REQUEST_PARAMS and (typo := typo_of(str(name), [*LITELLM_PARAMS, *REQUEST_PARAMS])):
                findings.problems.append(f"{path}: unknown key; did you mean '{typo}'?")
    info = entry.get("model_info")
    if isinstance(info, Mapping):
        for name in info:
            if str(name) not in MODEL_INFO and (typo := typo_of(str(name), MODEL_INFO)):
                findings.problems.append(f"{prefix}model_info.{name}: unknown key; did you mean '{typo}'?")


def _names(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)] if value else []


def _set(value: Any) -> bool:
    """Whether a value turns its feature on (`cache: false`, `callbacks: []` do not)."""
    return value is not None and value is not False and value != "" and value != [] and value != {}
