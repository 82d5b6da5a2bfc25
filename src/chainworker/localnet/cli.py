"""`chainworker localnet`: serve an embedded Solana cluster."""

from __future__ import annotations

from typing import Any

import typer

from chainworker.localnet.faults import validate


def register(app: typer.Typer) -> None:
    @app.command("localnet")
    def localnet(
        host: str = typer.Option("127.0.0.1", help="Address to listen on."),
        port: int = typer.Option(8899, help="JSON-RPC HTTP port."),
        ws_port: int | None = typer.Option(None, help="PubSub port; default: RPC port + 1."),
        slot_ms: int = typer.Option(400, min=1, help="Milliseconds per slot."),
        seed: int = typer.Option(0, help="Seed for genesis keys and fault decisions."),
        confirm_depth: int = typer.Option(1, min=1, help="Slots until a block is confirmed."),
        finalize_depth: int = typer.Option(32, min=1, help="Slots until a block is finalized."),
        drop_rate: float = typer.Option(0.0, min=0, max=1, help="Fraction of sends dropped."),
        drop_first_sends: int = typer.Option(0, min=0, help="Drop the first K sends of each tx."),
        land_delay_slots: int = typer.Option(0, min=0, help="Land transactions N slots late."),
        http_error_rate: float = typer.Option(0.0, min=0, max=1, help="Fraction answered 429/503."),
        http_error_status: int = typer.Option(429, help="429 or 503."),
        stall_rate: float = typer.Option(0.0, min=0, max=1, help="Fraction of requests stalled."),
        stall_seconds: float = typer.Option(0.0, min=0, help="How long a stalled request waits."),
        clock_frozen: bool = typer.Option(False, help="Start with the slot clock frozen."),
    ) -> None:
        """Serve Solana JSON-RPC (HTTP) and PubSub (WebSocket) over LiteSVM, with faults."""
        from chainworker.localnet.server import NodeConfig, run

        faults: dict[str, Any] = {
            "drop_rate": drop_rate,
            "drop_first_sends": drop_first_sends,
            "land_delay_slots": land_delay_slots,
            "http_error_rate": http_error_rate,
            "http_error_status": http_error_status,
            "stall_rate": stall_rate,
            "stall_seconds": stall_seconds,
            "clock_frozen": clock_frozen,
        }
        try:
            validate(faults)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
        run(
            NodeConfig(
                host=host,
                port=port,
                ws_port=ws_port,
                slot_ms=slot_ms,
                seed=seed,
                confirm_depth=confirm_depth,
                finalize_depth=finalize_depth,
            ),
            faults,
        )
