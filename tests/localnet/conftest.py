"""Localnet tests use the shared localnet plugin's fixtures."""

from tests.plugins.localnet import (
    localnet,
    localnet_endpoints,
    localnet_endpoints_faults,
    localnet_faults,
)

__all__ = ["localnet", "localnet_endpoints", "localnet_endpoints_faults", "localnet_faults"]
