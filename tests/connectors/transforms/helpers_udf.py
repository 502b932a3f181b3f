"""User functions for the `python` transform tests (importable as `helpers_udf`)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def double_amount(batch: pa.RecordBatch) -> pa.RecordBatch:
    i = batch.schema.get_field_index("amount")
    return batch.set_column(i, "amount", pc.multiply(batch.column(i), 2))


def explode(batch: pa.RecordBatch) -> pa.RecordBatch:
    if batch.num_rows:
        raise ValueError("boom in user code")
    return batch


def not_a_batch(batch: pa.RecordBatch) -> object:
    return [1, 2]
