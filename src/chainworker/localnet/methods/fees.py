"""What sending costs: a message's fee, and the priority fees recent blocks paid."""

from __future__ import annotations

from typing import Any

from solders.message import from_bytes_versioned

from chainworker.localnet import fee_history
from chainworker.localnet import params as p
from chainworker.localnet.errors import invalid_params
from chainworker.localnet.fee_history import BlockFees
from chainworker.localnet.methods.base import MethodsBase

MAX_PRIORITIZATION_ADDRESSES = 128


class FeeMethods(MethodsBase):
    def get_fee_for_message(self, params: list[Any]) -> Any:
        encoded = p.required(params, 0, "message")
        level = self._read(p.config(params, 1))
        raw = p.decode_bytes(encoded, "base64", None, "solana_message::VersionedMessage")
        try:
            message = from_bytes_versioned(raw)
        except Exception as error:
            raise invalid_params(f"invalid message: {error}") from None
        if not self.view.is_blockhash_valid(str(message.recent_blockhash), level):
            return self._context(None, level)
        return self._context(self.ledger.fee_for(message), level)

    def get_recent_prioritization_fees(self, params: list[Any]) -> Any:
        """Agave's answer (see fee_history.py): confirmed blocks with fees, the newest 150."""
        addresses = params[0] if params else []
        if not isinstance(addresses, list):
            raise invalid_params("Invalid params: expected a sequence of addresses.")
        if len(addresses) > MAX_PRIORITIZATION_ADDRESSES:
            raise invalid_params(f"Too many inputs provided; max {MAX_PRIORITIZATION_ADDRESSES}")
        wanted = [p.pubkey(key) for key in addresses]
        ledger = self.ledger
        confirmed = self.view.slot_at("confirmed")
        newest_first: list[tuple[int, BlockFees]] = []
        for slot in reversed(ledger.fee_slots):
            block = ledger.blocks.get(slot) if slot <= confirmed else None
            if block is None or block.fees is None:  # not confirmed yet, pruned or forked
                continue
            newest_first.append((slot, block.fees))
            if len(newest_first) == fee_history.MAX_NUM_RECENT_BLOCKS:
                break
        return fee_history.answer(reversed(newest_first), wanted)
