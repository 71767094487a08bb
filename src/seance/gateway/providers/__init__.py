"""The provider registry: LiteLLM's model prefix → adapter. Adding a provider adds a module and a
line here; nothing else in the gateway names a provider."""

from __future__ import annotations

from seance.gateway.providers.base import Adapter

# prefix -> "module:ClassName" under seance.gateway.providers; imported once at start
REGISTRY: dict[str, str] = {
    # OpenAI-compatible family (pass-through fast path)
    "openai": "openai_compat:OpenAI",
    "text-completion-openai": "openai_compat:TextCompletionOpenAI",
    "azure": "azure:Azure",
    "together_ai": "openai_compat:TogetherAI",
    "groq": "openai_compat:Groq",
    "mistral": "mistral:Mistral",
    "deepseek": "openai_compat:DeepSeek",
    "openrouter": "openai_compat:OpenRouter",
    "huggingface": "huggingface:HuggingFace",
    "hosted_vllm": "openai_compat:HostedVLLM",
    "ollama": "openai_compat:Ollama",
    # translating adapters
    "anthropic": "anthropic:Anthropic",
    "cohere": "cohere:Cohere",
    "cohere_chat": "cohere:Cohere",
    "gemini": "gemini:Gemini",
    "ollama_chat": "ollama_chat:OllamaChat",
    "replicate": "replicate:Replicate",
    "text-completion-codestral": "codestral:TextCompletionCodestral",
}


def load_adapter(prefix: str) -> Adapter | None:
    import importlib

    target = REGISTRY.get(prefix)
    if target is None:
        return None
    module_name, class_name = target.split(":")
    module = importlib.import_module(f"seance.gateway.providers.{module_name}")
    adapter: Adapter = getattr(module, class_name)()
    return adapter
