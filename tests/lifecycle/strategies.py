"""Hypothesis strategies for the lifecycle's plain data."""

from __future__ import annotations

from hypothesis import strategies as st

from chainworker.lifecycle.model import Commitment, ObservedStatus, Policy, TxSnapshot, TxStatus

times = st.floats(min_value=0, max_value=10_000, allow_nan=False, allow_infinity=False)
error_codes = st.sampled_from(["InstructionError:0:Custom:0", "InstructionError:3:Custom:1"])

policies = st.builds(
    Policy,
    max_retries=st.integers(min_value=0, max_value=5),
    target=st.sampled_from(Commitment),
    rebroadcast_interval_seconds=st.floats(min_value=0.1, max_value=10),
)

snapshots = st.builds(
    TxSnapshot,
    status=st.sampled_from(TxStatus),
    attempt=st.integers(min_value=1, max_value=7),
    last_valid_block_height=st.integers(min_value=0, max_value=1_000),
    last_sent_at=st.none() | times,
    last_rebroadcast_at=st.none() | times,
    expiry_check_pending=st.booleans(),
)

known_statuses = st.builds(
    ObservedStatus,
    slot=st.integers(min_value=0, max_value=10**9),
    confirmation_status=st.sampled_from(Commitment),
    err_code=st.none() | error_codes,
    err_message=st.none() | st.text(max_size=40),
)

observations = st.none() | known_statuses
