"""`chainworker localnet`: serve an embedded Solana cluster."""

from __future__ import annotations

from typing import Any

import typer

from chainworker.localnet.faults import GARBAGE_KINDS, MAX_LAG_SLOTS, validate
from chainworker.localnet.scheduler import LeaderSettings


def _integers(text: str, what: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what} must be comma-separated integers") from None


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _endpoint_ports(
    endpoints: int | None, endpoint_ports: str | None
) -> tuple[int, tuple[int, ...] | None]:
    if endpoint_ports is None:
        return endpoints or 1, None
    ports = tuple(_integers(endpoint_ports, "--endpoint-ports"))
    if endpoints is not None and endpoints != len(ports) + 1:
        raise typer.BadParameter(
            f"--endpoint-ports names {len(ports)} ports, --endpoints {endpoints} needs "
            f"{endpoints - 1} (endpoint 0 is on --port)"
        )
    return len(ports) + 1, ports


def _fault_endpoints(text: str, count: int) -> list[int] | None:
    if text.strip() == "all":
        return None
    chosen = _integers(text, "--fault-endpoints")
    if not chosen or any(not 0 <= index < count for index in chosen):
        raise typer.BadParameter(
            f"--fault-endpoints must be 'all' or indexes from 0 to {count - 1}"
        )
    return chosen


def _block_limits(
    no_block_limits: bool, block_unit_limit: int | None, account_unit_limit: int | None
) -> tuple[int, int]:
    defaults = LeaderSettings()
    if no_block_limits:
        if block_unit_limit is not None or account_unit_limit is not None:
            raise typer.BadParameter(
                "--no-block-limits turns both limits off: leave out --block-unit-limit "
                "and --account-unit-limit"
            )
        return 0, 0
    return (
        defaults.block_unit_limit if block_unit_limit is None else block_unit_limit,
        defaults.account_unit_limit if account_unit_limit is None else account_unit_limit,
    )


