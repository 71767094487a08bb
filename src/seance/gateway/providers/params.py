"""What an OpenAI-compatible provider does with each of OpenAI's chat parameters: a declarative
table per provider, applied to a request only when it holds a parameter that needs it.

Every parameter of `CHAT_PARAMS` (and the two common extensions, `thinking` and `top_k`) is, for
one provider, exactly one of:

    accepted  forwarded as it came
    renamed   forwarded under the provider's own name (`seed` → Mistral's `random_seed`)
    dropped   never forwarded, silently: it changes nothing in the answer (`user`, an end-user id
              for abuse monitoring), or the gateway itself provides what it asks for
    refused   everything else: a 400 naming the parameter and the provider, or left out when
              drop_params is on; left out silently when its value asks for nothing (OpenAI's default)

Anthropic-style `thinking` goes as reasoning_effort (coarsened: the family has nothing finer) where
reasoning_effort is accepted, and is refused where it is not.

Other fields that are not OpenAI parameters (a provider's own extensions, `top_k`, `safe_prompt`, …)
are the provider's business and go through untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from seance.gateway.formats.openai import CHAT_PARAMS, EXTENSIONS, asks_nothing, thinking_effort, unsupported

KNOWN = CHAT_PARAMS | EXTENSIONS


@dataclass(frozen=True)
class Params:
    accepted: frozenset[str]
    renamed: Mapping[str, str] = field(default_factory=dict)
    dropped: frozenset[str] = frozenset()
    refused: frozenset[str] = field(init=False)
    converted: frozenset[str] = field(init=False)  # `thinking`, where reasoning_effort is accepted
    attention: frozenset[str] = field(init=False)  # the fields that make a request leave the fast path

    def __post_init__(self) -> None:
        classified = [self.accepted, frozenset(self.renamed), self.dropped]
        for i, one in enumerate(classified):
            for other in classified[i + 1 :]:
                if one & other:
                    raise ValueError(f"parameters classified twice: {sorted(one & other)}")
        unknown = frozenset().union(*classified) - KNOWN
        if unknown:
            raise ValueError(f"not OpenAI chat parameters: {sorted(unknown)}")
        refused = KNOWN - frozenset().union(*classified)
        converted = frozenset({"thinking"}) if "reasoning_effort" in self.accepted else frozenset()
        object.__setattr__(self, "converted", converted)
        object.__setattr__(self, "refused", refused - converted)
        object.__setattr__(self, "attention", frozenset(self.renamed) | self.dropped | refused)

    @classmethod
    def all_but(cls, refused: Iterable[str] = (), *, dropped: Iterable[str] = (), **renamed: str) -> Params:
        """A table for a provider that takes nearly everything OpenAI does."""
        out = KNOWN - set(refused) - set(dropped) - set(renamed) - {"thinking"}  # converted or refused
        return cls(frozenset(out), renamed, frozenset(dropped))

    def needed(self, body: Mapping[str, Any]) -> bool:
        return not body.keys().isdisjoint(self.attention)

    def apply(self, body: Mapping[str, Any], provider: str, drop: bool) -> dict[str, Any]:
        """The body as `provider` takes it. Call only when `needed(body)`."""
        out = dict(body)
        for key in [k for k in body if k in self.attention]:  # the client's order: the first refused is named
            value = out.pop(key)
            if key in self.renamed:
                if value is not None:
                    out[self.renamed[key]] = value
            elif key in self.converted:
                effort = thinking_effort(value)
                if effort is not None and "reasoning_effort" not in body:
                    out["reasoning_effort"] = effort
            elif key in self.refused and not drop and not asks_nothing(key, value):
                raise unsupported(provider, key)
        return out


OPENAI = Params.all_but({"top_k"})
