"""schemathesis against the app's own OpenAPI document, on a live server: no server errors,
no schema violations, only documented status codes and content types.

The same run from a shell against `make run`:
`st run http://127.0.0.1:8000/openapi.json -H "Authorization: Bearer $KEY" --max-examples 15`
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from knowledge.embedding import Embedder
from service.config import RateLimitSettings, Settings
from service.store.tenants import KeySpec
from tests.test_openai_compat import live_server

pytestmark = pytest.mark.slow
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
]
EXAMPLES_PER_OPERATION = 12


@pytest.fixture
def server(settings: Settings, embedder: Embedder) -> Iterator[tuple[str, str, dict[str, Any]]]:
    limits = RateLimitSettings(per_key="100000/minute", per_ip="100000/minute")
    with live_server(settings.model_copy(update={"rate_limits": limits}), embedder) as (
        base,
        app,
    ):
        key = app.state.components.tenants.create_key("default", _spec())[1]
        yield base, key, app.openapi()


def _spec() -> KeySpec:
    return KeySpec("schemathesis", "secret", ["chat", "agent", "admin"])


def test_no_server_error_and_no_schema_violation(
    server: tuple[str, str, dict[str, Any]],
) -> None:
    base, key, document = server
    headers = {"Authorization": f"Bearer {key}"}
    failures: list[str] = []
    statuses: list[int] = []
    for result in schemathesis.openapi.from_dict(document).get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid schema raises here

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call_and_validate(
                base_url=base, headers=headers, checks=CHECKS, timeout=60
            )
            statuses.append(response.status_code)

        try:
            check()
        except Exception as exc:  # report every failing operation, not just the first
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    operations = len(document["paths"])
    assert len(statuses) >= operations * 3, "schemathesis generated too few cases to mean much"
    assert sum(200 <= s < 300 for s in statuses) >= operations, "too few requests succeeded"
