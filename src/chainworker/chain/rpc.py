"""SolanaRpc: the one RPC client of chainworker, over one or more endpoints.

- Reads go to the first healthy endpoint; an endpoint that fails is skipped for a short
  cooldown, and the call moves on to the next one.
- Transport errors, timeouts, HTTP 429/5xx and "node unhealthy" answers are retried with
  jittered exponential backoff, up to `max_attempts` requests per call.
- `send_raw` fans the same bytes out to every endpoint at once (no preflight, maxRetries 0:
  chainworker rebroadcasts itself) and succeeds as soon as one accepts.
- One blockhash cache per instance; create one SolanaRpc per process and share it.

Every failure is a ChainError. Requests are solders' typed requests (see `calls`), answers
plain dataclasses (see `views`).

The class is put together from its parts, each a module of its own:

- `rpc_failover.FailoverRpc`: construction, the endpoints' health, cluster checks and the
  retrying call; it holds all of the client's state;
- `rpc_chain_read.ChainReads`: `read_chain` (one endpoint's checked height, then its
  statuses), block height, signature statuses, transactions, waiting for a confirmation;
- `rpc_sends.Sends`: the blockhash, simulation, priority fees, `send_raw(_many)`;
- `rpc_accounts.AccountReads`: accounts, mint state, token holder, balance.

Mixins rather than composition: the parts share one state (the endpoints, the heights
seen, the blockhash cache) and one retry loop, and each public method is written once, in
the part it belongs to; a composed client would repeat every signature in a delegating
method. The parts add methods only. Import the client from here: this is its home.
"""

from __future__ import annotations

from solders.pubkey import Pubkey
from solders.signature import Signature

from chainworker.chain import calls, views
from chainworker.chain.rpc_accounts import AccountReads
from chainworker.chain.rpc_chain_read import ChainReads
from chainworker.chain.rpc_sends import Sends


class SolanaRpc(ChainReads, Sends, AccountReads):
    async def request_airdrop(
        self, address: Pubkey, lamports: int, *, wait_seconds: float = 30.0
    ) -> Signature:
        """Airdrop (localnet, devnet) and wait until it is confirmed.

        Here rather than in a part: it asks for a transfer and then polls its status.
        """
        signature = await self._call(
            calls.airdrop(address, lamports, self.commitment), views.airdropped
        )
        await self.wait_for_confirmation(signature, wait_seconds)
        return signature
