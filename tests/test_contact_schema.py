"""Schemathesis against the contact centre's API: every generated request answers as its schema says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from civicseal.contact import users
from civicseal.store.home import Home
from civicseal.web.app import create_app
from tests.contact_world import NOW, build


def test_the_api_keeps_to_its_schema(home: Home, tmp_path: Path) -> None:
    build(home, tmp_path)
    users.set_limits(home.engine, "sup1", hourly=10_000, miss_percent=100, now=NOW, actor="t")
    token = users.issue_api_token(home.engine, "sup1", now=NOW, actor="t")
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(home))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 6
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def generated(case: Any) -> None:
            # JSON Schema cannot say "a valid check digit" or "a bank that exists": such requests are 400 by design
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"}, excluded_checks=[positive_data_acceptance]
            )

        generated()
