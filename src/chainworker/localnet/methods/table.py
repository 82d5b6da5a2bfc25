"""The method table: each JSON-RPC method name and the handler that answers it.

`Methods` is every family at once (cluster, blocks, fees, accounts, tokens,
transactions); the table is the only place a method name is spelled, and a
name not in it is "Method not found".
"""

from __future__ import annotations

from typing import Any

from chainworker.localnet import params as p
from chainworker.localnet.errors import METHOD_NOT_FOUND, RpcError
from chainworker.localnet.faults import LedgerFaults
from chainworker.localnet.ledger import Ledger
from chainworker.localnet.methods.accounts import AccountMethods
from chainworker.localnet.methods.base import Handler
from chainworker.localnet.methods.blocks import BlockMethods
from chainworker.localnet.methods.cluster import ClusterMethods
from chainworker.localnet.methods.fees import FeeMethods
from chainworker.localnet.methods.tokens import TokenMethods
from chainworker.localnet.methods.transactions import TransactionMethods
from chainworker.localnet.view import LedgerView


class Methods(
    ClusterMethods, BlockMethods, FeeMethods, AccountMethods, TokenMethods, TransactionMethods
):
    def __init__(
        self,
        ledger: Ledger,
        faults: LedgerFaults,
        *,
        view: LedgerView | None = None,
        rpc_url: str = "",
        ws_url: str = "",
    ) -> None:
        super().__init__(ledger, faults, view=view, rpc_url=rpc_url, ws_url=ws_url)
        self.table: dict[str, Handler] = {
            "getVersion": self.get_version,
            "getHealth": self.get_health,
            "getGenesisHash": self.get_genesis_hash,
            "getIdentity": self.get_identity,
            "getSlot": self.get_slot,
            "getBlockHeight": self.get_block_height,
            "getEpochInfo": self.get_epoch_info,
            "getEpochSchedule": self.get_epoch_schedule,
            "getLatestBlockhash": self.get_latest_blockhash,
            "isBlockhashValid": self.is_blockhash_valid,
            "getFeeForMessage": self.get_fee_for_message,
            "getMinimumBalanceForRentExemption": self.get_minimum_balance,
            "getBalance": self.get_balance,
            "getAccountInfo": self.get_account_info,
            "getMultipleAccounts": self.get_multiple_accounts,
            "getProgramAccounts": self.get_program_accounts,
            "getTokenAccountBalance": self.get_token_account_balance,
            "getTokenAccountsByOwner": self.get_token_accounts_by_owner,
            "getTokenAccountsByDelegate": self.get_token_accounts_by_delegate,
            "getTokenSupply": self.get_token_supply,
            "getTokenLargestAccounts": self.get_token_largest_accounts,
            "requestAirdrop": self.request_airdrop,
            "sendTransaction": self.send_transaction,
            "simulateTransaction": self.simulate_transaction,
            "getSignatureStatuses": self.get_signature_statuses,
            "getTransaction": self.get_transaction,
            "getSignaturesForAddress": self.get_signatures_for_address,
            "getRecentPrioritizationFees": self.get_recent_prioritization_fees,
            "getBlock": self.get_block,
            "getBlocks": self.get_blocks,
            "getBlocksWithLimit": self.get_blocks_with_limit,
            "getBlockTime": self.get_block_time,
            "getBlockCommitment": self.get_block_commitment,
            "getFirstAvailableBlock": self.get_first_available_block,
            "minimumLedgerSlot": self.get_first_available_block,
            "getTransactionCount": self.get_transaction_count,
            "getSupply": self.get_supply,
            "getClusterNodes": self.get_cluster_nodes,
            "getVoteAccounts": self.get_vote_accounts,
            "getLeaderSchedule": self.get_leader_schedule,
            "getSlotLeader": self.get_slot_leader,
            "getSlotLeaders": self.get_slot_leaders,
            "getRecentPerformanceSamples": self.get_recent_performance_samples,
            "getInflationGovernor": self.get_inflation_governor,
            "getInflationRate": self.get_inflation_rate,
            "getLargestAccounts": self.get_largest_accounts,
            "getMaxRetransmitSlot": self.get_slot_plain,
            "getMaxShredInsertSlot": self.get_slot_plain,
            "getHighestSnapshotSlot": self.get_highest_snapshot_slot,
            "getStakeMinimumDelegation": self.get_stake_minimum_delegation,
        }

    def call(self, method: str, params: Any) -> Any:
        handler = self.table.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, "Method not found")
        return handler(p.positional(params))
