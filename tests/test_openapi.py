"""schemathesis against the app's own OpenAPI document: no server errors, no schema violations.

The same run from a shell against a live server:
`st run http://127.0.0.1:8000/openapi.json -H "Authorization: Bearer $KEY" --max-examples 15`
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from knowledge.embedding import Embedder
from service.app import Overrides, create_app
from service.config import RateLimitSettings, Settings
from tests.conftest import new_key

pytestmark = pytest.mark.slow
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
]
KEYS: dict[str, str] = {}


@pytest.fixture
def api_schema(settings: Settings, embedder: Embedder) -> Iterator[Any]:
    limits = RateLimitSettings(per_key="100000/minute", per_ip="100000/minute")
    app = create_app(
        settings.model_copy(update={"rate_limits": limits}), Overrides(embedder=embedder)
    )
    with TestClient(app) as client:  # runs the lifespan: the engine is started
        KEYS["secret"] = new_key(client)
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(
    max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
def test_no_server_error_and_no_schema_violation(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEYS['secret']}"}, checks=CHECKS)
