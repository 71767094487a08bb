"""`python -m seance.gateway.catalogue LITELLM_FILE > model_prices_and_context_window.json`: LiteLLM's
price map trimmed to the providers and modes Seance serves (the copy the package ships)."""

from __future__ import annotations

import sys

import orjson

from seance.gateway.catalogue import served
from seance.gateway.providers import REGISTRY, load_adapter


def main(path: str) -> None:
    with open(path, "rb") as file:
        raw = orjson.loads(file.read())
    providers = {name for prefix in REGISTRY if (a := load_adapter(prefix)) for name in a.catalogue_names}
    kept = served(raw, providers, path)
    sys.stdout.buffer.write(orjson.dumps(kept, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    main(sys.argv[1])
