"""Add lineage columns: when the row was synced and by which run."""

from __future__ import annotations

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from openfuse_connectors.transformer import TransformContext, Transformer


class _MetaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    synced_at: str | None = "_openfuse_synced_at"
    run_id: str | None = "_openfuse_run_id"


class AddMetadata(Transformer):
    """Add ``_openfuse_synced_at`` (the run's start, UTC) and ``_openfuse_run_id`` (set a name to null to skip one)."""

    name = "add_metadata"
    options_model = _MetaOptions
    opts: _MetaOptions
    ctx: TransformContext | None = None

    def setup(self, ctx: TransformContext) -> None:
        self.ctx = ctx

    def _added(self) -> list[pa.Field]:
        out = []
        if self.opts.synced_at:
            out.append(pa.field(self.opts.synced_at, pa.timestamp("us", tz="UTC")))
        if self.opts.run_id:
            out.append(pa.field(self.opts.run_id, pa.string()))
        return out

    def transform_schema(self, schema: pa.Schema) -> pa.Schema:
        names = {f.name for f in self._added()}
        return pa.schema([f for f in schema if f.name not in names] + self._added())

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        assert self.ctx is not None, "setup() must run first"
        n = batch.num_rows
        values = {
            self.opts.synced_at: pa.repeat(pa.scalar(self.ctx.started_at, pa.timestamp("us", tz="UTC")), n),
            self.opts.run_id: pa.repeat(pa.scalar(self.ctx.run_id, pa.string()), n),
        }
        added = self._added()
        keep = [i for i, name in enumerate(batch.schema.names) if name not in {f.name for f in added}]
        arrays = [batch.column(i) for i in keep] + [values[f.name] for f in added]
        return pa.RecordBatch.from_arrays(
            arrays, schema=pa.schema([batch.schema.field(i) for i in keep] + added)
        )
