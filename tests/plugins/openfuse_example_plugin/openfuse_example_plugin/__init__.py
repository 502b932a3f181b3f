"""An example third-party connector: yields the integers 1..count as a stream `numbers`."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from pydantic import Field

from openfuse_connectors import ConnectorConfig, Extractor, StreamInfo, StreamSpec, StreamState


class NumbersConfig(ConnectorConfig):
    count: int = Field(default=10, ge=0)


class NumbersExtractor(Extractor):
    """Counts from 1 (a plugin example)."""

    name = "example_numbers"
    config_model = NumbersConfig
    required_feature = "example_feature"
    config: NumbersConfig

    def check(self) -> None:
        return None

    def discover(self) -> list[StreamInfo]:
        schema = pa.schema([pa.field("n", pa.int64(), nullable=False)])
        return [StreamInfo("numbers", schema, ("n",), ("n",))]

    def read(
        self, stream: StreamSpec, state: StreamState | None, *, batch_size: int = 100_000
    ) -> Iterator[pa.RecordBatch]:
        start = int(state.cursor.as_py()) if state and state.cursor else 1
        n = start
        while n <= self.config.count:
            hi = min(self.config.count, n + batch_size - 1)
            yield pa.record_batch([pa.array(range(n, hi + 1), pa.int64())], names=["n"])
            n = hi + 1


class HrDirectory:
    """An example ``openfuse.policy`` attribute provider: principals from an "HR directory"."""

    name = "hr"
    PEOPLE = {"hr-ann": {"team": "people", "roles": ["viewer"], "region": "eu", "clearance": ["pii"]}}

    def principal_attributes(self, principal: str) -> dict[str, object] | None:
        return self.PEOPLE.get(principal)


class ExamplePolicies:
    """An example ``openfuse.policy`` policy store: Cedar text kept outside the governance folder."""

    name = "example-store"

    def policies(self) -> str:
        return (
            '@id("example-store.people-write")\n'
            'permit (principal, action == Action::"dataset:write", resource is Dataset)\n'
            'when { principal.team == "people" };\n'
        )
