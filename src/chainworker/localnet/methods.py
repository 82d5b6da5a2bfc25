"""The JSON-RPC method table: validator-shaped answers over the ledger.

Reads go through a `LedgerView` (the endpoint's, which may lag behind the
cluster); writes (sends, airdrops) go to the shared ledger.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from solders.account import Account
from solders.message import from_bytes_versioned
from solders.pubkey import Pubkey

from chainworker.localnet import params as p
from chainworker.localnet.encoding import (
    ACCOUNT_ENCODINGS,
    encode_account,
    encode_transaction_with_meta,
)
from chainworker.localnet.errors import (
    BLOCK_NOT_AVAILABLE,
    METHOD_NOT_FOUND,
    MIN_CONTEXT_SLOT_NOT_REACHED,
    NODE_UNHEALTHY,
    SEND_TRANSACTION_PREFLIGHT_FAILURE,
    TRANSACTION_SIGNATURE_VERIFICATION_FAILURE,
    RpcError,
    invalid_params,
)
from chainworker.localnet.faults import LedgerFaults
from chainworker.localnet.genesis import SLOTS_PER_EPOCH
from chainworker.localnet.ledger import MAX_PROCESSING_AGE, Commitment, Ledger
from chainworker.localnet.tokens import (
    TOKEN_PROGRAMS,
    is_mint,
    is_token_account,
    parse_mint,
    parse_token_account,
    ui_amount,
)
from chainworker.localnet.view import LedgerView

SOLANA_CORE_VERSION = "2.2.0"
FEATURE_SET = 3_294_202_862
MAX_MULTIPLE_ACCOUNTS = 100
MAX_SIGNATURE_STATUSES = 256
MAX_SIGNATURES_FOR_ADDRESS = 1000
MAX_GET_BLOCKS_RANGE = 500_000
MAX_PRIORITIZATION_ADDRESSES = 128
MAX_PERFORMANCE_SAMPLES = 720
PERFORMANCE_SAMPLE_SECONDS = 60
LARGEST_ACCOUNTS = 20
MAX_FILTERS = 4
# A node further behind than this reports itself unhealthy (agave's default distance).
HEALTH_CHECK_SLOT_DISTANCE = 128

Handler = Callable[[list[Any]], Any]


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


class Methods:
    def __init__(
        self,
        ledger: Ledger,
        faults: LedgerFaults,
        *,
        view: LedgerView | None = None,
        rpc_url: str = "",
        ws_url: str = "",
    ) -> None:
        self.ledger = ledger
        self.view = view if view is not None else LedgerView(ledger)
        self.faults = faults
        self.rpc_url = rpc_url
        self.ws_url = ws_url
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

    # --- helpers ---------------------------------------------------------------

    def _context(self, value: Any, commitment: Commitment = "processed") -> dict[str, Any]:
        return {
            "context": {"apiVersion": SOLANA_CORE_VERSION, "slot": self.view.slot_at(commitment)},
            "value": value,
        }

    def _check_min_context(self, cfg: dict[str, Any], commitment: Commitment) -> None:
        wanted = cfg.get("minContextSlot")
        if wanted is None:
            return
        current = self.view.slot_at(commitment)
        if p.integer(wanted, "minContextSlot") > current:
            raise RpcError(
                MIN_CONTEXT_SLOT_NOT_REACHED,
                "Minimum context slot has not been reached",
                {"contextSlot": current},
            )

    def _read(self, cfg: dict[str, Any]) -> Commitment:
        level = p.commitment(cfg)
        self._check_min_context(cfg, level)
        return level

    def _mint_lookup(self, commitment: Commitment) -> Callable[[Pubkey], Account | None]:
        return lambda key: self.view.get_account(key, commitment)

    def _encoding(self, cfg: dict[str, Any], default: str) -> str:
        encoding = cfg.get("encoding", default) or default
        if encoding not in ACCOUNT_ENCODINGS and encoding != "base64+zstd":
            raise invalid_params(f"Invalid params: unknown variant `{encoding}`.")
        if encoding == "base64+zstd":
            raise invalid_params("Invalid params: base64+zstd encoding is not supported here.")
        return str(encoding)

    def _block(self, slot: int, commitment: Commitment) -> Any:
        block = self.ledger.blocks.get(slot)
        if block is None or slot > self.view.slot_at(commitment):
            raise RpcError(BLOCK_NOT_AVAILABLE, f"Block not available for slot {slot}")
        return block

    # --- cluster -------------------------------------------------------------

    def get_version(self, params: list[Any]) -> Any:
        return {"feature-set": FEATURE_SET, "solana-core": SOLANA_CORE_VERSION}

    def get_health(self, params: list[Any]) -> Any:
        self._check_health()
        return "ok"

    def _check_health(self) -> None:
        behind = self.view.lag
        if behind > HEALTH_CHECK_SLOT_DISTANCE:
            raise RpcError(
                NODE_UNHEALTHY,
                f"Node is behind by {behind} slots",
                {"numSlotsBehind": behind},
            )

    def get_genesis_hash(self, params: list[Any]) -> Any:
        return str(self.ledger.genesis.genesis_hash)

    def get_identity(self, params: list[Any]) -> Any:
        return {"identity": str(self.ledger.genesis.identity.pubkey())}

    def get_slot(self, params: list[Any]) -> Any:
        return self.view.slot_at(self._read(p.config(params, 0)))

    def get_slot_plain(self, params: list[Any]) -> Any:
        return self.view.slot

    def get_highest_snapshot_slot(self, params: list[Any]) -> Any:
        return {"full": self.view.slot_at("finalized"), "incremental": None}

    def get_stake_minimum_delegation(self, params: list[Any]) -> Any:
        return self._context(1_000_000_000, p.commitment(p.config(params, 0)))

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

    def get_minimum_balance(self, params: list[Any]) -> Any:
        size = p.integer(p.required(params, 0, "size"), "data length")
        if size > 10 * 1024 * 1024:
            raise invalid_params("Invalid params: data length too large.")
        return self.ledger.svm.minimum_balance_for_rent_exemption(size)

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

    # --- accounts -------------------------------------------------------------

    def get_balance(self, params: list[Any]) -> Any:
        key = p.pubkey(p.required(params, 0, "pubkey"))
        level = self._read(p.config(params, 1))
        account = self.view.get_account(key, level)
        return self._context(0 if account is None else account.lamports, level)

    def get_account_info(self, params: list[Any]) -> Any:
        key = p.pubkey(p.required(params, 0, "pubkey"))
        cfg = p.config(params, 1)
        level = self._read(cfg)
        encoding = self._encoding(cfg, "binary")
        account = self.view.get_account(key, level)
        value = encode_account(account, encoding, cfg.get("dataSlice"), self._mint_lookup(level))
        return self._context(value, level)

    def get_multiple_accounts(self, params: list[Any]) -> Any:
        keys = p.required(params, 0, "pubkeys")
        if not isinstance(keys, list):
            raise invalid_params("Invalid params: invalid type: expected a sequence of pubkeys.")
        if len(keys) > MAX_MULTIPLE_ACCOUNTS:
            raise invalid_params(f"Too many inputs provided; max {MAX_MULTIPLE_ACCOUNTS}")
        parsed = [p.pubkey(key) for key in keys]
        cfg = p.config(params, 1)
        level = self._read(cfg)
        encoding = self._encoding(cfg, "base64")
        mints = self._mint_lookup(level)
        data_slice = cfg.get("dataSlice")
        return self._context(
            [
                encode_account(self.view.get_account(key, level), encoding, data_slice, mints)
                for key in parsed
            ],
            level,
        )

    def _filters(self, raw: Any) -> list[Callable[[Account], bool]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise invalid_params("Invalid params: filters must be a sequence.")
        if len(raw) > MAX_FILTERS:
            raise invalid_params(f"Too many filters provided; max {MAX_FILTERS}")
        checks: list[Callable[[Account], bool]] = []
        for item in raw:
            if isinstance(item, dict) and "dataSize" in item:
                checks.append(_data_size(p.integer(item["dataSize"], "dataSize")))
            elif isinstance(item, dict) and isinstance(item.get("memcmp"), dict):
                memcmp = item["memcmp"]
                offset = p.integer(memcmp.get("offset"), "memcmp offset")
                encoding = memcmp.get("encoding", "base58")
                wanted = p.decode_bytes(memcmp.get("bytes"), encoding, 175, "memcmp bytes")
                checks.append(_memcmp(offset, wanted))
            else:
                raise invalid_params(f"Invalid params: unsupported filter {item!r}.")
        return checks

    def get_program_accounts(self, params: list[Any]) -> Any:
        program = p.pubkey(p.required(params, 0, "program id"))
        cfg = p.config(params, 1)
        level = self._read(cfg)
        encoding = self._encoding(cfg, "binary")
        checks = self._filters(cfg.get("filters"))
        mints = self._mint_lookup(level)
        data_slice = cfg.get("dataSlice")
        found = [
            {"account": encode_account(account, encoding, data_slice, mints), "pubkey": str(key)}
            for key, account in self.view.program_accounts(program, level)
            if all(check(account) for check in checks)
        ]
        if p.boolean(cfg, "withContext"):
            return self._context(found, level)
        return found

    # --- tokens --------------------------------------------------------------

    def _token_account(self, key: Pubkey, level: Commitment) -> tuple[Account, int]:
        account = self.view.get_account(key, level)
        if account is None or not is_token_account(account):
            raise invalid_params("Invalid param: not a Token account")
        mint = self.view.get_account(parse_token_account(account.data).mint, level)
        if mint is None or not is_mint(mint):
            raise invalid_params("Invalid param: mint could not be unpacked")
        return account, parse_mint(mint.data).decimals

    def get_token_account_balance(self, params: list[Any]) -> Any:
        key = p.pubkey(p.required(params, 0, "pubkey"))
        level = self._read(p.config(params, 1))
        account, decimals = self._token_account(key, level)
        amount = parse_token_account(account.data).amount
        return self._context(ui_amount(amount, decimals), level)

    def _token_accounts_by(self, params: list[Any], owner_offset: int) -> Any:
        who = p.pubkey(p.required(params, 0, "pubkey"))
        selector = p.required(params, 1, "mint or programId")
        cfg = p.config(params, 2)
        level = self._read(cfg)
        encoding = self._encoding(cfg, "binary")
        if not isinstance(selector, dict) or len(selector) != 1:
            raise invalid_params("Invalid params: expected an object with mint or programId.")
        mint: Pubkey | None = None
        if "mint" in selector:
            mint = p.pubkey(selector["mint"])
            mint_account = self.view.get_account(mint, level)
            if mint_account is None or mint_account.owner not in TOKEN_PROGRAMS:
                raise invalid_params("Invalid param: could not find mint")
            programs = [mint_account.owner]
        elif "programId" in selector:
            program = p.pubkey(selector["programId"])
            if program not in TOKEN_PROGRAMS:
                raise invalid_params("Invalid param: unrecognized Token program id")
            programs = [program]
        else:
            raise invalid_params("Invalid params: expected mint or programId.")
        who_bytes = bytes(who)
        mints = self._mint_lookup(level)
        found = []
        for program in programs:
            for key, account in self.view.program_accounts(program, level):
                if not is_token_account(account):
                    continue
                data = account.data
                if owner_offset == 72:  # delegate is COption<Pubkey>
                    if data[72:76] != b"\x01\x00\x00\x00" or data[76:108] != who_bytes:
                        continue
                elif data[owner_offset : owner_offset + 32] != who_bytes:
                    continue
                if mint is not None and data[0:32] != bytes(mint):
                    continue
                found.append(
                    {
                        "account": encode_account(account, encoding, cfg.get("dataSlice"), mints),
                        "pubkey": str(key),
                    }
                )
        return self._context(found, level)

    def get_token_accounts_by_owner(self, params: list[Any]) -> Any:
        return self._token_accounts_by(params, 32)

    def get_token_accounts_by_delegate(self, params: list[Any]) -> Any:
        return self._token_accounts_by(params, 72)

    def get_token_supply(self, params: list[Any]) -> Any:
        key = p.pubkey(p.required(params, 0, "mint"))
        level = self._read(p.config(params, 1))
        account = self.view.get_account(key, level)
        if account is None or not is_mint(account):
            raise invalid_params("Invalid param: not a Token mint")
        mint = parse_mint(account.data)
        return self._context(ui_amount(mint.supply, mint.decimals), level)

    def get_token_largest_accounts(self, params: list[Any]) -> Any:
        key = p.pubkey(p.required(params, 0, "mint"))
        level = self._read(p.config(params, 1))
        account = self.view.get_account(key, level)
        if account is None or not is_mint(account):
            raise invalid_params("Invalid param: not a Token mint")
        decimals = parse_mint(account.data).decimals
        mint_bytes = bytes(key)
        holders = [
            (parse_token_account(held.data).amount, str(address))
            for address, held in self.view.program_accounts(account.owner, level)
            if is_token_account(held) and held.data[0:32] == mint_bytes
        ]
        holders.sort(key=lambda item: (-item[0], item[1]))
        return self._context(
            [
                {"address": address, **ui_amount(amount, decimals)}
                for amount, address in holders[:LARGEST_ACCOUNTS]
            ],
            level,
        )

    # --- transactions ---------------------------------------------------------

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

    def get_recent_prioritization_fees(self, params: list[Any]) -> Any:
        addresses = params[0] if params else []
        if not isinstance(addresses, list):
            raise invalid_params("Invalid params: expected a sequence of addresses.")
        if len(addresses) > MAX_PRIORITIZATION_ADDRESSES:
            raise invalid_params(f"Too many inputs provided; max {MAX_PRIORITIZATION_ADDRESSES}")
        wanted = [str(p.pubkey(key)) for key in addresses]
        ledger = self.ledger
        top = self.view.slot
        fees = []
        for slot in range(max(top - MAX_PROCESSING_AGE + 1, 1), top + 1):
            block = ledger.blocks.get(slot)
            if block is None:
                continue
            fee = block.min_priority_fee or 0
            for key in wanted:
                fee = max(fee, block.account_priority_fees.get(key, 0))
            fees.append({"prioritizationFee": fee, "slot": slot})
        return fees

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


def _data_size(size: int) -> Callable[[Account], bool]:
    return lambda account: len(account.data) == size


def _memcmp(offset: int, wanted: bytes) -> Callable[[Account], bool]:
    return lambda account: account.data[offset : offset + len(wanted)] == wanted
