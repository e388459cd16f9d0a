"""Schemathesis against the live OpenAPI schema of a real daphne: generated requests (valid and
invalid) to every operation must never get a 5xx, and every answer must match the schema declared
for its status. Bounded (few examples per operation, derandomized) so it runs in seconds, the same
cases every time."""
from __future__ import annotations

import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.api_support import start_api_server, token_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory):
    proc, srv = start_api_server(tmp_path_factory.mktemp("fuzz"), django_db_blocker, DGX_API_RATE_LIMIT="0")
    yield srv
    proc.stop()


def _schema() -> dict:
    from batches.http_api import api

    return api.get_openapi_schema()


# pytest 9 has no `_nodeid` for schemathesis' lazy `from_fixture`: the cases come from the schema
# as the API builds it, and the test checks the live daphne serves that very schema.
schema = schemathesis.openapi.from_dict(_schema())


@pytest.fixture
def auth_header(django_user_model):
    boss = django_user_model.objects.create_superuser("boss", "", "pw")
    return {"Authorization": f"Bearer {token_for(boss)}"}


@pytest.fixture(scope="module")
def live_schema_checked(server):
    live = requests.get(f"{server.url}/api/v1/schema", timeout=30).json()
    assert live == json.loads(json.dumps(_schema())), "daphne serves another schema than the one fuzzed"


@schema.parametrize()
@settings(max_examples=4, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_a_server_error_or_off_its_schema(case, server, auth_header, live_schema_checked):
    case.call_and_validate(base_url=server.url, headers=auth_header, timeout=30,
                           checks=[not_a_server_error, response_schema_conformance])
