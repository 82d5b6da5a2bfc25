"""Transactions in and out: airdrops, sends and their preflight, simulation, statuses.

Sends and airdrops go to the shared ledger; statuses and landed transactions
are read through the view, so a lagging endpoint does not see them yet.
"""

from __future__ import annotations

import base64
from typing import Any

from solders.pubkey import Pubkey

from chainworker.localnet import params as p
from chainworker.localnet.encoding import encode_account, encode_transaction_with_meta
from chainworker.localnet.errors import (
    SEND_TRANSACTION_PREFLIGHT_FAILURE,
    TRANSACTION_SIGNATURE_VERIFICATION_FAILURE,
    RpcError,
    invalid_params,
)
from chainworker.localnet.methods.base import MethodsBase

MAX_SIGNATURE_STATUSES = 256
MAX_SIGNATURES_FOR_ADDRESS = 1000


def describe_error(err: Any) -> str:
    """The text a validator puts after "Transaction simulation failed: "."""
    fieldless = {
        "BlockhashNotFound": "Blockhash not found",
        "AlreadyProcessed": "This transaction has already been processed",
        "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
        "InsufficientFundsForFee": "Insufficient funds for fee",
        "SignatureFailure": "Transaction did not pass signature verification",
    }
    if isinstance(err, str):
        return fieldless.get(err, err)
    if isinstance(err, dict) and "InstructionError" in err:
        index, detail = err["InstructionError"]
        if isinstance(detail, dict) and "Custom" in detail:
            code = detail["Custom"]
            return f"Error processing Instruction {index}: custom program error: {code:#x}"
        return f"Error processing Instruction {index}: {detail}"
    if isinstance(err, dict) and "InsufficientFundsForRent" in err:
        index = err["InsufficientFundsForRent"].get("account_index")
        return f"Transaction results in an account ({index}) with insufficient funds for rent"
    return str(err)


