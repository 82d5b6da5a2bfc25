"""Another tenant's object answers 404, and the attempt is recorded.

A route raises `Hidden(table, key)` when a lookup under the caller's tenant finds
nothing. The route's transaction has rolled back by the time the handler runs, so
the handler records the attempt in a transaction of its own: when the object exists
under another tenant, `chainworker_note_cross_tenant` writes a
`tenant_access_violations` row through `log_tenant_violation`. The answer is the
same 404 either way, so existence never leaks.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from chainworker.api.problems import Problem
from chainworker.api.tokens import Principal
from chainworker.db import violations
from chainworker.db.pool import tenant_transaction
from chainworker.ops import logs

log = logs.get_logger(__name__)

NOUNS = {
    "tickets": "ticket",
    "ticket_transfers": "transfer",
    "chain_requests": "request",
    "pending_transactions": "transaction",
    "events": "event",
    "multisig_approval_requests": "revocation",
    "users": "user",
}


class Hidden(Exception):
    """Nothing with this key is visible to the caller's tenant."""

    def __init__(self, table: str, key: str) -> None:
        super().__init__(f"{table} {key}")
        self.table = table
        self.key = key


def install(app: FastAPI) -> None:
    async def on_hidden(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, Hidden)
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is not None:
            try:
                async with tenant_transaction(
                    request.app.state.context.pool,
                    principal.tenant_id,
                    reason="cross-tenant lookup",
                    source="api",
                ) as conn:
                    noted = await violations.note_cross_tenant(
                        conn,
                        error.table,
                        error.key,
                        f"{request.method} {request.url.path}",
                    )
                if noted:
                    log.warning(
                        "cross-tenant access", table=error.table, tenant_id=str(principal.tenant_id)
                    )
            except Exception as failure:  # the 404 stands even if recording fails
                log.error("could not record cross-tenant access", error=repr(failure))
        noun = NOUNS.get(error.table, "resource")
        return Problem("not-found", f"no such {noun}").response(request.url.path)

    app.add_exception_handler(Hidden, on_hidden)
