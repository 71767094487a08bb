"""The reliability suite (issue 13) starts the real gateway process like tests/gateway does."""

from tests.gateway.conftest import gateway, module_gateway

__all__ = ["gateway", "module_gateway"]
