"""The localnet fixtures for the RPC tests (the root conftest does not load the plugin)."""

from tests.plugins.localnet import localnet, localnet_faults

__all__ = ["localnet", "localnet_faults"]
