"""The thin HTTP API: routes, bearer-token auth, idempotency keys, problem+json errors."""
