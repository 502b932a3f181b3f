"""The connector SDK's source conformance kit on the REST source, served by the test API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from rest_server import Api

from openfuse_connectors import testing
from openfuse_connectors.builtin.rest import CONNECTOR
from openfuse_connectors.registry import Registry
from openfuse_connectors.spec import StreamSpec, SyncMode
from openfuse_connectors.state import Cursor, StreamState
from openfuse_connectors.testing import SourceConformance


@pytest.fixture(autouse=True)
def _rest_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kit resolves connectors through entry points; `rest` has none until pyproject.toml
    # declares it, so add it to the kit's registry (harmless once it does).
    original = testing._registry

    def with_rest() -> Registry:
        reg = original()
        reg.add(CONNECTOR, origin="openfuse_connectors.builtin.rest")
        return reg

    monkeypatch.setattr(testing, "_registry", with_rest)


def sample_source(api: Api) -> dict[str, Any]:
    """`/sample` serves the kit's rows with decimals and timestamps as text; the schema types them."""
    return {
        "base_url": api.base_url,
        "resources": [
            {
                "name": "items",
                "path": "/sample",
                "record_selector": "$.data[*]",
                "primary_key": ["id"],
                "cursor_field": "updated_at",
                "incremental": {"param": "updated_since"},
                "schema": {
                    "id": "int64",
                    "name": "string",
                    "amount": "decimal128(12, 2)",
                    "updated_at": "timestamp[us, tz=UTC]",
                    "active": "bool",
                },
            }
        ],
    }


class TestRestSource(SourceConformance):
    connector = "rest"

    @pytest.fixture
    def source(self, api: Api) -> tuple[dict[str, Any], str]:
        return sample_source(api), "items"


def test_explicit_schema_reads_exact_values_and_sends_the_cursor_as_iso8601(api: Api) -> None:
    ex = testing._registry().extractor("rest", sample_source(api))
    rows = [r for b in ex.read(StreamSpec(name="items"), None) for r in b.to_pylist()]
    assert rows == testing.sample_rows(range(1, 11))
    assert isinstance(rows[0]["amount"], Decimal)
    spec = StreamSpec(name="items", mode=SyncMode.INCREMENTAL_APPEND, cursor_field="updated_at")
    state = StreamState(
        cursor=Cursor(field="updated_at", type="timestamp[us, tz=UTC]", value="2024-01-01 00:00:06.000000Z")
    )
    assert [r["id"] for b in ex.read(spec, state) for r in b.to_pylist()] == [6, 7, 8, 9, 10]
    assert api.state.queries["/sample"][-1] == {"updated_since": "2024-01-01T00:00:06Z"}
