"""Localnet tests use the shared localnet plugin's fixtures."""

from tests.plugins.localnet import localnet, localnet_faults

__all__ = ["localnet", "localnet_faults"]
