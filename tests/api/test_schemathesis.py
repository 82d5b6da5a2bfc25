"""Property-based calls against the served OpenAPI: no 5xx, and every answer as documented."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import RunningApi, Tenant, new_tenant

EXAMPLES_PER_OPERATION = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def strategy_is_negative(checks: list[Any]) -> bool:
    return checks is not CHECKS


@pytest.fixture(scope="module")
async def fuzz_tenant(pool: asyncpg.Pool, admin: asyncpg.Connection) -> Tenant:
    return await new_tenant(pool, admin, tickets=3)


def test_served_schema_holds_for_generated_requests(
    running_api: RunningApi, fuzz_tenant: Tenant
) -> None:
    schema = schemathesis.openapi.from_url(f"{running_api.url}/openapi.json")
    headers = fuzz_tenant.auth(fuzz_tenant.admin_tokens[0])
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12, [op.label for op in operations]

    # Random ids mostly find nothing: also aim at the tenant's real ticket and event.
    known = {
        "ticket_id": str(fuzz_tenant.seeded.ticket_ids[0]),
        "event_id": str(fuzz_tenant.seeded.event_id),
    }
    strategies = []
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        strategies.append((operation, operation.as_strategy(), CHECKS))
        # Invalid input: still never a 5xx, always a documented content type.
        negative = operation.as_strategy(GenerationMode.NEGATIVE)
        strategies.append((operation, negative, [not_a_server_error, content_type_conformance]))
        if names and names <= known.keys():
            aimed = {name: known[name] for name in names}
            strategies.append((operation, operation.as_strategy(path_parameters=aimed), CHECKS))

    for operation, strategy, checks in strategies:
        try:
            run_examples(strategy, checks, headers)
        except Unsatisfiable:
            # Nothing about this operation can be made invalid (no parameters, no body).
            assert strategy_is_negative(checks), operation.label


def run_examples(strategy: Any, checks: list[Any], headers: dict[str, str]) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def calls(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=checks, timeout=10)

    calls()
