"""The OpenAPI document is a reviewed contract: the live one must equal the committed snapshot."""

from __future__ import annotations

from api.snapshot import SNAPSHOT, live_document, render


def test_openapi_matches_the_committed_snapshot() -> None:
    live = render(live_document())
    assert SNAPSHOT.exists(), f"{SNAPSHOT} is missing; run `python -m api.snapshot` and commit it"
    assert live == SNAPSHOT.read_text(encoding="utf-8"), (
        f"the OpenAPI document changed; if that is intended, run `python -m api.snapshot` and commit {SNAPSHOT.name}"
    )


def test_openapi_is_3_1_with_problem_responses_and_bearer_auth() -> None:
    doc = live_document()
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    op = doc["paths"]["/api/v1/connections"]["post"]
    assert op["operationId"] == "create_connection"
    assert set(op["responses"]["422"]["content"]) == {"application/problem+json"}
    assert "security" not in doc["paths"]["/healthz"]["get"]
