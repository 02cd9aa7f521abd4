"""An automated fuzz of the API (Schemathesis, in process): no answer is a 500, and every answer
matches the OpenAPI document (status, content type, headers, body). The document is the
committed docs/openapi.json, which test_serve checks is the app's own /openapi.json.
Derandomized and bounded so that it takes seconds; real analyses run behind it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from analyzer.serve import Settings, create_app

ROOT = Path(__file__).resolve().parent.parent
TICKET = ROOT / "samples" / "ticket-bundle" / "ticket.zip"
BASE = "http://127.0.0.1:8080"  # a host the server answers to
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app, and the id of a finished analysis in its index (the list then carries a whole entry)."""
    data = tmp_path_factory.mktemp("fuzz")
    application = create_app(Settings(data_dir=data, workers=1, queue_size=2))
    with TestClient(application, base_url=BASE) as c:
        id = c.post("/api/analyses", files=[("files", ("ticket.zip", TICKET.read_bytes()))]).json()["id"]
        deadline = time.monotonic() + 90
        while c.get(f"/api/analyses/{id}").json()["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    yield application, id
    schemathesis.python.asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def app(served):
    return served[0]


schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure shows its curl command as found
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_fuzz_no_500_and_schema_conformance(case, app):
    # a full queue is no server error but the documented 503 with Retry-After (a slow machine
    # fills the fixture's small queue): every other 5xx fails
    response = case.call_and_validate(base_url=BASE, checks=[c for c in CHECKS if c is not not_a_server_error], app=app)
    headers = {k.lower() for k in response.headers}
    assert response.status_code < 500 or (response.status_code == 503 and "retry-after" in headers), (
        response.status_code,
        response.content[:200],
    )
    if response.status_code >= 400:  # every problem is a JSON {"detail": …}
        assert "detail" in json.loads(response.content), response.content[:200]


def test_a_finished_analysis_matches_the_document(served):
    """What random ids never reach: a done analysis, its reports, and its deletion."""
    app, id = served
    for path in ("/api/analyses/{id}", "/api/analyses/{id}/report.json", "/api/analyses/{id}/report.md"):
        case = schema[path]["GET"].Case(path_parameters={"id": id})
        assert case.call_and_validate(base_url=BASE, checks=CHECKS, app=app).status_code == 200
    case = schema["/api/analyses/{id}"]["DELETE"].Case(path_parameters={"id": id})
    assert case.call_and_validate(base_url=BASE, checks=CHECKS, app=app).status_code == 204
