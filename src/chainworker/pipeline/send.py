"""Send recorded bytes: after the commit, never before."""

from __future__ import annotations

from chainworker.chain.errors import ChainError
from chainworker.obs import logs
from chainworker.pipeline.context import PipelineContext

log = logs.get_logger(__name__)


async def send(ctx: PipelineContext, raw: bytes, signature: str) -> None:
    """Send recorded bytes; a failure is left to the rebroadcast, never lost."""
    try:
        await ctx.sender.send(raw)
    except ChainError as error:
        log.warning("send failed; the confirmation loop will rebroadcast", signature=signature,
                    error=str(error))
