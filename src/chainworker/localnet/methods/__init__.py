"""The JSON-RPC methods: validator-shaped answers over the ledger, one module per family.

`table` names every method; `base` holds what the families share; `cluster`,
`blocks`, `fees`, `accounts`, `tokens` and `transactions` answer them.
"""

from chainworker.localnet.methods.base import HEALTH_CHECK_SLOT_DISTANCE, SOLANA_CORE_VERSION
from chainworker.localnet.methods.table import Methods

__all__ = ["HEALTH_CHECK_SLOT_DISTANCE", "SOLANA_CORE_VERSION", "Methods"]
