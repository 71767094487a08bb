"""The LLM gateway: an OpenAI- and Anthropic-compatible HTTP front, a router, provider adapters."""