def register(app: typer.Typer) -> None:
    @app.command("localnet")
    def localnet(
        host: str = typer.Option("127.0.0.1", help="Address to listen on."),
        port: int = typer.Option(8899, help="JSON-RPC HTTP port (endpoint 0)."),
        ws_port: int | None = typer.Option(None, help="PubSub port; default: RPC port + 1."),
        endpoints: int | None = typer.Option(
            None, min=1, help="JSON-RPC endpoints over the one ledger (default 1)."
        ),
        endpoint_ports: str | None = typer.Option(
            None,
            help="Ports of endpoints 1, 2, ... comma-separated (0: any free port); "
            "default: the ports after the PubSub port.",
        ),
        slot_ms: int = typer.Option(400, min=1, help="Milliseconds per slot."),
        seed: int = typer.Option(0, help="Seed for genesis keys and fault decisions."),
        confirm_depth: int = typer.Option(1, min=1, help="Slots until a block is confirmed."),
        finalize_depth: int = typer.Option(32, min=1, help="Slots until a block is finalized."),
        drop_rate: float = typer.Option(0.0, min=0, max=1, help="Fraction of sends dropped."),
        drop_first_sends: int = typer.Option(0, min=0, help="Drop the first K sends of each tx."),
        land_delay_slots: int = typer.Option(0, min=0, help="Land transactions N slots late."),
        clock_frozen: bool = typer.Option(False, help="Start with the slot clock frozen."),
        fault_endpoints: str = typer.Option(
            "all", help="Endpoints the endpoint faults below apply to: 'all' or indexes, e.g. 1,2."
        ),
        http_error_rate: float = typer.Option(0.0, min=0, max=1, help="Fraction answered 429/503."),
        http_error_status: int = typer.Option(429, help="429 or 503."),
        stall_rate: float = typer.Option(0.0, min=0, max=1, help="Fraction of requests stalled."),
        stall_seconds: float = typer.Option(0.0, min=0, help="How long a stalled request waits."),
        stall_methods: str = typer.Option(
            "", help="Only requests for these methods stall, comma-separated (default: all)."
        ),
        lag_slots: int = typer.Option(
            0, min=0, max=MAX_LAG_SLOTS, help="Serve reads as of N slots ago."
        ),
        garbage_rate: float = typer.Option(
            0.0, min=0, max=1, help="Fraction of answers that are garbage."
        ),
        garbage_kinds: str = typer.Option(
            ",".join(GARBAGE_KINDS), help="Kinds of garbage, comma-separated."
        ),
        garbage_methods: str = typer.Option(
            "", help="Only answers to these methods, comma-separated (default: all)."
        ),
        slowloris_rate: float = typer.Option(
            0.0, min=0, max=1, help="Fraction of answers delivered slowly."
        ),
        slowloris_mode: str = typer.Option("trickle", help="trickle or headers_only."),
        slowloris_byte_seconds: float = typer.Option(
            0.1, min=0, help="Seconds between bytes in trickle mode."
        ),
        down: bool = typer.Option(False, help="Start with the endpoints down (not listening)."),
        block_unit_limit: int | None = typer.Option(
            None,
            min=0,
            help="Requested compute units one block may hold (default 60,000,000; 0: unlimited).",
        ),
        account_unit_limit: int | None = typer.Option(
            None,
            min=0,
            help="Requested compute units of one block's transactions that write-lock one "
            "account (default 24,000,000; 0: unlimited).",
        ),
        no_block_limits: bool = typer.Option(
            False, help="Both limits off: the leader takes whatever executes in time."
        ),
        pending_limit: int = typer.Option(
            LeaderSettings.pending_limit,
            min=0,
            help="Transactions waiting for a block; beyond, the lowest priority is dropped "
            "(0: unbounded).",
        ),
        competing_rate: float = typer.Option(
            0.0, min=0, help="Other users' transactions per second (0: none)."
        ),
        competing_unit_price: int = typer.Option(
            0, min=0, help="Their compute-unit price, micro-lamports per unit."
        ),
        competing_unit_limit: int = typer.Option(
            LeaderSettings.competing_unit_limit, min=1, help="Their requested compute units."
        ),
        competing_accounts: int = typer.Option(
            LeaderSettings.competing_accounts,
            min=1,
            help="Distinct accounts they write (each transaction writes one).",
        ),
    ) -> None:
        """Serve Solana JSON-RPC (HTTP) and PubSub (WebSocket) over LiteSVM, with faults."""
        from chainworker.localnet.server import NodeConfig, run

        count, ports = _endpoint_ports(endpoints, endpoint_ports)
        targets = _fault_endpoints(fault_endpoints, count)
        block_limit, account_limit = _block_limits(
            no_block_limits, block_unit_limit, account_unit_limit
        )
        faults: dict[str, Any] = {
            "drop_rate": drop_rate,
            "drop_first_sends": drop_first_sends,
            "land_delay_slots": land_delay_slots,
            "clock_frozen": clock_frozen,
            "http_error_rate": http_error_rate,
            "http_error_status": http_error_status,
            "stall_rate": stall_rate,
            "stall_seconds": stall_seconds,
            "stall_methods": _names(stall_methods),
            "lag_slots": lag_slots,
            "garbage_rate": garbage_rate,
            "garbage_kinds": _names(garbage_kinds),
            "garbage_methods": _names(garbage_methods),
            "slowloris_rate": slowloris_rate,
            "slowloris_mode": slowloris_mode,
            "slowloris_byte_seconds": slowloris_byte_seconds,
            "down": down,
            "block_unit_limit": block_limit,
            "account_unit_limit": account_limit,
            "pending_limit": pending_limit,
            "competing_rate": competing_rate,
            "competing_unit_price": competing_unit_price,
            "competing_unit_limit": competing_unit_limit,
            "competing_accounts": competing_accounts,
        }
        try:
            validate(faults)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
        if down and (targets is None or len(set(targets)) == count):
            raise typer.BadParameter("--down: at least one endpoint must stay up to serve /admin")
        run(
            NodeConfig(
                host=host,
                port=port,
                ws_port=ws_port,
                slot_ms=slot_ms,
                seed=seed,
                confirm_depth=confirm_depth,
                finalize_depth=finalize_depth,
                endpoints=count,
                endpoint_ports=ports,
            ),
            faults,
            targets,
        )
