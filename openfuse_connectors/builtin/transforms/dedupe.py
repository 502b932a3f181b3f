"""Drop repeated keys within one run (the first row of each key wins)."""

from __future__ import annotations

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from openfuse_connectors.builtin.transforms.columns import require
from openfuse_connectors.state import key_digests
from openfuse_connectors.transformer import TransformContext, Transformer


class _DedupeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key: list[str] = Field(min_length=1)


class Dedupe(Transformer):
    """Keep the first row of each key in this run. Memory: one 12-byte digest per distinct key."""

    name = "dedupe"
    options_model = _DedupeOptions
    opts: _DedupeOptions

    def setup(self, ctx: TransformContext) -> None:
        self.seen: set[str] = set()

    def transform_schema(self, schema: pa.Schema) -> pa.Schema:
        require(self.name, schema, self.opts.key)
        return schema

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        keep = []
        for d in key_digests(batch, self.opts.key):
            keep.append(d not in self.seen)
            self.seen.add(d)
        return batch if all(keep) else batch.filter(pa.array(keep))
