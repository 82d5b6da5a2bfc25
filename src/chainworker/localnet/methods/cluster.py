"""Cluster information: version, health, identity, leaders, supply, inflation, performance.

One node is the whole cluster here: the only node listed, the only leader, and
no vote accounts.
"""

from __future__ import annotations

from typing import Any

from chainworker.localnet import params as p
from chainworker.localnet.errors import invalid_params
from chainworker.localnet.genesis import SLOTS_PER_EPOCH
from chainworker.localnet.methods.base import LARGEST_ACCOUNTS, SOLANA_CORE_VERSION, MethodsBase

FEATURE_SET = 3_294_202_862
MAX_PERFORMANCE_SAMPLES = 720
PERFORMANCE_SAMPLE_SECONDS = 60


class ClusterMethods(MethodsBase):
    def get_version(self, params: list[Any]) -> Any:
        return {"feature-set": FEATURE_SET, "solana-core": SOLANA_CORE_VERSION}

    def get_health(self, params: list[Any]) -> Any:
        self._check_health()
        return "ok"

    def get_genesis_hash(self, params: list[Any]) -> Any:
        return str(self.ledger.genesis.genesis_hash)

    def get_identity(self, params: list[Any]) -> Any:
        return {"identity": str(self.ledger.genesis.identity.pubkey())}

    def get_stake_minimum_delegation(self, params: list[Any]) -> Any:
        return self._context(1_000_000_000, p.commitment(p.config(params, 0)))

    def get_transaction_count(self, params: list[Any]) -> Any:
        return self.view.transaction_count

    def get_supply(self, params: list[Any]) -> Any:
        level = self._read(p.config(params, 0))
        total = sum(
            account.lamports
            for key in self.ledger.known_accounts
            if (account := self.view.get_account(key, level)) is not None
        )
        return self._context(
            {
                "circulating": total,
                "nonCirculating": 0,
                "nonCirculatingAccounts": [],
                "total": total,
            },
            level,
        )

    def get_cluster_nodes(self, params: list[Any]) -> Any:
        rpc_host = self.rpc_url.split("//", 1)[-1] or None
        ws_host = self.ws_url.split("//", 1)[-1] or None
        return [
            {
                "featureSet": FEATURE_SET,
                "gossip": None,
                "pubkey": str(self.ledger.genesis.identity.pubkey()),
                "pubsub": ws_host,
                "rpc": rpc_host,
                "shredVersion": 0,
                "tpu": None,
                "tpuQuic": None,
                "version": SOLANA_CORE_VERSION,
            }
        ]

    def get_vote_accounts(self, params: list[Any]) -> Any:
        self._read(p.config(params, 0))
        return {"current": [], "delinquent": []}

    def get_leader_schedule(self, params: list[Any]) -> Any:
        slot = params[0] if params and not isinstance(params[0], dict) else None
        cfg = p.config(params, 1 if params and not isinstance(params[0], dict) else 0)
        epoch, _ = self.view.epoch(self.view.slot if slot is None else p.integer(slot, "slot"))
        if epoch > self.view.epoch()[0] + 1:
            return None
        identity = str(self.ledger.genesis.identity.pubkey())
        wanted = cfg.get("identity")
        if wanted is not None and wanted != identity:
            return {}
        return {identity: list(range(SLOTS_PER_EPOCH))}

    def get_slot_leader(self, params: list[Any]) -> Any:
        self._read(p.config(params, 0))
        return str(self.ledger.genesis.identity.pubkey())

    def get_slot_leaders(self, params: list[Any]) -> Any:
        p.integer(p.required(params, 0, "start slot"), "start slot")
        limit = p.integer(p.required(params, 1, "limit"), "limit")
        if limit > 5000:
            raise invalid_params("Invalid limit; max 5000")
        return [str(self.ledger.genesis.identity.pubkey())] * limit

    def get_recent_performance_samples(self, params: list[Any]) -> Any:
        limit = MAX_PERFORMANCE_SAMPLES if not params else p.integer(params[0], "limit")
        if limit > MAX_PERFORMANCE_SAMPLES:
            raise invalid_params(f"Invalid limit; max {MAX_PERFORMANCE_SAMPLES}")
        samples: list[dict[str, Any]] = []
        top = self.view.slot
        blocks = sorted(
            (block for block in self.ledger.blocks.values() if block.slot <= top),
            key=lambda block: -block.slot,
        )
        index = 0
        while index < len(blocks) and len(samples) < limit:
            end = blocks[index]
            window: list[Any] = []
            while index < len(blocks) and (
                end.block_time - blocks[index].block_time < PERFORMANCE_SAMPLE_SECONDS
            ):
                window.append(blocks[index])
                index += 1
            transactions = sum(len(block.signatures) for block in window)
            samples.append(
                {
                    "numNonVoteTransactions": transactions,
                    "numSlots": len(window),
                    "numTransactions": transactions,
                    "samplePeriodSecs": PERFORMANCE_SAMPLE_SECONDS,
                    "slot": end.slot,
                }
            )
        return samples

    def get_inflation_governor(self, params: list[Any]) -> Any:
        return {
            "foundation": 0.05,
            "foundationTerm": 7.0,
            "initial": 0.08,
            "taper": 0.15,
            "terminal": 0.015,
        }

    def get_inflation_rate(self, params: list[Any]) -> Any:
        return {
            "epoch": self.view.epoch()[0],
            "foundation": 0.004,
            "total": 0.08,
            "validator": 0.076,
        }

    def get_largest_accounts(self, params: list[Any]) -> Any:
        cfg = p.config(params, 0)
        level = self._read(cfg)
        wanted = cfg.get("filter")
        if wanted not in (None, "circulating", "nonCirculating"):
            raise invalid_params(f"Invalid params: unknown variant `{wanted}`.")
        if wanted == "nonCirculating":
            return self._context([], level)
        balances = [
            (account.lamports, str(key))
            for key in self.ledger.known_accounts
            if (account := self.view.get_account(key, level)) is not None
        ]
        balances.sort(reverse=True)
        return self._context(
            [
                {"address": key, "lamports": lamports}
                for lamports, key in balances[:LARGEST_ACCOUNTS]
            ],
            level,
        )
