"""Slots, block heights, epochs, blockhashes and the blocks themselves."""

from __future__ import annotations

from typing import Any

from chainworker.localnet import params as p
from chainworker.localnet.encoding import encode_transaction_with_meta
from chainworker.localnet.errors import BLOCK_NOT_AVAILABLE, RpcError, invalid_params
from chainworker.localnet.genesis import SLOTS_PER_EPOCH
from chainworker.localnet.ledger import Commitment
from chainworker.localnet.methods.base import MethodsBase

MAX_GET_BLOCKS_RANGE = 500_000


class BlockMethods(MethodsBase):
    def _block(self, slot: int, commitment: Commitment) -> Any:
        block = self.ledger.blocks.get(slot)
        if block is None or slot > self.view.slot_at(commitment):
            raise RpcError(BLOCK_NOT_AVAILABLE, f"Block not available for slot {slot}")
        return block

    # --- slots, heights, epochs, blockhashes -----------------------------------

    def get_slot(self, params: list[Any]) -> Any:
        return self.view.slot_at(self._read(p.config(params, 0)))

    def get_slot_plain(self, params: list[Any]) -> Any:
        return self.view.slot

    def get_highest_snapshot_slot(self, params: list[Any]) -> Any:
        return {"full": self.view.slot_at("finalized"), "incremental": None}

    def get_block_height(self, params: list[Any]) -> Any:
        return self.view.height_at(self._read(p.config(params, 0)))

    def get_epoch_info(self, params: list[Any]) -> Any:
        level = self._read(p.config(params, 0))
        block = self.view.block_at(level)
        epoch, index = self.view.epoch(block.slot)
        return {
            "absoluteSlot": block.slot,
            "blockHeight": block.height,
            "epoch": epoch,
            "slotIndex": index,
            "slotsInEpoch": SLOTS_PER_EPOCH,
            "transactionCount": self.view.transaction_count,
        }

    def get_epoch_schedule(self, params: list[Any]) -> Any:
        return {
            "firstNormalEpoch": 0,
            "firstNormalSlot": 0,
            "leaderScheduleSlotOffset": SLOTS_PER_EPOCH,
            "slotsPerEpoch": SLOTS_PER_EPOCH,
            "warmup": False,
        }

    def get_latest_blockhash(self, params: list[Any]) -> Any:
        level = self._read(p.config(params, 0))
        blockhash, last_valid = self.view.latest_blockhash(level)
        return self._context({"blockhash": blockhash, "lastValidBlockHeight": last_valid}, level)

    def is_blockhash_valid(self, params: list[Any]) -> Any:
        value = p.required(params, 0, "blockhash")
        if not isinstance(value, str):
            raise invalid_params("Invalid params: invalid type: expected a base58 string.")
        try:
            p.pubkey(value)  # same 32-byte base58 shape as a blockhash
        except RpcError:
            raise invalid_params("Invalid param: Invalid") from None
        level = self._read(p.config(params, 1))
        return self._context(self.view.is_blockhash_valid(value, level), level)

    # --- blocks ---------------------------------------------------------------

    def get_block(self, params: list[Any]) -> Any:
        slot = p.integer(p.required(params, 0, "slot"), "slot")
        raw_cfg = params[1] if len(params) > 1 else None
        cfg = {"encoding": raw_cfg} if isinstance(raw_cfg, str) else p.config(params, 1)
        level = p.at_least_confirmed(cfg)
        block = self._block(slot, level)
        encoding = cfg.get("encoding") or "json"
        details = cfg.get("transactionDetails") or "full"
        if details not in ("full", "signatures", "none", "accounts"):
            raise invalid_params(f"Invalid params: unknown variant `{details}`.")
        max_version = cfg.get("maxSupportedTransactionVersion")
        body: dict[str, Any] = {
            "blockHeight": block.height,
            "blockTime": block.block_time,
            "blockhash": block.blockhash,
            "parentSlot": block.parent_slot,
            "previousBlockhash": block.previous_blockhash,
        }
        records = [self.ledger.landed[s] for s in block.signatures if s in self.ledger.landed]
        if details in ("full", "accounts"):
            body["transactions"] = [
                encode_transaction_with_meta(record, encoding, max_version) for record in records
            ]
        elif details == "signatures":
            body["signatures"] = [record.signature for record in records]
        if p.boolean(cfg, "rewards", True):
            body["rewards"] = []
        return body

    def get_blocks(self, params: list[Any]) -> Any:
        start = p.integer(p.required(params, 0, "start slot"), "start slot")
        end_value = params[1] if len(params) > 1 and not isinstance(params[1], dict) else None
        cfg = p.config(params, 2 if end_value is not None else 1)
        level = p.at_least_confirmed(cfg)
        top = self.view.slot_at(level)
        end = top if end_value is None else min(p.integer(end_value, "end slot"), top)
        if end - start > MAX_GET_BLOCKS_RANGE:
            raise invalid_params(f"Slot range too large; max {MAX_GET_BLOCKS_RANGE}")
        return [slot for slot in range(start, end + 1) if slot in self.ledger.blocks]

    def get_blocks_with_limit(self, params: list[Any]) -> Any:
        start = p.integer(p.required(params, 0, "start slot"), "start slot")
        limit = p.integer(p.required(params, 1, "limit"), "limit")
        if limit > MAX_GET_BLOCKS_RANGE:
            raise invalid_params(f"Limit too large; max {MAX_GET_BLOCKS_RANGE}")
        level = p.at_least_confirmed(p.config(params, 2))
        top = self.view.slot_at(level)
        slots = [
            slot for slot in range(start, min(top, start + limit) + 1) if slot in self.ledger.blocks
        ]
        return slots[:limit]

    def get_block_time(self, params: list[Any]) -> Any:
        slot = p.integer(p.required(params, 0, "slot"), "slot")
        return self._block(slot, "processed").block_time

    def get_block_commitment(self, params: list[Any]) -> Any:
        slot = p.integer(p.required(params, 0, "slot"), "slot")
        if slot not in self.ledger.blocks or slot <= self.view.slot_at("finalized"):
            return {"commitment": None, "totalStake": 0}
        return {"commitment": [0] * 32, "totalStake": 0}

    def get_first_available_block(self, params: list[Any]) -> Any:
        return min(self.ledger.blocks)