class TransactionMethods(MethodsBase):
    def request_airdrop(self, params: list[Any]) -> Any:
        key = p.pubkey(p.required(params, 0, "pubkey"))
        lamports = p.integer(p.required(params, 1, "lamports"), "lamports")
        if lamports == 0:
            raise invalid_params("Invalid params: lamports must be greater than zero.")
        faucet = self.ledger.get_account(self.ledger.genesis.faucet.pubkey(), "processed")
        if faucet is None or faucet.lamports < lamports:
            raise RpcError(
                -32600, "airdrop request failed. This can happen when the rate limit is reached."
            )
        return self.ledger.airdrop(key, lamports)

    def _preflight_failure(self, err: Any, logs: list[str], units: int) -> RpcError:
        return RpcError(
            SEND_TRANSACTION_PREFLIGHT_FAILURE,
            f"Transaction simulation failed: {describe_error(err)}",
            {
                "accounts": None,
                "err": err,
                "innerInstructions": None,
                "logs": logs,
                "replacementBlockhash": None,
                "returnData": None,
                "unitsConsumed": units,
            },
        )

    def send_transaction(self, params: list[Any]) -> Any:
        encoded = p.required(params, 0, "transaction")
        cfg = p.config(params, 1)
        encoding = cfg.get("encoding") or "base58"
        transaction, raw = p.transaction(encoded, encoding)
        level = p.commitment({"commitment": cfg.get("preflightCommitment")})
        self._check_min_context(cfg, level)
        max_retries = cfg.get("maxRetries")
        if max_retries is not None:
            p.integer(max_retries, "maxRetries")
        signature = str(transaction.signatures[0])
        if not p.boolean(cfg, "skipPreflight"):
            if not all(transaction.verify_with_results()):
                raise RpcError(
                    TRANSACTION_SIGNATURE_VERIFICATION_FAILURE,
                    "Transaction signature verification failure",
                )
            self._check_health()
            outcome = self.ledger.simulate(
                transaction,
                sig_verify=False,
                replace_blockhash=False,
                commitment=level,
                tip=self.view.tip,
            )
            if outcome.err is not None:
                raise self._preflight_failure(outcome.err, outcome.logs, outcome.units_consumed)
        elif self.view.is_newer_than_view(str(transaction.message.recent_blockhash)):
            # A node that is behind cannot forward what it cannot check, preflight or not.
            raise self._preflight_failure("BlockhashNotFound", [], 0)
        if self.faults.drop_send(signature):
            return signature
        return self.ledger.submit(transaction, raw, self.faults.settings.land_delay_slots)

    def simulate_transaction(self, params: list[Any]) -> Any:
        encoded = p.required(params, 0, "transaction")
        cfg = p.config(params, 1)
        encoding = cfg.get("encoding") or "base58"
        transaction, _ = p.transaction(encoded, encoding)
        level = self._read(cfg)
        sig_verify = p.boolean(cfg, "sigVerify")
        replace = p.boolean(cfg, "replaceRecentBlockhash")
        if sig_verify and replace:
            raise invalid_params("sigVerify may not be used with replaceRecentBlockhash")
        if sig_verify and not all(transaction.verify_with_results()):
            raise RpcError(
                TRANSACTION_SIGNATURE_VERIFICATION_FAILURE,
                "Transaction signature verification failure",
            )
        accounts_cfg = cfg.get("accounts")
        addresses: list[Pubkey] = []
        account_encoding = "base64"
        if accounts_cfg is not None:
            if not isinstance(accounts_cfg, dict) or not isinstance(
                accounts_cfg.get("addresses"), list
            ):
                raise invalid_params("Invalid params: accounts needs an addresses list.")
            addresses = [p.pubkey(key) for key in accounts_cfg["addresses"]]
            account_encoding = self._encoding(accounts_cfg, "base64")
        outcome = self.ledger.simulate(
            transaction,
            sig_verify=sig_verify,
            replace_blockhash=replace,
            commitment=level,
            addresses=addresses,
            tip=self.view.tip,
        )
        mints = self._mint_lookup(level)
        value: dict[str, Any] = {
            "accounts": (
                [
                    encode_account(outcome.accounts.get(key), account_encoding, None, mints)
                    for key in addresses
                ]
                if accounts_cfg is not None
                else None
            ),
            "err": outcome.err,
            "innerInstructions": None,
            "logs": outcome.logs,
            "replacementBlockhash": (
                None
                if outcome.replacement_blockhash is None
                else {
                    "blockhash": outcome.replacement_blockhash[0],
                    "lastValidBlockHeight": outcome.replacement_blockhash[1],
                }
            ),
            "returnData": (
                None
                if outcome.return_data is None
                else {
                    "data": [base64.b64encode(outcome.return_data[1]).decode(), "base64"],
                    "programId": outcome.return_data[0],
                }
            ),
            "unitsConsumed": outcome.units_consumed,
        }
        return self._context(value, level)

    def get_signature_statuses(self, params: list[Any]) -> Any:
        signatures = p.required(params, 0, "signatures")
        if not isinstance(signatures, list):
            raise invalid_params("Invalid params: invalid type: expected a sequence of signatures.")
        if len(signatures) > MAX_SIGNATURE_STATUSES:
            raise invalid_params(f"Too many inputs provided; max {MAX_SIGNATURE_STATUSES}")
        for value in signatures:
            p.signature(value)
        search = p.boolean(p.config(params, 1), "searchTransactionHistory")
        statuses: list[Any] = []
        view = self.view
        for value in signatures:
            record = view.status_of(value, search)
            if record is None:
                statuses.append(None)
                continue
            level, confirmations = view.confirmation_of(record)
            statuses.append(
                {
                    "confirmationStatus": level,
                    "confirmations": confirmations,
                    "err": record.err,
                    "slot": record.slot,
                    "status": {"Ok": None} if record.err is None else {"Err": record.err},
                }
            )
        return self._context(statuses)

    def get_transaction(self, params: list[Any]) -> Any:
        signature = str(p.signature(p.required(params, 0, "signature")))
        raw_cfg = params[1] if len(params) > 1 else None
        cfg = {"encoding": raw_cfg} if isinstance(raw_cfg, str) else p.config(params, 1)
        level = p.at_least_confirmed(cfg)
        encoding = cfg.get("encoding") or "json"
        record = self.ledger.landed.get(signature)
        if record is None or not self.view.visible_at(record, level):
            return None
        block = self.ledger.blocks.get(record.slot)
        body = encode_transaction_with_meta(
            record, encoding, cfg.get("maxSupportedTransactionVersion")
        )
        body["blockTime"] = None if block is None else block.block_time
        body["slot"] = record.slot
        return body

    def get_signatures_for_address(self, params: list[Any]) -> Any:
        address = str(p.pubkey(p.required(params, 0, "address")))
        cfg = p.config(params, 1)
        level = p.at_least_confirmed(cfg)
        limit = cfg.get("limit") or MAX_SIGNATURES_FOR_ADDRESS
        limit = p.integer(limit, "limit")
        if limit > MAX_SIGNATURES_FOR_ADDRESS:
            raise invalid_params(f"Invalid limit; max {MAX_SIGNATURES_FOR_ADDRESS}")
        before = cfg.get("before")
        until = cfg.get("until")
        if before is not None:
            before = str(p.signature(before))
        if until is not None:
            until = str(p.signature(until))
        ledger = self.ledger
        found: list[dict[str, Any]] = []
        started = before is None
        for signature in reversed(ledger.signatures_for(address)):
            if not started:
                started = signature == before
                continue
            if signature == until:
                break
            record = ledger.landed.get(signature)
            if record is None or not self.view.visible_at(record, level):
                continue
            block = ledger.blocks.get(record.slot)
            found.append(
                {
                    "blockTime": None if block is None else block.block_time,
                    "confirmationStatus": self.view.confirmation_of(record)[0],
                    "err": record.err,
                    "memo": record.memo,
                    "signature": signature,
                    "slot": record.slot,
                }
            )
            if len(found) >= limit:
                break
        return found
